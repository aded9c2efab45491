"""Processes that cover for each other: job leases in the store (a compare-and-set claim, renewal, expiry, writes
conditional on the lease), the fence a process checks before acting on a job, and two real `python bot.py`
processes on PostgreSQL: one killed for good with jobs in every stage, whose jobs the other adopts and finishes,
each created exactly once; and one paused (SIGSTOP) while its job is queued, running, downloading or posting,
which on waking does nothing more for the jobs the other took over."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cli.harness import wait_status
from fakes.cometapi import Outcome
from fakes.discord_models import make_fault
from services.jobs.runner import Delivery
from services.jobs.settlement import Settlement
from services.store.base import job_from_row
from services.store.job_extra import JobExtra
from services.store.models import TERMINAL, Job
from tests.campaign import (
    NthRequest,
    Sent,
    assert_clean_log,
    assert_delivered,
    assert_one_create_each,
    assert_told,
    burst,
    served_files,
    start_bot,
    stop_bot,
)
from tests.conftest import postgres_schema, postgres_test_url
from tests.helpers import add_member, imagine, new_job, setup_guild, started_job, until

LEASE = 30.0


def leased(owner: str, expires_at: float) -> Job:
    return replace(new_job(1), lease_owner=owner, lease_expires_at=expires_at)


# --- the store --------------------------------------------------------------------------------------------


async def test_of_many_processes_claiming_an_expired_lease_exactly_one_gets_it(store, store_target):
    other = await store_target.open()
    now = time.time()
    job = leased("dead-process", now - 1)
    await store.create_job(job)
    try:
        owners = [f"process-{n}" for n in range(10)]
        claims = await asyncio.gather(
            *(
                s.claim_lease(job.id, owner, now + LEASE, now=now)
                for s, owner in zip([store, other] * 5, owners, strict=True)
            )
        )
    finally:
        await other.close()
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1
    assert (await store.get_job(job.id)).lease_owner == winners[0].lease_owner


async def test_a_live_lease_is_kept_by_its_owner_and_refused_to_others(store):
    now = time.time()
    live, expired, no_lease = leased("a", now + LEASE), leased("b", now - 5), new_job(2)
    for job in (live, expired, no_lease):
        await store.create_job(job)
    assert await store.claim_lease(live.id, "c", now + LEASE, now=now) is None
    assert await store.renew_leases("c", [live.id], now + LEASE, now=now) == set()
    assert await store.renew_leases("a", [live.id], now + 2 * LEASE, now=now) == {live.id}
    assert [j.id for j in await store.expired_leases(now)] == [expired.id]  # no lease is not an expired one
    assert await store.claim_lease(no_lease.id, "c", now + LEASE, now=now) is not None
    assert await store.claim_lease(live.id, "c", now + LEASE, now=now, force=True) is not None  # one process: ours
    await store.transition(expired.id, ["queued"], "succeeded", owner=None)
    assert await store.claim_lease(expired.id, "c", now + LEASE, now=now) is None  # finished jobs are nobody's
    assert await store.release_leases("c") == 2
    assert {j.id for j in await store.expired_leases(now)} == {live.id, no_lease.id}


async def test_a_job_write_names_the_lease_holder_and_another_process_s_write_is_refused(store):
    """A process that lost a job (it was paused past its lease and another adopted it) can no longer write to it:
    neither move it on nor set its fields. The create it made meanwhile is still recorded, never lost."""
    now = time.time()
    job = leased("a", now - 1)
    await store.create_job(job)
    assert await store.claim_lease(job.id, "b", now + LEASE, now=now) is not None  # b adopts it
    assert await store.transition(job.id, ["queued"], "submitting", owner="a") is None
    assert await store.update_job(job.id, owner="a", extra=JobExtra(posted={0: 1})) is False
    assert (await store.get_job(job.id)).status == "queued"
    assert await store.transition(job.id, ["queued"], "submitting", owner="b") is not None
    assert await store.update_job(job.id, owner="b", message_id=7) is True
    assert await store.transition(job.id, ["submitting"], "failed", owner="b", error="interrupted") is not None
    # a's create, sent before the adoption, came back: its id is kept on the job, once
    assert await store.record_prediction(job.id, "pred-a") is True
    assert await store.record_prediction(job.id, "pred-other") is False
    stored = await store.get_job(job.id)
    assert (stored.status, stored.prediction_id, stored.message_id, stored.extra) == ("failed", "pred-a", 7, JobExtra())


async def test_the_fence_lets_a_process_act_only_while_its_last_renewal_is_younger_than_the_lease(store):
    """A pause (here: a clock jumped forward) takes the proof away; on waking the process renews before acting,
    and stops for good on a job another process adopted meanwhile."""
    from services.errors import LeaseLost
    from services.jobs.leases import LeaseFence, LeaseTerms

    clock = [1000.0]
    fence = LeaseFence(store, LeaseTerms(LEASE, "a"), clock=lambda: clock[0])
    now = time.time()
    kept, adopted = leased("a", now + LEASE), leased("a", now + LEASE)
    for job in (kept, adopted):
        await store.create_job(job)
        fence.admitted(job)
    assert fence.holds(kept.id) and fence.holds(adopted.id)
    clock[0] += LEASE + 1  # paused past the lease
    assert not fence.holds(kept.id)
    await store.update_job(adopted.id, owner=None, lease_expires_at=now - 1)  # its lease ran out meanwhile...
    assert await store.claim_lease(adopted.id, "b", time.time() + LEASE, now=time.time()) is not None  # ...b took it
    await fence.check(kept.id)  # renewed: no one took this one
    assert fence.holds(kept.id)
    with pytest.raises(LeaseLost):
        await fence.check(adopted.id)
    assert (await store.get_job(adopted.id)).lease_owner == "b"


# --- a live process -------------------------------------------------------------------------------------------


async def test_a_live_owner_keeps_pushing_its_lease_forward(world_any_store):
    """While its process lives, a job's lease keeps moving ahead (else another process would adopt it)."""
    world = world_any_store
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(status="never"))
    async with world.bot(JOB_LEASE_SECONDS="1.5") as bot:  # renewed every 0.5 s
        handle = await imagine(world, guild, channel, alice, prompt="a slow fox")
        job, _ = await started_job(world, bot, handle)
        job = await wait_status(bot, job.id, "running")
        assert job.lease_owner == bot.lease.owner and job.lease_expires_at is not None
        seen = [job.lease_expires_at]

        async def renewed_three_times() -> bool:
            current = await bot.store.get_job(job.id)
            assert current is not None and current.lease_owner == bot.lease.owner
            if current.lease_expires_at is not None and current.lease_expires_at > seen[-1]:
                seen.append(current.lease_expires_at)
            return len(seen) > 3

        await until(renewed_three_times, timeout=30, what="the lease pushed forward three times")
        current = await bot.store.get_job(job.id)
        assert current is not None and current.status == "running"  # the same job, still worked on here
        assert bot.runner.running(job.id)


