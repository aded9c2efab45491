"""Discord's per-channel edit limit with many queued jobs: progress lines share a budget per channel, queued
lines are refreshed only when there is news, and results never wait for either."""

from __future__ import annotations

import re
import time
import uuid

from cli.harness import wait_status
from fakes.cometapi import Outcome
from services.delivery.edit_budget import EditBudget
from services.store.models import Job, JobStatus
from tests.helpers import add_member, imagine, job_shown_in, setup_guild, started_job

DISCORD_CHANNEL_EDITS = 5  # Discord's bucket for edits in one channel: about 5 per 5 s
DISCORD_WINDOW = 5.0


def queued_job(guild, channel, user, message_id, n):
    """A job left queued by a process that stopped: resumed without its interaction, so edited by channel."""
    return Job(
        id=uuid.uuid4().hex, kind="imagine", user_id=user.id, channel_id=channel.id, guild_id=guild.id,
        shard_id=0, model="black-forest-labs/flux-schnell", input={"prompt": f"queued {n}", "seed": n},
        status=JobStatus.QUEUED, created_at=time.time(), message_id=message_id,
    )  # fmt: skip


async def store_queued_jobs(world, bot, guild, channel, user, count):
    jobs = []
    for n in range(count):
        message = await world.discord.post_message(channel, world.discord.bot, "⏳ Queued")
        jobs.append(queued_job(guild, channel, user, message.id, n))
        await bot.store.create_job(jobs[-1])
    return jobs


def channel_edits(world, channel):
    return world.discord.requests_matching("PATCH", rf"^/channels/{channel.id}/messages/\d+$")


def busiest_window(requests, window=DISCORD_WINDOW):
    """The most requests that arrived within any `window` seconds."""
    times = sorted(r.at for r in requests)
    return max((sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times)), default=0)


async def test_jobs_queued_in_one_channel_after_a_restart_stay_within_its_edit_limit(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        jobs = await store_queued_jobs(world, bot, guild, channel, alice, 8)
    # One slot: the first job generates for a while, the seven others wait in line, all in one channel.
    world.comet.queue_outcome(Outcome(duration=5.5, queue_time=0.0))
    async with world.bot(MAX_CONCURRENT_PREDICTIONS="1") as bot:
        for job in jobs:
            done = await wait_status(bot, job.id, "succeeded", "failed", "canceled", timeout=30)
            assert done.status == "succeeded", (done.status, done.error)
    for job in jobs:
        assert world.discord.message(job.message_id).attachments
    edits = channel_edits(world, channel)
    results = [r for r in edits if r.files]
    assert len(results) == len(jobs)
    first_result = min(r.at for r in results)
    while_waiting = [r for r in edits if r.at < first_result]
    assert len(while_waiting) >= 4, "the lines were shown"
    assert busiest_window(while_waiting) <= DISCORD_CHANNEL_EDITS, busiest_window(while_waiting)
    # The results came as fast as the jobs ended (together, over the limit: they don't wait for a turn), but
    # the progress lines never went over it.
    progress = [r for r in edits if not r.files]
    assert busiest_window(progress) <= DISCORD_CHANNEL_EDITS, busiest_window(progress)


async def test_results_never_wait_for_a_turn_in_the_channel(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        # A channel budget of one progress edit an hour: every line but the first has to wait for good.
        bot.display.budget = EditBudget(1, 3600.0)
        jobs = await store_queued_jobs(world, bot, guild, channel, alice, 3)
        await bot.runner.resume(None)  # as after a restart: no interactions, so the channel endpoints
        for job in jobs:
            done = await wait_status(bot, job.id, "succeeded", "failed", "canceled", timeout=10)
            assert done.status == "succeeded", (done.status, done.error)
    edits = channel_edits(world, channel)
    assert len([r for r in edits if r.files]) == len(jobs)  # every result, at once
    assert len([r for r in edits if not r.files]) == 1  # and a single progress line


async def test_a_queued_line_is_edited_when_its_place_changes_not_every_few_seconds(world):
    guild, channel, alice = setup_guild(world, "alice")
    bob = add_member(world, guild, "bob")
    carol = add_member(world, guild, "carol")
    world.comet.queue_outcome(Outcome(duration=6.0, queue_time=0.0))
    async with world.bot(MAX_CONCURRENT_PREDICTIONS="1") as bot:
        bot.runner.queue_move_seconds = 1.0  # so a new place shows before alice's job is over
        first = await imagine(world, guild, channel, alice, prompt="alice's fox")
        first_job, _ = await started_job(world, bot, first)
        await wait_status(bot, first_job.id, "running")
        second = await imagine(world, guild, channel, bob, prompt="bob's owl")
        bob_queued = await second.wait_original(lambda m: "#1 in line" in m.text)
        third = await imagine(world, guild, channel, carol, prompt="carol's cat")
        carol_queued = await third.wait_original(lambda m: "#2 in line" in m.text)
        bob_job = await job_shown_in(bot, bob_queued.id)
        click = await world.discord.click_button(bob_queued.id, f"flux:cancel:{bob_job.id}", bob)
        await click.wait_response()
        await third.wait_original(lambda m: "#1 in line" in m.text, timeout=10)
        carol_job = await job_shown_in(bot, carol_queued.id)
        carol_job = await wait_status(bot, carol_job.id, "succeeded", timeout=20)
    queued = [text for text in carol_queued.lines_shown if "in line" in text]
    # Queued for about 6 s: its place once, then its new place, and no refresh of the elapsed time between.
    assert [re.findall(r"#\d+ in line", text) for text in queued] == [["#2 in line"], ["#1 in line"]], queued


async def test_an_unchanged_place_in_line_is_still_refreshed_now_and_then(world):
    guild, channel, alice = setup_guild(world, "alice")
    bob = add_member(world, guild, "bob")
    world.comet.queue_outcome(Outcome(duration=20.0, queue_time=0.0))
    async with world.bot(MAX_CONCURRENT_PREDICTIONS="1") as bot:
        bot.runner.queue_refresh_seconds = 0.5
        first = await imagine(world, guild, channel, alice, prompt="alice's fox")
        first_job, _ = await started_job(world, bot, first)
        await wait_status(bot, first_job.id, "running")
        second = await imagine(world, guild, channel, bob, prompt="bob's owl")
        message = await second.wait_original(lambda m: "#1 in line" in m.text)

        def refreshed():
            lines = [text for text in world.discord.messages[message.id].lines_shown if "#1 in line" in text]
            return lines if len(set(lines)) >= 2 else None

        lines = await world.discord.wait_for(refreshed, timeout=10, what="the elapsed time refreshed")
    assert lines[0] != lines[-1]  # the same place, a later time
