"""The store's job history (newest first, paged, per user or per server) and the `variation` kind, with
SQLite and PostgreSQL; migration 004 keeps every job and link of a database made before it."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from services.store import Job, Store
from services.store.base import MIGRATIONS_DIR
from tests.conftest import store_location

T0 = 1_760_000_000.0


def job(**overrides: Any) -> Job:
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "kind": "imagine",
        "user_id": 1,
        "channel_id": 2,
        "guild_id": 3,
        "shard_id": 0,
        "model": "black-forest-labs/flux-dev",
        "input": {"prompt": "p", "seed": 1},
        "status": "succeeded",
        "created_at": T0,
    }
    values.update(overrides)
    return Job(**values)


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


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migration_004_keeps_every_job_and_link(backend: str, tmp_path: Path) -> None:
    async with store_location(backend, tmp_path) as target:
        older = await target.open(migrations_dir=migrations_up_to(tmp_path, 3))
        parent = job(created_at=T0, message_id=2**62)
        child = job(kind="edit", created_at=T0, message_id=2**62, parent_id=parent.id, extra={"notes": ["n"]})
        try:
            await older.create_job(parent)
            await older.create_job(child)
            with pytest.raises(Exception, match="jobs_kind_known"):
                await older.create_job(job(kind="variation"))  # not yet a kind
        finally:
            await older.close()
        async with await target.open() as store:
            assert await store.schema_version() >= 4
            assert await store.get_job(parent.id) == parent
            assert await store.get_job(child.id) == child
            if backend == "sqlite":  # a tie in created_at is broken by rowid: the rebuild kept their order
                assert await store.job_by_message(2**62) == child
            await store.create_job(job(kind="variation", parent_id=child.id))
