"""Fault campaign, CometAPI side: several /imagine jobs in flight while the API misbehaves.

Every scenario ends the same way: each job is either delivered (its reply carries exactly the files the API
served) or its reply says in a line or two what went wrong; no job is left in an active status; nothing was
created twice (one create request per job that reached the API, at most one prediction per job); and the bot
still delivers a new /imagine afterwards.

The helpers at the top are shared with test_faults_discord.py and test_faults_process.py.
"""

from __future__ import annotations

import itertools
from collections import Counter

from fakes.cometapi import Outcome
from services.store.models import Job
from tests.campaign import (
    assert_delivered,
    assert_nothing_lost,
    assert_still_serving,
    assert_told,
    burst,
    creates_by_prompt,
    ended,
    predictions_by_prompt,
)
from tests.helpers import setup_guild

UNCONFIRMED = "did not confirm"  # UncertainCreate: the create may have reached the API; never repeated


# --- shared helpers ---------------------------------------------------------------------------------------


def outcome_of(world, job: Job) -> Outcome:
    """How the fake made the job's prediction end (outcomes go out in the order the creates arrive)."""
    assert job.prediction_id is not None
    outcome: Outcome = world.comet.predictions[job.prediction_id].outcome
    return outcome


def next_request_after(requests, index: int):
    """The next request to the same path as requests[index] (e.g. the retry of a refused GET)."""
    first = requests[index]
    return next(r for r in requests[index + 1 :] if r.path == first.path)


# --- 429 storms ------------------------------------------------------------------------------------------


async def test_429_storm_on_create_waits_retry_after_and_creates_each_job_once(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.inject("create", status=429, headers={"Retry-After": "1"}, times=6)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 4, "storm")
        jobs = await ended(bot, sent)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        # A refused create is tried again, never before its Retry-After.
        for prompt in jobs:
            times = sorted(c.at for c in world.comet.creates() if c.json["input"]["prompt"] == prompt)
            assert all(b - a >= 0.99 for a, b in itertools.pairwise(times)), (prompt, times)
        assert max(creates_by_prompt(world).values()) > 1, "the storm did refuse someone's create"
        await assert_nothing_lost(world, bot, jobs, extra_creates=6)
        await assert_still_serving(world, bot, guild, channel)


async def test_429_storm_on_polls_waits_retry_after_and_every_job_is_delivered(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.inject("get", status=429, headers={"Retry-After": "1"}, times=4)
    world.comet.inject("get", status=429, headers={"Retry-After": "0"}, times=30)  # a long storm, fast
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 4, "polls")
        jobs = await ended(bot, sent)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        gets = world.comet.requests_for("get")
        assert len(gets) > 34
        for index in range(4):  # the ones answered "Retry-After: 1"
            assert next_request_after(gets, index).at - gets[index].at >= 0.99
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


# --- 5xx ---------------------------------------------------------------------------------------------------


async def test_5xx_flaps_on_polls_are_ridden_out(world):
    guild, channel, _ = setup_guild(world, "alice")
    for status in (500, 502, 503, 504, 524, 503, 500):
        world.comet.inject("get", status=status)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 5, "flap")
        jobs = await ended(bot, sent)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def test_5xx_on_create_fails_that_job_with_a_message_and_is_never_repeated(world):
    """A create answered 5xx may or may not have been made: it is not sent again; the reply says so."""
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.inject("create", status=503)
    world.comet.inject("create", status=524, side_effects=True)  # the timeout came after the prediction was made
    world.comet.inject("create", status=502)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 6, "create5xx")
        jobs = await ended(bot, sent)
        failed = [s for s in sent if jobs[s.prompt].status == "failed"]
        assert len(failed) == 3, {p: j.status for p, j in jobs.items()}
        for s in sent:
            if s in failed:
                # It may have been made (the 524 one was), so the reply says it was not confirmed, not resent.
                await assert_told(world, s, jobs[s.prompt], "failed", UNCONFIRMED, "not charged twice")
                assert jobs[s.prompt].prediction_id is None
            else:
                await assert_delivered(world, s, jobs[s.prompt])
        assert all(n == 1 for n in creates_by_prompt(world).values())
        assert len(world.comet.predictions) == 4  # three delivered, one made by the create answered 524
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


# --- dropped connections, hangs, garbage ---------------------------------------------------------------------


