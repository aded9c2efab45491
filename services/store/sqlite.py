"""The SQLite backend: one aiosqlite connection, WAL journal, every operation run in turn in its thread.

Each operation is one function run in aiosqlite's thread (`_in_thread`), its statements and the fetching of its
rows together: the admission's transaction (a dozen statements) is one call, not a dozen trips there and back.
Operations asked for at the same moment share a trip (services/store/sqlite_calls.py).

The connection runs in autocommit mode (`isolation_level=None`): a single statement is its own
transaction, so a compare-and-set `UPDATE ... WHERE status IN (...) RETURNING ...` is atomic even
against other processes using the same file, and migrations manage their own BEGIN/COMMIT.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from services.limits import MONTH, Limits, Refusal, Usage, judge
from services.store.base import (
    COUNTED_COST,
    COUNTED_IMAGES,
    CREDIT_COLUMNS,
    JOB_SELECT,
    SCHEMA_MIGRATIONS_DDL,
    WORDS_IN,
    DuplicateJob,
    InputImagesGone,
    Migration,
    MigrationError,
    Pruned,
    SpendRow,
    Store,
    StoreError,
    balance_query,
    beyond_cap,
    check_paging,
    check_statuses,
    counted_scopes,
    credit_params,
    credit_payment,
    credit_usage_query,
    dump_json,
    encode_job_fields,
    end_assignments,
    guild_settings_from_row,
    guild_settings_params,
    history_filter,
    job_from_row,
    job_params,
    load_json_object,
    load_migrations,
    pending,
    subscription_query,
    unneeded,
    usage_from_row,
    window_from_row,
    window_params,
    window_query,
)
from services.store.credits import Credit, CreditUsage
from services.store.models import ACTIVE, JOB_COLUMNS, PRIVATE_REPLY, GuildSettings, InputImage, Job, PageMark
from services.store.sqlite_calls import SerialCalls

log = logging.getLogger(__name__)

T = TypeVar("T")

MEMORY = ":memory:"
DEFAULT_BUSY_TIMEOUT_MS = 5000

_INSERT_JOB = f"INSERT INTO jobs ({JOB_SELECT}) VALUES ({', '.join('?' for _ in JOB_COLUMNS)})"  # noqa: S608 (constant columns)
_ACTIVE_IN = ", ".join("?" for _ in ACTIVE)
_COUNT_ACTIVE = f"SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status IN ({_ACTIVE_IN})"  # noqa: S608
_LAST_JOB = f"SELECT MAX(created_at) FROM jobs WHERE user_id = ? AND kind NOT IN ({WORDS_IN})"  # noqa: S608
# `extra` (JSON text) does not mark the job's reply private: json_extract gives 1 for true, NULL when absent.
_NOT_PRIVATE = f"json_extract(extra, '$.{PRIVATE_REPLY}') IS NOT 1"
# The same bytes again are one row, marked used now.
_PUT_IMAGE = (
    "INSERT INTO input_images (sha256, content_type, data, created_at, used_at, size_bytes) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET used_at = excluded.used_at"
)
_UNNEEDED = unneeded(f"IN ({_ACTIVE_IN})")


class SqliteStore(Store):
    """A `Store` in one SQLite file (or in memory, for tests)."""

    single_process = True

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._calls = SerialCalls(conn)
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        migrations_dir: Path | None = None,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> SqliteStore:
        """Open (creating the file and its folder if needed), configure and migrate the database."""
        target = str(path)
        if target != MEMORY:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        migrations = load_migrations("sqlite", migrations_dir)
        conn = await aiosqlite.connect(target, isolation_level=None, timeout=busy_timeout_ms / 1000)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            await conn.execute("PRAGMA foreign_keys = ON")
            if target != MEMORY:
                rows = await conn.execute_fetchall("PRAGMA journal_mode = WAL")
                mode = next(iter(rows))[0] if rows else None
                if str(mode).lower() != "wal":
                    log.warning("SQLite refused WAL journal mode for %s (got %s)", target, mode)
                await conn.execute("PRAGMA synchronous = NORMAL")
            store = cls(conn, target)
            await store._migrate(migrations)
        except BaseException:
            await conn.close()
            raise
        return store

    async def _migrate(self, migrations: Sequence[Migration]) -> None:
        def migrate(db: sqlite3.Connection) -> None:
            db.execute(SCHEMA_MIGRATIONS_DDL)
            applied = {int(row[0]) for row in db.execute("SELECT version FROM schema_migrations").fetchall()}
            for migration in pending(migrations, applied):
                # BEGIN IMMEDIATE takes the write lock now, so another process migrating the same file
                # waits here (busy_timeout) and then sees the version already applied.
                db.execute("BEGIN IMMEDIATE")
                try:
                    done = _first_row(db, "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,))
                    if done is None:
                        for statement in split_statements(migration.sql):
                            db.execute(statement)
                        db.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                            (migration.version, migration.name, time.time()),
                        )
                        log.info("Applied migration %s", migration.name)
                    db.execute("COMMIT")
                except BaseException as exc:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
                    raise

        await self._in_thread(migrate)

    # Jobs

    async def create_job(self, job: Job) -> None:
        params = job_params(job)
        await self._in_thread(lambda db: _insert(db, job, params))

    async def admit_job(
        self,
        job: Job,
        limits: Limits,
        *,
        now: float,
        images: Sequence[InputImage] = (),
        reused: Sequence[str] = (),
    ) -> Refusal | None:
        def admit(db: sqlite3.Connection) -> Refusal | None:
            params = job_params(job)
            # BEGIN IMMEDIATE takes the write lock before counting, so another process admitting at the
            # same moment waits (busy_timeout) and then counts this job too.
            db.execute("BEGIN IMMEDIATE")
            try:
                in_guild = job.guild_id is not None
                windows = {
                    scope: window_from_row(
                        _first_row(db, window_query(scope, _numbered), window_params(scope, job, now))
                    )
                    for scope in counted_scopes(limits, in_guild=in_guild)
                }
                usage = Usage(
                    seconds_since_last=_since(now, _first_value(db, _LAST_JOB, (job.user_id,))),
                    jobs_in_flight=int(_first_value(db, _COUNT_ACTIVE, (job.user_id, *ACTIVE)) or 0),
                    **windows,
                )
                refusal = judge(limits, usage, job.image_count, in_guild=in_guild, cost=job.cost_microusd)
                if refusal is None and limits.pay_with_credits:
                    paid_with, refusal = _payment(db, job, now)
                    params = job_params(replace(job, paid_with=paid_with))
                if refusal is None:
                    _touch(db, reused, now)
                    for image in images:
                        db.execute(_PUT_IMAGE, _image_params(image, now))
                    _insert(db, job, params)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return refusal

        return await self._in_thread(admit)

    async def get_job(self, job_id: str) -> Job | None:
        return await self._one_job(f"SELECT {JOB_SELECT} FROM jobs WHERE id = ?", (job_id,))  # noqa: S608

    async def job_by_message(self, message_id: int) -> Job | None:
        return await self._one_job(
            f"SELECT {JOB_SELECT} FROM jobs WHERE message_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",  # noqa: S608
            (message_id,),
        )

    async def recent_jobs(
        self,
        *,
        user_id: int | None = None,
        guild_id: int | None = None,
        shown_to: int | None = None,
        limit: int,
        offset: int = 0,
        older_than: PageMark | None = None,
        newer_than: PageMark | None = None,
    ) -> list[Job]:
        order = check_paging(limit, offset, older_than, newer_than)
        where, params = history_filter(
            user_id, guild_id, lambda _: "?", shown_to=shown_to, not_private=_NOT_PRIVATE,
            older_than=older_than, newer_than=newer_than,
        )  # fmt: skip
        sql = f"SELECT {JOB_SELECT} FROM jobs WHERE {where} ORDER BY created_at {order}, id {order} LIMIT ? OFFSET ?"  # noqa: S608
        jobs = [job_from_row(row) for row in await self._rows(sql, [*params, limit, offset])]
        return jobs[::-1] if order == "ASC" else jobs

    async def count_jobs(
        self,
        *,
        user_id: int | None = None,
        guild_id: int | None = None,
        shown_to: int | None = None,
        newer_than: PageMark | None = None,
    ) -> int:
        where, params = history_filter(
            user_id, guild_id, lambda _: "?", shown_to=shown_to, not_private=_NOT_PRIVATE, newer_than=newer_than
        )
        return int(await self._value(f"SELECT COUNT(*) FROM jobs WHERE {where}", params) or 0)  # noqa: S608

    async def transition(
        self, job_id: str, from_statuses: Sequence[str], to_status: str, *, owner: str | None, **fields: object
    ) -> Job | None:
        froms = check_statuses(from_statuses, to_status)
        columns = encode_job_fields(fields)
        assignments = ", ".join(["status = ?", *(f"{name} = ?" for name in columns), *end_assignments(to_status)])
        guard = ", ".join("?" for _ in froms)
        leased, lease_params = _lease_guard(owner)
        sql = (
            f"UPDATE jobs SET {assignments} WHERE id = ? AND status IN ({guard}){leased} "  # noqa: S608 (whitelisted columns)
            f"RETURNING {JOB_SELECT}"
        )
        return await self._one_job(sql, (to_status, *columns.values(), job_id, *froms, *lease_params))

    async def update_job(self, job_id: str, *, owner: str | None, **fields: object) -> bool:
        columns = encode_job_fields(fields)
        if not columns:
            return False
        assignments = ", ".join(f"{name} = ?" for name in columns)
        leased, lease_params = _lease_guard(owner)
        changed = await self._changed(
            f"UPDATE jobs SET {assignments} WHERE id = ?{leased}",  # noqa: S608 (whitelisted columns)
            (*columns.values(), job_id, *lease_params),
        )
        return bool(changed)

    async def record_prediction(self, job_id: str, prediction_id: str) -> bool:
        changed = await self._changed(
            "UPDATE jobs SET prediction_id = ? WHERE id = ? AND prediction_id IS NULL", (prediction_id, job_id)
        )
        return bool(changed)

    async def active_jobs(self, shard_ids: Sequence[int] | None) -> list[Job]:
        sql = f"SELECT {JOB_SELECT} FROM jobs WHERE status IN ({_ACTIVE_IN})"  # noqa: S608
        params: list[object] = list(ACTIVE)
        if shard_ids is not None:
            shards = list(dict.fromkeys(shard_ids))
            if not shards:
                return []
            sql += f" AND shard_id IN ({', '.join('?' for _ in shards)})"
            params.extend(shards)
        sql += " ORDER BY created_at, rowid"
        rows = await self._rows(sql, params)
        return [job_from_row(row) for row in rows]

    # Input images

    async def put_input_image(self, image: InputImage) -> None:
        await self._changed(_PUT_IMAGE, _image_params(image, time.time()))

    async def get_input_image(self, sha256: str) -> InputImage | None:
        row = await self._row("SELECT sha256, content_type, data FROM input_images WHERE sha256 = ?", (sha256,))
        return None if row is None else InputImage(row["sha256"], row["content_type"], bytes(row["data"]))

    async def input_image_sizes(self, sha256s: Sequence[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(sha256s))
        if not wanted:
            return {}
        sql = f"SELECT sha256, size_bytes FROM input_images WHERE sha256 IN ({', '.join('?' for _ in wanted)})"  # noqa: S608
        rows = await self._rows(sql, wanted)
        return {str(row[0]): int(row[1]) for row in rows}

    async def prune_input_images(self, *, unused_since: float, max_bytes: int | None) -> Pruned:
        def prune(db: sqlite3.Connection) -> list[int]:
            # The write lock first: an admission storing or reusing images waits, and is counted after.
            db.execute("BEGIN IMMEDIATE")
            try:
                expired = db.execute(
                    f"DELETE FROM input_images WHERE used_at < ? AND {_UNNEEDED} RETURNING size_bytes",  # noqa: S608
                    (float(unused_since), *ACTIVE),
                ).fetchall()
                freed = [int(row[0]) for row in expired]
                total = int(_first_value(db, "SELECT COALESCE(SUM(size_bytes), 0) FROM input_images", ()) or 0)
                if max_bytes is not None and total > max_bytes:
                    rows = db.execute(
                        f"SELECT sha256, size_bytes FROM input_images WHERE {_UNNEEDED} ORDER BY used_at, sha256",  # noqa: S608
                        ACTIVE,
                    ).fetchall()
                    for sha256 in beyond_cap(list(rows), total, max_bytes):
                        deleted = db.execute(
                            "DELETE FROM input_images WHERE sha256 = ? RETURNING size_bytes", (sha256,)
                        ).fetchall()
                        freed += [int(row[0]) for row in deleted]
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return freed

        freed = await self._in_thread(prune)
        return Pruned(len(freed), sum(freed))

    async def spend_since(self, guild_id: int, since: float) -> list[SpendRow]:
        sql = (
            f"SELECT user_id, model, COALESCE(SUM({COUNTED_IMAGES}), 0), COALESCE(SUM({COUNTED_COST}), 0) "  # noqa: S608
            "FROM jobs WHERE guild_id = ? AND created_at >= ? GROUP BY user_id, model"
        )
        rows = await self._rows(sql, (guild_id, float(since)))
        return [SpendRow(int(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    # Credits

    async def credit_entitlement(self, credit: Credit, *, now: float) -> bool:
        changed = await self._changed(
            f"INSERT INTO credit_entitlements ({CREDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
            "ON CONFLICT (entitlement_id) DO NOTHING",
            credit_params(credit, now),
        )
        return bool(changed)

    async def take_back(self, credit: Credit, *, now: float) -> bool:
        changed = await self._changed(
            f"INSERT INTO credit_entitlements ({CREDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
            "ON CONFLICT (entitlement_id) DO UPDATE SET revoked_at = excluded.revoked_at "
            "WHERE credit_entitlements.revoked_at IS NULL",
            credit_params(credit, now, revoked_at=float(now)),
        )
        return bool(changed)

    async def mark_consumed(self, entitlement_id: int, *, now: float) -> None:
        await self._changed(
            "UPDATE credit_entitlements SET consumed_at = ? WHERE entitlement_id = ? AND consumed_at IS NULL",
            (float(now), entitlement_id),
        )

    async def unconsumed_packs(self) -> list[int]:
        rows = await self._rows(
            "SELECT entitlement_id FROM credit_entitlements WHERE kind = 'pack' AND consumed_at IS NULL "
            "AND revoked_at IS NULL ORDER BY credited_at"
        )
        return [int(row[0]) for row in rows]

    async def renew_subscription(self, entitlement_id: int, ends_at: float | None) -> None:
        await self._changed(
            "UPDATE credit_entitlements SET ends_at = ? WHERE entitlement_id = ? AND kind = 'subscription'",
            (ends_at, entitlement_id),
        )

    async def credit_balance(self, user_id: int) -> int:
        return int(await self._value(balance_query(_numbered), (user_id,)) or 0)

    async def paid_jobs(self, user_id: int, *, limit: int) -> list[Job]:
        check_paging(limit, 0)
        sql = (
            f"SELECT {JOB_SELECT} FROM jobs WHERE user_id = ? AND paid_with = 'balance' "  # noqa: S608
            "ORDER BY created_at DESC, rowid DESC LIMIT ?"
        )
        rows = await self._rows(sql, (user_id, limit))
        return [job_from_row(row) for row in rows]

    async def credit_usage(self, guild_id: int, since: float) -> CreditUsage:
        row = await self._row(credit_usage_query(_numbered), (guild_id, float(since)))
        return usage_from_row(row)

    # Leases

    async def claim_lease(
        self, job_id: str, owner: str, until: float, *, now: float, force: bool = False
    ) -> Job | None:
        guard = "" if force else " AND (lease_expires_at IS NULL OR lease_expires_at < ? OR lease_owner = ?)"
        params: list[object] = [owner, float(until), job_id, *ACTIVE]
        if not force:
            params += [float(now), owner]
        return await self._one_job(
            f"UPDATE jobs SET lease_owner = ?, lease_expires_at = ? WHERE id = ? AND status IN ({_ACTIVE_IN})"  # noqa: S608
            f"{guard} RETURNING {JOB_SELECT}",
            params,
        )

    async def renew_leases(self, owner: str, job_ids: Sequence[str], until: float, *, now: float) -> set[str]:
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return set()
        sql = (
            f"UPDATE jobs SET lease_owner = ?, lease_expires_at = ? WHERE id IN ({', '.join('?' for _ in ids)}) "  # noqa: S608
            f"AND status IN ({_ACTIVE_IN}) AND (lease_expires_at IS NULL OR lease_expires_at < ? OR lease_owner = ?) "
            "RETURNING id"
        )
        rows = await self._rows(sql, (owner, float(until), *ids, *ACTIVE, float(now), owner))
        return {str(row[0]) for row in rows}

    async def expired_leases(self, now: float, *, limit: int = 100) -> list[Job]:
        sql = (
            f"SELECT {JOB_SELECT} FROM jobs WHERE status IN ({_ACTIVE_IN}) AND lease_expires_at < ? "  # noqa: S608
            "ORDER BY created_at, rowid LIMIT ?"
        )
        rows = await self._rows(sql, (*ACTIVE, float(now), int(limit)))
        return [job_from_row(row) for row in rows]

    async def release_leases(self, owner: str) -> int:
        return await self._changed(
            f"UPDATE jobs SET lease_expires_at = 0 WHERE lease_owner = ? AND status IN ({_ACTIVE_IN})",  # noqa: S608
            (owner, *ACTIVE),
        )

    # Guild settings

    async def get_guild_settings(self, guild_id: int) -> GuildSettings | None:
        row = await self._row(
            "SELECT guild_id, defaults, allowed_models, limits, updated_at, moderation FROM guild_settings "
            "WHERE guild_id = ?",
            (guild_id,),
        )
        return None if row is None else guild_settings_from_row(row)

    async def save_guild_settings(self, settings: GuildSettings) -> None:
        params = guild_settings_params(settings)
        await self._changed(
            "INSERT INTO guild_settings (guild_id, defaults, allowed_models, limits, updated_at, moderation) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET defaults = excluded.defaults, "
            "allowed_models = excluded.allowed_models, limits = excluded.limits, updated_at = excluded.updated_at, "
            "moderation = excluded.moderation",
            params,
        )

    async def release_stale_chats(self, *, booked_before: float) -> int:
        return await self._changed(
            "UPDATE jobs SET image_count = 0, "
            "settled_microusd = COALESCE(CAST(json_extract(input, '$.bound_microusd') AS INTEGER), cost_microusd) "
            "WHERE kind = 'enhance' AND settled_microusd IS NULL AND image_count > 0 AND created_at < ?",
            (float(booked_before),),
        )

    async def replace_guild_settings(self, settings: GuildSettings, *, over: GuildSettings | None) -> bool:
        guild_id, *fields = guild_settings_params(settings)
        if over is None:
            return (
                await self._changed(
                    "INSERT INTO guild_settings (guild_id, defaults, allowed_models, limits, updated_at, moderation) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO NOTHING",
                    (guild_id, *fields),
                )
                == 1
            )
        return (
            await self._changed(
                "UPDATE guild_settings SET defaults = ?, allowed_models = ?, limits = ?, updated_at = ?, "
                "moderation = ? WHERE guild_id = ? AND updated_at = ?",
                (*fields, guild_id, float(over.updated_at)),
            )
            == 1
        )

    # User preferences

    async def get_user_prefs(self, user_id: int) -> dict[str, object]:
        value = await self._value("SELECT prefs FROM user_prefs WHERE user_id = ?", (user_id,))
        return {} if value is None else load_json_object(value)

    async def save_user_prefs(self, user_id: int, prefs: Mapping[str, object]) -> None:
        text = dump_json(prefs)
        await self._changed(
            "INSERT INTO user_prefs (user_id, prefs, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET prefs = excluded.prefs, updated_at = excluded.updated_at",
            (user_id, text, time.time()),
        )

    async def replace_user_prefs(
        self, user_id: int, prefs: Mapping[str, object], *, over: Mapping[str, object]
    ) -> bool:
        text, now = dump_json(prefs), time.time()
        if not over:  # no row, or an empty one
            sql = (
                "INSERT INTO user_prefs (user_id, prefs, updated_at) VALUES (?, ?, ?) ON CONFLICT (user_id) "
                "DO UPDATE SET prefs = excluded.prefs, updated_at = excluded.updated_at WHERE user_prefs.prefs = '{}'"
            )
            return await self._changed(sql, (user_id, text, now)) == 1
        sql = "UPDATE user_prefs SET prefs = ?, updated_at = ? WHERE user_id = ? AND prefs = ?"
        return await self._changed(sql, (text, now, user_id, dump_json(over))) == 1

    async def delete_user_prefs(self, user_id: int) -> None:
        await self._changed("DELETE FROM user_prefs WHERE user_id = ?", (user_id,))

    # Metadata

    async def get_meta(self, key: str) -> str | None:
        value = await self._value("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    async def set_meta(self, key: str, value: str) -> None:
        await self._changed(
            "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, value, time.time()),
        )

    async def schema_version(self) -> int:
        return int(await self._value("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", ()) or 0)

    # Lifetime

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._calls.idle()
        await self._conn.close()

    # Internals

    async def _one_job(self, sql: str, params: Sequence[object]) -> Job | None:
        for row in await self._rows(sql, params):
            return job_from_row(row)
        return None

    async def _in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` run on the database in aiosqlite's thread as one call, after those asked for before it."""
        return await self._calls.call(work)

    async def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return await self._in_thread(lambda db: db.execute(sql, params).fetchall())

    async def _changed(self, sql: str, params: Sequence[object] = ()) -> int:
        """How many rows the statement changed."""
        return await self._in_thread(lambda db: db.execute(sql, params).rowcount)

    async def _row(self, sql: str, params: Sequence[object]) -> Any:
        """The first row, fetched with its statement in one call."""
        return await self._in_thread(lambda db: _first_row(db, sql, params))

    async def _value(self, sql: str, params: Sequence[object]) -> Any:
        """The first column of the first row."""
        return await self._in_thread(lambda db: _first_value(db, sql, params))


