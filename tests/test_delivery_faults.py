"""What was paid for, in the way of which Discord or the store gets (a paid image is never lost): Discord refusing the
upload for longer than the display's own retries (the job waits in "delivering" and posts it later), the store failing
to record the success of a job whose images are shown (they stay shown: the job succeeds, or is left "delivering" and
resumed), and the store failing to record a prediction just created (it is recorded on a later try, or cancelled).
"""

from __future__ import annotations

import re
from typing import Any

from cli.harness import wait_status
from fakes.cometapi import Outcome
from services.store.models import JobStatus
from tests.campaign import Sent, assert_delivered, assert_nothing_lost, burst, ended, inject_on_upload, job_of
from tests.helpers import setup_guild, until
from ui.display import DELIVERY_ATTEMPTS

DISCORD_PY_TRIES = 5  # discord.py's own tries of a request Discord refuses with a 429 or a 5xx
RATE_LIMITED = {"message": "You are being rate limited.", "retry_after": 0.01, "global": False}


def result_edits(world, sent: Sent) -> list[Any]:
    """The edits of the job's message that uploaded files (the result)."""
    return [e for e in world.discord.edits_of(sent.handle.original_message_id) if e.new_attachments]


def ever_shown_failed(world, sent: Sent) -> bool:
    return any("⚠️" in e.text or "🛑" in e.text for e in world.discord.edits_of(sent.handle.original_message_id))


async def test_a_result_discord_refuses_for_a_while_is_posted_once_discord_takes_it_again(world):
    """Every upload of the result is refused (429, as in a 5xx outage) for longer than the display tries it: the job
    is not failed (it used to be, its paid images lost), it waits in "delivering" and posts the result again later,
    through the same message."""
    guild, channel, _ = setup_guild(world, "alice")
    async with world.bot() as bot:
        bot.runner.delivery_retry_seconds = 0.5  # the first wait before posting again (15 s in production)
        [sent] = await burst(world, guild, channel, 1, "outage")
        # Through the interaction, or the channel once the display gave the interaction up: each upload is refused.
        path = (
            rf"^(/webhooks/\d+/{re.escape(sent.handle.token)}/messages/@original|/channels/{channel.id}/messages/\d+)$"
        )
        longer = DISCORD_PY_TRIES * DELIVERY_ATTEMPTS + 3  # more refusals than one delivery outlasts
        outage = inject_on_upload(world, path, 429, json=RATE_LIMITED, times=longer)
        [job] = (await ended(bot, [sent], timeout=60)).values()
        await assert_delivered(world, sent, job)
        assert outage.hits == longer
        assert len(result_edits(world, sent)) == 1  # posted once, on the job's own message
        assert not ever_shown_failed(world, sent)
        assert len(world.comet.predictions) == 1
        await assert_nothing_lost(world, bot, {sent.prompt: job})


async def test_a_result_whose_connection_is_cut_at_every_upload_for_a_while_is_posted_again(world):
    """The connection to Discord is cut at each upload of the result (after Discord took it: the bot cannot tell),
    more times than the display tries it. discord.py does not retry a cut connection on Linux: the job used to
    crash with its paid images lost. It waits in "delivering" and posts the result again, on the same message."""
    guild, channel, _ = setup_guild(world, "alice")
    async with world.bot() as bot:
        bot.runner.delivery_retry_seconds = 0.5
        [sent] = await burst(world, guild, channel, 1, "cut")
        path = (
            rf"^(/webhooks/\d+/{re.escape(sent.handle.token)}/messages/@original|/channels/{channel.id}/messages/\d+)$"
        )
        cuts = inject_on_upload(world, path, None, times=DELIVERY_ATTEMPTS + 1, drop=True)
        [job] = (await ended(bot, [sent], timeout=60)).values()
        await assert_delivered(world, sent, job)
        assert cuts.hits == DELIVERY_ATTEMPTS + 1
        assert not ever_shown_failed(world, sent)
        assert len(world.comet.predictions) == 1
        await assert_nothing_lost(world, bot, {sent.prompt: job})


async def test_a_result_whose_connection_is_cut_twice_is_posted_by_the_display_s_own_tries(world):
    """Two cuts are ridden out at once by the display's own tries (no wait in "delivering": that is set past the
    outputs' life here, so only the display's tries can deliver the result)."""
    guild, channel, _ = setup_guild(world, "alice")
    async with world.bot() as bot:
        bot.runner.delivery_retry_seconds = bot.runner.delivery_retry_max = 7200.0
        [sent] = await burst(world, guild, channel, 1, "two cuts")
        path = (
            rf"^(/webhooks/\d+/{re.escape(sent.handle.token)}/messages/@original|/channels/{channel.id}/messages/\d+)$"
        )
        cuts = inject_on_upload(world, path, None, times=2, drop=True)
        [job] = (await ended(bot, [sent], timeout=60)).values()
        await assert_delivered(world, sent, job)
        assert cuts.hits == 2
        assert not ever_shown_failed(world, sent)


