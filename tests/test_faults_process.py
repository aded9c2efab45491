"""Fault campaign, the process and its database: SIGKILL and SIGTERM of a real `python bot.py` with jobs in every
stage, the SQLite file locked by another process, PostgreSQL connections killed.

Same bar as test_faults_api.py: each job delivered or told why, none left active, nothing created twice, and a new
/imagine delivered afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg

from cli.harness import World
from fakes.cometapi import Outcome
from fakes.discord_models import make_fault
from services.store import PostgresStore
from services.store.base import job_from_row
from services.store.models import ACTIVE, TERMINAL, Job, JobStatus
from tests.campaign import (
    NthRequest,
    Sent,
    assert_clean_log,
    assert_delivered,
    assert_nothing_lost,
    assert_one_create_each,
    assert_still_serving,
    assert_told,
    burst,
    ended,
    job_of,
    served_files,
    start_bot,
    stop_bot,
)
from tests.conftest import StoreTarget, connect_postgres_or_skip, postgres_schema, postgres_test_url
from tests.helpers import setup_guild, until

# --- a real process ---------------------------------------------------------------------------------------


def stored_jobs(tmp_path: Path) -> dict[int, Job]:
    """The jobs in the bot's SQLite file, by reply message id (read as another process would)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "bot.db", timeout=5)) as conn:
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute("SELECT * FROM jobs").fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return {}
    return {job.message_id: job for job in map(job_from_row, rows) if job.message_id is not None}


def jobs_of(tmp_path: Path, sent: list[Sent]) -> dict[str, Job]:
    stored = stored_jobs(tmp_path)
    return {s.prompt: stored[mid] for s in sent if (mid := s.handle.original_message_id) in stored}


def stages(tmp_path: Path, sent: list[Sent]) -> Counter[str]:
    jobs = jobs_of(tmp_path, sent)
    return Counter(job.status for job in jobs.values()) if len(jobs) == len(sent) else Counter()


async def all_ended(tmp_path: Path, sent: list[Sent], timeout: float = 30.0) -> dict[str, Job]:
    def done() -> dict[str, Job] | None:
        jobs = jobs_of(tmp_path, sent)
        return jobs if len(jobs) == len(sent) and all(j.status in TERMINAL for j in jobs.values()) else None

    jobs: dict[str, Job] = await until(done, timeout=timeout, what="every job to end")
    return jobs


async def assert_process_serves(world, tmp_path: Path, guild, channel) -> None:
    [sent] = await burst(world, guild, channel, 1, "afterwards")
    [job] = (await all_ended(tmp_path, [sent])).values()
    await assert_delivered(world, sent, job)


async def test_sigkill_with_jobs_in_every_stage_then_restart(world, tmp_path):
    """Killed with two jobs generating, one create in the air and two queued: after a restart the generating
    and queued jobs are delivered, each created once; the one whose create was in the air is not sent again and
    its reply says so."""
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=3.0)
    world.comet.inject("create", status=None, times=2)
    world.comet.inject("create", status=None, delay=5.0)  # the third create is made, but not answered in time
    log = tmp_path / "bot.log"

    first = await start_bot(world, tmp_path, log, MAX_CONCURRENT_PREDICTIONS="3")
    sent = await burst(world, guild, channel, 5, "killed")
    wanted = Counter({"running": 2, "submitting": 1, "queued": 2})
    await until(lambda: stages(tmp_path, sent) == wanted, timeout=15, what=f"jobs in stages {dict(wanted)}")
    await until(lambda: len(world.comet.creates()) == 3, what="the third create")
    first.send_signal(signal.SIGKILL)
    assert await first.wait() == -signal.SIGKILL
    in_the_air = next(p for p, j in jobs_of(tmp_path, sent).items() if j.status == "submitting")

    world.comet.default_outcome = Outcome()  # jobs created from now on finish at once
    second = await start_bot(world, tmp_path, log, MAX_CONCURRENT_PREDICTIONS="3")
    try:
        jobs = await all_ended(tmp_path, sent)
        for s in sent:
            if s.prompt == in_the_air:
                await assert_told(world, s, jobs[s.prompt], "failed", "restarted while starting", "not sent again")
                assert jobs[s.prompt].prediction_id is None
            else:
                await assert_delivered(world, s, jobs[s.prompt])
        assert_one_create_each(world, jobs)
        await assert_process_serves(world, tmp_path, guild, channel)
    finally:
        await stop_bot(second, log)
    assert not [j for j in stored_jobs(tmp_path).values() if j.status in ACTIVE]
    assert "Resumed 5 unfinished job(s)" in log.read_text()
    assert_clean_log(log)


