"""Admission is one atomic step with the job's insert: limits hold when commands race, in both stores and
across processes (a second store on the same database stands in for another bot process)."""

from __future__ import annotations

import asyncio
import time
import uuid

from services.limits import Limits, Refusal
from services.store.models import Job, JobStatus

GUILD = 42
NO_LIMITS = Limits(cooldown_seconds=0, jobs_in_flight=100)


def new_job(user_id: int, *, images: int = 1, guild_id: int | None = GUILD, created_at: float | None = None) -> Job:
    return Job(
        id=uuid.uuid4().hex,
        kind="imagine",
        user_id=user_id,
        channel_id=7,
        guild_id=guild_id,
        shard_id=0,
        model="black-forest-labs/flux-schnell",
        input={"prompt": "a fox", "num_outputs": images},
        status=JobStatus.QUEUED,
        created_at=time.time() if created_at is None else created_at,
        image_count=images,
    )


async def admit_all(stores, jobs, limits):
    """Admit every job at once, alternating between the stores (as several processes would)."""
    results = await asyncio.gather(
        *(stores[i % len(stores)].admit_job(job, limits, now=job.created_at) for i, job in enumerate(jobs))
    )
    return [job for job, refusal in zip(jobs, results, strict=True) if refusal is None], [
        r for r in results if r is not None
    ]


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
    assert await store.count_active(1) == 2


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
    assert await store.images_since(0, guild_id=GUILD) == 4


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
    from tests.test_imagine import EPHEMERAL, private_reply

    outcomes = []
    for handle in handles:
        msg = await handle.wait_original(lambda m: (not m.loading and bool(m.content)) or m.deleted, timeout=10)
        job = None if msg.deleted else await bot.store.job_by_message(msg.id)
        if job is not None:
            outcomes.append(("job", job))
            continue
        reply = await private_reply(world, handle)
        assert reply.flags & EPHEMERAL, reply.content
        outcomes.append(("refused", reply.content))
    return outcomes


async def test_one_member_firing_four_imagines_at_once_gets_one_job_per_cooldown(world):
    from tests.test_imagine import imagine, setup_guild

    guild, channel, alice = setup_guild(world)
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
    from tests.test_imagine import imagine, setup_guild

    guild, channel, alice = setup_guild(world)
    world.comet.queue_outcome(Outcome(duration=2.0), times=10)
    async with world.bot(USER_COOLDOWN="0", MAX_JOBS_PER_USER="2") as bot:
        handles = await asyncio.gather(*(imagine(world, guild, channel, alice, prompt=f"owl {i}") for i in range(10)))
        outcomes = await answers(world, bot, handles)
    assert sum(kind == "job" for kind, _ in outcomes) == 2, outcomes
    assert all("wait for one to finish" in text for kind, text in outcomes if kind == "refused")


async def test_members_asking_while_a_job_runs_share_the_server_quota(world):
    from fakes.cometapi import Outcome
    from services.store.models import GuildSettings
    from tests.test_imagine import add_member, imagine, setup_guild

    guild, channel, alice = setup_guild(world)
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
    from tests.test_imagine import add_member, setup_guild
    from tests.test_reroll_resume import first_result

    guild, channel, alice = setup_guild(world)
    bob = add_member(world, guild, "bob")
    async with world.bot(USER_COOLDOWN="10") as bot:
        result, _ = await first_result(world, bot, guild, channel, alice)
        for emoji in ("🔄", "🔁", "🔄", "🔁"):
            await world.discord.remove_reaction(channel, result.id, bob, emoji)
            await world.discord.add_reaction(channel, result.id, bob, emoji)
        # Every reaction is answered: one with a new job, the others with a reply saying why not.
        replies = await world.discord.wait_for(
            lambda: (
                found
                if len(found := [m for m in world.discord.messages_in(channel) if m.message_reference]) == 4
                and not any(m.content.startswith("⏳") for m in found)
                else None
            ),
            timeout=10,
            what="an answer to each reaction",
        )
        jobs = [await bot.store.job_by_message(m.id) for m in replies]
    assert sum(job is not None for job in jobs) == 1
    refusals = [m.content for m, job in zip(replies, jobs, strict=True) if job is None]
    assert all("can't reroll this: Slow down" in text for text in refusals), refusals
    assert len(world.comet.creates()) == 2  # the first result and one reroll