# --- two real processes on PostgreSQL ---------------------------------------------------------------------


async def pg_jobs(admin, schema: str, sent: list[Sent]) -> dict[str, Job]:
    rows = await admin.fetch(f'SELECT * FROM "{schema}".jobs')  # (a schema the test made)
    by_message = {job.message_id: job for job in map(job_from_row, rows)}
    return {s.prompt: by_message[mid] for s in sent if (mid := s.handle.original_message_id) in by_message}


async def test_a_process_killed_for_good_has_its_jobs_adopted_and_finished_by_the_other(world, tmp_path):
    d = world.discord
    guild = d.add_guild("g0", guild_id=1000 << 22)  # on shard 0 of 2: process A's
    channel = d.add_channel(guild, "images")
    world.comet.default_outcome = Outcome(duration=3.0)
    world.comet.inject("create", status=None, times=2)
    world.comet.inject("create", status=None, delay=5.0)  # the third create is made, but A dies before its answer
    admin = await asyncpg.connect(postgres_test_url())
    try:
        async with postgres_schema() as schema:
            env = {
                "DATABASE_URL": f"{postgres_test_url()}?search_path={schema}",
                "SHARD_COUNT": "2",
                "MAX_CONCURRENT_PREDICTIONS": "3",
                "JOB_LEASE_SECONDS": "3",
            }
            log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
            a = await start_bot(world, tmp_path, log_a, SHARD_IDS="0", **env)
            b = await start_bot(world, tmp_path, log_b, SHARD_IDS="1", **env)
            try:
                sent = await burst(world, guild, channel, 5, "adopted")

                async def stages() -> bool:
                    jobs = await pg_jobs(admin, schema, sent)
                    found = Counter(j.status for j in jobs.values())
                    return found == Counter({"running": 2, "submitting": 1, "queued": 2})

                await until(stages, timeout=15, what="jobs in every stage")
                await until(lambda: len(world.comet.creates()) == 3, what="the third create")
                jobs = await pg_jobs(admin, schema, sent)
                assert {j.lease_owner for j in jobs.values()} == {jobs[sent[0].prompt].lease_owner}  # all A's
                a.send_signal(signal.SIGKILL)
                assert await a.wait() == -signal.SIGKILL
                in_the_air = next(p for p, j in jobs.items() if j.status == "submitting")
                world.comet.default_outcome = Outcome()

                async def all_ended() -> dict[str, Job] | None:
                    jobs = await pg_jobs(admin, schema, sent)
                    return jobs if all(j.status in TERMINAL for j in jobs.values()) else None

                ended = await until(all_ended, timeout=60, what="every job ended by the other process")
                for s in sent:
                    if s.prompt == in_the_air:
                        await assert_told(world, s, ended[s.prompt], "failed", "while starting", "not sent again")
                    else:
                        await assert_delivered(world, s, ended[s.prompt])
                assert_one_create_each(world, ended)
                assert {j.lease_owner for j in ended.values()} != {jobs[sent[0].prompt].lease_owner}
            finally:
                if a.returncode is None:
                    a.kill()
                    await a.wait()
                await stop_bot(b, log_b)
    finally:
        await admin.close()
    assert "Adopted" in log_b.read_text()
    assert_clean_log(log_b)


