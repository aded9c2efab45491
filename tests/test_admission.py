"""Admission is one atomic step with the job's insert: limits hold when commands race, in both stores and
across processes (a second store on the same database stands in for another bot process)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cli.harness import wait_status
from services.limits import Limits, Refusal
from services.store.models import JobStatus
from tests.helpers import (
    EPHEMERAL,
    GUILD,
    add_member,
    admit_all,
    imagine,
    job_shown_in,
    new_job,
    private_reply,
    result_of,
    setup_guild,
)

NO_LIMITS = Limits(cooldown_seconds=0, jobs_in_flight=100)


async def test_racing_commands_get_one_job_per_cooldown(store, store_target):
    other = await store_target.open()
    try:
        jobs = [new_job(1) for _ in range(4)]
        admitted, refusals = await admit_all([store, other], jobs, Limits(cooldown_seconds=10, jobs_in_flight=10))
    finally:
        await other.close()
    assert len(admitted) == 1
    assert {r.limit for r in refusals} == {"cooldown"}
    assert all("Slow down" in str(r.text()) for r in refusals)
    assert [j.id for j in await store.active_jobs(None)] == [admitted[0].id]


async def test_racing_commands_never_exceed_the_jobs_in_flight(store, store_target):
    other = await store_target.open()
    try:
        jobs = [new_job(1) for _ in range(10)]
        admitted, refusals = await admit_all([store, other], jobs, Limits(cooldown_seconds=0, jobs_in_flight=2))
    finally:
        await other.close()
    assert len(admitted) == 2
    assert {r.limit for r in refusals} == {"jobs_in_flight"}
    assert len(await store.active_jobs(None)) == 2  # all of user 1


async def test_images_are_reserved_at_admission_so_racing_members_share_the_server_quota(store, store_target):
    other = await store_target.open()
    limits = Limits(cooldown_seconds=0, jobs_in_flight=5, images_per_guild_per_day=4)
    try:
        first = new_job(1, images=4)
        assert await store.admit_job(first, limits, now=first.created_at) is None  # running, nothing delivered yet
        jobs = [new_job(user, images=4) for user in (2, 3, 4)]
        admitted, refusals = await admit_all([store, other], jobs, limits)
    finally:
        await other.close()
    assert admitted == []
    assert [r.limit for r in refusals] == ["guild_quota"] * 3
    assert str(refusals[0].text()) == (
        f"This server has used 4 of its 4 images for today. It starts to free up <t:{int(first.created_at) + 86401}:R>."
    )
    assert sum(row.images for row in await store.spend_since(GUILD, 0)) == 4


async def test_the_user_quota_counts_reserved_images(store):
    limits = Limits(cooldown_seconds=0, jobs_in_flight=5, images_per_user_per_day=5)
    first, second = new_job(1, images=4), new_job(1, images=2)
    assert await store.admit_job(first, limits, now=first.created_at) is None
    refusal = await store.admit_job(second, limits, now=second.created_at)
    assert refusal == Refusal("user_quota", 4, 5)
    assert str(refusal.text()) == (
        f"You have used 4 of your 5 images for today. It starts to free up <t:{int(first.created_at) + 86401}:R>."
    )


async def test_failed_and_canceled_jobs_give_their_images_back(store):
    limits = Limits(cooldown_seconds=0, jobs_in_flight=5, images_per_guild_per_day=4)
    failing, canceled = new_job(1, images=4), new_job(2, images=4)
    assert await store.admit_job(failing, limits, now=failing.created_at) is None
    await store.transition(failing.id, [JobStatus.QUEUED], JobStatus.FAILED, owner=None)
    assert await store.admit_job(canceled, limits, now=canceled.created_at) is None
    await store.transition(canceled.id, [JobStatus.QUEUED], JobStatus.CANCELED, owner=None)
    third = new_job(3, images=4)
    assert await store.admit_job(third, limits, now=third.created_at) is None


async def test_quotas_count_the_last_24_hours_only(store):
    limits = Limits(cooldown_seconds=0, jobs_in_flight=5, images_per_user_per_day=4)
    yesterday = new_job(1, images=4, created_at=time.time() - 86400 - 60)
    assert await store.admit_job(yesterday, NO_LIMITS, now=yesterday.created_at) is None
    await store.transition(yesterday.id, [JobStatus.QUEUED], JobStatus.SUCCEEDED, owner=None)
    today = new_job(1, images=4)
    assert await store.admit_job(today, limits, now=today.created_at) is None


async def test_the_server_quota_does_not_apply_in_direct_messages(store):
    limits = Limits(cooldown_seconds=0, jobs_in_flight=5, images_per_guild_per_day=1)
    job = new_job(1, images=4, guild_id=None)
    assert await store.admit_job(job, limits, now=job.created_at) is None


async def test_a_refused_job_is_not_stored(store):
    first, second = new_job(1), new_job(1)
    limits = Limits(cooldown_seconds=0, jobs_in_flight=1)
    assert await store.admit_job(first, limits, now=first.created_at) is None
    assert await store.admit_job(second, limits, now=second.created_at) == Refusal("jobs_in_flight", 1, 1)
    assert await store.get_job(second.id) is None


# --- the same races through Discord: the real bot, commands arriving together -----------------------------


async def answers(world, bot, handles):
    """For each handle: ("job", job) when it started a job, or ("refused", text) for a private refusal."""

    outcomes: list[tuple[str, Any]] = []
    for handle in handles:
        msg = await handle.wait_original(lambda m: (not m.loading and bool(m.text)) or m.deleted, timeout=10)
        job = None if msg.deleted or msg.ephemeral else await job_shown_in(bot, msg.id)
        if job is not None:
            outcomes.append(("job", job))
            continue
        reply = await private_reply(world, handle)
        assert reply.flags & EPHEMERAL, reply.text
        outcomes.append(("refused", reply.text))
    return outcomes


async def test_one_member_firing_four_imagines_at_once_gets_one_job_per_cooldown(world):

    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(USER_COOLDOWN="10", MAX_JOBS_PER_USER="10") as bot:
        handles = await asyncio.gather(*(imagine(world, guild, channel, alice, prompt=f"fox {i}") for i in range(4)))
        outcomes = await answers(world, bot, handles)
        await world.comet.wait_for(lambda: world.comet.creates() or None, what="the admitted job's create")
    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["job", "refused", "refused", "refused"], outcomes
    assert all("Slow down" in text for kind, text in outcomes if kind == "refused")
    assert len(world.comet.creates()) == 1


async def test_ten_at_once_never_exceed_the_jobs_in_flight(world):
    from fakes.cometapi import Outcome

    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=2.0), times=10)
    async with world.bot(USER_COOLDOWN="0", MAX_JOBS_PER_USER="2") as bot:
        handles = await asyncio.gather(*(imagine(world, guild, channel, alice, prompt=f"owl {i}") for i in range(10)))
        outcomes = await answers(world, bot, handles)
    assert sum(kind == "job" for kind, _ in outcomes) == 2, outcomes
    assert all("wait for one to finish" in text for kind, text in outcomes if kind == "refused")


async def test_members_asking_while_a_job_runs_share_the_server_quota(world):
    from fakes.cometapi import Outcome
    from services.store.models import GuildSettings

    guild, channel, alice = setup_guild(world, "alice")
    others = [add_member(world, guild, name) for name in ("bob", "carol", "dave")]
    world.comet.queue_outcome(Outcome(duration=2.0), times=4)
    async with world.bot() as bot:
        await bot.store.save_guild_settings(
            GuildSettings(guild.id, {}, None, {"images_per_guild_per_day": 4}, updated_at=1.0)
        )
        first = await answers(world, bot, [await imagine(world, guild, channel, alice, prompt="a", num_outputs=4)])
        assert first[0][0] == "job"
        handles = await asyncio.gather(
            *(imagine(world, guild, channel, user, prompt="b", num_outputs=4) for user in others)
        )
        outcomes = await answers(world, bot, handles)
        await world.comet.wait_for(lambda: world.comet.creates() or None, what="the first job's create")
    frees = f"It starts to free up <t:{int(first[0][1].created_at) + 86401}:R>."
    assert outcomes == [("refused", f"This server has used 4 of its 4 images for today. {frees}")] * 3
    assert len(world.comet.creates()) == 1


async def test_a_burst_of_reroll_reactions_makes_one_reroll(world):

    guild, channel, alice = setup_guild(world, "alice")
    bob = add_member(world, guild, "bob")
    async with world.bot(USER_COOLDOWN="10") as bot:
        result, _ = await result_of(world, bot, guild, channel, alice)
        for emoji in ("🔄", "🔁", "🔄", "🔁"):
            await world.discord.remove_reaction(channel, result.id, bob, emoji)
            await world.discord.add_reaction(channel, result.id, bob, emoji)
        # Every reaction is answered: one with a new job, the others with a reply saying why not.
        replies = await world.discord.wait_for(
            lambda: (
                found
                if len(found := [m for m in world.discord.messages_in(channel) if m.message_reference]) == 4
                else None
            ),
            timeout=10,
            what="an answer to each reaction",
        )
        jobs = [await bot.store.job_by_message(m.id) for m in replies]  # a reroll's is linked before it shows
        [reroll] = [job for job in jobs if job is not None]
        await wait_status(bot, reroll.id, "succeeded")  # its create made, and the others long refused
    assert sum(job is not None for job in jobs) == 1
    refusals = [m.text for m, job in zip(replies, jobs, strict=True) if job is None]
    assert all("can't reroll this: Slow down" in text for text in refusals), refusals
    assert len(world.comet.creates()) == 2  # the first result and one reroll
