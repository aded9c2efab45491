"""The store's job history (newest first, paged, per user or per server) and the `variation` kind, with
SQLite and PostgreSQL; migration 004 keeps every job and link of a database made before it."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest

from services.store import Job, PostgresStore, SqliteStore, Store
from services.store.base import MIGRATIONS_DIR, job_params
from services.store.job_extra import JobExtra
from services.store.models import JOB_COLUMNS
from tests.conftest import store_location
from tests.helpers import make_job

T0 = 1_760_000_000.0


job = functools.partial(make_job, status="succeeded", guild_id=3)  # a finished job in server 3


async def test_recent_jobs_pages_newest_first_per_user_or_server(store: Store) -> None:
    mine = [job(created_at=T0 + n, user_id=1, guild_id=3 if n % 2 else 4) for n in range(7)]
    theirs = [job(created_at=T0 + 0.5 + n, user_id=9, guild_id=3) for n in range(3)]
    for each in sorted(mine + theirs, key=lambda j: j.created_at):
        await store.create_job(each)
    newest_first = list(reversed(mine))
    assert await store.recent_jobs(user_id=1, limit=3) == newest_first[:3]
    assert await store.recent_jobs(user_id=1, limit=3, offset=3) == newest_first[3:6]
    assert await store.recent_jobs(user_id=1, limit=3, offset=6) == newest_first[6:]
    assert await store.recent_jobs(user_id=1, limit=3, offset=9) == []
    assert await store.count_jobs(user_id=1) == 7
    in_server = sorted([j for j in mine + theirs if j.guild_id == 3], key=lambda j: -j.created_at)
    assert await store.recent_jobs(guild_id=3, limit=10) == in_server
    assert await store.count_jobs(guild_id=3) == len(in_server) == 6
    assert await store.recent_jobs(user_id=1, guild_id=4, limit=10) == [j for j in newest_first if j.guild_id == 4]
    with pytest.raises(ValueError, match="user_id or a guild_id"):
        await store.recent_jobs(limit=10)
    with pytest.raises(ValueError, match="bad page"):
        await store.recent_jobs(user_id=1, limit=0)


async def test_a_private_job_is_listed_to_its_owner_only_and_the_pages_count_what_is_shown(store: Store) -> None:
    private = JobExtra(private=True, notes=({"msgid": "n"},))
    jobs = [
        job(created_at=T0 + n, user_id=1 if n % 3 else 2, extra=private if n % 2 else JobExtra()) for n in range(12)
    ]
    jobs.append(job(created_at=T0 + 20, user_id=2, guild_id=4, extra=private))  # another server
    for each in jobs:
        await store.create_job(each)
    newest_first = sorted((j for j in jobs if j.guild_id == 3), key=lambda j: -j.created_at)
    for viewer in (1, 2, 9):
        seen = [j for j in newest_first if j.user_id == viewer or not j.extra.private]
        assert await store.count_jobs(guild_id=3, shown_to=viewer) == len(seen)
        pages = [await store.recent_jobs(guild_id=3, shown_to=viewer, limit=3, offset=o) for o in range(0, 12, 3)]
        assert [j for page in pages for j in page] == seen
    assert len(await store.recent_jobs(guild_id=3, shown_to=9, limit=20)) == 6  # the public half
    # Without `shown_to` (a user's own history) nothing is left out.
    assert await store.recent_jobs(user_id=2, limit=20) == [j for j in reversed(jobs) if j.user_id == 2]
    assert await store.count_jobs(guild_id=3) == 12


async def test_a_variation_is_stored_with_its_kind_and_parent(store: Store) -> None:
    parent = job()
    child = job(kind="variation", parent_id=parent.id, input={"prompt": "p", "image": "https://x/1.png"})
    await store.create_job(parent)
    await store.create_job(child)
    assert await store.get_job(child.id) == child


def migrations_up_to(tmp_path: Path, version: int) -> Path:
    folder = tmp_path / f"upto{version}"
    folder.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name.split("_", 1)[0]) <= version:
            shutil.copy(path, folder / path.name)
    return folder


# The columns the jobs table had before migration 004 (later migrations add more).
COLUMNS_BEFORE_004 = JOB_COLUMNS[: JOB_COLUMNS.index("extra") + 1]


async def insert_as_of_003(store: Store, job: Job) -> None:
    """Insert `job` as a store of that time would have (its columns only)."""
    values = job_params(job)[: len(COLUMNS_BEFORE_004)]
    columns = ", ".join(COLUMNS_BEFORE_004)
    if isinstance(store, SqliteStore):
        marks = ", ".join("?" for _ in values)
        await store._conn.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", values)
        return
    assert isinstance(store, PostgresStore)
    marks = ", ".join(f"${n}" for n in range(1, len(values) + 1))
    async with store._pool.acquire() as conn:
        await conn.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", *values)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migration_004_keeps_every_job_and_link(backend: str, tmp_path: Path) -> None:
    async with store_location(backend, tmp_path) as target:
        older = await target.open(migrations_dir=migrations_up_to(tmp_path, 3))
        parent = job(created_at=T0, message_id=2**62)
        child = job(
            kind="edit", created_at=T0, message_id=2**62, parent_id=parent.id, extra=JobExtra(notes=({"msgid": "n"},))
        )
        try:
            await insert_as_of_003(older, parent)
            await insert_as_of_003(older, child)
            with pytest.raises(Exception, match="jobs_kind_known"):
                await insert_as_of_003(older, job(kind="variation"))  # not yet a kind
        finally:
            await older.close()
        async with await target.open() as store:
            assert await store.schema_version() >= 4
            assert await store.get_job(parent.id) == parent
            assert await store.get_job(child.id) == child
            if backend == "sqlite":  # a tie in created_at is broken by rowid: the rebuild kept their order
                assert await store.job_by_message(2**62) == child
            await store.create_job(job(kind="variation", parent_id=child.id))
            # Since 008 the table knows no list of kinds: a new kind of job needs no migration.
            sketch = job(kind="sketch", parent_id=child.id)
            await store.create_job(sketch)
            assert await store.get_job(sketch.id) == sketch
