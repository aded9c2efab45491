"""What the budgets count is what is billed, and whose jobs each limit counts.

FLUX.2 references booked at their real size; a job settled from what its prediction made (a paid prediction
counts whatever happens after); failed, cancelled and aborted predictions; a server's limits counting only that
server; the operator's caps per user everywhere and for the whole bot, under racing commands on both stores;
MODEL_PRICES reaching admission and settlement; the usage report's windows.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from cli.harness import wait_status
from fakes.cometapi import Outcome
from services.cometapi.files import ImageFile
from services.cometapi.predictions import Prediction
from services.config import load_settings
from services.errors import (
    ApiError,
    AuthError,
    BillingError,
    Canceled,
    ConfigError,
    GenerationFailed,
    RateLimited,
    Rejected,
    ServiceError,
    TooLate,
    Unavailable,
    UncertainCreate,
)
from services.jobs.settlement import Settlement
from services.limits import Limits
from services.rules import usage
from services.rules.catalogue import built_in
from services.rules.pricing import Pricing
from services.store.job_extra import JobExtra
from services.store.models import GuildSettings, JobStatus
from tests.helpers import (
    EPHEMERAL,
    IMAGE_SLOTS,
    admit_all,
    ephemeral_text,
    imagine,
    job_shown_in,
    new_job,
    png,
    private_reply,
    result_of,
    setup_guild,
)

FLUX2 = "black-forest-labs/flux-2-pro"
PRO = "black-forest-labs/flux-1.1-pro"
DAY = 86400.0


def costing(user_id: int, cost: int, **kwargs):
    return replace(new_job(user_id, **kwargs), cost_microusd=cost)


@pytest.fixture
def world(world_any_store):
    return world_any_store


# --- booked at the real size, settled from what came back ---------------------------------------------------


async def test_eight_large_flux2_references_are_booked_at_their_real_size(world):
    """8 references of 2048x2048 with the output matching them cost $0.015 + 8 x 4 x $0.015 + 4 x $0.015 = $0.555:
    a $0.50 daily budget takes none, a $0.60 one takes one such job, not a second (booked as 1 MP each, a $0.50
    budget took three)."""

    guild, channel, alice = setup_guild(world, "alice")
    big = png(2048, 2048)

    def references():
        files = [world.discord.add_attachment(f"ref{n}.png", big, "image/png") for n in range(8)]
        return files, {slot: f["id"] for slot, f in zip(IMAGE_SLOTS, files, strict=False)}

    async with world.bot() as bot:
        # Under a $0.50 budget the first such job is already too dear: refused before anything is sent.
        await bot.store.save_guild_settings(
            GuildSettings(guild.id, {}, None, {"usd_per_guild_per_day": 0.5}, updated_at=1.0)
        )
        files, slots = references()
        refused = await imagine(
            world, guild, channel, alice, prompt="a collage --res match", model="flux-2-pro", attachments=files, **slots
        )
        first_refusal = await private_reply(world, refused)
        assert first_refusal.text.startswith("This server's budget is $0.50 per day, and $0.50 of it is left")
        assert "estimated at $0.555" in first_refusal.text
        assert world.comet.creates() == []
        await bot.store.save_guild_settings(
            GuildSettings(guild.id, {}, None, {"usd_per_guild_per_day": 0.6}, updated_at=2.0)
        )
        files, slots = references()
        first = await imagine(
            world, guild, channel, alice, prompt="a collage --res match", model="flux-2-pro", attachments=files, **slots
        )
        final = await first.wait_original(lambda m: bool(m.attachments), timeout=20)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
        assert job.cost_microusd == 555_000
        assert job.extra.input_sizes == ((2048, 2048),) * 8
        files, slots = references()
        second = await imagine(
            world, guild, channel, alice, prompt="again --res match", model="flux-2-pro", attachments=files, **slots
        )
        reply = await private_reply(world, second)
    assert reply.flags & EPHEMERAL
    assert reply.text.startswith("This server's budget is $0.60 per day")
    assert "this request is estimated at $0.555" in reply.text
    assert len(world.comet.creates()) == 1


def test_a_flux2_job_settles_at_the_size_of_its_outputs():
    settlement = Settlement(Pricing(built_in()))
    job = replace(
        new_job(1),
        model=FLUX2,
        input={"prompt": "x", "input_images": ["a"], "resolution": "4 MP"},
        extra=JobExtra(input_sizes=((1024, 1024),)),
        cost_microusd=90_000,  # $0.015 + 1 MP in + 4 MP out
    )
    small = ImageFile(png(1024, 768), "image/png", "png")
    large = ImageFile(png(2048, 2048), "image/png", "png")
    assert settlement.fetched(job, [small]) == 45_000  # $0.015 + 1 MP in + 1 MP out
    assert settlement.fetched(job, [large]) == 90_000
    done = Prediction(id="p", status="succeeded", output=("https://x/1.png",))
    assert settlement.succeeded(job, done) == 90_000  # before the download: as asked for
    per_image = replace(new_job(1, images=4), model="black-forest-labs/flux-schnell", cost_microusd=12_000)
    two_back = Prediction(id="p", status="succeeded", output=("https://x/1.png", "https://x/2.png"))
    assert settlement.succeeded(per_image, two_back) == 6_000  # 2 of the 4 asked for came back


def test_how_an_ended_prediction_counts():
    booked = replace(new_job(1), cost_microusd=40_000, prediction_id="p", status=JobStatus.RUNNING)
    counting, free = Settlement(Pricing(built_in())), Settlement(Pricing(built_in()), count_failed=False)
    failed = GenerationFailed("boom", outcome="failed")
    assert counting.ended(booked, failed) == 40_000
    assert free.ended(booked, failed) == 0
    assert free.ended(booked, Canceled()) == 0
    assert counting.ended(booked, GenerationFailed("dropped", outcome="aborted")) == 0  # not billed, says the API
    assert free.ended(booked, GenerationFailed("no image", outcome="succeeded")) == 40_000
    paid = replace(booked, status=JobStatus.DELIVERING, settled_microusd=40_000)
    assert free.ended(paid, Canceled()) is None  # keeps what it settled at
    never_sent = replace(booked, prediction_id=None, status=JobStatus.QUEUED)
    assert counting.ended(never_sent, Canceled()) == 0
    interrupted = replace(never_sent, status=JobStatus.SUBMITTING)  # the create may have reached the API
    assert free.ended(interrupted, failed) == 40_000


def test_a_create_counts_its_booking_only_when_it_may_have_reached_the_api():
    """A job that ends in "submitting" with no prediction id: its create was sent, and failed. The API refused it
    outright or it never left (nothing was made): it counts nothing. It may have reached the API (no answer, a 5xx, an
    answer naming no prediction, a restart while creating, or a fault after the create): it counts its booking."""
    sent = replace(new_job(1), cost_microusd=40_000, status=JobStatus.SUBMITTING)
    counting, free = Settlement(Pricing(built_in())), Settlement(Pricing(built_in()), count_failed=False)
    refusals = [
        Rejected("The API rejected the request (HTTP 422): input.prompt: flagged", status=422),
        Rejected("The API rejected the request (HTTP 400): bad aspect_ratio", status=400),
        Rejected("The API rejected the request (HTTP 500): invalid", status=500),  # code invalid_request
        AuthError("The API refused the key (HTTP 401)", status=401),
        BillingError("The API account is out of credit (HTTP 402)", status=402),
        RateLimited("The API is rate limiting requests", retry_after=None),  # outlasted the retries
        Unavailable("Could not connect to the API (ClientConnectorError)."),  # never left
        ApiError("The API answered HTTP 409: conflict", status=409),
    ]
    for refusal in refusals:
        assert counting.ended(sent, refusal) == 0, refusal
        assert free.ended(sent, refusal) == 0, refusal
    maybe_made = [
        UncertainCreate("The API answered HTTP 524 to the request to start the generation", status=524),
        UncertainCreate("The request to start the generation timed out after it was sent."),
        ServiceError("interrupted while starting"),
        TooLate("not done before the interaction token expires"),
        Canceled(),
        ConnectionError("the store went away after the create"),
    ]
    for error in maybe_made:
        assert counting.ended(sent, error) == 40_000, error
        assert free.ended(sent, error) == 40_000, error
    queued = replace(sent, status=JobStatus.QUEUED)  # never sent at all
    assert counting.ended(queued, UncertainCreate("x")) == 0


async def test_a_prediction_that_succeeded_counts_even_when_cancelled_while_its_images_download(world):

    guild, channel, alice = setup_guild(world, "alice")
    admin = world.discord.add_user("admin")
    world.discord.add_member(guild, admin, permissions=["manage_guild"])
    world.comet.inject("file", status=None, delay=30.0)  # the images take long to download
    async with world.bot() as bot:
        await ephemeral_text(
            await world.discord.slash_command(
                guild, channel, admin, "imagine-settings budgets", {"usd_per_user_per_day": 0.05}
            )
        )
        handle = await imagine(world, guild, channel, alice, prompt="a paid castle", model="flux-1.1-pro")
        msg = await handle.wait_original(lambda m: not m.loading and bool(m.text))
        job = await job_shown_in(bot, msg.id)
        job = await wait_status(bot, job.id, "delivering")
        assert job.settled_microusd == 40_000  # settled as soon as the prediction succeeded
        custom_id = f"flux:cancel:{job.id}"
        msg = await handle.wait_original(lambda m: custom_id in str(m.components))
        click = await world.discord.click_button(msg.id, custom_id, alice)
        await click.wait_response()
        job = await wait_status(bot, job.id, "canceled")
        assert job.settled_microusd == 40_000
        second = await imagine(world, guild, channel, alice, prompt="another castle", model="flux-1.1-pro")
        reply = await private_reply(world, second)
    assert reply.text.startswith("Your budget is $0.05 per day, and $0.01 of it is left")
    assert len(world.comet.creates()) == 1


@pytest.mark.parametrize(
    ("outcome", "env", "counted"),
    [
        (Outcome(status="failed"), {}, 40_000),
        (Outcome(status="failed"), {"COUNT_FAILED_PREDICTIONS": "false"}, 0),
        (Outcome(status="aborted"), {}, 0),
    ],
)
async def test_a_failed_prediction_counts_as_the_operator_says(world_any_store, outcome, env, counted):

    world = world_any_store
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(outcome)
    async with world.bot(**env) as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a castle", model="flux-1.1-pro")
        msg = await handle.wait_original(lambda m: not m.loading and bool(m.text))
        job = await wait_status(bot, (await job_shown_in(bot, msg.id)).id, "failed")
        spent = await bot.store.spend_since(guild.id, 0)
    assert job.settled_microusd == counted
    assert sum(row.cost_microusd for row in spent) == counted


# --- whose jobs each limit counts ----------------------------------------------------------------------------


async def test_a_servers_limits_count_only_the_jobs_made_in_it(store):
    """Three images in another server and two in DMs do not use a member's quota or budget in this one."""
    now = time.time()
    for guild_id in (1, 1, 1, None, None):
        job = costing(7, 40_000, guild_id=guild_id, created_at=now - 60)
        await store.admit_job(job, Limits(cooldown_seconds=0, jobs_in_flight=50), now=job.created_at)
    limits = Limits(
        cooldown_seconds=0,
        jobs_in_flight=50,
        images_per_user_per_day=2,
        user_budget_day=80_000,
        user_budget_month=80_000,
    )
    here = costing(7, 40_000, guild_id=2)
    assert await store.admit_job(here, limits, now=now) is None
    again = costing(7, 40_000, guild_id=2)
    assert await store.admit_job(again, limits, now=now) is None
    third = costing(7, 40_000, guild_id=2)
    refusal = await store.admit_job(third, limits, now=now)
    assert refusal is not None
    assert (refusal.limit, refusal.used, refusal.allowed) == ("user_quota", 2, 2)
    assert sum(row.cost_microusd for row in await store.spend_since(2, now - DAY)) == 80_000
    assert sum(row.images for row in await store.spend_since(1, now - DAY)) == 3


