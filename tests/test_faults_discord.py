"""Fault campaign, Discord side: several /imagine jobs in flight while Discord misbehaves.

Same bar as test_faults_api.py: each job is delivered or its reply says what happened (when the reply can still
be reached), no job is left active, nothing is created twice, and a new /imagine is delivered afterwards.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

import pytest

from fakes.cometapi import Outcome
from fakes.discord import Fault
from tests.campaign import (
    Sent,
    assert_delivered,
    assert_nothing_lost,
    assert_still_serving,
    burst,
    creates_by_prompt,
    ended,
    inject_on_progress,
    inject_on_upload,
    job_of,
    served_files,
)
from tests.card import card
from tests.helpers import imagine, setup_guild, until

WEBHOOK_EDIT = r"^/webhooks/\d+/[^/]+/messages/@original$"


def original_of(sent: Sent) -> str:
    """The path of the interaction's own reply (the one every edit of a fresh job goes to)."""
    return rf"^/webhooks/\d+/{re.escape(sent.handle.token)}/messages/@original$"


def answered(world, fault: Fault) -> list[Any]:
    return [r for r in world.discord.requests if r.fault is fault]


def assert_waited_after(world, fault: Fault, seconds: float) -> None:
    """Each request the fault refused was tried again, no sooner than `seconds` later."""
    refused = answered(world, fault)
    assert refused, "the fault was never hit"
    for request in refused:
        again = next(r for r in world.discord.requests if r.path == request.path and r.at > request.at)
        assert again.at - request.at >= seconds, (request.path, again.at - request.at)


# --- rate limits and server errors --------------------------------------------------------------------------


async def test_rate_limited_edits_are_retried_after_retry_after(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=0.5)
    progress = world.discord.inject_rate_limit("PATCH", WEBHOOK_EDIT, retry_after=0.3, times=4)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 4, "ratelimit")
        upload = inject_on_upload(world, original_of(sent[1]), 429, json=_rate_limited(0.4), times=2)
        jobs = await ended(bot, sent)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        assert_waited_after(world, progress, 0.3)
        assert_waited_after(world, upload, 0.4)
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


def _rate_limited(seconds: float) -> dict[str, Any]:
    return {"message": "You are being rate limited.", "retry_after": seconds, "global": False}


async def test_a_429_storm_on_the_result_upload_longer_than_discord_py_retries(world):
    """discord.py tries a request 5 times; a result is worth waiting longer for than a progress line."""
    guild, channel, _ = setup_guild(world, "alice")
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 3, "upload429")
        upload = inject_on_upload(world, original_of(sent[0]), 429, json=_rate_limited(0.1), times=7)
        jobs = await ended(bot, sent, timeout=30)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        assert len(answered(world, upload)) == 7
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def test_server_errors_on_edits_are_retried(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=0.3)
    progress = world.discord.inject_error("PATCH", WEBHOOK_EDIT, 500)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 3, "discord5xx")
        upload = inject_on_upload(world, original_of(sent[2]), 502)
        jobs = await ended(bot, sent, timeout=30)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        assert_waited_after(world, progress, 1.0)  # discord.py waits 1 s before its first retry of a 5xx
        assert_waited_after(world, upload, 1.0)
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def test_a_connection_cut_at_a_progress_edit_does_not_end_the_job(world):
    """The connection is cut at a job's progress edits (discord.py does not retry that on Linux): the job goes on
    and is delivered (it used to crash, and its prediction was stopped)."""
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=5.0)  # long enough for several progress edits
    async with world.bot() as bot:
        [sent] = await burst(world, guild, channel, 1, "cut progress")
        cuts = inject_on_progress(world, original_of(sent), times=2)
        await until(lambda: cuts.used_up, what="two progress edits cut", timeout=30)
        jobs = await ended(bot, [sent])
        await assert_delivered(world, sent, jobs[sent.prompt])
        assert len(world.comet.predictions) == 1
        await assert_nothing_lost(world, bot, jobs)


# --- the interaction token refused -----------------------------------------------------------------------