def _first_row(db: sqlite3.Connection, sql: str, params: Sequence[object]) -> Any:
    return db.execute(sql, params).fetchone()


def _first_value(db: sqlite3.Connection, sql: str, params: Sequence[object]) -> Any:
    row = _first_row(db, sql, params)
    return None if row is None else row[0]


def _payment(db: sqlite3.Connection, job: Job, now: float) -> tuple[str | None, Refusal | None]:
    """What pays for `job` with credits; the caller is in a write transaction (BEGIN IMMEDIATE)."""
    balance = int(_first_value(db, balance_query(_numbered), (job.user_id,)) or 0)
    budget, drawn = None, 0
    if job.guild_id is not None:
        row = _first_row(db, subscription_query(_numbered), (job.guild_id, float(now), float(now - MONTH)))
        budget, drawn = (None, 0) if row is None else (row[0], int(row[1] or 0))
    return credit_payment(job, balance, None if budget is None else int(budget), drawn)


def _insert(db: sqlite3.Connection, job: Job, params: Sequence[object]) -> None:
    try:
        db.execute(_INSERT_JOB, params)
    except sqlite3.IntegrityError as exc:
        message = str(exc)
        if "UNIQUE" in message and "jobs.id" in message:
            raise DuplicateJob(job.id) from exc
        if "FOREIGN KEY" in message:
            raise StoreError(f"parent job {job.parent_id!r} does not exist") from exc
        raise StoreError(f"job {job.id!r} was refused: {message}") from exc