def refusing_transitions(bot, monkeypatch, to: str, times: int | None) -> list[str]:
    """The store refuses the writes that move a job to `to` (a delivered job's success, a created prediction's move to
    "running"), `times` times (None: always), as with a database out of reach; the ids of the jobs refused, once per
    refusal."""
    transition = bot.store.transition
    refused: list[str] = []

    async def failing(job_id: str, from_: Any, to_: str, **fields: Any) -> Any:
        if to_ == to and (times is None or len(refused) < times):
            refused.append(job_id)
            raise ConnectionResetError("the connection to the database was lost")
        return await transition(job_id, from_, to_, **fields)

    monkeypatch.setattr(bot.store, "transition", failing)
    return refused


async def test_a_store_error_recording_a_delivered_job_leaves_its_images_shown_and_the_job_succeeded(
    world_any_store, monkeypatch
):
    """The write of a delivered job's success fails once (the database connection dropped): its images stay shown
    (they used to be replaced by a "Something went wrong" card, the job failed) and the write is made again."""
    world = world_any_store
    guild, channel, _ = setup_guild(world, "alice")
    async with world.bot() as bot:
        refused = refusing_transitions(bot, monkeypatch, JobStatus.SUCCEEDED, times=1)
        [sent] = await burst(world, guild, channel, 1, "blip")
        [job] = (await ended(bot, [sent])).values()
        assert refused == [job.id]
        await assert_delivered(world, sent, job)
        assert len(result_edits(world, sent)) == 1
        assert not ever_shown_failed(world, sent)
        await assert_nothing_lost(world, bot, {sent.prompt: job})


async def test_a_delivered_job_whose_success_the_store_never_takes_is_resumed_not_failed(world, monkeypatch):
    """The store refuses every write of a delivered job's success: the job is left "delivering" with its images
    shown, and the next start resumes it (the same message edited with the same images) to success."""
    guild, channel, _ = setup_guild(world, "alice")
    async with world.bot() as bot:
        bot.runner.record_retry_seconds = 0.05
        refused = refusing_transitions(bot, monkeypatch, JobStatus.SUCCEEDED, times=None)
        [sent] = await burst(world, guild, channel, 1, "down")
        job = await job_of(bot, sent)
        await until(lambda: refused and not bot.runner.running(job.id), what="the job's task to stop")
        left = await bot.store.get_job(job.id)
        assert left is not None and left.status == JobStatus.DELIVERING
        assert len(refused) > 1  # tried again before giving up
        assert len(result_edits(world, sent)) == 1 and not ever_shown_failed(world, sent)
    async with world.bot() as bot:
        done = await wait_status(bot, job.id, JobStatus.SUCCEEDED)
        await assert_delivered(world, sent, done)
        assert not ever_shown_failed(world, sent)
        assert [m.id for m in world.discord.messages_in(channel.id) if m.attachments] == [
            sent.handle.original_message_id
        ]
        await assert_nothing_lost(world, bot, {sent.prompt: done})


async def test_a_prediction_the_store_takes_only_on_a_later_try_is_followed_and_delivered(world_any_store, monkeypatch):
    """The write of a created prediction's id fails twice (the database was away for a moment): it is written again,
    and the job, paid for, is delivered from that one prediction (it used to fail, its prediction left running)."""
    world = world_any_store
    guild, channel, _ = setup_guild(world, "alice")
    async with world.bot() as bot:
        bot.runner.record_retry_seconds = 0.05
        refused = refusing_transitions(bot, monkeypatch, JobStatus.RUNNING, times=2)
        [sent] = await burst(world, guild, channel, 1, "blip")
        [job] = (await ended(bot, [sent])).values()
        assert refused == [job.id, job.id]
        await assert_delivered(world, sent, job)
        assert not ever_shown_failed(world, sent)
        await assert_nothing_lost(world, bot, {sent.prompt: job})


async def test_a_prediction_the_store_never_takes_is_cancelled_and_the_job_fails(world, monkeypatch):
    """The store never takes a created prediction's id: nothing could follow or resume the prediction, so it is
    cancelled (not left running, paid and unseen), and the job fails where the user sees it."""
    guild, channel, _ = setup_guild(world, "alice")
    async with world.bot() as bot:
        bot.runner.record_retry_seconds = 0.05
        refused = refusing_transitions(bot, monkeypatch, JobStatus.RUNNING, times=None)
        world.comet.queue_outcome(Outcome(duration=30.0))  # still running when given up: its cancel stops it
        [sent] = await burst(world, guild, channel, 1, "down")
        [job] = (await ended(bot, [sent])).values()
        assert job.status == JobStatus.FAILED
        assert len(refused) > 1  # tried again before giving up
        [prediction_id] = world.comet.predictions  # one create
        [cancel] = await world.comet.wait_for(lambda: world.comet.requests_for("cancel"), what="the cancel")
        assert cancel.path.split("/")[-2] == prediction_id
        assert world.comet.predictions[prediction_id].status == "canceled"
        await sent.handle.wait_original(lambda m: "⚠️" in m.text)
