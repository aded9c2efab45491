"""Persistence: jobs, guild settings, user preferences and metadata, in SQLite or PostgreSQL.

    store = await open_store(settings.database_url)   # migrations applied
    async with store:
        await store.create_job(job)
        moved = await store.transition(job.id, ["queued"], "submitting", owner=lease.owner)

`open_store` understands:

* `sqlite:///relative/path.db` (relative to the working directory), `sqlite:////abs/path.db`,
  `sqlite://:memory:`: SQLite through aiosqlite; the file's folder is created if missing;
* `postgresql://...` or `postgres://...`: an asyncpg pool. Query parameters asyncpg does not know are
  sent as server settings, so `...?search_path=bot` keeps the tables in schema `bot`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from services.store.base import DuplicateJob, MigrationError, Store, StoreError
from services.store.models import (
    ACTIVE,
    JOB_STATUSES,
    MUTABLE_JOB_FIELDS,
    NOT_COUNTED,
    TERMINAL,
    GuildSettings,
    Job,
    JobStatus,
)
from services.store.postgres import PostgresStore
from services.store.sqlite import SqliteStore

__all__ = [
    "ACTIVE",
    "JOB_STATUSES",
    "MUTABLE_JOB_FIELDS",
    "NOT_COUNTED",
    "TERMINAL",
    "DuplicateJob",
    "GuildSettings",
    "Job",
    "JobStatus",
    "MigrationError",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "open_store",
    "sqlite_path",
]

_SQLITE_PREFIX = "sqlite://"
_MEMORY = ":memory:"


async def open_store(database_url: str, *, migrations_dir: Path | None = None) -> Store:
    """Open the database named by `database_url` and bring its schema up to date.

    Raises ValueError for a URL it does not understand, MigrationError if the schema cannot be
    migrated, and the driver's error if the database cannot be reached.
    """
    scheme = urlsplit(database_url).scheme.lower()
    if scheme == "sqlite":
        return await SqliteStore.open(sqlite_path(database_url), migrations_dir=migrations_dir)
    if scheme in ("postgres", "postgresql"):
        return await PostgresStore.open(database_url, migrations_dir=migrations_dir)
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def sqlite_path(database_url: str) -> str:
    """The file path (or ":memory:") of a `sqlite://` URL.

    `sqlite:///data/bot.db` -> `data/bot.db`, `sqlite:////srv/bot.db` -> `/srv/bot.db`,
    `sqlite://:memory:` (or `sqlite:///:memory:`) -> `:memory:`.
    """
    if not database_url.lower().startswith(_SQLITE_PREFIX):
        raise ValueError("a SQLite URL starts with sqlite://")
    rest = database_url[len(_SQLITE_PREFIX) :]
    if rest in (_MEMORY, "/" + _MEMORY):
        return _MEMORY
    if "?" in rest or "#" in rest:
        raise ValueError("a SQLite URL takes no query or fragment")
    if not rest.startswith("/"):
        raise ValueError("a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db (no host)")
    path = rest[1:]
    if not path or path.endswith("/"):
        raise ValueError("a SQLite URL must name a file")
    return path