async def test_sigterm_during_a_burst_exits_cleanly_and_the_restart_delivers_everything(world, tmp_path):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=3.0))  # the first job is still generating at the SIGTERM
    world.comet.inject("create", status=None)
    world.comet.inject("create", status=None, delay=1.0)  # the second create is in the air at the SIGTERM
    log = tmp_path / "bot.log"

    first = await start_bot(world, tmp_path, log, MAX_CONCURRENT_PREDICTIONS="2")
    sent = await burst(world, guild, channel, 5, "stopped")
    wanted = Counter({"running": 1, "submitting": 1, "queued": 3})
    await until(lambda: stages(tmp_path, sent) == wanted, timeout=15, what=f"jobs in stages {dict(wanted)}")
    await until(lambda: len(world.comet.creates()) == 2, what="the second create")
    stopped_at = time.monotonic()
    await stop_bot(first, log)  # SIGTERM -> exit status 0
    # The create in the air was waited for and recorded: every job is resumable, none is half-started.
    assert stages(tmp_path, sent) == Counter({"running": 2, "queued": 3})
    assert time.monotonic() - stopped_at > 0.5  # it did wait for the create's answer

    second = await start_bot(world, tmp_path, log, MAX_CONCURRENT_PREDICTIONS="2")
    try:
        jobs = await all_ended(tmp_path, sent)
        for s in sent:
            await assert_delivered(world, s, jobs[s.prompt])
        assert_one_create_each(world, jobs)
        await assert_process_serves(world, tmp_path, guild, channel)
    finally:
        await stop_bot(second, log)
    assert "Resumed 5 unfinished job(s)" in log.read_text()
    assert_clean_log(log)


async def test_sigkill_while_a_split_result_is_posted_then_restart_posts_each_image_once(world, tmp_path):
    """The case from the issue ("5 images for 4"): four images, one per message (reply + 3 more). Killed once
    the third message was made by Discord but before its answer reached the bot. The restarted bot posts
    only what is missing: every image exactly once."""
    guild, channel, alice = setup_guild(world, "alice")
    d = world.discord
    world.comet.default_outcome = Outcome(duration=0.3)
    held = make_fault("POST", rf"^/channels/{channel.id}/messages$", None, hold=5.0)
    d.faults.append(NthRequest(**vars(held), n=2, fake=d))
    log = tmp_path / "bot.log"

    first = await start_bot(world, tmp_path, log)
    options = {"prompt": "four foxes", "model": "flux-dev", "num_outputs": 4}
    handle = await d.slash_command(guild, channel, alice, "imagine", options, attachment_size_limit=40_000)
    sent = Sent(alice, "four foxes", handle)
    cut = await d.wait_for(lambda: next((r for r in d.requests if r.held), None), timeout=20, what="a held send")
    first.send_signal(signal.SIGKILL)
    assert await first.wait() == -signal.SIGKILL
    assert [j.status for j in jobs_of(tmp_path, [sent]).values()] == ["delivering"]
    assert len([m for m in d.messages_in(channel) if m.attachments]) == 3  # the reply and two more, one unrecorded

    second = await start_bot(world, tmp_path, log)
    try:
        [job] = (await all_ended(tmp_path, [sent])).values()
        assert (job.status, job.image_count) == ("succeeded", 4)
        assert job.prediction_id is not None
        posted = [m for m in d.messages_in(channel) if m.attachments]
        assert [b for m in posted for b in m.attachment_bytes()] == served_files(world, job.prediction_id)
        assert posted[0].id == handle.original_message_id
        # The message whose answer was lost was sent again, and Discord (its nonce) gave back the same one.
        again = [r for r in d.requests_matching("POST", rf"^/channels/{channel.id}/messages$") if r is not cut]
        assert [r.message_id for r in again if r.json["nonce"] == cut.json["nonce"]] == [cut.message_id]
        await assert_process_serves(world, tmp_path, guild, channel)
    finally:
        await stop_bot(second, log)
    assert "Resumed 1 unfinished job(s)" in log.read_text()
    assert_clean_log(log)


# --- the database ------------------------------------------------------------------------------------------


