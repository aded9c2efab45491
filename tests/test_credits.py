"""Credits people buy (Premium Apps), end to end: a purchase in the fake Discord becomes credits that pay for
exactly the images made, in the same atomic admission step as every limit; one entitlement delivered many ways
(gateway, interaction, two processes, a restart) is credited once and consumed once; a refund takes it back; a job
refused for lack of credit creates no prediction and offers Discord's premium button; credits off change nothing.
Both stores."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from cli.harness import wait_status
from fakes.cometapi import Outcome
from services.config import load_settings
from services.errors import ConfigError
from services.jobs.credits import CreditLedger
from services.limits import Limits
from services.store.credits import CreditTerms, Grant
from tests.helpers import EPHEMERAL, imagine, job_shown_in, new_job, private_reply, setup_guild

PACK_SKU = 1_100_000_000_000_001
SUB_SKU = 1_100_000_000_000_002
PACKS = {"CREDIT_PACKS": f"{PACK_SKU}=0.10"}
PRO = "flux-1.1-pro"  # $0.04 an image
PREMIUM = 6


@pytest.fixture
def world(world_any_store):
    return world_any_store


async def balance_of(bot, user_id: int, micros: int, timeout: float = 5.0) -> int:
    """The user's balance once it is `micros` (credits arrive through events the bot handles in its own time)."""
    async with asyncio.timeout(timeout):
        while True:
            balance: int = await bot.store.credit_balance(user_id)
            if balance == micros:
                return balance
            await asyncio.sleep(0.01)


async def made(world, bot, handle):
    final = await handle.wait_original(lambda m: bool(m.attachments), timeout=20)
    return await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")


def premium_buttons(message) -> list[dict[str, object]]:
    found = []
    for row in message.components:
        found += [c for c in row.get("components", []) if c.get("style") == PREMIUM]
    return found


# --- a purchase pays for the images made ----------------------------------------------------------------------