@pytest.mark.parametrize("refusal", ["401 expired", "404 invalid webhook token"])
async def test_a_token_refused_mid_job_moves_the_job_to_the_channel(world, refusal):
    """Discord may refuse a token earlier than the clock says (401, or 404 with 50027): the job goes on
    through the channel endpoints and is delivered, instead of failing after it was paid for."""
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=2.5)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 3, "token")
        stored = [await job_of(bot, s) for s in sent]
        await until(lambda: _all_running(bot, stored), what="the jobs running")
        cut = sent[1]
        await cut.handle.wait_original(lambda m: "flux" in m.text)  # a progress edit went through the token
        if refusal.startswith("401"):
            cut.handle.expire_token()
        else:
            world.discord.inject_error("*", original_of(cut), 404, 50027, "Invalid Webhook Token", times=None)
        jobs = await ended(bot, sent)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        status = 401 if refusal.startswith("401") else 404
        assert [r for r in world.discord.requests_matching("PATCH", original_of(cut)) if r.status == status]
        [result] = [e for e in world.discord.edits_of(cut.handle.original_message_id) if e.new_attachments]
        assert result.route.startswith(f"PATCH /channels/{channel.id}/messages/"), result.route
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


@pytest.mark.parametrize("memory_mb", ["32", "0"], ids=["in memory", "in temporary files"])
async def test_a_token_refused_on_the_result_upload_posts_it_through_the_channel(world, memory_mb):
    """The token refused by the result's own upload (401 Invalid Webhook Token): the result goes through the
    channel endpoint with its files made again (discord.py closed the first ones; an image spilled past
    IMAGE_MEMORY_MB for good), each image once, and the job succeeds."""
    guild, channel, _ = setup_guild(world, "alice")
    async with world.bot(IMAGE_MEMORY_MB=memory_mb) as bot:
        [sent] = await burst(world, guild, channel, 1, "spent", num_outputs=2)
        refusal = {"message": "Invalid Webhook Token", "code": 50027}
        upload = inject_on_upload(world, original_of(sent), 401, json=refusal)
        jobs = await ended(bot, [sent])
        [job] = jobs.values()
        await assert_delivered(world, sent, job)
        assert job.image_count == 2
        spilled = bot.service.downloader.spool.budget.spilled
        assert spilled == 2 if memory_mb == "0" else spilled == 0
        [refused] = answered(world, upload)
        assert refused.status == 401 and len(refused.files) == 2
        uploads = [r for r in world.discord.requests if r.files and r.at > refused.at]
        [again] = uploads  # one upload after the refusal, through the channel, with both images
        assert again.method == "PATCH" and again.path.startswith(f"/channels/{channel.id}/messages/"), again.path
        assert again.status == 200 and len(again.files) == 2
        message_id = sent.handle.original_message_id
        [result] = [e for e in world.discord.edits_of(message_id) if e.new_attachments]
        assert result.route.startswith(f"PATCH /channels/{channel.id}/messages/"), result.route
        assert len(result.new_attachments) == 2
        assert [m.id for m in world.discord.messages_in(channel.id) if m.attachments] == [message_id]
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


# --- the reply deleted ---------------------------------------------------------------------------------------


async def test_replies_deleted_mid_job_cancel_those_jobs_only(world):
    guild, channel, _ = setup_guild(world, "alice")
    # The first two run while the others wait, long enough that a deleted reply is seen (at an edit) while its
    # prediction still runs, however busy the machine.
    world.comet.queue_outcome(Outcome(duration=6.0), times=2)
    world.comet.default_outcome = Outcome(duration=0.3)
    async with world.bot(MAX_CONCURRENT_PREDICTIONS="2") as bot:
        sent = await burst(world, guild, channel, 5, "deleted")
        stored = {s.prompt: await job_of(bot, s) for s in sent}
        # One job generating, one waiting in the queue: both replies deleted.
        running = await until(lambda: _first_with_status(bot, stored, "running"), what="a running job", timeout=10)
        queued = await until(lambda: _first_with_status(bot, stored, "queued"), what="a queued job", timeout=10)
        for job in (running, queued):
            await world.discord.delete_message(channel, job.message_id)
        jobs = await ended(bot, sent, timeout=30)
        gone = {running.id, queued.id}
        for s in sent:
            job = jobs[s.prompt]
            if job.id in gone:
                assert job.status == "canceled", (job.status, job.error)
                if job.prediction_id is not None:  # a prediction is not left running (and paid for) uselessly
                    assert world.comet.predictions[job.prediction_id].cancel_requested
            else:
                await assert_delivered(world, s, job)
        assert jobs[running.input["prompt"]].prediction_id is not None
        assert not [m for m in world.discord.messages_in(channel) if "Cancelled" in m.text]
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def _first_with_status(bot, stored, status):
    for job in stored.values():
        current = await bot.store.get_job(job.id)
        if current.status == status:
            return current
    return None