# --- a process that stalled past its lease ----------------------------------------------------------------


class Shown:
    """Stands in for Discord: what each process showed."""

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.failures: list[str] = []

    async def progress(self, job: Job, progress: object) -> None:
        pass

    async def deliver(self, job: Job, delivery: Delivery) -> int:
        self.delivered.append(job.id)
        return len(delivery.images)  # every image shown

    async def failed(self, job: Job, message: object, *, canceled: bool) -> None:
        self.failures.append(job.id)


async def test_a_process_that_lost_its_lease_stops_and_the_adopter_finishes_with_one_create():
    """Process A works on a job but stalls past its lease; B adopts it. When A renews, it finds the job taken
    over and stops its own work without ending the job; B polls the same prediction and delivers it."""
    from cli.harness import KEY
    from fakes.cometapi import FakeCometAPI
    from services.cometapi.service import PredictionService
    from services.config import load_settings
    from services.jobs.leases import LeaseTerms
    from services.jobs.runner import JobRunner
    from tests.conftest import StoreTarget

    comet = FakeCometAPI(api_key=KEY, image_size=1000)
    await comet.start()
    comet.queue_outcome(Outcome(duration=1.5))
    try:
        async with postgres_schema() as schema:
            target = StoreTarget("postgres", postgres_test_url(), schema)
            store_a, store_b = await target.open(), await target.open()
            settings = load_settings({"COMETAPI_KEY": KEY, "COMETAPI_BASE_URL": comet.base_url}, require_discord=False)
            shown_a, shown_b = Shown(), Shown()
            try:
                async with PredictionService.open(
                    settings.api(), typical_seconds=settings.catalogue.typical_seconds()
                ) as service:
                    settlement = Settlement(settings.policy().pricing)
                    lease_a, lease_b = LeaseTerms(LEASE, "A"), LeaseTerms(LEASE, "B")
                    a = JobRunner(service, store_a, shown_a, max_concurrent=2, lease=lease_a, settlement=settlement)
                    b = JobRunner(service, store_b, shown_b, max_concurrent=2, lease=lease_b, settlement=settlement)
                    job = replace(new_job(1), lease_owner="A", lease_expires_at=time.time() + LEASE)
                    await store_a.create_job(job)
                    task = a.start(job)

                    async def running() -> bool:
                        current = await store_a.get_job(job.id)
                        return current is not None and current.status == "running"

                    await until(running, what="the job running in A")
                    await store_a.update_job(
                        job.id, owner=None, lease_expires_at=time.time() - 1
                    )  # A stalled past its lease
                    assert await b.adopt() == 1
                    await a.renew()
                    await asyncio.gather(task, return_exceptions=True)
                    assert task.cancelled()  # stopped by the renewal, while the prediction still ran
                    assert not a.running(job.id)
                    await until(lambda: shown_b.delivered, what="B's delivery")

                    async def ended() -> Job | None:  # recorded just after the images are shown
                        current = await store_b.get_job(job.id)
                        return current if current is not None and current.status in TERMINAL else None

                    done = await until(ended, what="the job's end recorded by B")
                    await b.shutdown()
                    await a.shutdown()
            finally:
                await store_a.close()
                await store_b.close()
    finally:
        await comet.close()
    assert done is not None and (done.status, done.lease_owner) == ("succeeded", "B")
    assert (shown_a.delivered, shown_a.failures, shown_b.failures) == ([], [], [])
    assert len(comet.creates()) == 1