async def test_the_operators_cap_per_user_counts_every_server_and_dm_under_racing_commands(store, store_target):
    other = await store_target.open()
    limits = Limits(cooldown_seconds=0, jobs_in_flight=50, everywhere_images_day=3)
    try:
        jobs = [new_job(5, guild_id=guild_id) for guild_id in (1, 2, None, 3, None, 1, 4, None)]
        admitted, refusals = await admit_all([store, other], jobs, limits)
    finally:
        await other.close()
    assert len(admitted) == 3
    assert {r.limit for r in refusals} == {"everywhere_quota"}
    assert str(refusals[0].text()).startswith("You have used 3 of the 3 images this bot allows each person per day.")


async def test_the_operators_daily_budget_per_user_and_for_the_bot_hold_under_racing_commands(store, store_target):
    other = await store_target.open()
    try:
        per_user = Limits(cooldown_seconds=0, jobs_in_flight=50, everywhere_budget_day=100_000)
        jobs = [costing(5, 40_000, guild_id=guild_id) for guild_id in (1, None, 2, None, 3)]
        admitted, refusals = await admit_all([store, other], jobs, per_user)
        assert len(admitted) == 2
        assert {r.limit for r in refusals} == {"everywhere_budget_day"}
        # the whole bot: $0.20 a day, ten people in ten places at once (the two jobs above count too)
        bot_wide = Limits(cooldown_seconds=0, jobs_in_flight=50, bot_budget_day=200_000)
        jobs = [costing(100 + n, 40_000, guild_id=n if n % 2 else None) for n in range(10)]
        admitted, refusals = await admit_all([store, other], jobs, bot_wide)
    finally:
        await other.close()
    assert len(admitted) == 3  # 80k + 3 x 40k = 200k
    assert {r.limit for r in refusals} == {"bot_budget_day"}
    assert str(refusals[0].text()).startswith("This bot has spent its budget for the day ($0.20; $0.00 is left)")


