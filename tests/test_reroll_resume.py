"""🔄 rerolls (reaction and button) and jobs that survive a restart."""

from __future__ import annotations

import time
import uuid

import pytest

from cli.harness import wait_status
from fakes.cometapi import Outcome
from services.store.models import Job, JobStatus
from tests.helpers import job_shown_in, result_of, setup_guild


@pytest.fixture
def world(world_any_store):
    """These tests run once with SQLite and once with PostgreSQL."""
    return world_any_store


async def test_reaction_reroll_after_a_restart_replies_with_a_new_seed(world):
    guild, channel, alice, bob = setup_guild(world, "alice", "bob")
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, seed=7, aspect_ratio="3:2")
    # A new process: nothing cached; the job is found by message id in the store.
    async with world.bot() as bot:
        await world.discord.add_reaction(channel, result.id, bob, "🔄")
        reply = await world.discord.wait_for_message(
            lambda m: bool(m.attachments) and (m.message_reference or {}).get("message_id") == str(result.id),
            timeout=10,
        )
        child = await job_shown_in(bot, reply.id)
        child = await wait_status(bot, child.id, "succeeded")
    assert child.kind == "reroll"
    assert child.parent_id == parent.id
    assert child.user_id == bob.id
    assert child.input["aspect_ratio"] == "3:2"
    assert child.input["prompt"] == parent.input["prompt"]
    assert child.input["seed"] != 7
    assert len(world.comet.creates()) == 2
    # The reaction was acknowledged with ⏳ (added, then taken away once the job was posted).
    assert world.discord.requests_matching("PUT", r"/reactions/(⏳|%E2%8F%B3)/@me")
    # The reply was a card from the start (Discord refuses to make a message with plain content a card later),
    # with its Cancel button while in line.
    [made] = [r.json for r in world.discord.requests_matching("POST", rf"/channels/{channel.id}/messages$")]
    assert made["flags"] & 1 << 15 and not made.get("content"), made
    assert "⏳" in reply.lines_shown[0] and "flux:cancel:" in str(made["components"]), reply.lines_shown


async def test_reactions_that_are_not_rerolls_are_ignored(world):
    guild, channel, alice, bob = setup_guild(world, "alice", "bob")
    other_bot = world.discord.add_user("otherbot", bot=True)
    async with world.bot() as bot:
        result, _ = await result_of(world, bot, guild, channel, alice)
        foreign = await world.discord.post_message(channel, other_bot, "not ours")
        ignored = [
            (foreign.id, bob.id, "🔄"),  # another bot's message
            (result.id, bob.id, "👍"),  # another emoji
            (result.id, world.discord.bot.id, "🔄"),  # the bot itself
        ]
        for message_id, user_id, emoji in ignored:
            await world.discord.add_reaction(channel, message_id, user_id, emoji)
        for message_id, user_id, emoji in ignored:
            await bot.reaction_handled(message_id, user_id, emoji)
        assert await bot.store.count_jobs(user_id=bob.id) == 0
    assert len(world.comet.creates()) == 1
    replies = [m for m in world.discord.messages_in(channel) if m.message_reference]
    assert replies == [], [m.text for m in replies]


async def test_the_repeat_reaction_rerolls_too(world):
    guild, channel, alice, bob = setup_guild(world, "alice", "bob")
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        await world.discord.add_reaction(channel, result.id, bob, "🔁")
        await bot.reaction_handled(result.id, bob.id, "🔁")
        replies = [m for m in world.discord.messages_in(channel) if m.message_reference]
        assert len(replies) == 1, "🔁 on a result started no reroll"
        final = await world.discord.wait_for(
            lambda: m if (m := world.discord.message(replies[0].id)).attachments else None, timeout=10
        )
        child = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
    assert int(final.message_reference["message_id"]) == result.id
    assert (child.kind, child.parent_id, child.user_id) == ("reroll", parent.id, bob.id)
    assert child.input["prompt"] == parent.input["prompt"]
    assert len(world.comet.creates()) == 2