# --- a process paused past its lease (SIGSTOP), two real processes on PostgreSQL --------------------------


@dataclass
class Paused:
    """The jobs a test fired at process A, and how to tell A is where the test wants to pause it."""

    sent: list[Sent]
    at_stage: Callable[[], Awaitable[bool]]
    # Whether B has shown every end (a failure is stored before it is shown; a result after): None, stored is shown.
    shown: Callable[[], bool] | None = None


async def paused_while_queued(world, guild, channel, jobs: Callable[[], Awaitable[dict[str, Job]]]) -> Paused:
    """One job generating slowly, the other waiting behind it in A's queue (one prediction at a time)."""
    world.comet.queue_outcome(Outcome(duration=4.0))
    sent = await burst(world, guild, channel, 2, "queued")

    async def at_stage() -> bool:
        found = await jobs()
        if Counter(j.status for j in found.values()) != Counter({"running": 1, "queued": 1}):
            return False
        [running] = [j for j in found.values() if j.status == "running"]
        prediction = world.comet.predictions.get(running.prediction_id or "")
        return prediction is not None and bool(prediction.gets)  # A is polling it

    return Paused(sent, at_stage)


async def paused_while_running(world, guild, channel, jobs: Callable[[], Awaitable[dict[str, Job]]]) -> Paused:
    """The job generating, A polling its prediction."""
    world.comet.queue_outcome(Outcome(duration=4.0))
    sent = await burst(world, guild, channel, 1, "running")

    async def at_stage() -> bool:
        return any(p.gets for p in world.comet.predictions.values())

    return Paused(sent, at_stage)


async def paused_while_downloading(world, guild, channel, jobs: Callable[[], Awaitable[dict[str, Job]]]) -> Paused:
    """The prediction done, A downloading its image (the file is served 2 s late)."""
    world.comet.inject("file", status=None, delay=2.0)
    sent = await burst(world, guild, channel, 1, "downloading")

    async def at_stage() -> bool:
        return bool(world.comet.requests_for("file"))

    return Paused(sent, at_stage)


async def paused_while_posting(world, guild, channel, jobs: Callable[[], Awaitable[dict[str, Job]]]) -> Paused:
    """Four images, one per message (the reply and three more): A paused once the second message was made, its
    answer held on the way back."""
    d = world.discord
    held = make_fault("POST", rf"^/channels/{channel.id}/messages$", None, hold=2.0)
    d.faults.append(NthRequest(**vars(held), n=1, fake=d))
    user = add_member(world, guild, "posting")
    options = {"prompt": "posting 0", "model": "flux-dev", "num_outputs": 4}
    handle = await d.slash_command(guild, channel, user, "imagine", options, attachment_size_limit=40_000)

    async def at_stage() -> bool:
        return any(r.held for r in d.requests)

    return Paused([Sent(user, "posting 0", handle)], at_stage)