async def test_connection_resets_on_polls_are_retried_and_a_reset_create_is_not_repeated(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.inject("get", drop=True, times=4)
    world.comet.inject("create", status=None)  # the first create goes through
    world.comet.inject("create", drop=True)  # the second is made, then its connection is reset
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 4, "reset")
        jobs = await ended(bot, sent)
        unconfirmed = [s for s in sent if jobs[s.prompt].status == "failed"]
        assert len(unconfirmed) == 1, {p: (j.status, j.error) for p, j in jobs.items()}
        for s in sent:
            if s in unconfirmed:
                text = await assert_told(world, s, jobs[s.prompt], "failed", UNCONFIRMED, "not charged twice")
                assert "try again" in text
            else:
                await assert_delivered(world, s, jobs[s.prompt])
        # The reset create did make a prediction; it was not sent again (no second prediction).
        assert predictions_by_prompt(world)[unconfirmed[0].prompt] == 1
        assert all(n == 1 for n in creates_by_prompt(world).values())
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def test_a_poll_that_hangs_past_the_read_timeout_is_abandoned_and_retried(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.inject("create", status=None)  # the first create answers at once
    world.comet.inject("create", status=None, delay=3.0)  # the second is made but its answer comes too late
    world.comet.inject("get", status=None, delay=3.0, times=3)
    async with world.bot(COMETAPI_READ_TIMEOUT="0.5") as bot:
        sent = await burst(world, guild, channel, 4, "hang")
        jobs = await ended(bot, sent)
        unconfirmed = [s for s in sent if jobs[s.prompt].status == "failed"]
        assert len(unconfirmed) == 1, {p: (j.status, j.error) for p, j in jobs.items()}
        for s in sent:
            if s in unconfirmed:
                await assert_told(world, s, jobs[s.prompt], "failed", UNCONFIRMED)
            else:
                await assert_delivered(world, s, jobs[s.prompt])
        gets = world.comet.requests_for("get")
        for index in range(3):  # the hung polls: given up after the read timeout, not before
            assert next_request_after(gets, index).at - gets[index].at >= 0.5
        assert all(n == 1 for n in creates_by_prompt(world).values())
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


CLOUDFLARE = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"


async def test_html_and_truncated_json_answers(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.inject("get", status=200, text="<html><body>Just a moment...</body></html>", content_type="text/html")
    world.comet.inject("get", status=502, text=CLOUDFLARE, content_type="text/html")
    world.comet.inject("get", status=200, text='{"id": "abc", "status": "proce', content_type="application/json")
    world.comet.inject("create", status=None)
    world.comet.inject("create", status=200, text=CLOUDFLARE, content_type="text/html")  # nothing was made
    world.comet.inject(  # made, but the answer was cut off
        "create", status=201, text='{"id": "x", "status": "star', content_type="application/json", side_effects=True
    )
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 5, "garbage")
        jobs = await ended(bot, sent)
        unconfirmed = [s for s in sent if jobs[s.prompt].status == "failed"]
        assert len(unconfirmed) == 2, {p: (j.status, j.error) for p, j in jobs.items()}
        for s in sent:
            if s in unconfirmed:
                await assert_told(world, s, jobs[s.prompt], "failed", UNCONFIRMED)
            else:
                await assert_delivered(world, s, jobs[s.prompt])
        assert len(world.comet.predictions) == 4  # three delivered, one made by the cut-off create
        assert all(n == 1 for n in creates_by_prompt(world).values())
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def test_unknown_status_strings_are_waited_through(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(unknown_status="queued_for_gpu", unknown_status_time=0.6), times=2)
    world.comet.queue_outcome(Outcome(unknown_status="PENDING", unknown_status_time=0.6))
    world.comet.queue_outcome(Outcome(unknown_status="in_queue", unknown_status_time=0.6))
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 4, "unknown")
        jobs = await ended(bot, sent)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


# --- outputs -----------------------------------------------------------------------------------------------


async def test_output_files_that_are_gone_or_too_large(world):
    guild, channel, _ = setup_guild(world, "alice")
    for outcome in (Outcome(file_status=404), Outcome(file_size=300_000), Outcome(), Outcome(file_status=410)):
        world.comet.queue_outcome(outcome)
    world.comet.inject("file", status=503)  # a passing hiccup of the file host is retried
    async with world.bot(MAX_DOWNLOAD_MB="0.1") as bot:
        sent = await burst(world, guild, channel, 5, "files")
        jobs = await ended(bot, sent)
        for s in sent:
            # Outcomes go to predictions in the order the creates arrive: look each one up.
            outcome = outcome_of(world, jobs[s.prompt])
            if outcome.file_status:
                await assert_told(world, s, jobs[s.prompt], "failed", "could not be fetched", "gone")
            elif outcome.file_size:
                await assert_told(
                    world, s, jobs[s.prompt], "failed", "could not be fetched", r"larger than the 0\.1 MiB"
                )
            else:
                await assert_delivered(world, s, jobs[s.prompt])
        assert Counter(j.status for j in jobs.values()) == {"failed": 3, "succeeded": 2}
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def test_outputs_removed_by_the_api(world):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(data_removed=True), times=2)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 4, "removed")
        jobs = await ended(bot, sent)
        for s in sent:
            if outcome_of(world, jobs[s.prompt]).data_removed:
                await assert_told(world, s, jobs[s.prompt], "failed", "removed the images")
            else:
                await assert_delivered(world, s, jobs[s.prompt])
        assert Counter(j.status for j in jobs.values()) == {"failed": 2, "succeeded": 2}
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def test_predictions_that_never_finish_are_cancelled_at_the_deadline(world):
    guild, channel, _ = setup_guild(world, "alice")
    for never in (True, False, True, False):
        world.comet.queue_outcome(Outcome(status="never") if never else Outcome(duration=0.2))
    async with world.bot(PREDICTION_DEADLINE="1.5") as bot:
        sent = await burst(world, guild, channel, 4, "never")
        jobs = await ended(bot, sent)
        stuck = [s for s in sent if outcome_of(world, jobs[s.prompt]).status == "never"]
        assert len(stuck) == 2
        for s in sent:
            job = jobs[s.prompt]
            if s in stuck:
                await assert_told(world, s, job, "failed", "too long")
                prediction = world.comet.predictions[job.prediction_id]
                assert prediction.cancel_requested, "the stuck prediction was left running"
                assert job.completed_at is not None and job.completed_at - job.created_at >= 1.5
            else:
                await assert_delivered(world, s, job)
        assert len(world.comet.requests_for("cancel")) == 2
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)
    assert not [p for p in world.comet.predictions.values() if p.status not in ("succeeded", "canceled")]