async def test_the_operators_cap_covers_dms_buttons_and_reroll_reactions(world):

    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(USER_DAILY_IMAGES="2") as bot:
        result, _ = await result_of(world, bot, guild, channel, alice)
        dm = world.discord.dm_channel(alice.id)
        in_dm = await world.discord.slash_command(None, dm.id, alice, "imagine", {"prompt": "a dm fox"})
        await in_dm.wait_original(lambda m: bool(m.attachments), timeout=10)
        creates = len(world.comet.creates())
        # a 🔄 reaction and a /imagine race each other: both are over the cap
        handle, _ = await asyncio.gather(
            imagine(world, guild, channel, alice, prompt="a third fox"),
            world.discord.add_reaction(channel, result.id, alice, "🔄"),
        )
        reply = await private_reply(world, handle)
        answer = await world.discord.wait_for(
            lambda: next((m for m in world.discord.messages_in(channel) if m.message_reference), None),
            what="the answer to the reaction",
        )
    assert reply.flags & EPHEMERAL
    assert reply.text.startswith("You have used 2 of the 2 images this bot allows each person per day.")
    assert "allows each person per day" in answer.text
    assert len(world.comet.creates()) == creates == 2


# --- prices and the usage report -----------------------------------------------------------------------------


async def test_model_prices_reach_admission_settlement_and_the_usage_report(world):

    guild, channel, alice = setup_guild(world, "alice")
    admin = world.discord.add_user("admin")
    world.discord.add_member(guild, admin, permissions=["manage_guild"])
    async with world.bot(MODEL_PRICES="flux-schnell=0.5") as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a dear fox", num_outputs=2)
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
        text = await ephemeral_text(await world.discord.slash_command(guild, channel, admin, "imagine-settings usage"))
    assert (job.cost_microusd, job.settled_microusd) == (1_000_000, 1_000_000)
    assert text.startswith("**Today (24 h)**: 2 images, about $1.00")


