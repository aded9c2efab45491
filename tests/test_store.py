"""The store: one suite, run against SQLite and PostgreSQL through the `store` fixture."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.limits import DAY, Limits, Refusal
from services.store import (
    ACTIVE,
    DuplicateJob,
    GuildSettings,
    MigrationError,
    PostgresStore,
    SqliteStore,
    Store,
    StoreError,
    open_store,
    sqlite_path,
)
from services.store.base import MIGRATIONS_DIR, dialect_script, load_migrations
from services.store.job_extra import JobExtra
from services.store.models import Job, JobStatus, PageMark
from services.store.sqlite import split_statements
from tests.conftest import StoreTarget, connect_postgres_or_skip, postgres_schema, postgres_test_url
from tests.helpers import T0, make_job

SNOWFLAKE = 1_234_567_890_123_456_789  # Discord ids need 64 bits


def latest_migration_version() -> int:
    return max(m.version for m in load_migrations("sqlite"))


# Jobs


async def test_job_round_trip_every_field(store: Store) -> None:
    parent = make_job(user_id=SNOWFLAKE)
    await store.create_job(parent)
    job = make_job(
        kind="edit",
        user_id=SNOWFLAKE,
        channel_id=SNOWFLAKE + 1,
        guild_id=SNOWFLAKE + 2,
        shard_id=7,
        model="black-forest-labs/flux-kontext-pro",
        input={
            "prompt": "un chat « noir » 🐈",
            "seed": 2**31 - 1,
            "aspect_ratio": "16:9",
            "num_outputs": 4,
            "guidance": 3.5,
            "go_fast": True,
            "negative": None,
            "loras": [{"url": "https://example.com/x", "scale": 0.8}],
        },
        status="succeeded",
        created_at=T0 + 0.333333333333,
        parent_id=parent.id,
        message_id=SNOWFLAKE + 3,
        prediction_id="pred_abc123",
        error="partial: 1 of 4 images missing",
        submitted_at=T0 + 1.1,
        completed_at=T0 + 9.9,
        delivered_at=T0 + 10.5,
        image_count=3,
        extra=JobExtra(notes=({"msgid": "nsfw filtered"},), more={"application_id": SNOWFLAKE + 4, "ratio": 0.75}),
    )
    await store.create_job(job)
    assert await store.get_job(job.id) == job
    assert await store.get_job(parent.id) == parent


async def test_dm_job_keeps_none_guild_and_defaults(store: Store) -> None:
    job = make_job(guild_id=None, input={})
    await store.create_job(job)
    stored = await store.get_job(job.id)
    assert stored == job
    assert stored is not None
    assert stored.guild_id is None
    assert stored.extra == JobExtra()
    assert stored.image_count == 0
    assert stored.parent_id is None
    assert stored.message_id is None
    assert await store.get_job("no-such-job") is None


async def test_create_job_rejects_duplicates_and_bad_values(store: Store) -> None:
    job = make_job()
    await store.create_job(job)
    with pytest.raises(DuplicateJob):
        await store.create_job(job)
    with pytest.raises(DuplicateJob):
        await store.create_job(make_job(id=job.id, user_id=99))
    with pytest.raises(ValueError, match="status"):
        await store.create_job(make_job(status="paused"))
    for bad_kind in ("", "Upscale", "up scale", "x" * 40):
        with pytest.raises(ValueError, match="kind"):
            await store.create_job(make_job(kind=bad_kind))
    await store.create_job(make_job(kind="upscale"))  # any kind by name: the kinds are checked where jobs are made
    with pytest.raises(StoreError, match="parent"):
        await store.create_job(make_job(parent_id="missing-parent"))
    assert await store.get_job(job.id) == job


async def test_transition_is_a_compare_and_set(store: Store) -> None:
    job = make_job()
    await store.create_job(job)

    moved = await store.transition(job.id, ["queued"], "submitting", owner=None, submitted_at=T0 + 1)
    assert moved is not None
    assert moved.status == "submitting"
    assert moved.submitted_at == T0 + 1
    assert moved.input == job.input

    # The guard: the job is no longer queued.
    assert await store.transition(job.id, ["queued"], "submitting", owner=None) is None
    assert await store.transition("no-such-job", ACTIVE, "canceled", owner=None) is None

    running = await store.transition(
        job.id, "submitting", "running", owner=None, prediction_id="p1", message_id=SNOWFLAKE
    )
    assert running is not None
    assert (running.status, running.prediction_id, running.message_id) == ("running", "p1", SNOWFLAKE)

    done = await store.transition(
        job.id,
        ["running", "delivering"],
        "succeeded",
        owner=None,
        completed_at=T0 + 5,
        delivered_at=T0 + 6,
        image_count=2,
        extra=JobExtra(of_image=2, more={"urls": 2}),  # a key from a newer release is kept as it is
        error=None,
    )
    assert done is not None
    assert done == await store.get_job(job.id)
    assert (done.completed_at, done.delivered_at, done.image_count, done.extra) == (
        T0 + 5,
        T0 + 6,
        2,
        JobExtra(of_image=2, more={"urls": 2}),
    )
    assert done.submitted_at == T0 + 1  # untouched fields stay


async def test_transition_and_update_reject_bad_fields(store: Store) -> None:
    job = make_job()
    await store.create_job(job)
    with pytest.raises(ValueError, match="bogus"):
        await store.transition(job.id, ["queued"], "running", owner=None, bogus=1)
    with pytest.raises(ValueError, match="status"):
        await store.update_job(job.id, owner=None, status="running")
    with pytest.raises(ValueError, match="input"):
        await store.update_job(job.id, owner=None, input={})
    with pytest.raises(ValueError, match="unknown job status"):
        await store.transition(job.id, ["queued"], "done", owner=None)
    with pytest.raises(ValueError, match="unknown job status"):
        await store.transition(job.id, ["waiting"], "running", owner=None)
    with pytest.raises(ValueError, match="empty"):
        await store.transition(job.id, [], "running", owner=None)
    with pytest.raises(TypeError):
        await store.update_job(job.id, owner=None, message_id="123")
    with pytest.raises(TypeError):
        await store.update_job(job.id, owner=None, image_count=None)
    assert await store.get_job(job.id) == job  # nothing changed


@pytest.mark.parametrize("end", ["succeeded", "failed", "canceled"])
async def test_a_job_that_ends_has_its_interaction_token_deleted(store: Store, end: str) -> None:
    token = "interaction-token-" + uuid.uuid4().hex
    job = make_job(interaction_token=token, reply_by=T0 + 900)
    await store.create_job(job)
    for step in ("submitting", "running", "delivering"):  # kept while the job works: it reaches the message
        moved = await store.transition(job.id, ACTIVE, step, owner=None)
        assert moved is not None and moved.interaction_token == token
    ended = await store.transition(job.id, ACTIVE, end, owner=None, completed_at=T0 + 5)
    assert ended is not None and ended.interaction_token is None
    stored = await store.get_job(job.id)
    assert stored is not None
    assert (stored.status, stored.interaction_token, stored.reply_by) == (end, None, T0 + 900)
    untouched = make_job(interaction_token=token)  # another job's token stays
    await store.create_job(untouched)
    assert await store.transition(job.id, ACTIVE, "canceled", owner=None) is None  # no second end
    other = await store.get_job(untouched.id)
    assert other is not None and other.interaction_token == token


@pytest.mark.parametrize("second_store", [False, True], ids=["same-store", "two-stores"])
async def test_concurrent_transitions_exactly_one_wins(
    store: Store, store_target: StoreTarget, second_store: bool
) -> None:
    other = await store_target.open() if second_store else store
    try:
        for _ in range(5):
            job = make_job()
            await store.create_job(job)
            results = await asyncio.gather(
                store.transition(job.id, ["queued"], "submitting", owner=None, prediction_id="a"),
                other.transition(job.id, ["queued"], "submitting", owner=None, prediction_id="b"),
            )
            winners = [r for r in results if r is not None]
            assert len(winners) == 1
            stored = await store.get_job(job.id)
            assert stored == winners[0]
    finally:
        if other is not store:
            await other.close()


async def test_update_job_sets_fields_without_touching_status(store: Store) -> None:
    job = make_job()
    await store.create_job(job)
    await store.update_job(job.id, owner=None, message_id=SNOWFLAKE, extra=JobExtra(upload_limit=5))
    await store.update_job(job.id, owner=None)  # nothing to do
    await store.update_job("no-such-job", owner=None, message_id=1)  # ignored
    stored = await store.get_job(job.id)
    assert stored is not None
    assert (stored.status, stored.message_id, stored.extra) == ("queued", SNOWFLAKE, JobExtra(upload_limit=5))


async def test_active_jobs_by_shard_oldest_first(store: Store) -> None:
    jobs = [
        make_job(shard_id=1, status="running", created_at=T0 + 3),
        make_job(shard_id=0, status="queued", created_at=T0 + 2),
        make_job(shard_id=1, status="delivering", created_at=T0 + 1),
        make_job(shard_id=2, status="submitting", created_at=T0 + 4),
        make_job(shard_id=0, status="succeeded", created_at=T0),
        make_job(shard_id=1, status="failed", created_at=T0),
        make_job(shard_id=2, status="canceled", created_at=T0),
    ]
    for job in jobs:
        await store.create_job(job)
    a_run, b_queued, c_deliv, d_sub = jobs[:4]
    assert await store.active_jobs(None) == [c_deliv, b_queued, a_run, d_sub]
    assert await store.active_jobs([1]) == [c_deliv, a_run]
    assert await store.active_jobs([0, 2]) == [b_queued, d_sub]
    assert await store.active_jobs((2, 2)) == [d_sub]
    assert await store.active_jobs([5]) == []
    assert await store.active_jobs([]) == []


async def test_job_by_message_returns_newest(store: Store) -> None:
    older = make_job(message_id=SNOWFLAKE, created_at=T0)
    newer = make_job(message_id=SNOWFLAKE, created_at=T0 + 60, kind="reroll", parent_id=older.id)
    unrelated = make_job(message_id=SNOWFLAKE + 1, created_at=T0 + 120)
    for job in (older, newer, unrelated):
        await store.create_job(job)
    assert await store.job_by_message(SNOWFLAKE) == newer
    assert await store.job_by_message(SNOWFLAKE + 1) == unrelated
    assert await store.job_by_message(42) is None


async def test_admission_counts_the_images_of_the_day_by_member_server_and_user(store: Store) -> None:
    """The quotas as admission judges them: the last day only, failed and canceled jobs give their images back,
    a DM counts for its user everywhere but for no server."""
    since = T0 + 100
    for job in (
        make_job(user_id=1, guild_id=10, created_at=since - 1, status="succeeded", image_count=4),  # too old
        make_job(user_id=1, guild_id=10, created_at=since, status="succeeded", image_count=2),
        make_job(user_id=1, guild_id=10, created_at=since + 5, status="running", image_count=1),
        make_job(user_id=1, guild_id=10, created_at=since + 6, status="failed", image_count=4),  # given back
        make_job(user_id=1, guild_id=10, created_at=since + 7, status="canceled", image_count=4),  # given back
        make_job(user_id=1, guild_id=None, created_at=since + 8, status="succeeded", image_count=3),  # DM
        make_job(user_id=2, guild_id=10, created_at=since + 9, status="delivering", image_count=5),
        make_job(user_id=2, guild_id=20, created_at=since + 9, status="succeeded", image_count=7),
    ):
        await store.create_job(job)
    now = since - 0.5 + DAY  # the day's window starts half a second before `since`
    unlimited = Limits(cooldown_seconds=0, jobs_in_flight=100)

    async def used(limit: str, user_id: int, guild_id: int | None, **quota: Any) -> float:
        job = make_job(user_id=user_id, guild_id=guild_id, created_at=now, image_count=1)
        refusal = await store.admit_job(job, replace(unlimited, **quota), now=now)
        assert refusal is not None and refusal.limit == limit, refusal
        return refusal.used

    assert await used("user_quota", 1, 10, images_per_user_per_day=1) == 2 + 1
    assert await used("guild_quota", 1, 10, images_per_guild_per_day=1) == 2 + 1 + 5
    assert await used("guild_quota", 2, 20, images_per_guild_per_day=1) == 7
    assert await used("everywhere_quota", 1, None, everywhere_images_day=1) == 2 + 1 + 3
    assert await used("everywhere_quota", 2, 10, everywhere_images_day=1) == 5 + 7
    assert (
        await store.admit_job(
            make_job(user_id=3, guild_id=30, created_at=now),
            replace(unlimited, images_per_user_per_day=1, images_per_guild_per_day=1, everywhere_images_day=1),
            now=now,
        )
        is None
    )


async def test_admission_counts_active_jobs_and_a_cooldown_from_a_job_of_any_status(store: Store) -> None:
    for job in (
        make_job(user_id=1, status="queued", created_at=T0 + 1),
        make_job(user_id=1, status="running", created_at=T0 + 2),
        make_job(user_id=1, status="failed", created_at=T0 + 3),
        make_job(user_id=2, status="running", created_at=T0 + 9),
    ):
        await store.create_job(job)
    now = T0 + 10

    async def refused(user_id: int, limits: Limits) -> Refusal | None:
        return await store.admit_job(make_job(user_id=user_id, created_at=now), limits, now=now)

    assert await refused(1, Limits(cooldown_seconds=0, jobs_in_flight=2)) == Refusal("jobs_in_flight", 2, 2)
    assert await refused(2, Limits(cooldown_seconds=0, jobs_in_flight=1)) == Refusal("jobs_in_flight", 1, 1)
    # the cooldown runs from the newest job of any status: the failed one, 7 s before now
    refusal = await refused(1, Limits(cooldown_seconds=8, jobs_in_flight=9))
    assert refusal is not None and refusal.limit == "cooldown" and refusal.used == pytest.approx(7)
    assert await refused(4, Limits(cooldown_seconds=60, jobs_in_flight=9)) is None  # no job yet: no cooldown
    # (admitted, so last) the failed one is not in flight, and its 7 s are enough for a 7 s cooldown
    assert await refused(1, Limits(cooldown_seconds=7, jobs_in_flight=3)) is None


# Settings, preferences, metadata


async def test_guild_settings_upsert_and_delete(store: Store) -> None:
    assert await store.get_guild_settings(SNOWFLAKE) is None
    first = GuildSettings(
        guild_id=SNOWFLAKE,
        defaults={"model": "black-forest-labs/flux-dev", "aspect_ratio": "1:1", "num_outputs": 2},
        allowed_models=["black-forest-labs/flux-dev", "black-forest-labs/flux-schnell"],
        limits={"cooldown_seconds": 2.5, "jobs_in_flight": 3, "images_per_user_per_day": 50},
        updated_at=T0,
    )
    await store.save_guild_settings(first)
    assert await store.get_guild_settings(SNOWFLAKE) == first

    second = GuildSettings(guild_id=SNOWFLAKE, defaults={}, allowed_models=None, limits={}, updated_at=T0 + 1)
    await store.save_guild_settings(second)
    assert await store.get_guild_settings(SNOWFLAKE) == second

    empty_list = GuildSettings(guild_id=5, defaults={}, allowed_models=[], limits={"x": 1}, updated_at=T0)
    await store.save_guild_settings(empty_list)
    assert await store.get_guild_settings(5) == empty_list  # [] (nothing allowed) is not None (everything)

    assert await store.get_guild_settings(SNOWFLAKE) == second  # each server has its own row


async def test_guild_settings_are_replaced_only_over_what_was_read(store: Store) -> None:
    """The save of a change is refused (nothing written) when another save came in after its read."""
    first = GuildSettings(
        guild_id=SNOWFLAKE, defaults={"num_outputs": 2}, allowed_models=None, limits={}, updated_at=T0
    )
    assert await store.replace_guild_settings(first, over=None) is True  # none stored yet
    again = replace(first, defaults={"num_outputs": 3}, updated_at=T0 + 0.001)
    assert await store.replace_guild_settings(again, over=None) is False  # someone stored some meanwhile
    second = replace(first, limits={"jobs_in_flight": 4}, updated_at=T0 + 1.1234567)
    assert await store.replace_guild_settings(second, over=first) is True
    late = replace(first, defaults={}, updated_at=T0 + 2)  # computed from `first`, read before `second` was saved
    assert await store.replace_guild_settings(late, over=first) is False
    assert await store.get_guild_settings(SNOWFLAKE) == second
    third = replace(second, defaults={}, updated_at=T0 + 3)
    assert await store.replace_guild_settings(third, over=await store.get_guild_settings(SNOWFLAKE)) is True
    assert await store.get_guild_settings(SNOWFLAKE) == third


async def test_stale_chat_bookings_give_back_what_they_held_and_nothing_else(store: Store) -> None:
    def chat(n: int, kind: str = "enhance", **fields: object) -> Job:
        given: dict[str, Any] = {"created_at": T0, **fields}
        return make_job(
            id=f"{n:032x}", kind=kind, user_id=7, channel_id=1, guild_id=2, model="gpt-5-mini",
            status=JobStatus.SUCCEEDED, **given,
        )  # fmt: skip

    rows = [
        chat(1, input={"prompt": "a", "bound_microusd": 900}, image_count=2, cost_microusd=6_900),  # cut off
        chat(2, input={"prompt": "b"}, image_count=1, cost_microusd=3_500),  # by an older version: no bound kept
        chat(3, input={"prompt": "c", "bound_microusd": 900}, image_count=0, cost_microusd=6_900, settled_microusd=40),
        chat(4, kind="describe", input={}, image_count=0, cost_microusd=800),  # held nothing
        chat(5, input={"prompt": "e", "bound_microusd": 900}, image_count=1, cost_microusd=3_900, created_at=T0 + 60),
    ]
    for row in rows:
        await store.create_job(row)
    assert await store.release_stale_chats(booked_before=T0 + 30) == 2
    after = {n: await store.get_job(f"{n:032x}") for n in range(1, 6)}
    assert {n: (job.image_count, job.settled_microusd) for n, job in after.items() if job} == {
        1: (0, 900),
        2: (0, 3_500),
        3: (0, 40),
        4: (0, None),
        5: (1, None),  # booked after the cut: still under way
    }


async def test_history_pages_turn_from_a_mark_in_the_order_of_time_then_id(store: Store) -> None:
    """Marks page by (created_at, id), newest first, jobs made at the same instant included once each."""
    times = [T0, T0 + 1, T0 + 1, T0 + 1, T0 + 2, T0 + 3]  # three made at the same instant
    jobs = [make_job(id=f"{n:032x}", user_id=7, created_at=at) for n, at in enumerate(times)]
    for n in (3, 0, 5, 1, 4, 2):  # stored in another order than their ids'
        await store.create_job(jobs[n])
    order = [job.id for job in await store.recent_jobs(user_id=7, limit=10)]
    assert order == [f"{n:032x}" for n in (5, 4, 3, 2, 1, 0)]
    seen, mark = [], None
    while True:  # two at a time from the newest: every job once, in that order
        page = await store.recent_jobs(user_id=7, limit=2, older_than=mark)
        if not page:
            break
        seen += [job.id for job in page]
        mark = PageMark(page[-1].created_at, page[-1].id)
    assert seen == order
    middle = PageMark(T0 + 1, f"{2:032x}")
    assert [job.id for job in await store.recent_jobs(user_id=7, limit=2, newer_than=middle)] == order[1:3]
    assert [job.id for job in await store.recent_jobs(user_id=7, limit=9, older_than=middle)] == order[4:]
    assert await store.count_jobs(user_id=7, newer_than=middle) == 3
    with pytest.raises(ValueError):
        await store.recent_jobs(user_id=7, limit=2, older_than=middle, newer_than=middle)


async def test_user_prefs_are_replaced_only_over_what_was_read(store: Store) -> None:
    first = {"aspect_ratio": "16:9"}
    assert await store.replace_user_prefs(SNOWFLAKE, first, over={}) is True  # none stored yet
    assert await store.replace_user_prefs(SNOWFLAKE, {"output_quality": 70}, over={}) is False  # stored meanwhile
    second = {"aspect_ratio": "16:9", "output_quality": 70}
    assert await store.replace_user_prefs(SNOWFLAKE, second, over=first) is True
    assert await store.replace_user_prefs(SNOWFLAKE, {"aspect_ratio": "1:1"}, over=first) is False  # read before
    assert await store.get_user_prefs(SNOWFLAKE) == second
    await store.delete_user_prefs(SNOWFLAKE)
    assert await store.replace_user_prefs(SNOWFLAKE, {"num_outputs": 2}, over=second) is False  # cleared meanwhile
    await store.save_user_prefs(SNOWFLAKE, {})  # an empty row reads as none stored
    assert await store.replace_user_prefs(SNOWFLAKE, {"num_outputs": 2}, over={}) is True
    assert await store.get_user_prefs(SNOWFLAKE) == {"num_outputs": 2}


async def test_user_prefs(store: Store) -> None:
    assert await store.get_user_prefs(SNOWFLAKE) == {}
    await store.save_user_prefs(SNOWFLAKE, {"model": "black-forest-labs/flux-dev", "output_quality": 90})
    assert await store.get_user_prefs(SNOWFLAKE) == {"model": "black-forest-labs/flux-dev", "output_quality": 90}
    await store.save_user_prefs(SNOWFLAKE, {"aspect_ratio": "3:2"})
    assert await store.get_user_prefs(SNOWFLAKE) == {"aspect_ratio": "3:2"}
    assert await store.get_user_prefs(SNOWFLAKE + 1) == {}
    with pytest.raises(ValueError):
        await store.save_user_prefs(1, {"bad": object()})
    await store.delete_user_prefs(SNOWFLAKE)
    await store.delete_user_prefs(SNOWFLAKE)
    assert await store.get_user_prefs(SNOWFLAKE) == {}


async def test_meta(store: Store) -> None:
    assert await store.get_meta("command_fingerprint") is None
    await store.set_meta("command_fingerprint", "abc")
    await store.set_meta("command_fingerprint", "def")
    await store.set_meta("other", "")
    assert await store.get_meta("command_fingerprint") == "def"
    assert await store.get_meta("other") == ""


# Migrations


async def test_migrations_are_idempotent(store: Store, store_target: StoreTarget) -> None:
    version = latest_migration_version()
    assert await store.schema_version() == version
    job = make_job()
    await store.create_job(job)
    await store.set_meta("k", "v")
    async with await store_target.open() as again:
        assert await again.schema_version() == version
        assert await again.get_job(job.id) == job
        assert await again.get_meta("k") == "v"
    assert await store.get_job(job.id) == job  # the first store still works


def copy_migrations(tmp_path: Path, name: str, **extra_files: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, folder / path.name)
    for filename, text in extra_files.items():
        (folder / filename).write_text(text)
    return folder


VARIANT_MIGRATION = """\
-- A later migration with per-engine statements.
CREATE TABLE later (id INTEGER PRIMARY KEY, note TEXT);
-- sqlite:   INSERT INTO meta (key, value, updated_at) VALUES ('dialect', 'sqlite', 0);
-- postgres: INSERT INTO meta (key, value, updated_at)
-- postgres:     VALUES ('dialect', 'postgres', 0);
"""


async def test_later_migrations_apply_once_with_dialect_variants(
    store: Store, store_target: StoreTarget, tmp_path: Path
) -> None:
    folder = copy_migrations(tmp_path, "later", **{"900_later.sql": VARIANT_MIGRATION})
    # Three "processes" start together: exactly one applies 900, the others find it done.
    opened = await asyncio.gather(*(store_target.open(migrations_dir=folder) for _ in range(3)))
    try:
        for each in opened:
            assert await each.schema_version() == 900
            assert await each.get_meta("dialect") == store_target.backend
    finally:
        for each in opened:
            await each.close()
    assert await store.get_meta("dialect") == store_target.backend


async def test_failed_migration_rolls_back(store: Store, store_target: StoreTarget, tmp_path: Path) -> None:
    broken = (
        "INSERT INTO meta (key, value, updated_at) VALUES ('half', 'done', 0);\n"
        "CREATE TABLE jobs (id TEXT);\n"  # already exists: fails
    )
    folder = copy_migrations(tmp_path, "broken", **{"901_broken.sql": broken})
    with pytest.raises(MigrationError, match="901_broken"):
        await store_target.open(migrations_dir=folder)
    assert await store.get_meta("half") is None
    assert await store.schema_version() == latest_migration_version()


def test_migration_files_are_read_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "010_b.sql").write_text("SELECT 10;")
    (folder / "002_a.sql").write_text("-- postgres: SELECT 'pg';\n-- sqlite: SELECT 'lite';\nSELECT 2;")
    (folder / "README.txt").write_text("ignored")
    sqlite = load_migrations("sqlite", folder)
    assert [(m.version, m.name) for m in sqlite] == [(2, "002_a.sql"), (10, "010_b.sql")]
    assert split_statements(sqlite[0].sql) == ["SELECT 'lite';", "SELECT 2;"]
    assert "SELECT 'pg';" in load_migrations("postgres", folder)[0].sql
    assert "lite" not in dialect_script((folder / "002_a.sql").read_text(), "postgres")

    (folder / "2_dup.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share version"):
        load_migrations("sqlite", folder)
    with pytest.raises(MigrationError, match="no migration files"):
        load_migrations("sqlite", tmp_path)
    with pytest.raises(MigrationError, match="does not exist"):
        load_migrations("sqlite", tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "initial.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNN_name"):
        load_migrations("sqlite", tmp_path / "bad")


# Opening


async def test_sqlite_urls_and_folder_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with await open_store("sqlite:///data/deeper/bot.db") as relative:
        assert isinstance(relative, SqliteStore)
        assert (tmp_path / "data" / "deeper" / "bot.db").is_file()
        await relative.set_meta("k", "relative")

    absolute = tmp_path / "abs" / "x" / "bot.db"
    async with await open_store(f"sqlite:///{absolute}") as store:
        assert absolute.is_file()
        assert await store.get_meta("k") is None

    async with await open_store("sqlite://:memory:") as memory:
        await memory.set_meta("k", "memory")
        assert await memory.get_meta("k") == "memory"
    assert not (tmp_path / ":memory:").exists()

    assert sqlite_path("sqlite:///data/bot.db") == "data/bot.db"
    assert sqlite_path("sqlite:////srv/bot.db") == "/srv/bot.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    for bad in ("sqlite://host/bot.db", "sqlite:///", "sqlite:///data/", "sqlite:///x.db?mode=ro"):
        with pytest.raises(ValueError):
            sqlite_path(bad)
    with pytest.raises(ValueError, match="scheme"):
        await open_store("mysql://localhost/bot")


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "p.db") as store:
        conn = store._conn
        assert (await (await conn.execute("PRAGMA journal_mode")).fetchone())[0] == "wal"  # type: ignore[index]
        assert (await (await conn.execute("PRAGMA foreign_keys")).fetchone())[0] == 1  # type: ignore[index]
        assert (await (await conn.execute("PRAGMA busy_timeout")).fetchone())[0] == 5000  # type: ignore[index]


async def test_open_store_postgres_urls() -> None:
    async with postgres_schema() as schema:
        base = postgres_test_url()
        alias = "postgres://" + base.split("://", 1)[1]
        for url in (base, alias):
            async with await open_store(f"{url}?search_path={schema}") as store:
                assert isinstance(store, PostgresStore)
                assert await store.schema_version() == latest_migration_version()
        admin = await connect_postgres_or_skip()
        try:
            tables = await admin.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'jobs'", schema
            )
        finally:
            await admin.close()
        assert tables == 1


async def test_postgres_unreachable_fails_in_ci_and_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = "postgresql://postgres@127.0.0.1:1/test"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not reachable"):
        await connect_postgres_or_skip(nowhere)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not reachable"):
        await connect_postgres_or_skip(nowhere)


# PostgreSQL: dropped connections


POSTGRES_ONLY = pytest.mark.parametrize("store", ["postgres"], indirect=True)


@POSTGRES_ONLY
async def test_postgres_survives_killed_connections(store: Store, store_target: StoreTarget) -> None:
    assert isinstance(store, PostgresStore)
    job = make_job()
    await store.create_job(job)
    admin = await connect_postgres_or_skip()
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            store_target.schema,
        )
    finally:
        await admin.close()
    assert killed >= 1
    assert await store.get_job(job.id) == job
    assert await store.transition(job.id, ["queued"], "running", owner=None) is not None


class _DropAfterExecute:
    """A pool whose next `execute` loses the connection: after the write (the reply never came) or before it."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.drops_after = 1
        self.drops_before = 0
        self.down_until = 0.0  # monotonic time until which every `execute` loses its connection first
        # As asyncpg does with a connection it saw the server close: given back to the pool at once, its proxy
        # then refuses every call, `terminate` included.
        self.released_on_loss = False

    def acquire(self) -> Any:
        outer = self

        class Acquire:
            async def __aenter__(self) -> Any:
                self.cm = outer.pool.acquire()
                conn = await self.cm.__aenter__()
                return _Conn(conn, outer)

            async def __aexit__(self, *exc: object) -> None:
                await self.cm.__aexit__(*exc)

        return Acquire()

    async def expire_connections(self) -> None:
        await self.pool.expire_connections()