async def test_refused_reroll_says_why(world):
    guild, channel, alice, bob = setup_guild(world, "alice", "bob")
    async with world.bot(MAX_JOBS_PER_USER="1") as bot:
        result, _ = await result_of(world, bot, guild, channel, alice)
        world.comet.default_outcome = Outcome(duration=5)
        await world.discord.slash_command(guild, channel, bob, "imagine", {"prompt": "slow one"})
        await world.discord.wait_for(lambda: len(world.comet.creates()) == 2, timeout=10)
        await world.discord.add_reaction(channel, result.id, bob, "🔄")
        reply = await world.discord.wait_for_message(lambda m: "can't reroll" in m.text, timeout=10)
    assert "already have 1 image job" in reply.text
    assert len(world.comet.creates()) == 2


async def test_reroll_button_works_on_a_result_from_before_a_restart(world):
    guild, channel, alice, bob = setup_guild(world, "alice", "bob")
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, num_outputs=2)
    async with world.bot() as bot:
        handle = await world.discord.click_button(result, f"flux:reroll:{parent.id}", bob)
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        child = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
    assert child.parent_id == parent.id
    assert child.input["num_outputs"] == 2
    assert len(final.attachments) == 2


async def test_a_job_in_flight_at_shutdown_resumes_with_the_same_prediction(world):
    guild, channel, alice, _ = setup_guild(world, "alice", "bob")
    # Long enough to be still running when seen so on a machine whose cores are busy with other work.
    world.comet.queue_outcome(Outcome(duration=6.0))
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "slow"})
        await world.discord.wait_for(lambda: len(world.comet.creates()) == 1, timeout=10)
        message = await handle.wait_original(lambda m: "Starting" in m.text or "Generating" in m.text)
        job = await job_shown_in(bot, message.id)
        job = await wait_status(bot, job.id, "running")
    # The bot stopped mid-job; a new process picks the job up by its prediction id.
    async with world.bot() as bot:
        job = await wait_status(bot, job.id, "succeeded", "failed")
    assert job.status == "succeeded"
    assert len(world.comet.creates()) == 1
    final = world.discord.message(message.id)
    assert len(final.attachments) == 1
    # After the restart there is no interaction: the message was finished through the channel endpoint.
    assert world.discord.requests_matching("PATCH", rf"/channels/{channel.id}/messages/{message.id}")


async def test_a_stop_while_the_create_is_in_the_air_records_it_and_resumes(world):
    guild, channel, alice, _ = setup_guild(world, "alice", "bob")
    world.comet.inject("create", status=None, delay=1.0)  # answered normally, but slowly
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "unlucky"})
        message = await handle.wait_original(lambda m: "Starting" in m.text, timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, message.id)).id, "submitting")
        await world.comet.wait_for(world.comet.creates, what="the create")  # it is answered after 1 s
    # Shutdown waited for the create's answer, so the prediction id was recorded and the job resumes by polling.
    async with world.bot() as bot:
        job = await wait_status(bot, job.id, "succeeded", "failed")
    assert job.status == "succeeded"
    assert len(world.comet.creates()) == 1
    assert world.discord.message(message.id).attachments


async def test_a_job_found_mid_create_after_a_crash_is_failed_not_sent_again(world):
    guild, channel, alice, _ = setup_guild(world, "alice", "bob")
    async with world.bot() as bot:
        message = await world.discord.post_message(channel, world.discord.bot, "🚀 Starting")
        # What a killed process leaves behind when it died between claiming the job and hearing back from the API.
        job = Job(
            id="0" * 32, kind="imagine", user_id=alice.id, channel_id=channel.id, guild_id=guild.id, shard_id=0,
            model="black-forest-labs/flux-schnell", input={"prompt": "unlucky", "seed": 1}, status=JobStatus.SUBMITTING,
            created_at=time.time(), message_id=message.id, submitted_at=time.time(),
        )  # fmt: skip
        await bot.store.create_job(job)
    async with world.bot() as bot:
        job = await wait_status(bot, job.id, "failed")
        await world.discord.wait_for(lambda: "restarted while starting" in world.discord.message(message.id).text)
    assert world.comet.creates() == []