# --- permissions ------------------------------------------------------------------------------------------


async def test_missing_attach_files_says_so_in_the_reply(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=0.3)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 3, "noattach")
        refusal = {"message": "Missing Permissions", "code": 50013}
        upload = inject_on_upload(world, original_of(sent[1]), 403, json=refusal, times=None)
        jobs = await ended(bot, sent)
        for n, s in enumerate(sent):
            if n == 1:
                job = jobs[s.prompt]
                # The images were made but could not be posted: the reply explains why, and the job is not
                # counted as a success (nor against the user's daily images).
                assert (job.status, job.image_count) == ("failed", 0)
                msg = await s.handle.wait_original(lambda m: "Attach Files" in m.text)
                assert msg.attachments == []
                assert s.prompt in card(msg).prompt
            else:
                await assert_delivered(world, s, jobs[s.prompt])
        assert len(answered(world, upload)) == 1  # a refusal is not retried
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def test_a_split_result_without_send_messages_keeps_what_was_shown_and_names_the_permission(world):
    """The reply is edited (no Send Messages needed) with the first images; the messages with the rest are
    refused. The images shown stay, and the reply names the permission that is missing."""
    guild, channel, alice = setup_guild(world, "alice")
    world.discord.set_channel_permissions(channel, world.discord.bot.id, deny=["send_messages"])
    world.comet.image_size = 30_000
    world.comet.default_outcome = Outcome(duration=0.3)
    async with world.bot() as bot:
        # 4 x 30 kB against a 70 kB limit: two in the reply, two in a message of their own
        handle = await imagine(
            world, guild, channel, alice, prompt="four foxes", model="flux-dev", num_outputs=4,
            attachment_size_limit=70_000,
        )  # fmt: skip
        sent = Sent(alice, "four foxes", handle)
        job = (await ended(bot, [sent]))[sent.prompt]
        msg = await handle.wait_original(lambda m: "could not be posted" in m.text)
        refused = world.discord.requests_matching("POST", rf"^/channels/{channel.id}/messages$")
        assert refused and {r.status for r in refused} == {403}
    assert job.prediction_id is not None
    served = served_files(world, job.prediction_id)
    assert msg.attachment_bytes() == served[:2], "the images already shown were taken away"
    assert (job.status, job.image_count) == ("succeeded", 2)
    note = "\n".join(card(msg).notes)
    assert "2 more images could not be posted: I need the **Send Messages** permission" in note, note
    assert "Attach Files" not in msg.text + note
    assert "four foxes" in card(msg).prompt
    assert len(card(msg).gallery) == 2, "the gallery still shows the images already posted"
    assert [m for m in world.discord.messages_in(channel) if m.id != msg.id] == []


async def test_missing_attach_files_for_a_job_resumed_after_a_restart(world):
    """After a restart the reply is edited through the channel, where the fake itself checks Attach Files."""
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=1.5)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 3, "resumed")
        stored = [await job_of(bot, s) for s in sent]
        await until(lambda: _all_running(bot, stored), what="all jobs running")
    world.discord.set_channel_permissions(channel, world.discord.bot.id, deny=["attach_files"])
    async with world.bot() as bot:
        jobs = await ended(bot, sent)
        for s in sent:
            job = jobs[s.prompt]
            assert (job.status, job.image_count) == ("failed", 0)
            msg = await s.handle.wait_original(lambda m: "Attach Files" in m.text)
            assert msg.attachments == []
        refused = world.discord.requests_matching("PATCH", rf"^/channels/{channel.id}/messages/\d+$")
        assert Counter(r.status for r in refused if r.files)[403] == 3
        await assert_nothing_lost(world, bot, jobs)
        world.discord.set_channel_permissions(channel, world.discord.bot.id)
        await assert_still_serving(world, bot, guild, channel)
    assert len(world.comet.creates()) == 4