class _Conn:
    def __init__(self, conn: Any, owner: _DropAfterExecute) -> None:
        self.conn = conn
        self.owner = owner

    async def execute(self, *args: Any) -> Any:
        if time.monotonic() < self.owner.down_until:
            raise asyncpg.ConnectionDoesNotExistError("simulated: the server is restarting")
        if self.owner.drops_before:
            self.owner.drops_before -= 1
            raise asyncpg.ConnectionDoesNotExistError("simulated: connection lost before the write")
        result = await self.conn.execute(*args)
        if self.owner.drops_after:
            self.owner.drops_after -= 1
            raise asyncpg.ConnectionDoesNotExistError("simulated: connection lost after the write")
        return result

    def terminate(self) -> None:
        if self.owner.released_on_loss:
            raise asyncpg.InterfaceError("cannot call Connection.terminate(): connection has been released")
        self.conn.terminate()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


@POSTGRES_ONLY
async def test_postgres_retry_treats_own_insert_as_success(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(store, PostgresStore)
    job = make_job()
    flaky = _DropAfterExecute(store._pool)
    with monkeypatch.context() as patch:
        patch.setattr(store, "_pool", flaky)
        await store.create_job(job)  # lands, "drops", is retried, finds its own row
        assert flaky.drops_after == 0
        assert await store.get_job(job.id) == job
        with pytest.raises(DuplicateJob):
            await store.create_job(job)  # a plain duplicate (no drop) still raises

        other = make_job()
        await store.create_job(make_job(id=other.id, user_id=999))  # someone else's row with that id
        flaky.drops_before = 1
        with pytest.raises(DuplicateJob):
            await store.create_job(other)  # the retry finds a different row: not ours

        flaky.drops_after = 1  # an idempotent update is simply retried
        await store.update_job(job.id, owner=None, message_id=SNOWFLAKE)
        assert flaky.drops_after == 0
        stored = await store.get_job(job.id)
        assert stored is not None
        assert stored.message_id == SNOWFLAKE


@POSTGRES_ONLY
async def test_postgres_keeps_retrying_while_connections_keep_dying(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage kills the fresh connection too (an admin terminating sessions, a restarting server): the call is
    tried again, a few times, and lands; past the last try the error reaches the caller."""
    assert isinstance(store, PostgresStore)
    job = make_job()
    await store.create_job(job)
    monkeypatch.setattr("services.store.postgres.RETRY_PAUSES", (0.0, 0.0, 0.0, 0.0))
    flaky = _DropAfterExecute(store._pool)
    flaky.drops_after = 0
    monkeypatch.setattr(store, "_pool", flaky)
    flaky.drops_before = 3  # the first try and the next two retries lose their connection
    await store.update_job(job.id, owner=None, message_id=SNOWFLAKE)
    assert flaky.drops_before == 0
    stored = await store.get_job(job.id)
    assert stored is not None and stored.message_id == SNOWFLAKE
    flaky.drops_before = 5  # every try
    flaky.released_on_loss = True  # the caller is told of the lost connection, not of the pool's refusal after it
    with pytest.raises(asyncpg.ConnectionDoesNotExistError):
        await store.update_job(job.id, owner=None, message_id=SNOWFLAKE + 1)


@POSTGRES_ONLY
async def test_postgres_rides_out_a_few_seconds_of_lost_connections(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart of PostgreSQL, or an admin killing sessions for a few seconds: every try meanwhile loses its
    connection, and the call lands once it is over (calls that gave up after 1.5 s failed jobs already paid for)."""
    assert isinstance(store, PostgresStore)
    job = make_job()
    await store.create_job(job)
    flaky = _DropAfterExecute(store._pool)
    flaky.drops_after = 0
    monkeypatch.setattr(store, "_pool", flaky)
    flaky.down_until = time.monotonic() + 3.0
    await store.update_job(job.id, owner=None, message_id=SNOWFLAKE)
    assert time.monotonic() >= flaky.down_until
    stored = await store.get_job(job.id)
    assert stored is not None and stored.message_id == SNOWFLAKE


async def test_the_jobs_table_has_exactly_the_fields_of_job(store):
    """The schema is declared once, by `Job`; the migrations must build the same columns."""
    from services.store.models import JOB_COLUMNS

    if isinstance(store, SqliteStore):
        rows = await store._conn.execute_fetchall("PRAGMA table_info(jobs)")
        columns = {row[1] for row in rows}
    else:
        async with store._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs' "
                "AND table_schema = current_schema()"
            )
        columns = {row[0] for row in rows}
    assert columns == set(JOB_COLUMNS)
