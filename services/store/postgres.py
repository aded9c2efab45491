"""The PostgreSQL backend: an asyncpg pool, retried on a fresh connection after a dropped one.

Retrying
--------
Every public operation is a single statement on a connection taken from the pool. If the connection
turns out to be dead (ConnectionDoesNotExistError, InterfaceError, PostgresConnectionError, an admin or
crash shutdown of the server, asyncpg's InternalClientError for a killed idle connection, OSError), that
connection is discarded and the operation runs again on a fresh one (up to four more times, with short pauses,
as long as connections keep dying). Each retry is told it is one, and must allow for any earlier try having
committed. This is safe for each of them, for these reasons:

* reads (get_job, job_by_message, active_jobs, get_*): no effect;
* update_job, save_*/delete_*, set_meta, put_input_image: idempotent (plain UPDATE, upsert, DELETE of
  fixed values, an insert keyed by the content's own hash);
* record_prediction: sets an id only where there is none; a retry that finds one set reports whether it is
  the id it was given;
* transition: a compare-and-set, so it can never apply twice. If the first attempt committed but its
  answer was lost, the retry finds the status already moved; it then reads the row, and if the row holds
  exactly what this call wrote (the new status and every field, which include a time or a prediction id
  no other writer would set to the same value), that was our own write and the job is returned as moved.
  Otherwise (or when the call sets no fields, so it could not tell) it returns None, a lost race. It never
  reports success for a write that did not happen, and never lets two callers both win;
* admit_job: one transaction under advisory locks; a retry first looks for the job, and if the stored row
  is identical, the first attempt committed and the job was admitted;
* create_job: the id is fixed by the caller, so a first attempt that did land shows up on the retry as a
  unique violation; if the stored row is identical to the job, that is our own insert and counts as
  success, otherwise DuplicateJob is raised.

Migrations are not retried: they run under an advisory lock, each file in a transaction, and a failure
stops start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from services.limits import MONTH, Limits, Refusal, Usage, judge
from services.store.base import (
    COUNTED_COST,
    COUNTED_IMAGES,
    CREDIT_COLUMNS,
    JOB_SELECT,
    SCHEMA_MIGRATIONS_DDL,
    SCOPE_COLUMNS,
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

log = logging.getLogger(__name__)

T = TypeVar("T")

# pg_advisory_lock key held while migrating: "FLUXBOT1" as a big-endian 64-bit integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"FLUXBOT1", "big", signed=True)
MIGRATION_TIMEOUT = 600.0
COMMAND_TIMEOUT = 30.0
CLOSE_TIMEOUT = 10.0

# The errors after which a connection is assumed dead and the operation is tried again (`RETRY_PAUSES`).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    # A pooled connection whose backend was terminated while idle can fail with "cannot switch to
    # state N; another operation (2) is in progress" before asyncpg notices the socket closed
    # (MagicStack/asyncpg#1069); the connection is unusable, so treat it like a dropped one.
    asyncpg.exceptions.InternalClientError,
    OSError,
)

_INSERT_JOB = f"INSERT INTO jobs ({JOB_SELECT}) VALUES ({', '.join(f'${i}' for i in range(1, len(JOB_COLUMNS) + 1))})"  # noqa: S608
_SELECT_JOB = f"SELECT {JOB_SELECT} FROM jobs WHERE id = $1"  # noqa: S608
_COUNT_ACTIVE = "SELECT COUNT(*) FROM jobs WHERE user_id = $1 AND status = ANY($2::text[])"
_LAST_JOB = f"SELECT MAX(created_at) FROM jobs WHERE user_id = $1 AND kind NOT IN ({WORDS_IN})"  # noqa: S608
# `extra` (JSON text) does not mark the job's reply private (absent, or anything but true).
_NOT_PRIVATE = f"(extra::jsonb -> '{PRIVATE_REPLY}') IS DISTINCT FROM 'true'::jsonb"
_WINDOWS = {scope: window_query(scope, lambda n: f"${n}") for scope in SCOPE_COLUMNS}
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
_BALANCE = balance_query("${}".format)
_SUBSCRIPTION = subscription_query("${}".format)
_CREDIT_USAGE = credit_usage_query("${}".format)
_INSERT_CREDIT = f"INSERT INTO credit_entitlements ({CREDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"  # noqa: S608
# The same bytes again are one row, marked used now.
_PUT_IMAGE = (
    "INSERT INTO input_images (sha256, content_type, data, created_at, used_at, size_bytes) "
    "VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (sha256) DO UPDATE SET used_at = EXCLUDED.used_at"
)
# Admissions that store or reuse input images hold it shared, the pruning exclusively: no image is deleted
# between an admission finding it and its job being stored (which then keeps it, as an unfinished job's).
_IMAGES_LOCK = "SELECT pg_advisory_xact_lock{}(hashtextextended('input_images', 0))"
_UNNEEDED = unneeded("= ANY($1::text[])")

Operation = Callable[[Any, bool], Awaitable[T]]  # (connection, is_retry) -> result
# Between the tries of one store call while connections keep dying: 0.1 s doubling up to 1 s, about 10 s in all, so a
# restart of PostgreSQL or a few seconds of killed sessions pass (a paid job is not failed for them), and a server
# that stays away is reported within seconds.
RETRY_PAUSES = (0.1, 0.2, 0.4, 0.8, *(1.0,) * 8)


class PostgresStore(Store):
    """A `Store` in a PostgreSQL database (in the connection's `search_path` schema)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._closed = False

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 5,
        server_settings: Mapping[str, str] | None = None,
        migrations_dir: Path | None = None,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> PostgresStore:
        """Create the pool and apply the migrations.

        `server_settings` are sent on every connection (e.g. {"search_path": "bot"}); unknown query
        parameters of the DSN are treated the same way by asyncpg.
        """
        migrations = load_migrations("postgres", migrations_dir)
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout,
            server_settings=dict(server_settings) if server_settings else None,
        )
        store = cls(pool)
        try:
            await store._migrate(migrations)
        except BaseException:
            pool.terminate()
            raise
        return store

    async def _migrate(self, migrations: Sequence[Migration]) -> None:
        async with self._pool.acquire() as conn:
            # Several bot processes may start together: one migrates, the others wait, then find nothing to do.
            await conn.execute("SELECT pg_advisory_lock($1::bigint)", MIGRATION_LOCK_KEY, timeout=MIGRATION_TIMEOUT)
            try:
                await conn.execute(SCHEMA_MIGRATIONS_DDL)
                applied = {int(row["version"]) for row in await conn.fetch("SELECT version FROM schema_migrations")}
                for migration in pending(migrations, applied):
                    try:
                        async with conn.transaction():
                            await conn.execute(migration.sql, timeout=MIGRATION_TIMEOUT)
                            await conn.execute(
                                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                                migration.version,
                                migration.name,
                                time.time(),
                            )
                    except asyncpg.PostgresError as exc:
                        raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
                    log.info("Applied migration %s", migration.name)
            finally:
                if not conn.is_closed():
                    await conn.execute("SELECT pg_advisory_unlock($1::bigint)", MIGRATION_LOCK_KEY)

    async def _run(self, operation: Operation[T]) -> T:
        """Run `operation` on a pooled connection; again on a fresh one, a few times, while connections die.

        A restarting server or an admin killing sessions can drop the fresh connection too, so one retry is not
        enough; the pauses between tries (`RETRY_PAUSES`) let a short outage pass."""
        is_retry = False
        for pause in (*RETRY_PAUSES, None):
            try:
                async with self._pool.acquire() as conn:
                    try:
                        return await operation(conn, is_retry)
                    except CONNECTION_ERRORS as exc:
                        if not isinstance(exc, TimeoutError):
                            _terminate(conn)
                        raise
            except CONNECTION_ERRORS as exc:
                # TimeoutError is an OSError, but a command that timed out is not retried (it would wait again).
                if isinstance(exc, TimeoutError) or pause is None:
                    raise
                log.warning("PostgreSQL connection lost (%s); retrying in %.1f s", type(exc).__name__, pause)
                # When the server dropped one connection it usually dropped every idle one in the pool too: the
                # retry must not be handed another of those.
                await self._pool.expire_connections()
                await asyncio.sleep(pause)
                is_retry = True
        raise AssertionError("unreachable")  # the last pass returns or raises

    async def _fetch_jobs(self, sql: str, *params: object) -> list[Job]:
        async def op(conn: Any, _retry: bool) -> list[Any]:
            return list(await conn.fetch(sql, *params))

        return [job_from_row(row) for row in await self._run(op)]

    async def _fetch_value(self, sql: str, *params: object) -> Any:
        async def op(conn: Any, _retry: bool) -> Any:
            return await conn.fetchval(sql, *params)

        return await self._run(op)

    async def _execute(self, sql: str, *params: object) -> None:
        async def op(conn: Any, _retry: bool) -> None:
            await conn.execute(sql, *params)

        await self._run(op)

    # Jobs

    async def create_job(self, job: Job) -> None:
        params = job_params(job)

        async def op(conn: Any, retry: bool) -> None:
            try:
                await conn.execute(_INSERT_JOB, *params)
            except asyncpg.UniqueViolationError as exc:
                if retry:
                    stored = await conn.fetchrow(_SELECT_JOB, job.id)
                    if stored is not None and job_params(job_from_row(stored)) == params:
                        return  # our first attempt landed before the connection dropped
                raise DuplicateJob(job.id) from exc
            except asyncpg.ForeignKeyViolationError as exc:
                raise StoreError(f"parent job {job.parent_id!r} does not exist") from exc
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise StoreError(f"job {job.id!r} was refused: {exc}") from exc

        await self._run(op)

    async def admit_job(
        self,
        job: Job,
        limits: Limits,
        *,
        now: float,
        images: Sequence[InputImage] = (),
        reused: Sequence[str] = (),
    ) -> Refusal | None:
        params = job_params(job)
        in_guild = job.guild_id is not None

        async def op(conn: Any, retry: bool) -> Refusal | None:
            async with conn.transaction():
                # Admissions of one user (and of one server, for its limits, and of the whole bot for its budget)
                # wait for each other here, in every process; always user, then server, then bot, so two of them
                # can never deadlock.
                await conn.execute(_LOCK, f"admit:user:{job.user_id}")
                if in_guild and (limits.guild_wide or limits.pay_with_credits):  # credits: the server's subscription
                    await conn.execute(_LOCK, f"admit:guild:{job.guild_id}")
                if limits.bot_wide:
                    await conn.execute(_LOCK, "admit:bot")
                if retry:
                    stored = await conn.fetchrow(_SELECT_JOB, job.id)
                    if stored is not None:
                        paid = job_from_row(stored).paid_with  # chosen by the first attempt
                        if job_params(job_from_row(stored)) == job_params(replace(job, paid_with=paid)):
                            return None  # our first attempt committed before the connection dropped
                last = await conn.fetchval(_LAST_JOB, job.user_id)
                windows = {
                    scope: window_from_row(await conn.fetchrow(_WINDOWS[scope], *window_params(scope, job, now)))
                    for scope in counted_scopes(limits, in_guild=in_guild)
                }
                usage = Usage(
                    seconds_since_last=None if last is None else now - float(last),
                    jobs_in_flight=int(await conn.fetchval(_COUNT_ACTIVE, job.user_id, list(ACTIVE)) or 0),
                    **windows,
                )
                refusal = judge(limits, usage, job.image_count, in_guild=in_guild, cost=job.cost_microusd)
                insert = params
                if refusal is None and limits.pay_with_credits:
                    paid_with, refusal = await _payment(conn, job, now)
                    insert = job_params(replace(job, paid_with=paid_with))
                if refusal is None:
                    if images or reused:
                        await conn.execute(_IMAGES_LOCK.format("_shared"))
                    await _touch(conn, reused, now)
                    for image in images:
                        await conn.execute(_PUT_IMAGE, *_image_params(image, now))
                    await conn.execute(_INSERT_JOB, *insert)
                return refusal

        return await self._run(op)

    async def get_job(self, job_id: str) -> Job | None:
        jobs = await self._fetch_jobs(_SELECT_JOB, job_id)
        return jobs[0] if jobs else None

    async def job_by_message(self, message_id: int) -> Job | None:
        jobs = await self._fetch_jobs(
            f"SELECT {JOB_SELECT} FROM jobs WHERE message_id = $1 ORDER BY created_at DESC LIMIT 1",  # noqa: S608
            message_id,
        )
        return jobs[0] if jobs else None

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
            user_id, guild_id, lambda n: f"${n}", shown_to=shown_to, not_private=_NOT_PRIVATE,
            older_than=older_than, newer_than=newer_than,
        )  # fmt: skip
        n = len(params)
        jobs = await self._fetch_jobs(
            f"SELECT {JOB_SELECT} FROM jobs WHERE {where} ORDER BY created_at {order}, id {order} "  # noqa: S608
            f"LIMIT ${n + 1} OFFSET ${n + 2}",
            *params,
            limit,
            offset,
        )
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
            user_id, guild_id, lambda n: f"${n}", shown_to=shown_to, not_private=_NOT_PRIVATE, newer_than=newer_than
        )
        return int(await self._fetch_value(f"SELECT COUNT(*) FROM jobs WHERE {where}", *params) or 0)  # noqa: S608

    async def transition(
        self, job_id: str, from_statuses: Sequence[str], to_status: str, *, owner: str | None, **fields: object
    ) -> Job | None:
        froms = check_statuses(from_statuses, to_status)
        columns = encode_job_fields(fields)
        sets = [f"{name} = ${i}" for i, name in enumerate(columns, start=2)]
        assignments = ", ".join(["status = $1", *sets, *end_assignments(to_status)])
        n = len(columns) + 2
        leased = "" if owner is None else f" AND lease_owner = ${n + 2}"
        sql = (
            f"UPDATE jobs SET {assignments} WHERE id = ${n} AND status = ANY(${n + 1}::text[]){leased} "  # noqa: S608 (whitelisted columns)
            f"RETURNING {JOB_SELECT}"
        )
        params = (to_status, *columns.values(), job_id, list(froms), *(() if owner is None else (owner,)))

        async def op(conn: Any, retry: bool) -> Any:
            row = await conn.fetchrow(sql, *params)
            if row is None and retry and columns:
                # Did the first attempt commit before its connection died? Then the row holds what we wrote
                # (and, for a leased write, still names us: no one took the job over since).
                stored = await conn.fetchrow(_SELECT_JOB, job_id)
                if (
                    stored is not None
                    and all(stored[name] == value for name, value in {"status": to_status, **columns}.items())
                    and (owner is None or stored["lease_owner"] == owner)
                ):
                    return stored
            return row

        row = await self._run(op)
        return None if row is None else job_from_row(row)

    async def update_job(self, job_id: str, *, owner: str | None, **fields: object) -> bool:
        columns = encode_job_fields(fields)
        if not columns:
            return False
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=1))
        n = len(columns) + 1
        leased = "" if owner is None else f" AND lease_owner = ${n + 1}"
        sql = f"UPDATE jobs SET {assignments} WHERE id = ${n}{leased}"  # noqa: S608 (whitelisted columns)

        async def op(conn: Any, _retry: bool) -> str:
            return str(await conn.execute(sql, *columns.values(), job_id, *(() if owner is None else (owner,))))

        return _updated(await self._run(op)) > 0

    async def record_prediction(self, job_id: str, prediction_id: str) -> bool:
        async def op(conn: Any, retry: bool) -> bool:
            done = await conn.execute(
                "UPDATE jobs SET prediction_id = $1 WHERE id = $2 AND prediction_id IS NULL", prediction_id, job_id
            )
            if _updated(done) == 0 and retry:  # the first attempt's answer was lost: was it ours?
                return bool(
                    await conn.fetchval("SELECT prediction_id = $1 FROM jobs WHERE id = $2", prediction_id, job_id)
                )
            return _updated(done) > 0

        return await self._run(op)

    async def active_jobs(self, shard_ids: Sequence[int] | None) -> list[Job]:
        if shard_ids is None:
            return await self._fetch_jobs(
                f"SELECT {JOB_SELECT} FROM jobs WHERE status = ANY($1::text[]) ORDER BY created_at, id",  # noqa: S608
                list(ACTIVE),
            )
        shards = list(dict.fromkeys(shard_ids))
        if not shards:
            return []
        return await self._fetch_jobs(
            f"SELECT {JOB_SELECT} FROM jobs WHERE status = ANY($1::text[]) AND shard_id = ANY($2::integer[]) "  # noqa: S608
            "ORDER BY created_at, id",
            list(ACTIVE),
            shards,
        )

    # Input images

    async def put_input_image(self, image: InputImage) -> None:
        await self._execute(_PUT_IMAGE, *_image_params(image, time.time()))

    async def get_input_image(self, sha256: str) -> InputImage | None:
        async def op(conn: Any, _retry: bool) -> Any:
            return await conn.fetchrow("SELECT sha256, content_type, data FROM input_images WHERE sha256 = $1", sha256)

        row = await self._run(op)
        return None if row is None else InputImage(row["sha256"], row["content_type"], bytes(row["data"]))

    async def input_image_sizes(self, sha256s: Sequence[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(sha256s))
        if not wanted:
            return {}

        async def op(conn: Any, _retry: bool) -> list[Any]:
            return list(
                await conn.fetch("SELECT sha256, size_bytes FROM input_images WHERE sha256 = ANY($1::text[])", wanted)
            )

        return {str(row[0]): int(row[1]) for row in await self._run(op)}

    async def prune_input_images(self, *, unused_since: float, max_bytes: int | None) -> Pruned:
        # Safe to retry: a first attempt that committed deleted rows a second one no longer finds.
        async def op(conn: Any, _retry: bool) -> list[int]:
            async with conn.transaction():
                await conn.execute(_IMAGES_LOCK.format(""))
                expired = await conn.fetch(
                    f"DELETE FROM input_images WHERE used_at < $2 AND {_UNNEEDED} RETURNING size_bytes",  # noqa: S608
                    list(ACTIVE),
                    float(unused_since),
                )
                freed = [int(row[0]) for row in expired]
                total = int(await conn.fetchval("SELECT COALESCE(SUM(size_bytes), 0) FROM input_images") or 0)
                if max_bytes is not None and total > max_bytes:
                    rows = await conn.fetch(
                        f"SELECT sha256, size_bytes FROM input_images WHERE {_UNNEEDED} ORDER BY used_at, sha256",  # noqa: S608
                        list(ACTIVE),
                    )
                    doomed = beyond_cap(rows, total, max_bytes)
                    deleted = await conn.fetch(
                        "DELETE FROM input_images WHERE sha256 = ANY($1::text[]) RETURNING size_bytes", doomed
                    )
                    freed += [int(row[0]) for row in deleted]
                return freed

        freed = await self._run(op)
        return Pruned(len(freed), sum(freed))

    async def spend_since(self, guild_id: int, since: float) -> list[SpendRow]:
        async def op(conn: Any, _retry: bool) -> list[Any]:
            return list(
                await conn.fetch(
                    f"SELECT user_id, model, COALESCE(SUM({COUNTED_IMAGES}), 0), COALESCE(SUM({COUNTED_COST}), 0) "  # noqa: S608
                    "FROM jobs WHERE guild_id = $1 AND created_at >= $2 GROUP BY user_id, model",
                    guild_id,
                    float(since),
                )
            )

        return [SpendRow(int(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in await self._run(op)]

    # Credits

    async def credit_entitlement(self, credit: Credit, *, now: float) -> bool:
        # A retry after a lost answer finds the row and says False: the consume then waits for the next
        # reconcile (unconsumed_packs), and the entitlement is still credited once.
        async def op(conn: Any, _retry: bool) -> bool:
            row = await conn.fetchrow(
                _INSERT_CREDIT + " ON CONFLICT (entitlement_id) DO NOTHING RETURNING entitlement_id",
                *credit_params(credit, now),
            )
            return row is not None

        return await self._run(op)

    async def take_back(self, credit: Credit, *, now: float) -> bool:
        async def op(conn: Any, _retry: bool) -> bool:
            row = await conn.fetchrow(
                _INSERT_CREDIT + " ON CONFLICT (entitlement_id) DO UPDATE SET revoked_at = EXCLUDED.revoked_at "
                "WHERE credit_entitlements.revoked_at IS NULL RETURNING entitlement_id",
                *credit_params(credit, now, revoked_at=float(now)),
            )
            return row is not None

        return await self._run(op)

    async def mark_consumed(self, entitlement_id: int, *, now: float) -> None:
        await self._execute(
            "UPDATE credit_entitlements SET consumed_at = $1 WHERE entitlement_id = $2 AND consumed_at IS NULL",
            float(now),
            entitlement_id,
        )

    async def unconsumed_packs(self) -> list[int]:
        async def op(conn: Any, _retry: bool) -> list[Any]:
            return list(
                await conn.fetch(
                    "SELECT entitlement_id FROM credit_entitlements WHERE kind = 'pack' AND consumed_at IS NULL "
                    "AND revoked_at IS NULL ORDER BY credited_at"
                )
            )

        return [int(row[0]) for row in await self._run(op)]

    async def renew_subscription(self, entitlement_id: int, ends_at: float | None) -> None:
        await self._execute(
            "UPDATE credit_entitlements SET ends_at = $1 WHERE entitlement_id = $2 AND kind = 'subscription'",
            ends_at,
            entitlement_id,
        )

    async def credit_balance(self, user_id: int) -> int:
        return int(await self._fetch_value(_BALANCE, user_id) or 0)

    async def paid_jobs(self, user_id: int, *, limit: int) -> list[Job]:
        check_paging(limit, 0)
        return await self._fetch_jobs(
            f"SELECT {JOB_SELECT} FROM jobs WHERE user_id = $1 AND paid_with = 'balance' "  # noqa: S608
            "ORDER BY created_at DESC LIMIT $2",
            user_id,
            limit,
        )

    async def credit_usage(self, guild_id: int, since: float) -> CreditUsage:
        async def op(conn: Any, _retry: bool) -> Any:
            return await conn.fetchrow(_CREDIT_USAGE, guild_id, float(since))

        return usage_from_row(await self._run(op))

    # Leases

    async def claim_lease(
        self, job_id: str, owner: str, until: float, *, now: float, force: bool = False
    ) -> Job | None:
        guard = "" if force else " AND (lease_expires_at IS NULL OR lease_expires_at < $5 OR lease_owner = $1)"
        params: list[object] = [owner, float(until), job_id, list(ACTIVE)]
        if not force:
            params.append(float(now))
        jobs = await self._fetch_jobs(
            "UPDATE jobs SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3 AND status = ANY($4::text[])"  # noqa: S608
            f"{guard} RETURNING {JOB_SELECT}",
            *params,
        )
        if jobs:
            return jobs[0]
        # A retry after a lost answer finds the lease already ours: that is a success too.
        job = await self.get_job(job_id)
        return job if job is not None and job.active and job.lease_owner == owner else None

    async def renew_leases(self, owner: str, job_ids: Sequence[str], until: float, *, now: float) -> set[str]:
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return set()

        async def op(conn: Any, _retry: bool) -> list[Any]:
            return list(
                await conn.fetch(
                    "UPDATE jobs SET lease_owner = $1, lease_expires_at = $2 WHERE id = ANY($3::text[]) "
                    "AND status = ANY($4::text[]) AND (lease_expires_at IS NULL OR lease_expires_at < $5 "
                    "OR lease_owner = $1) RETURNING id",
                    owner,
                    float(until),
                    ids,
                    list(ACTIVE),
                    float(now),
                )
            )

        return {str(row[0]) for row in await self._run(op)}

    async def expired_leases(self, now: float, *, limit: int = 100) -> list[Job]:
        return await self._fetch_jobs(
            f"SELECT {JOB_SELECT} FROM jobs WHERE status = ANY($1::text[]) AND lease_expires_at < $2 "  # noqa: S608
            "ORDER BY created_at, id LIMIT $3",
            list(ACTIVE),
            float(now),
            int(limit),
        )

    async def release_leases(self, owner: str) -> int:
        async def op(conn: Any, _retry: bool) -> str:
            return str(
                await conn.execute(
                    "UPDATE jobs SET lease_expires_at = 0 WHERE lease_owner = $1 AND status = ANY($2::text[])",
                    owner,
                    list(ACTIVE),
                )
            )

        return _updated(await self._run(op))

    # Guild settings

    async def get_guild_settings(self, guild_id: int) -> GuildSettings | None:
        async def op(conn: Any, _retry: bool) -> Any:
            return await conn.fetchrow(
                "SELECT guild_id, defaults, allowed_models, limits, updated_at, moderation FROM guild_settings "
                "WHERE guild_id = $1",
                guild_id,
            )

        row = await self._run(op)
        return None if row is None else guild_settings_from_row(row)

    async def save_guild_settings(self, settings: GuildSettings) -> None:
        await self._execute(
            "INSERT INTO guild_settings (guild_id, defaults, allowed_models, limits, updated_at, moderation) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (guild_id) DO UPDATE SET defaults = EXCLUDED.defaults, "
            "allowed_models = EXCLUDED.allowed_models, limits = EXCLUDED.limits, updated_at = EXCLUDED.updated_at, "
            "moderation = EXCLUDED.moderation",
            *guild_settings_params(settings),
        )

    async def release_stale_chats(self, *, booked_before: float) -> int:
        released = await self._fetch_value(
            "WITH released AS (UPDATE jobs SET image_count = 0, "
            "settled_microusd = COALESCE((input::jsonb ->> 'bound_microusd')::bigint, cost_microusd) "
            "WHERE kind = 'enhance' AND settled_microusd IS NULL AND image_count > 0 AND created_at < $1 "
            "RETURNING 1) SELECT COUNT(*) FROM released",
            float(booked_before),
        )
        return int(released or 0)

    async def replace_guild_settings(self, settings: GuildSettings, *, over: GuildSettings | None) -> bool:
        params = guild_settings_params(settings)
        if over is None:
            saved = await self._fetch_value(
                "INSERT INTO guild_settings (guild_id, defaults, allowed_models, limits, updated_at, moderation) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (guild_id) DO NOTHING RETURNING guild_id",
                *params,
            )
        else:
            saved = await self._fetch_value(
                "UPDATE guild_settings SET defaults = $2, allowed_models = $3, limits = $4, updated_at = $5, "
                "moderation = $6 WHERE guild_id = $1 AND updated_at = $7 RETURNING guild_id",
                *params,
                float(over.updated_at),
            )
        return saved is not None

    # User preferences

    async def get_user_prefs(self, user_id: int) -> dict[str, object]:
        value = await self._fetch_value("SELECT prefs FROM user_prefs WHERE user_id = $1", user_id)
        return {} if value is None else load_json_object(value)

    async def save_user_prefs(self, user_id: int, prefs: Mapping[str, object]) -> None:
        await self._execute(
            "INSERT INTO user_prefs (user_id, prefs, updated_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (user_id) DO UPDATE SET prefs = EXCLUDED.prefs, updated_at = EXCLUDED.updated_at",
            user_id,
            dump_json(prefs),
            time.time(),
        )

    async def replace_user_prefs(
        self, user_id: int, prefs: Mapping[str, object], *, over: Mapping[str, object]
    ) -> bool:
        text, now = dump_json(prefs), time.time()
        if not over:  # no row, or an empty one
            sql = (
                "INSERT INTO user_prefs (user_id, prefs, updated_at) VALUES ($1, $2, $3) ON CONFLICT (user_id) "
                "DO UPDATE SET prefs = EXCLUDED.prefs, updated_at = EXCLUDED.updated_at WHERE user_prefs.prefs = '{}' "
                "RETURNING user_id"
            )
            return await self._fetch_value(sql, user_id, text, now) is not None
        sql = "UPDATE user_prefs SET prefs = $2, updated_at = $3 WHERE user_id = $1 AND prefs = $4 RETURNING user_id"
        return await self._fetch_value(sql, user_id, text, now, dump_json(over)) is not None

    async def delete_user_prefs(self, user_id: int) -> None:
        await self._execute("DELETE FROM user_prefs WHERE user_id = $1", user_id)

    # Metadata

    async def get_meta(self, key: str) -> str | None:
        value = await self._fetch_value("SELECT value FROM meta WHERE key = $1", key)
        return None if value is None else str(value)

    async def set_meta(self, key: str, value: str) -> None:
        await self._execute(
            "INSERT INTO meta (key, value, updated_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
            key,
            value,
            time.time(),
        )

    async def schema_version(self) -> int:
        return int(await self._fetch_value("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") or 0)

    # Lifetime

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._pool.close(), timeout=CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("PostgreSQL pool did not close within %.0f s; terminating it", CLOSE_TIMEOUT)
            self._pool.terminate()


def _image_params(image: InputImage, now: float) -> tuple[object, ...]:
    return (image.sha256, image.content_type, image.data, float(now), len(image.data))


async def _touch(conn: Any, sha256s: Sequence[str], now: float) -> None:
    """Mark stored input images used now; InputImagesGone if some are not stored."""
    wanted = list(dict.fromkeys(sha256s))
    if not wanted:
        return
    rows = await conn.fetch(
        "UPDATE input_images SET used_at = $1 WHERE sha256 = ANY($2::text[]) RETURNING sha256", float(now), wanted
    )
    found = {str(row[0]) for row in rows}
    if missing := [sha256 for sha256 in wanted if sha256 not in found]:
        raise InputImagesGone(missing)


def _updated(status: str) -> int:
    """The row count of a command status such as "UPDATE 3"."""
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else 0


async def _payment(conn: Any, job: Job, now: float) -> tuple[str | None, Refusal | None]:
    """What pays for `job` with credits, inside the admitting transaction (the user's and server's locks held)."""
    balance = int(await conn.fetchval(_BALANCE, job.user_id) or 0)
    budget, drawn = None, 0
    if job.guild_id is not None:
        row = await conn.fetchrow(_SUBSCRIPTION, job.guild_id, float(now), float(now - MONTH))
        budget, drawn = (None, 0) if row is None else (row[0], int(row[1] or 0))
    return credit_payment(job, balance, None if budget is None else int(budget), drawn)


def _terminate(conn: Any) -> None:
    """Close a pooled connection that failed, so it is never handed out again. asyncpg has already given it back
    to the pool when it saw the server close it (the call then raises InterfaceError): nothing is left to do."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()