Place = Callable[[Any, Any, Any, Callable[[], Awaitable[dict[str, Job]]]], Awaitable[Paused]]
PAUSES: dict[str, Place] = {
    "queued": paused_while_queued,
    "running": paused_while_running,
    "downloading": paused_while_downloading,
    "posting": paused_while_posting,
}


@dataclass
class AfterPause:
    """What two processes did when A was paused, its jobs adopted and finished by B, then A woke."""

    sent: list[Sent]
    owner_a: str
    ended: dict[str, Job]  # each job as stored once both processes stopped
    woke: float  # monotonic time A was woken (B was done with the jobs)
    log_a: Path
    log_b: Path


async def pause_and_wake(world, tmp_path: Path, guild, channel, place: Place, what: str) -> AfterPause:
    """A and B, two `python bot.py` on PostgreSQL (A takes the commands); A is stopped (SIGSTOP) once `place` says
    so, woken (SIGCONT) once B has adopted and ended every job, then both are stopped once A says it stopped its
    work on each job."""
    admin = await asyncpg.connect(postgres_test_url())
    try:
        async with postgres_schema() as schema:
            env = {
                "DATABASE_URL": f"{postgres_test_url()}?search_path={schema}",
                "SHARD_COUNT": "2",
                "MAX_CONCURRENT_PREDICTIONS": "1",
                "JOB_LEASE_SECONDS": "3",
            }
            log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
            a = await start_bot(world, tmp_path, log_a, SHARD_IDS="0", **env)
            b = await start_bot(world, tmp_path, log_b, SHARD_IDS="1", **env)
            sent: list[Sent] = []

            async def jobs() -> dict[str, Job]:
                return await pg_jobs(admin, schema, sent)

            try:
                paused = await place(world, guild, channel, jobs)
                sent.extend(paused.sent)
                await until(paused.at_stage, timeout=20, what=f"process A {what}")
                a.send_signal(signal.SIGSTOP)
                stopped_at = time.monotonic()
                [owner_a] = {j.lease_owner for j in (await jobs()).values()}
                assert owner_a is not None and len(await jobs()) == len(sent)

                async def all_ended() -> dict[str, Job] | None:
                    found = await jobs()
                    return found if all(j.status in TERMINAL for j in found.values()) else None

                ended = await until(all_ended, timeout=60, what="B adopting and ending A's jobs")
                if paused.shown is not None:
                    await until(paused.shown, what="B showing how the jobs ended")
                # The case is a pause longer than a lease: B may be done sooner (a lease runs out up to a renewal
                # after A's last one), so A stays paused at least that long, whatever the machine's speed.
                await asyncio.sleep(max(0.0, stopped_at + float(env["JOB_LEASE_SECONDS"]) + 1.0 - time.monotonic()))
                woke = time.monotonic()
                a.send_signal(signal.SIGCONT)

                # A wakes with work in hand for each job (a poll, a place in line, a download, a post, a create in
                # the air); it finds each taken over and says so once it has stopped. Its lease renewal, which may
                # have been under way when it was paused, says within a renewal that it was paused past its leases.
                def stopped_each() -> bool:
                    text = log_a.read_text()
                    return "renewed no lease for" in text and all(
                        f"Job {j.id}: another process took it over" in text for j in ended.values()
                    )

                await until(stopped_each, timeout=30, what="A noticing its pause and stopping its work on every job")
            finally:
                for process in (a, b):
                    if process.returncode is None:
                        process.send_signal(signal.SIGCONT)
                await stop_bot(a, log_a)
                await stop_bot(b, log_b)
            return AfterPause(sent, owner_a, await jobs(), woke, log_a, log_b)
    finally:
        await admin.close()