def stored_job(guild, channel, user, message_id, *, status, shard_id=0, prompt="resumed"):
    return Job(
        id=uuid.uuid4().hex, kind="imagine", user_id=user.id, channel_id=channel.id, guild_id=guild.id,
        shard_id=shard_id, model="black-forest-labs/flux-schnell", input={"prompt": prompt, "seed": 5},
        status=status, created_at=time.time(), message_id=message_id,
    )  # fmt: skip


async def test_a_queued_job_left_by_a_crash_is_submitted_once_on_restart(world):
    guild, channel, alice, _ = setup_guild(world, "alice", "bob")
    async with world.bot() as bot:
        message = await world.discord.post_message(channel, world.discord.bot, "⏳ Queued")
        # A crash after the record was written but before the job was claimed: nothing reached the API.
        job = stored_job(guild, channel, alice, message.id, status="queued")
        await bot.store.create_job(job)
    async with world.bot() as bot:
        job = await wait_status(bot, job.id, "succeeded")
    assert len(world.comet.creates()) == 1
    assert world.discord.message(message.id).attachments


async def test_each_process_resumes_only_the_jobs_of_its_own_shards(world):
    d = world.discord
    # (id >> 22) % SHARD_COUNT picks a guild's shard; these two land on shards 0 and 1.
    guilds = [d.add_guild(f"g{shard}", guild_id=(1000 + shard) << 22) for shard in (0, 1)]
    channels = [d.add_channel(g, "images") for g in guilds]
    alice = d.add_user("alice")
    for g in guilds:
        d.add_member(g, alice)
    assert [d.shard_of(g, 2) for g in guilds] == [0, 1]
    async with world.bot(SHARD_COUNT="2", SHARD_IDS="0") as bot:
        messages = [await d.post_message(c, d.bot, "⏳ Queued") for c in channels]
        jobs = [
            stored_job(g, c, alice, m.id, status="queued", shard_id=s, prompt=f"shard {s}")
            for s, (g, c, m) in enumerate(zip(guilds, channels, messages, strict=True))
        ]
        for job in jobs:
            await bot.store.create_job(job)
    # Process A (shard 0) resumes its job only; process B (shard 1) then resumes the other.
    async with world.bot(SHARD_COUNT="2", SHARD_IDS="0") as bot:
        assert bot.shard_of(guilds[1].id) == 1
        await wait_status(bot, jobs[0].id, "succeeded")
        # Resuming starts every job it found in one go: had it taken jobs[1], it would be running or done by now.
        assert not bot.runner.running(jobs[1].id)
        assert (await bot.store.get_job(jobs[1].id)).status == "queued"
    async with world.bot(SHARD_COUNT="2", SHARD_IDS="1") as bot:
        await wait_status(bot, jobs[1].id, "succeeded")
    prompts = [c.json["input"]["prompt"] for c in world.comet.creates()]
    assert prompts == ["shard 0", "shard 1"]


async def test_a_reaction_refused_for_the_cooldown_gets_a_reply_that_goes_when_the_cooldown_ends(world):
    guild, channel, alice, bob = setup_guild(world, "alice", "bob")
    async with world.bot(USER_COOLDOWN="6") as bot:
        result, _ = await result_of(world, bot, guild, channel, alice)
        await world.discord.add_reaction(channel, result.id, bob, "🔄")
        await bot.reaction_handled(result.id, bob.id, "🔄")
        await world.discord.add_reaction(channel, result.id, bob, "🔁")  # within bob's cooldown
        await bot.reaction_handled(result.id, bob.id, "🔁")
        replies = [m for m in world.discord.messages_in(channel) if m.message_reference]
        assert len(replies) == 2, [m.text for m in replies]
        rerolled, refused = replies
        assert refused.text.startswith(f"<@{bob.id}> can't reroll this: Slow down"), refused.text
        # Public (a reaction has no private answer), so it is deleted once the cooldown is over.
        await world.discord.wait_for(
            lambda: world.discord.message(refused.id).deleted or None, timeout=30, what="the refusal deleted"
        )
        assert not world.discord.message(rerolled.id).deleted
    assert len(world.comet.creates()) == 2