async def _all_running(bot, stored) -> bool:
    for job in stored:
        current = await bot.store.get_job(job.id)
        if current.status != "running":
            return False
    return True


async def test_losing_access_to_the_channel_ends_its_jobs_and_spares_the_rest(world):
    """50001 Missing Access: nothing can be shown there any more, so its jobs stop (and stop their predictions);
    jobs in another channel are untouched."""
    guild, channel, _ = setup_guild(world, "alice")
    other = world.discord.add_channel(guild, "elsewhere")
    # Long enough that they are still running when access is lost, however busy the machine is.
    world.comet.queue_outcome(Outcome(duration=30.0), times=3)
    world.comet.default_outcome = Outcome(duration=0.5)
    async with world.bot() as bot:
        lost = await burst(world, guild, channel, 3, "noaccess")
        stored = [await job_of(bot, s) for s in lost]
        await until(lambda: _all_running(bot, stored), what="the jobs running")
        # Only now the others: their creates must not take the three long outcomes queued above.
        kept = await burst(world, guild, other, 2, "kept")
        world.discord.set_channel_permissions(channel, world.discord.bot.id, deny=["view_channel"])
        for s in lost:
            world.discord.inject_error("*", original_of(s), 403, 50001, "Missing Access", times=None)
        jobs = await ended(bot, lost + kept, timeout=30)
        for s in lost:
            job = jobs[s.prompt]
            assert job.status == "canceled", (job.status, job.error)
            # Noticed on the next progress edit: the prediction is stopped rather than paid to the end.
            assert world.comet.predictions[job.prediction_id].cancel_requested
        for s in kept:
            await assert_delivered(world, s, jobs[s.prompt])
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, other)


# --- the gateway ---------------------------------------------------------------------------------------------


async def test_a_resumed_gateway_mid_job_loses_nothing(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=1.0)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 4, "resume")
        stored = [await job_of(bot, s) for s in sent]
        await until(lambda: _all_running(bot, stored), what="the jobs running")
        assert await world.discord.drop_gateway(resumable=True) == 1
        # An interaction while the bot is away waits in the session and is replayed on RESUME.
        sent += await burst(world, guild, channel, 1, "during-the-gap")
        await world.discord.wait_for_gateway()
        jobs = await ended(bot, sent)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        assert len(world.discord.gateway_connections) == 2
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def test_a_new_gateway_session_mid_job_loses_nothing(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=1.0)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 4, "reidentify")
        stored = [await job_of(bot, s) for s in sent]
        await until(lambda: _all_running(bot, stored), what="the jobs running")
        before = world.discord.gateway_sessions[0]
        assert await world.discord.drop_gateway(resumable=False) == 1
        await world.discord.wait_for_gateway()
        assert world.discord.gateway_sessions[0] is not before  # identified afresh
        jobs = await ended(bot, sent)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)
        assert sum(creates_by_prompt(world).values()) == 5


async def test_each_failed_reconnect_is_one_log_line_not_a_traceback(world, caplog):
    guild, channel, _ = setup_guild(world, "alice")
    caplog.set_level(logging.INFO)
    async with world.bot() as bot:
        world.discord.refuse_gateway(times=2)
        assert await world.discord.drop_gateway(resumable=True) == 1
        await world.discord.wait_for_gateway(timeout=20)  # discord.py backs off up to 2 s, then 4 s
        assert world.discord.gateway_refused == 2
        await assert_still_serving(world, bot, guild, channel)
    attempts = [r for r in caplog.records if r.name.startswith("discord.") and "reconnect" in r.getMessage()]
    assert [r.levelname for r in attempts if r.levelno >= logging.WARNING] == ["ERROR", "ERROR"]  # one per attempt
    for record in attempts:
        line = record.getMessage()
        assert record.exc_info is None and record.exc_text is None, line
        assert "\n" not in line
        assert re.match(r"^Attempting a reconnect for shard ID 0 in \d+\.\d\ds \(WSServerHandshakeError: 503", line)
    assert "Traceback" not in caplog.text