async def test_a_purchase_becomes_credits_that_pay_for_exactly_the_images_made(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(**PACKS) as bot:
        bought = world.discord.buy(alice, PACK_SKU)
        await balance_of(bot, alice.id, 100_000)
        await world.discord.wait_for(lambda: bought.consumed, what="the pack consumed")
        job = await made(world, bot, await imagine(world, guild, channel, alice, prompt="a paid castle", model=PRO))
        assert (job.paid_with, job.settled_microusd) == ("balance", 40_000)
        assert await bot.store.credit_balance(alice.id) == 60_000
        # A failed prediction draws what the budgets count for it (COUNT_FAILED_PREDICTIONS=false: nothing).
        world.comet.queue_outcome(Outcome(status="aborted"))
        handle = await imagine(world, guild, channel, alice, prompt="an aborted castle", model=PRO)
        msg = await handle.wait_original(lambda m: not m.loading and bool(m.text))
        aborted = await wait_status(bot, (await job_shown_in(bot, msg.id)).id, "failed")
        assert (aborted.paid_with, aborted.settled_microusd) == ("balance", 0)
        assert await bot.store.credit_balance(alice.id) == 60_000
        shown = await private_reply(world, await world.discord.slash_command(guild, channel, alice, "imagine-credits"))
    assert shown.flags & EPHEMERAL
    assert "Your credits: **$0.06**." in shown.text
    assert "flux-1.1-pro: 1 image, $0.04" in shown.text
    assert [b["sku_id"] for b in premium_buttons(shown)] == [str(PACK_SKU)]
    assert len(bought.consumes) == 1


REFUSED_422 = {
    "status": 422,
    "json": {"title": "Input validation failed", "detail": "input.prompt: flagged", "status": 422},
    "content_type": "application/problem+json",
}


@pytest.mark.parametrize(
    ("fault", "env", "counted"),
    [
        (REFUSED_422, {}, 0),
        ({"status": 402}, {}, 0),  # the bot's API account is out of credit
        ({"status": 400, "json": {"error": {"message": "bad", "code": "invalid_request"}}}, {}, 0),
        ({"status": 429, "headers": {"Retry-After": "0"}, "times": 1000}, {}, 0),  # outlasted the retries
        ({"status": 524, "side_effects": True}, {}, 40_000),  # the gateway gave up; the prediction was made
        ({"status": 502}, {}, 40_000),  # nothing was made, but nothing says so: it may have been
        ({"status": None, "delay": 3.0}, {"COMETAPI_READ_TIMEOUT": "0.5"}, 40_000),  # sent, no answer in time
        ({"drop": True}, {}, 40_000),  # made, then the connection was reset
    ],
    ids=["422", "402", "400-invalid-request", "429-outlasted", "524", "502", "timeout-after-sending", "reset"],
)
async def test_a_create_the_api_refused_costs_nothing_and_one_that_may_have_reached_it_costs_its_booking(
    world, fault, env, counted
):
    """The create fails: the job ends with no prediction id. One the API refused outright made nothing, so neither
    the budgets nor the member's credits count it; one that may have reached the API is never sent again and counts
    what it was booked at."""
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(**PACKS, **env) as bot:
        world.discord.buy(alice, PACK_SKU)
        await balance_of(bot, alice.id, 100_000)
        world.comet.inject("create", **fault)
        handle = await imagine(world, guild, channel, alice, prompt="a castle that fails to start", model=PRO)
        msg = await handle.wait_original(lambda m: not m.loading and bool(m.text))
        job = await wait_status(bot, (await job_shown_in(bot, msg.id)).id, "failed")
        spent = await bot.store.spend_since(guild.id, 0)
        balance = await bot.store.credit_balance(alice.id)
    assert (job.prediction_id, job.paid_with, job.cost_microusd) == (None, "balance", 40_000)
    assert job.settled_microusd == counted
    assert sum(row.cost_microusd for row in spent) == counted
    assert balance == 100_000 - counted


async def test_a_job_refused_for_lack_of_credit_creates_no_prediction_and_offers_the_pack(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(**PACKS) as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a castle on credit", model=PRO)
        reply = await private_reply(world, handle)
        await bot.interaction_handled(handle.id)
        assert await bot.store.recent_jobs(user_id=alice.id, limit=5) == []
    assert reply.flags & EPHEMERAL
    assert reply.text.startswith("Your credits ($0.00) don't cover this request (estimated at $0.04)")
    assert [b["sku_id"] for b in premium_buttons(reply)] == [str(PACK_SKU)]
    assert world.comet.creates() == []


async def test_credits_pay_inside_the_atomic_admission_so_racing_jobs_never_overdraw(store):
    """Five $0.04 jobs racing on a $0.10 balance: two are admitted, paid with it; nothing goes below zero."""
    ledger = CreditLedger(CreditTerms(packs={PACK_SKU: 100_000}), store, consume=_consumed_ok)
    await ledger.received(Grant(id=77, sku_id=PACK_SKU, user_id=5, guild_id=None))
    limits = Limits(cooldown_seconds=0, jobs_in_flight=50, pay_with_credits=True)
    jobs = [replace(new_job(5), cost_microusd=40_000) for _ in range(5)]
    refusals = await asyncio.gather(*(store.admit_job(job, limits, now=job.created_at) for job in jobs))
    assert sum(r is None for r in refusals) == 2
    assert {r.limit for r in refusals if r is not None} == {"credits"}
    assert await store.credit_balance(5) == 20_000
    free = replace(new_job(5), cost_microusd=0)
    assert await store.admit_job(free, limits, now=free.created_at) is None  # a free job needs no credit
    assert (await store.get_job(free.id)).paid_with is None


async def test_members_racing_on_a_servers_subscription_never_overdraw_it(store):
    """Five members, each with no balance, race $0.04 jobs on a server's $0.05 subscription: one is admitted."""
    terms = CreditTerms(subscription_sku=SUB_SKU, subscription_micros=50_000)
    ledger = CreditLedger(terms, store, consume=_consumed_ok)
    await ledger.received(Grant(id=78, sku_id=SUB_SKU, user_id=1, guild_id=3))
    limits = Limits(cooldown_seconds=0, jobs_in_flight=50, pay_with_credits=True)
    jobs = [replace(new_job(user, guild_id=3), cost_microusd=40_000) for user in range(10, 15)]
    refusals = await asyncio.gather(*(store.admit_job(job, limits, now=job.created_at) for job in jobs))
    assert sum(r is None for r in refusals) == 1
    elsewhere = replace(new_job(10, guild_id=4), cost_microusd=40_000)  # another server's jobs: not its budget
    assert (await store.admit_job(elsewhere, limits, now=elsewhere.created_at)).limit == "credits"


async def test_a_subscription_pays_while_it_runs_and_its_renewal_is_followed(store):
    terms = CreditTerms(subscription_sku=SUB_SKU, subscription_micros=50_000)
    ledger = CreditLedger(terms, store, consume=_consumed_ok)
    limits = Limits(cooldown_seconds=0, jobs_in_flight=50, pay_with_credits=True)
    job = replace(new_job(10, guild_id=3), cost_microusd=10_000)
    ended = Grant(id=79, sku_id=SUB_SKU, user_id=1, guild_id=3, ends_at=job.created_at - 1)
    await ledger.received(ended)
    assert (await store.admit_job(job, limits, now=job.created_at)).limit == "credits"  # it ended
    await ledger.updated(replace(ended, ends_at=job.created_at + 86400))  # renewed: ENTITLEMENT_UPDATE
    assert await store.admit_job(job, limits, now=job.created_at) is None
    await ledger.updated(replace(ended, deleted=True))
    again = replace(new_job(11, guild_id=3), cost_microusd=10_000)
    assert (await store.admit_job(again, limits, now=again.created_at)).limit == "credits"


async def test_a_subscription_renewed_or_cancelled_while_no_process_ran_is_followed_at_start_up(store):
    terms = CreditTerms(subscription_sku=SUB_SKU, subscription_micros=50_000)
    ledger = CreditLedger(terms, store, consume=_consumed_ok)
    limits = Limits(cooldown_seconds=0, jobs_in_flight=50, pay_with_credits=True)
    job = replace(new_job(10, guild_id=3), cost_microusd=10_000)
    running = Grant(id=80, sku_id=SUB_SKU, user_id=1, guild_id=3)
    await ledger.received(running)
    await ledger.reconcile([replace(running, ends_at=job.created_at - 1)])  # cancelled while the bot was down
    assert (await store.admit_job(job, limits, now=job.created_at)).limit == "credits"
    await ledger.reconcile([replace(running, ends_at=job.created_at + 86400)])  # renewed while it was down
    assert await store.admit_job(job, limits, now=job.created_at) is None


# --- one entitlement, many deliveries ---------------------------------------------------------------------------


async def test_the_same_entitlement_delivered_twice_and_after_a_restart_credits_once(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(**PACKS) as bot:
        bought = world.discord.buy(alice, PACK_SKU, announce=False)  # the gateway event comes late
        job = await made(world, bot, await imagine(world, guild, channel, alice, prompt="a castle", model=PRO))
        assert job.paid_with == "balance"  # credited from the interaction's entitlements, before admission
        world.discord.entitlements.announce(bought.id)
        world.discord.entitlements.announce(bought.id)  # Discord may send an event twice
        await bot.settled(lambda: sum(name == "entitlement_create" for name, _ in bot.received) == 2)
        handle = await world.discord.slash_command(guild, channel, alice, "imagine-credits")
        assert "Your credits: **$0.06**." in (await private_reply(world, handle)).text
    async with world.bot(**PACKS) as bot:  # the restart lists every entitlement again
        await bot.credit_keeper
        assert await bot.store.credit_balance(alice.id) == 60_000
    assert bought.consumed and len(bought.consumes) == 1


async def test_two_processes_crediting_one_entitlement_credit_it_once(store, store_target):
    other = await store_target.open()
    consumed: list[int] = []

    async def consume(entitlement_id: int) -> None:
        consumed.append(entitlement_id)

    try:
        grant = Grant(id=42, sku_id=PACK_SKU, user_id=9, guild_id=None)
        terms = CreditTerms(packs={PACK_SKU: 100_000})
        ledgers = [CreditLedger(terms, each, consume) for each in (store, other)]
        credited = await asyncio.gather(*(ledger.received(grant) for ledger in ledgers for _ in range(3)))
        assert sorted(credited) == [False] * 5 + [True]
        assert await store.credit_balance(9) == 100_000
        assert await other.credit_balance(9) == 100_000
        assert consumed == [42]
    finally:
        await other.close()


async def test_a_failed_consume_is_retried_at_start_up_and_never_credited_twice(world):
    guild, channel, alice = setup_guild(world, "alice")
    # (a 5xx is retried by discord.py itself for seconds before it fails: a refusal fails at once)
    world.discord.inject_error("POST", r"/entitlements/\d+/consume", 400, 0, "refused", times=None)
    async with world.bot(**PACKS) as bot:
        bought = world.discord.buy(alice, PACK_SKU)
        await balance_of(bot, alice.id, 100_000)
        await bot.settled(lambda: any(name == "entitlement_create" for name, _ in bot.received))
        assert not bought.consumed
        assert await bot.store.unconsumed_packs() == [bought.id]
        # Not consumed, it comes with each interaction of its buyer: credited already, so not again.
        handle = await world.discord.slash_command(guild, channel, alice, "imagine-credits")
        assert handle.payload["entitlements"][0]["id"] == str(bought.id)
        assert "Your credits: **$0.10**." in (await private_reply(world, handle)).text
    world.discord.clear_faults()
    async with world.bot(**PACKS) as bot:
        await bot.credit_keeper
        assert await bot.store.unconsumed_packs() == []
        assert await bot.store.credit_balance(alice.id) == 100_000
    assert bought.consumed and len(bought.consumes) == 1


# --- refunds ------------------------------------------------------------------------------------------------------


async def test_a_refund_takes_the_credit_back_even_below_zero(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(**PACKS) as bot:
        bought = world.discord.buy(alice, PACK_SKU)
        await balance_of(bot, alice.id, 100_000)
        await made(world, bot, await imagine(world, guild, channel, alice, prompt="a castle", model=PRO))
        world.discord.entitlements.refund(bought.id)
        await balance_of(bot, alice.id, -40_000)  # what it paid for was made: the refund is owed back
        handle = await imagine(world, guild, channel, alice, prompt="another castle", model=PRO)
        reply = await private_reply(world, handle)
        world.discord.entitlements.announce(bought.id)  # a late create for a refunded entitlement credits nothing
        await bot.settled(lambda: sum(name == "entitlement_create" for name, _ in bot.received) == 2)
        assert await bot.store.credit_balance(alice.id) == -40_000
    assert reply.text.startswith("Your credits ($0.00) don't cover")
    assert len(world.comet.creates()) == 1


async def test_a_refund_made_while_no_process_ran_is_taken_back_at_start_up(world):
    _guild, _channel, alice = setup_guild(world, "alice")
    async with world.bot(**PACKS) as bot:
        bought = world.discord.buy(alice, PACK_SKU)
        await balance_of(bot, alice.id, 100_000)
    world.discord.entitlements.refund(bought.id, announce=False)
    async with world.bot(**PACKS) as bot:
        await bot.credit_keeper
        assert await bot.store.credit_balance(alice.id) == 0


# --- the server subscription ----------------------------------------------------------------------------------------


async def test_a_server_subscription_pays_once_the_members_balance_does_not(world):
    guild, channel, alice = setup_guild(world, "alice")
    env = {**PACKS, "CREDIT_SUBSCRIPTION_SKU": str(SUB_SKU), "CREDIT_SUBSCRIPTION_USD_PER_MONTH": "0.05"}
    admin = world.discord.add_user("admin")
    world.discord.add_member(guild, admin, permissions=["manage_guild"])
    async with world.bot(**env) as bot:
        world.discord.entitlements.subscribe(guild, admin, SUB_SKU)
        await bot.settled(lambda: any(name == "entitlement_create" for name, _ in bot.received))
        job = await made(world, bot, await imagine(world, guild, channel, alice, prompt="a castle", model=PRO))
        assert job.paid_with == "subscription"
        refused = await private_reply(world, await imagine(world, guild, channel, alice, prompt="two", model=PRO))
        report = await private_reply(
            world, await world.discord.slash_command(guild, channel, admin, "imagine-settings usage")
        )
    assert refused.text.startswith("Your credits ($0.00) don't cover")
    assert "**Credits (30 days)**: $0.05 sold here; $0.04 spent ($0.00 from members' credits, $0.04 from the " in (
        report.text
    )
    assert len(world.comet.creates()) == 1


async def test_a_subscription_renewed_through_the_gateway_pays_again(world):
    guild, channel, alice = setup_guild(world, "alice")
    env = {"CREDIT_SUBSCRIPTION_SKU": str(SUB_SKU), "CREDIT_SUBSCRIPTION_USD_PER_MONTH": "1"}
    async with world.bot(**env) as bot:
        ended = world.discord.entitlements.subscribe(guild, alice, SUB_SKU, ends_at=1_000_000_000.0)
        await bot.settled(lambda: any(name == "entitlement_create" for name, _ in bot.received))
        refused = await private_reply(world, await imagine(world, guild, channel, alice, prompt="one", model=PRO))
        world.discord.entitlements.renew(ended.id, ends_at=4_000_000_000.0)
        await bot.settled(lambda: any(name == "entitlement_update" for name, _ in bot.received))
        job = await made(world, bot, await imagine(world, guild, channel, alice, prompt="two", model=PRO))
    assert refused.text == "Your credits ($0.00) don't cover this request (estimated at $0.04)."
    assert premium_buttons(refused) == []  # no pack to sell
    assert job.paid_with == "subscription"


# --- off unless the operator turns it on -----------------------------------------------------------------------------


async def test_credits_off_change_nothing(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        assert bot.credits is None
        world.discord.buy(alice, PACK_SKU)
        await bot.settled(lambda: any(name == "entitlement_create" for name, _ in bot.received))
        job = await made(world, bot, await imagine(world, guild, channel, alice, prompt="a free castle", model=PRO))
        shown = await private_reply(world, await world.discord.slash_command(guild, channel, alice, "imagine-credits"))
        assert job.paid_with is None
        assert await bot.store.credit_balance(alice.id) == 0  # nothing credited, nothing drawn
    assert shown.text == "This bot does not sell credits; images are free to make here."
    assert not world.discord.requests_matching("GET|POST", r"/entitlements")


def test_credit_settings_and_their_mistakes():
    base = {"COMETAPI_KEY": "k" * 20}
    on = load_settings({**base, "CREDIT_PACKS": "11=5, 12=1.5"}, require_discord=False)
    assert on.credits.packs == {11: 5_000_000, 12: 1_500_000}
    assert on.policy().limits.pay_with_credits
    assert on.credits.pack_to_offer == 12  # the smallest pack
    assert not load_settings(base, require_discord=False).policy().limits.pay_with_credits
    for bad, name in [
        ({"CREDIT_PACKS": "abc=5"}, "CREDIT_PACKS"),
        ({"CREDIT_PACKS": "11=0"}, "CREDIT_PACKS"),
        ({"CREDIT_PACKS": "11"}, "CREDIT_PACKS"),
        ({"CREDIT_PACKS": "11=1,11=2"}, "CREDIT_PACKS"),
        ({"CREDIT_SUBSCRIPTION_SKU": "13"}, "CREDIT_SUBSCRIPTION_SKU"),
        ({"CREDIT_SUBSCRIPTION_USD_PER_MONTH": "5"}, "CREDIT_SUBSCRIPTION_USD_PER_MONTH"),
        ({"CREDIT_PACKS": "11=1", "CREDIT_SUBSCRIPTION_SKU": "11"}, "CREDIT_SUBSCRIPTION_SKU"),
    ]:
        with pytest.raises(ConfigError, match=name):
            load_settings({**base, **bad}, require_discord=False)


async def _consumed_ok(entitlement_id: int) -> None:
    return None


# --- the fake's entitlements are Discord's -----------------------------------------------------------------------------


def test_the_fakes_entitlements_fit_discords_description():
    """The payloads the fake sends (events, list route, interactions) fit EntitlementResponse in Discord's OpenAPI
    description; only a purchase's `type` (1, PURCHASE in Discord's docs) is missing from the description's enum,
    which lists 8 (APPLICATION_SUBSCRIPTION) and 10 alone."""
    import json
    from pathlib import Path

    from jsonschema import Draft202012Validator

    from fakes.discord import FakeDiscord
    from fakes.discord_openapi import discord_conventions
    from tests.conftest import cannot_test

    described = Path(__file__).parents[2] / "shared/reference/discord-openapi.json"
    if not described.exists():
        cannot_test(f"Discord's OpenAPI description is not at {described}")
    spec = json.loads(described.read_text())
    components = discord_conventions(spec["components"])
    schema = {"$ref": "#/components/schemas/EntitlementResponse", "components": components}
    fake = FakeDiscord()
    guild, user = fake.add_guild("g"), fake.add_user("u")
    pack = fake.entitlements.buy(user, PACK_SKU, announce=False)
    subscription = fake.entitlements.subscribe(guild, user, SUB_SKU, ends_at=1_900_000_000.0)
    validator = Draft202012Validator(schema)
    assert list(validator.iter_errors(subscription.payload(fake.application_id))) == []
    errors = list(validator.iter_errors(pack.payload(fake.application_id)))
    assert [list(error.absolute_path) for error in errors] == [["type"]]