async def test_the_usage_report_counts_each_job_in_the_windows_it_falls_in(store):
    now = time.time()
    ages_and_costs = [(0.5, 10_000), (3, 20_000), (10, 40_000), (29, 80_000), (40, 160_000)]
    for age, cost in ages_and_costs:
        job = costing(1, cost, created_at=now - age * DAY)
        await store.admit_job(job, Limits(cooldown_seconds=0, jobs_in_flight=50), now=job.created_at)
        await store.transition(job.id, [JobStatus.QUEUED], JobStatus.SUCCEEDED, owner=None, settled_microusd=cost // 2)
    periods = [
        usage.summarize(label, await store.spend_since(42, usage.since(now, days))) for label, days in usage.PERIODS
    ]
    assert [p.total.cost_microusd for p in periods] == [5_000, 15_000, 75_000]
    assert [p.total.images for p in periods] == [1, 2, 4]


async def test_the_usage_report_shows_a_window_that_adds_nothing_once(store):
    now = time.time()
    for age in (0.5, 3):  # one job today, one three days ago: the 30 days are the 7 days
        job = costing(1, 10_000, created_at=now - age * DAY)
        await store.admit_job(job, Limits(cooldown_seconds=0, jobs_in_flight=50), now=job.created_at)

    async def report() -> str:
        periods = [
            usage.summarize(label, await store.spend_since(42, usage.since(now, days))) for label, days in usage.PERIODS
        ]
        return str(usage.report(periods))

    text = await report()
    assert "**Today (24 h)**: 1 image" in text and "**7 days**: 2 images" in text
    assert "**30 days**" not in text.split("\n\n")[1]
    assert "**30 days**: the same as 7 days." in text
    older = costing(1, 10_000, created_at=now - 20 * DAY)
    await store.admit_job(older, Limits(cooldown_seconds=0, jobs_in_flight=50), now=older.created_at)
    text = await report()
    assert "**30 days**: 3 images" in text and "the same as" not in text


def test_the_operators_caps_are_settings():
    base = {"COMETAPI_KEY": "k" * 20}
    settings = load_settings(
        {**base, "USER_DAILY_BUDGET_USD": "0.25", "USER_DAILY_IMAGES": "20", "BOT_DAILY_BUDGET_USD": "30"},
        require_discord=False,
    )
    assert (settings.user_daily_budget_micros, settings.user_daily_images, settings.bot_daily_budget_micros) == (
        250_000,
        20,
        30_000_000,
    )
    assert load_settings(base, require_discord=False).bot_daily_budget_micros is None
    for name, bad in (("USER_DAILY_BUDGET_USD", "-1"), ("BOT_DAILY_BUDGET_USD", "lots"), ("USER_DAILY_IMAGES", "2.5")):
        with pytest.raises(ConfigError, match=name):
            load_settings({**base, name: bad}, require_discord=False)