def _touch(db: sqlite3.Connection, sha256s: Sequence[str], now: float) -> None:
    """Mark stored input images used now; InputImagesGone if some are not stored."""
    wanted = list(dict.fromkeys(sha256s))
    if not wanted:
        return
    rows = db.execute(
        f"UPDATE input_images SET used_at = ? WHERE sha256 IN ({', '.join('?' for _ in wanted)}) RETURNING sha256",  # noqa: S608
        (float(now), *wanted),
    ).fetchall()
    found = {str(row[0]) for row in rows}
    if missing := [sha256 for sha256 in wanted if sha256 not in found]:
        raise InputImagesGone(missing)


def _lease_guard(owner: str | None) -> tuple[str, tuple[object, ...]]:
    """The condition that a job write is made by the holder of its lease (none for owner=None)."""
    return ("", ()) if owner is None else (" AND lease_owner = ?", (owner,))


def _image_params(image: InputImage, now: float) -> tuple[object, ...]:
    return (image.sha256, image.content_type, image.data, float(now), float(now), len(image.data))


def _numbered(n: int) -> str:
    return f"?{n}"


def _since(now: float, last: object) -> float | None:
    return None if last is None else now - float(last)  # type: ignore[arg-type]


def split_statements(script: str) -> list[str]:
    """Split a migration script into statements (comment-only lines dropped; triggers kept whole)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buffer += line + "\n"
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise MigrationError(f"incomplete SQL statement at the end of a migration: {buffer.strip()[:80]!r}")
    return statements
