"""Buttons acknowledge before they read the store: Discord wants an answer within 3 s, and a slow or locked
database must not turn a Cancel into "This interaction failed" (the fake Discord enforces the 3 s)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from cli.harness import World, wait_status
from fakes.cometapi import Outcome
from tests.conftest import postgres_test_url, store_location
from tests.helpers import (
    delivered,
    imagine,
    job_shown_in,
    result_of,
    running_job_with_cancel_button,
    setup_guild,
    until,
)
from ui.launch import BUSY_ADMISSIONS


@pytest.fixture
async def pg_world(tmp_path, discord_fake, comet):
    async with store_location("postgres", tmp_path) as target:
        yield World(discord_fake, comet, f"{target.url}?search_path={target.schema}"), target.schema


@contextlib.asynccontextmanager
async def jobs_table_locked(schema: str) -> AsyncIterator[None]:
    locker = await asyncpg.connect(postgres_test_url(), server_settings={"search_path": schema})
    locked = locker.transaction()
    await locked.start()
    await locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await locked.rollback()
        await locker.close()


async def test_cancel_reroll_and_edit_answer_within_3_s_while_the_jobs_table_is_locked(pg_world):
    world, schema = pg_world
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(USER_COOLDOWN="0", MAX_JOBS_PER_USER="5") as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        world.comet.queue_outcome(Outcome(duration=30.0))
        slow = await imagine(world, guild, channel, alice, prompt="a very slow cat")
        job, progress, cancel_id = await running_job_with_cancel_button(world, bot, slow)

        async with jobs_table_locked(schema):  # no one reads or writes jobs meanwhile
            clicks = [
                await world.discord.click_button(progress.id, cancel_id, alice),
                await world.discord.click_button(result.id, f"flux:reroll:{parent.id}", alice),
                await world.discord.click_button(result.id, f"flux:edit:{parent.id}", alice),
            ]
            for click in clicks:
                await click.wait_response(timeout=2.5)  # within Discord's 3 s, while the table stays locked

        _, reroll, edit = clicks
        assert edit.modal is not None  # the edit asks what to change; the store is read once it is submitted
        canceled = await wait_status(bot, job.id, "canceled", "failed", "succeeded", timeout=10)
        assert canceled.status == "canceled"  # the Cancel was not lost
        assert world.comet.predictions[job.prediction_id].cancel_requested
        rerolled = await reroll.wait_original(lambda m: bool(m.attachments), timeout=15)
        child = await job_shown_in(bot, rerolled.id)
        assert child is not None and child.parent_id == parent.id
    assert world.discord.internal_errors == []


async def test_imagine_says_thinking_in_time_while_admission_waits_then_shows_its_job(pg_world):
    """/imagine answers with its job's first line when admission is quick; a locked jobs table makes it slow, so
    "thinking…" answers in time instead, and the job is linked to that message once admitted."""
    world, schema = pg_world
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=0.3))
    async with world.bot() as bot:
        async with jobs_table_locked(schema):  # no one reads or writes jobs meanwhile
            handle = await imagine(world, guild, channel, alice, prompt="a patient cat")
            await handle.wait_response(timeout=2.5)  # within Discord's 3 s, while the table stays locked
            assert handle.response_type == 5
        final, job = await delivered(world, bot, handle, timeout=15)
    assert job.message_id == final.id == handle.original_message_id
    assert world.discord.internal_errors == []


def in_admission(bot: Any, count: int) -> Callable[[], bool]:
    return lambda: bot.launcher.admitting == count


async def test_imagine_says_thinking_first_while_many_commands_are_being_admitted(pg_world):
    """In a burst (admission held up: here, by a locked jobs table) commands beyond the first few say "thinking…"
    at once rather than wait to see whether their admission is quick; every job still runs once it is admitted."""
    world, schema = pg_world
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.default_outcome = Outcome(duration=0.1)
    async with world.bot(USER_COOLDOWN="0", MAX_JOBS_PER_USER="10") as bot:
        async with jobs_table_locked(schema):  # no one reads or writes jobs meanwhile
            handles = []
            for n in range(BUSY_ADMISSIONS + 2):
                handles.append(await imagine(world, guild, channel, alice, prompt=f"cat {n}"))
                if n < BUSY_ADMISSIONS:  # in admission (held up by the lock) before the next one comes
                    await until(in_admission(bot, n + 1), what=f"{n + 1} commands in admission")
            for handle in handles:
                await handle.wait_response(timeout=2.5)
        assert all(handle.response_type == 5 for handle in handles)
        delays = [handle.response_delay or 0.0 for handle in handles]
        waited, at_once = delays[:BUSY_ADMISSIONS], delays[BUSY_ADMISSIONS:]
        # The first ones waited ANSWER_SECONDS for their admission; the later ones did not wait at all.
        assert max(at_once) < min(waited), delays
        for handle in handles:
            await delivered(world, bot, handle, timeout=15)
    assert len(world.comet.creates()) == len(handles)


async def test_a_job_whose_thinking_answer_fails_is_withdrawn_unpaid(pg_world):
    """Admission held up past ANSWER_SECONDS, then Discord refuses the "thinking…" (the interaction is gone): the
    job admitted meanwhile is withdrawn, so it neither runs nor holds the member's place."""
    world, schema = pg_world
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(MAX_JOBS_PER_USER="1") as bot:
        async with jobs_table_locked(schema):  # no one reads or writes jobs meanwhile
            handle = await imagine(world, guild, channel, alice, prompt="a lost cat")
            # Any answer to it comes after ANSWER_SECONDS at the earliest (its admission waits for the lock).
            callback = rf"/interactions/{handle.id}/[^/]+/callback"
            world.discord.inject_error("POST", callback, 404, 10062, "Unknown interaction", times=None)
            await world.discord.wait_for(
                lambda: [r for r in world.discord.requests if r.route.endswith("/callback") and r.status] or None,
                what="the refused thinking…",
            )
        [job] = await until(lambda: bot.store.recent_jobs(user_id=alice.id, limit=5), what="the admitted job")
        job = await wait_status(bot, job.id, "canceled", "failed", "succeeded", "running", timeout=10)
        assert job.status == "canceled"
        # Its place is free: the next command runs.
        again = await imagine(world, guild, channel, alice, prompt="a found cat")
        await delivered(world, bot, again, timeout=15)
    assert handle.response_type is None
    assert [c.json["input"]["prompt"] for c in world.comet.creates()] == ["a found cat"]