@pytest.mark.parametrize("stage", list(PAUSES))
async def test_a_process_paused_past_its_lease_never_acts_again_on_the_jobs_another_took_over(world, tmp_path, stage):
    """Process A is stopped (SIGSTOP) with work in hand; B adopts its jobs once their leases run out and delivers
    them. When A wakes, it finds each job taken over and stops: no edit, post, upload or API call for them, so
    each message ends as B's result, with each image posted once and one create per job."""
    d = world.discord
    guild = d.add_guild("g0", guild_id=1000 << 22)  # on shard 0 of 2: process A's
    channel = d.add_channel(guild, "images")
    run = await pause_and_wake(world, tmp_path, guild, channel, PAUSES[stage], stage)
    sent, ended, woke, log_a, log_b = run.sent, run.ended, run.woke, run.log_a, run.log_b

    for job in ended.values():
        assert job.status == "succeeded" and job.lease_owner != run.owner_a, (job.status, job.error)
    # Nothing went out for those jobs from A after it woke (B was done with them by then).
    assert [(r.method, r.path) for r in world.comet.requests if r.at >= woke] == []
    about_jobs = ("/channels/", "/webhooks/", "/interactions/")
    assert [(r.method, r.path) for r in d.requests if r.at >= woke and r.path.startswith(about_jobs)] == []
    assert_one_create_each(world, ended)
    if stage == "posting":
        [s] = sent
        job = ended[s.prompt]
        assert job.prediction_id is not None and job.image_count == 4
        posted = [m for m in d.messages_in(channel) if m.attachments]
        assert [b for m in posted for b in m.attachment_bytes()] == served_files(world, job.prediction_id)
        assert posted[0].id == s.handle.original_message_id
    else:
        for s in sent:
            await assert_delivered(world, s, ended[s.prompt])
            result = [e for e in d.edits_of(s.handle.original_message_id) if e.new_attachments]
            assert len(result) == 1  # one upload, B's; nothing edited after it
            assert d.edits_of(s.handle.original_message_id)[-1] is result[0]
        assert len([m for m in d.messages_in(channel) if m.attachments]) == len(sent)  # one message with images each
    assert_clean_log(log_a)  # (pause_and_wake waited for A to say it was paused past its leases)
    assert_clean_log(log_b)


async def test_a_create_in_the_air_when_its_process_was_paused_is_recorded_and_never_sent_again(world, tmp_path):
    """A is stopped while its create is on the way (the API made the prediction, its answer is late); B adopts
    the job mid-create and fails it, as it must (never sent twice). When A wakes, the create's answer arrives: its
    prediction id is kept on the job, and the prediction nobody will deliver is cancelled."""
    d = world.discord
    guild = d.add_guild("g0", guild_id=1000 << 22)  # on shard 0 of 2: process A's
    channel = d.add_channel(guild, "images")

    async def creating(world, guild, channel, jobs) -> Paused:
        world.comet.inject("create", status=None, delay=2.0)
        sent = await burst(world, guild, channel, 1, "creating")

        async def at_stage() -> bool:
            return bool(world.comet.predictions)  # the create was made, its answer is held 2 s

        def shown() -> bool:
            message = sent[0].handle.original_message()
            return message is not None and "not sent again" in message.text

        return Paused(sent, at_stage, shown)

    run = await pause_and_wake(world, tmp_path, guild, channel, creating, "creating")
    [s] = run.sent
    job = run.ended[s.prompt]
    [prediction_id] = list(world.comet.predictions)
    assert job.lease_owner != run.owner_a
    await assert_told(world, s, job, "failed", "while starting", "not sent again")  # B's end, left as it is
    assert job.prediction_id == prediction_id  # recorded by A, though the job was B's by then
    assert_one_create_each(world, run.ended)
    after = [(r.method, r.path) for r in world.comet.requests if r.at >= run.woke]
    assert after == [("POST", f"/replicate/v1/predictions/{prediction_id}/cancel")]
    assert world.comet.predictions[prediction_id].cancel_requested
    assert [r for r in d.requests if r.at >= run.woke and r.path.startswith(("/channels/", "/webhooks/"))] == []
    assert "taken over while its prediction" in run.log_a.read_text()
    assert_clean_log(run.log_a)
    assert_clean_log(run.log_b)