async def test_sqlite_file_locked_by_another_process_for_two_seconds(world, tmp_path):
    guild, channel, _ = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=0.5)
    async with world.bot() as bot:
        sent = await burst(world, guild, channel, 4, "locked")
        stored = [await job_of(bot, s) for s in sent]
        await until(lambda: _statuses(bot, stored, {"running"}), what="the jobs running")

        locker = sqlite3.connect(tmp_path / "bot.db", timeout=5, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            generating = {row[0] for row in locker.execute("SELECT message_id FROM jobs WHERE status = 'running'")}
            late = await burst(world, guild, channel, 1, "while-locked")  # a command arriving meanwhile
            await asyncio.sleep(2.0)  # the predictions finish meanwhile; their jobs cannot record it yet
            released = time.monotonic()
            locker.execute("COMMIT")
        finally:
            locker.close()

        jobs = await ended(bot, sent + late)
        for s in sent + late:
            await assert_delivered(world, s, jobs[s.prompt])
        # The lock did bite: a job generating when it was taken is delivered only after it was released (the
        # "delivering" step is recorded first), and the late command was answered at once but its job could
        # only be stored, and shown, afterwards.
        assert generating, "no job was generating when the lock was taken"
        for message_id in generating:
            [result] = [e for e in world.discord.edits_of(message_id) if e.new_attachments]
            assert result.at >= released
        response = late[0].handle.response
        assert response is not None and response.at < released
        first_progress = next(e for e in world.discord.edits_of(late[0].handle.original_message_id) if e.text)
        assert first_progress.at >= released
        await assert_nothing_lost(world, bot, jobs)
        await assert_still_serving(world, bot, guild, channel)


async def _statuses(bot, jobs: list[Job], statuses: set[str]) -> bool:
    for job in jobs:
        current = await bot.store.get_job(job.id)
        if current is None or current.status not in statuses:
            return False
    return True


async def test_postgres_connections_killed_for_a_few_seconds(tmp_path, discord_fake, comet):
    admin = await connect_postgres_or_skip()
    try:
        async with postgres_schema() as schema:
            # application_name lets the test find the bot's own connections (and no one else's)
            url = f"{postgres_test_url()}?search_path={schema}&application_name={schema}"
            world = World(discord_fake, comet, url)
            guild, channel, _ = setup_guild(world, "alice")
            for n in range(6):  # the jobs move from stage to stage all through the outage
                comet.queue_outcome(Outcome(duration=0.3 + 0.4 * n))
            async with world.bot() as bot:
                sent = await burst(world, guild, channel, 6, "pg")
                kills = 0
                outage_ends = time.monotonic() + 3.0
                while time.monotonic() < outage_ends:
                    # (a function in the select list runs only for the rows the WHERE clause kept)
                    kills += await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                        schema,
                    )
                    await asyncio.sleep(0.2)
                assert kills >= 5, kills
                jobs = await ended(bot, sent)
                for s in sent:
                    await assert_delivered(world, s, jobs[s.prompt])
                await assert_nothing_lost(world, bot, jobs)
                await assert_still_serving(world, bot, guild, channel)
    finally:
        await admin.close()


class _AnswerLost:
    """A pooled connection whose next statement runs (and commits), then the connection dies before answering."""

    def __init__(self, conn) -> None:
        self._conn = conn

    async def fetch(self, *args, **kwargs):
        await self._conn.fetch(*args, **kwargs)
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    async def fetchrow(self, *args, **kwargs):
        await self._conn.fetchrow(*args, **kwargs)
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    def terminate(self) -> None:
        pass  # the real connection goes back to the pool unharmed


async def test_a_transition_that_committed_before_its_connection_died_counts_as_done():
    """What the connection kills above can hit by chance, made to happen: the answer of a committed
    compare-and-set is lost. The retry must recognise its own write (the job would otherwise be failed as a
    crash), and must not claim a move someone else made."""
    async with postgres_schema() as schema:
        store = await StoreTarget("postgres", postgres_test_url(), schema).open()
        assert isinstance(store, PostgresStore)
        try:
            ours = _job(status="running")
            theirs = _job(status="running")
            for job in (ours, theirs):
                await store.create_job(job)
            await store.transition(
                theirs.id, ["running"], "delivering", owner=None, completed_at=1.0
            )  # someone else's move
            real_pool = store._pool

            class LosesOneAnswer:
                def __init__(self) -> None:
                    self.armed = True

                @contextlib.asynccontextmanager
                async def acquire(self):
                    async with real_pool.acquire() as conn:
                        armed, self.armed = self.armed, False
                        yield _AnswerLost(conn) if armed else conn

                async def expire_connections(self) -> None:
                    await real_pool.expire_connections()

            try:
                store._pool = LosesOneAnswer()
                moved = await store.transition(ours.id, ["running"], "delivering", owner=None, completed_at=2.5)
                assert moved is not None and moved.status == "delivering" and moved.completed_at == 2.5

                store._pool = LosesOneAnswer()
                assert (
                    await store.transition(theirs.id, ["running"], "delivering", owner=None, completed_at=3.5) is None
                )
            finally:
                store._pool = real_pool
            stored = await store.get_job(theirs.id)
            assert stored is not None and stored.completed_at == 1.0
        finally:
            await store.close()


def _job(*, status: str) -> Job:
    return Job(
        id=uuid.uuid4().hex, kind="imagine", user_id=1, channel_id=2, guild_id=3, shard_id=0,
        model="black-forest-labs/flux-schnell", input={"prompt": "p", "seed": 1}, status=JobStatus(status),
        created_at=time.time(), prediction_id="p" + uuid.uuid4().hex[:10],
    )  # fmt: skip
