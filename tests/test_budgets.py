"""Spend in money: prices per model, each job's estimated cost, budgets judged in the same atomic step as the
quotas (both stores, across processes), and /imagine-settings budgets and usage end to end."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from services.config import load_settings
from services.errors import ConfigError
from services.limits import Limits, Refusal
from services.money import dollars, to_micros
from services.rules.catalogue import built_in
from services.rules.pricing import estimate_cost, parse_prices
from services.store.models import JobStatus
from tests.helpers import (
    EPHEMERAL,
    add_member,
    admit_all,
    ephemeral_text,
    imagine,
    job_shown_in,
    new_job,
    private_reply,
    result_of,
    setup_guild,
)

MODELS = built_in()
FOX = "black-forest-labs/flux-schnell"
PRO = "black-forest-labs/flux-1.1-pro"
FLUX2 = "black-forest-labs/flux-2-pro"
CENTS_4 = 40_000  # $0.04 in millionths


def costing(user_id: int, cost: int, **kwargs):
    from dataclasses import replace

    return replace(new_job(user_id, **kwargs), cost_microusd=cost)


# --- prices ----------------------------------------------------------------------------------------------------


def test_per_image_models_cost_their_price_times_the_images():
    assert estimate_cost(MODELS, FOX, {"num_outputs": 4}) == Decimal("0.012")
    assert estimate_cost(MODELS, PRO, {"prompt": "x"}) == Decimal("0.04")
    assert estimate_cost(MODELS, "black-forest-labs/flux-kontext-max", {"input_image": "u"}) == Decimal("0.08")


def test_flux2_is_priced_per_run_and_megapixel_in_and_out():
    assert estimate_cost(MODELS, FLUX2, {"resolution": "1 MP"}) == Decimal("0.03")
    assert estimate_cost(MODELS, FLUX2, {"resolution": "4 MP"}) == Decimal("0.075")
    one_mp = (1024, 1024)
    assert estimate_cost(MODELS, FLUX2, {"input_images": ["a", "b"]}, None, [one_mp, one_mp]) == Decimal("0.06")
    # a size not known is booked as the largest FLUX.2 makes (4 MP): an upper bound
    assert estimate_cost(MODELS, FLUX2, {"input_images": ["a", "b"]}) == Decimal("0.15")
    # eight 2048x2048 references, the output as large as the first: $0.015 + 8 x 4 x $0.015 + 4 x $0.015
    eight = {"input_images": list("abcdefgh"), "resolution": "match_input_image"}
    assert estimate_cost(MODELS, FLUX2, eight, None, [(2048, 2048)] * 8) == Decimal("0.555")
    # custom size: megapixels rounded up per image (2048x2048 = 4 MP, 1100x1100 = 1.15 -> 2 MP)
    assert estimate_cost(MODELS, FLUX2, {"aspect_ratio": "custom", "width": 2048, "height": 2048}) == Decimal("0.075")
    assert estimate_cost(MODELS, FLUX2, {"aspect_ratio": "custom", "width": 1100, "height": 1100}) == Decimal("0.045")


def test_an_unknown_model_is_priced_like_the_dearest_per_image_model():
    dearest = max(spec.price.rates.per_image for spec in MODELS.values() if spec.price is not None)
    assert dearest > 0
    assert estimate_cost(MODELS, "someone/else", {}) == Decimal(str(dearest))


def test_the_operator_overrides_prices():
    prices = parse_prices("flux-schnell=0.002; flux-2-pro=run:0.01,out_mp:0.02")
    assert estimate_cost(MODELS, FOX, {"num_outputs": 2}, prices) == Decimal("0.004")
    assert estimate_cost(MODELS, FLUX2, {"input_images": ["a"]}, prices) == Decimal("0.03")  # in_mp left out: 0
    assert estimate_cost(MODELS, PRO, {}, prices) == Decimal("0.04")  # untouched
    settings = load_settings({"COMETAPI_KEY": "k" * 20, "MODEL_PRICES": "flux-dev=0.02"}, require_discord=False)
    assert settings.model_prices["black-forest-labs/flux-dev"].rates.per_image == 0.02
    for bad in ("flux-dev", "flux-dev=abc", "flux-dev=-1", "flux-dev=nan", "flux-2-pro=per_mp:0.1"):
        with pytest.raises(ConfigError, match="MODEL_PRICES"):
            load_settings({"COMETAPI_KEY": "k" * 20, "MODEL_PRICES": bad}, require_discord=False)


def test_money_is_counted_in_millionths_and_shown_for_people():
    assert to_micros(Decimal("0.003")) == 3000
    assert dollars(3000) == "$0.003"
    assert dollars(1_250_000) == "$1.25"
    assert dollars(0) == "$0.00"
    assert dollars(52_000) == "$0.052"
    assert dollars(12_345_678) == "$12.35"


def test_budgets_in_dollars_become_limits_and_0_means_none():
    limits = Limits(cooldown_seconds=0, jobs_in_flight=2).merged(
        {"usd_per_user_per_day": 0.5, "usd_per_guild_per_month": 20, "usd_per_user_per_month": 0}
    )
    assert (limits.user_budget_day, limits.guild_budget_month, limits.user_budget_month) == (500_000, 20_000_000, None)
    assert limits.guild_wide


# --- budgets in the store: one atomic step with the job's insert ----------------------------------------------


async def test_racing_members_never_exceed_the_server_budget(store, store_target):
    """Ten members of one server ask at once, through two stores (two processes): a $0.10 daily budget lets
    two $0.04 images through, never three."""
    other = await store_target.open()
    limits = Limits(cooldown_seconds=0, jobs_in_flight=5, guild_budget_day=100_000)
    try:
        jobs = [costing(user, CENTS_4) for user in range(1, 11)]
        admitted, refusals = await admit_all([store, other], jobs, limits)
    finally:
        await other.close()
    assert len(admitted) == 2
    assert {r.limit for r in refusals} == {"guild_budget_day"}
    assert refusals[0] == Refusal("guild_budget_day", 80_000, 100_000, CENTS_4)
    # the day frees up when the oldest counted job is a day old
    frees = int(min(job.created_at for job in admitted) + 86400) + 1
    assert str(refusals[0].text()) == (
        "This server's budget is $0.10 per day, and $0.02 of it is left; this request is estimated at $0.04. "
        f"It starts to free up <t:{frees}:R>."
    )
    assert sum(j.cost_microusd for j in await store.active_jobs(None)) == 80_000


async def test_racing_commands_of_one_member_never_exceed_their_budget(store, store_target):
    other = await store_target.open()
    limits = Limits(cooldown_seconds=0, jobs_in_flight=50, user_budget_month=120_000)
    try:
        jobs = [costing(1, CENTS_4) for _ in range(8)]
        admitted, refusals = await admit_all([store, other], jobs, limits)
    finally:
        await other.close()
    assert len(admitted) == 3
    assert str(refusals[0].text()).startswith(
        "Your budget is $0.12 per 30 days, and $0.00 of it is left; this request is estimated at $0.04. "
        "It starts to free up <t:"
    )


async def test_the_month_counts_30_days_and_failed_jobs_give_their_cost_back(store):
    limits = Limits(cooldown_seconds=0, jobs_in_flight=50, user_budget_month=100_000, user_budget_day=60_000)
    old = costing(1, 90_000, created_at=time.time() - 31 * 86400)
    recent = costing(1, 50_000, created_at=time.time() - 20 * 86400)
    failed = costing(1, 90_000)
    for job in (old, recent, failed):
        await store.admit_job(job, Limits(cooldown_seconds=0, jobs_in_flight=50), now=job.created_at)
    await store.transition(failed.id, [JobStatus.QUEUED], JobStatus.FAILED, owner=None)
    assert await store.admit_job(costing(1, 50_000), limits, now=time.time()) is None  # 50k + 50k <= 100k
    refusal = await store.admit_job(costing(1, 10_000), limits, now=time.time())
    assert refusal == Refusal("user_budget_month", 100_000, 100_000, 10_000)


# --- end to end ----------------------------------------------------------------------------------------------


@pytest.fixture
def world(world_any_store):
    return world_any_store


async def test_an_admin_sets_budgets_and_an_image_over_it_is_refused_saying_what_is_left(world):

    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        text = await ephemeral_text(
            await world.discord.slash_command(
                guild, channel, admin, "imagine-settings budgets", {"usd_per_user_per_day": 0.05}
            )
        )
        assert "Budget per user: $0.05 per day" in text
        handle = await imagine(world, guild, channel, member, prompt="a castle", model="flux-1.1-pro")
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await job_shown_in(bot, final.id)
        assert job.cost_microusd == CENTS_4
        creates = len(world.comet.creates())
        handle = await imagine(world, guild, channel, member, prompt="another castle", model="flux-1.1-pro")
        msg = await assert_refused_privately_after(world, handle, creates)
    assert msg.startswith(
        "Your budget is $0.05 per day, and $0.01 of it is left; this request is estimated at $0.04. "
        f"It starts to free up <t:{int(job.created_at + 86400) + 1}:R>."
    )


async def assert_refused_privately_after(world, handle, creates: int) -> str:

    reply = await private_reply(world, handle)
    assert reply.flags & EPHEMERAL
    assert len(world.comet.creates()) == creates
    return str(reply.text)


async def test_usage_shows_images_and_cost_by_period_model_and_member(world):

    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    other = add_member(world, guild, "other")
    async with world.bot() as bot:
        await result_of(world, bot, guild, channel, member, num_outputs=4)  # schnell: 4 x $0.003
        await result_of(world, bot, guild, channel, other, model="flux-1.1-pro")  # $0.04
        text = await ephemeral_text(await world.discord.slash_command(guild, channel, admin, "imagine-settings usage"))
    today = text.split("\n\n")[0]
    assert today.startswith("**Today (24 h)**: 5 images, about $0.052")
    assert "flux-1.1-pro: 1 image, $0.04" in today
    assert "flux-schnell: 4 images, $0.012" in today
    assert f"<@{other.id}> 1 image $0.04, <@{member.id}> 4 images $0.012" in today
    # Everything is from today: one block, and the longer windows said to be the same (not repeated twice).
    assert text.count("5 images, about $0.052") == 1
    assert text.count("flux-schnell: 4 images") == 1
    assert "**7 days** and **30 days**: the same as today." in text
