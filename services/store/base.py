"""The `Store` interface, the helpers both backends share, and the migration file reader.

Migration files
---------------
The schema lives in `migrations/NNN_name.sql` at the repository root (`NNN` a positive integer, zero-padded
by convention; `name` lower-case letters, digits and underscores). `open_store` applies the files whose
version is not yet in `schema_migrations`, in ascending order, each in its own transaction together with
its `schema_migrations` row, so a failing file leaves nothing behind and applying twice is a no-op.
PostgreSQL holds an advisory lock while migrating; SQLite takes its write lock (`BEGIN IMMEDIATE`) for
each file and re-checks the version inside it, so several processes starting together do not race.

Files are plain SQL that both engines accept (TEXT, BIGINT, INTEGER, DOUBLE PRECISION; JSON is TEXT).
Where a statement truly must differ, write it once per engine on lines carrying a dialect prefix:

    -- sqlite:   CREATE INDEX jobs_x ON jobs (x) WHERE x IS NOT NULL;
    -- postgres: CREATE INDEX jobs_x ON jobs USING brin (x);

A line starting with `-- sqlite:` contributes the rest of the line to the SQLite script only, and one
starting with `-- postgres:` to the PostgreSQL script only; a multi-line variant uses several prefixed
lines. Every other line (plain comments included) goes to both. Statements end with `;`. Files must not
contain their own BEGIN/COMMIT, nor statements that cannot run inside a transaction.
"""

from __future__ import annotations

import json
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self, get_type_hints

from services.errors import ServiceError
from services.limits import DAY, MONTH, Limits, Refusal, Window
from services.store.credits import BALANCE, PACK, SUBSCRIPTION, Credit, CreditUsage, payer
from services.store.job_extra import JobExtra
from services.store.models import (
    JOB_COLUMNS,
    JOB_FIELDS,
    JOB_STATUSES,
    MUTABLE_JOB_FIELDS,
    TERMINAL,
    WORDS_KINDS,
    GuildSettings,
    InputImage,
    Job,
    JobStatus,
    PageMark,
)

log = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgres"]

# The repository's `migrations/` folder (services/store/base.py -> repository root).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

SCHEMA_MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)

JOB_SELECT = ", ".join(JOB_COLUMNS)

# What a job counts against the budgets and the usage report: what it settled at once its prediction ended;
# while it runs, the upper bound booked at admission; nothing for a job that ended before any prediction was made.
COUNTED_COST = (
    "COALESCE(settled_microusd, CASE WHEN prediction_id IS NULL AND status IN ('failed', 'canceled') THEN 0 "
    "ELSE cost_microusd END)"
)
# The kinds of the rows that only record a chat's cost, as an SQL list (constants, not user input).
WORDS_IN = ", ".join(f"'{kind}'" for kind in WORDS_KINDS)
# The images a job counts against the quotas: reserved, then delivered; a failed or canceled job gives them back.
COUNTED_IMAGES = "CASE WHEN status IN ('failed', 'canceled') THEN 0 ELSE image_count END"
# Whose jobs each scope of the limits counts (services/limits.py).
SCOPE_COLUMNS: dict[str, tuple[str, ...]] = {
    "member": ("user_id", "guild_id"),
    "guild": ("guild_id",),
    "user": ("user_id",),
    "bot": (),
}

_MIGRATION_NAME = re.compile(r"^(\d+)_([a-z0-9_]+)\.sql$")
_VARIANT = re.compile(r"^\s*--\s*(sqlite|postgres):(.*)$")


class StoreError(ServiceError):
    """The database refused or could not do what was asked."""


class DuplicateJob(StoreError):
    """`create_job` was given an id that is already stored."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"a job with id {job_id!r} already exists")
        self.job_id = job_id


class InputImagesGone(StoreError):
    """A job was to send stored input images again (a reroll), and some are no longer kept."""

    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(f"input image(s) no longer stored: {', '.join(missing)}")
        self.missing = list(missing)


@dataclass(frozen=True)
class Pruned:
    """What one `prune_input_images` deleted."""

    images: int = 0
    bytes: int = 0


class MigrationError(StoreError):
    """The migration files are missing or malformed, or one of them failed."""


@dataclass(frozen=True)
class SpendRow:
    """One user's images and estimated cost (millionths of a dollar) with one model."""

    user_id: int
    model: str
    images: int
    cost_microusd: int


class Store(ABC):
    """Where jobs, guild settings, user preferences and a little metadata live.

    Every method is a coroutine. Every write that changes a job's status is a compare-and-set
    (`transition`), so two tasks or two processes can never both move the same job forward.

    Job writes are also conditional on the job's lease: `transition` and `update_job` take an `owner` that
    every caller must give, the id of the process writing (services/jobs/leases.py). A process that lost the
    job to another (it was paused past its lease and the other adopted it) can then no longer write to it.
    `owner=None` is for writes made on behalf of no lease: a user's cancel of a job another process runs,
    marks on finished jobs, tests.
    Use `open_store(database_url)` to get one; it has applied the migrations. Close it with `close()`
    or use it as `async with await open_store(url) as store: ...`.
    """

    # Jobs

    @abstractmethod
    async def create_job(self, job: Job) -> None:
        """Insert a new job. Raises `DuplicateJob` if its id is already stored."""

    @abstractmethod
    async def admit_job(
        self,
        job: Job,
        limits: Limits,
        *,
        now: float,
        images: Sequence[InputImage] = (),
        reused: Sequence[str] = (),
    ) -> Refusal | None:
        """Insert `job` if its user (and server) are within `limits`, in one atomic step; else say which limit.

        The cooldown, the jobs in flight and the daily quotas are counted and the job inserted in one
        transaction that concurrent admissions of the same user or server wait for (across processes on
        PostgreSQL), so commands that race each other can never exceed a limit together. The job's
        `image_count` is the number of images it reserves. `images` (the input images its `input` refers
        to) are stored in the same transaction as by `put_input_image`, and only if the job is admitted.
        `reused` names (by sha256) stored images the job will send again (a reroll): they are marked used
        now, and if one is no longer stored `InputImagesGone` is raised and nothing is stored.
        With `limits.pay_with_credits`, a job that costs something is also paid in the same transaction (its
        member's balance, else its server's subscription: services/store/credits.py) and stored with `paid_with`
        set, or refused as "credits"; the `job` given is not changed.
        """

    @abstractmethod
    async def get_job(self, job_id: str) -> Job | None:
        """The job with this id, or None."""

    @abstractmethod
    async def job_by_message(self, message_id: int) -> Job | None:
        """The job whose reply is this message (the newest if several), or None."""

    @abstractmethod
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
        """The jobs of one user and/or one server, newest first: `limit` of them after the first `offset`; with
        `older_than`, the `limit` just older than that mark; with `newer_than`, the `limit` just newer.

        At least one of `user_id` and `guild_id` must be given (ValueError otherwise). With `shown_to`, only
        what that user may see: their own jobs, and the others' whose reply was not private (PRIVATE_REPLY).
        """

    @abstractmethod
    async def count_jobs(
        self,
        *,
        user_id: int | None = None,
        guild_id: int | None = None,
        shown_to: int | None = None,
        newer_than: PageMark | None = None,
    ) -> int:
        """How many jobs `recent_jobs` pages through for the same filter (newer than the mark, with one)."""

    @abstractmethod
    async def transition(
        self, job_id: str, from_statuses: Sequence[str], to_status: str, *, owner: str | None, **fields: object
    ) -> Job | None:
        """Atomically move a job to `to_status` if its current status is one of `from_statuses` and, unless
        `owner` is None, its lease is `owner`'s (`lease_owner = owner`).

        `fields` may set any of message_id, prediction_id, error, submitted_at, completed_at,
        delivered_at, image_count and extra in the same write; an unknown name or a status outside
        `JOB_STATUSES` raises ValueError. Returns the updated job, or None if the job does not exist, its
        status was not in `from_statuses` (someone else moved it first) or another process holds its lease. A
        single status may be passed as a plain string. A move into a finished state (TERMINAL) also deletes the
        job's interaction token (`CLEARED_AT_END`): the job returned has none.
        """

    @abstractmethod
    async def update_job(self, job_id: str, *, owner: str | None, **fields: object) -> bool:
        """Set non-status fields (the same names `transition` accepts), on the same lease condition as
        `transition`. Returns whether the job was written (False: it is missing or another process's, or no field
        was given)."""

    @abstractmethod
    async def record_prediction(self, job_id: str, prediction_id: str) -> bool:
        """Keep `prediction_id` on a job that has none, whoever holds it and whatever its status: a create that
        reached the API is recorded even when its process lost the job meanwhile. Returns whether it was written."""

    @abstractmethod
    async def active_jobs(self, shard_ids: Sequence[int] | None) -> list[Job]:
        """Jobs whose status is in ACTIVE, oldest first; only those of `shard_ids` unless it is None."""

    # Input images

    @abstractmethod
    async def put_input_image(self, image: InputImage) -> None:
        """Keep an input image under its sha256. The same bytes again change nothing (one row per content)."""

    @abstractmethod
    async def get_input_image(self, sha256: str) -> InputImage | None:
        """The input image stored under this sha256, or None."""

    @abstractmethod
    async def input_image_sizes(self, sha256s: Sequence[str]) -> dict[str, int]:
        """The size in bytes of each of these input images that is stored (the bytes are not read)."""

    @abstractmethod
    async def prune_input_images(self, *, unused_since: float, max_bytes: int | None) -> Pruned:
        """Delete the input images last used before `unused_since`, then, while they total more than `max_bytes`
        (None: no cap), the least recently used; never one that an unfinished job (ACTIVE) names."""

    @abstractmethod
    async def spend_since(self, guild_id: int, since: float) -> list[SpendRow]:
        """Images and estimated cost of the guild's jobs created at or after `since`, by user and model.

        Failed and canceled jobs are left out, as in the quotas and budgets.
        """

    # Credits (services/store/credits.py; services/jobs/credits.py)

    @abstractmethod
    async def credit_entitlement(self, credit: Credit, *, now: float) -> bool:
        """Add an entitlement to the ledger, once: True if this call credited it, False if it was already there
        (credited before, by any process, or taken back before it was ever credited)."""

    @abstractmethod
    async def take_back(self, credit: Credit, *, now: float) -> bool:
        """Mark an entitlement deleted or refunded: it counts no more (the balance is debited by its value, and may
        go below zero). One never credited is kept as taken back, so it can never be credited later. True if this
        call changed anything."""

    @abstractmethod
    async def mark_consumed(self, entitlement_id: int, *, now: float) -> None:
        """Record that Discord accepted the consume of a credited pack."""

    @abstractmethod
    async def unconsumed_packs(self) -> list[int]:
        """The credited packs (entitlement ids) whose consume has not succeeded yet, oldest first."""

    @abstractmethod
    async def renew_subscription(self, entitlement_id: int, ends_at: float | None) -> None:
        """A server subscription's new end (ENTITLEMENT_UPDATE when it renews or is cancelled)."""

    @abstractmethod
    async def credit_balance(self, user_id: int) -> int:
        """The user's balance in millionths of a dollar: packs credited, less what the jobs they paid count."""

    @abstractmethod
    async def paid_jobs(self, user_id: int, *, limit: int) -> list[Job]:
        """The user's newest jobs paid with their balance."""

    @abstractmethod
    async def credit_usage(self, guild_id: int, since: float) -> CreditUsage:
        """Credits sold in the server (entitlements naming it) and spent on its jobs since `since`."""

    # Leases (see services/jobs/leases.py)

    single_process: bool = False  # True where only one process may use the database (SQLite)

    @abstractmethod
    async def claim_lease(
        self, job_id: str, owner: str, until: float, *, now: float, force: bool = False
    ) -> Job | None:
        """Give `owner` the lease of an unfinished job, if it has none, it ran out before `now`, or `owner`
        holds it already (`force`: whoever holds it). A compare-and-set: of several processes claiming the
        same job, one gets it. Returns the job, or None if it is finished, gone, or someone else's."""

    @abstractmethod
    async def renew_leases(self, owner: str, job_ids: Sequence[str], until: float, *, now: float) -> set[str]:
        """Extend to `until` the leases of these unfinished jobs that `owner` holds or may claim (as
        `claim_lease`). Returns the ids now held by `owner`; a missing id is finished or someone else's."""

    @abstractmethod
    async def expired_leases(self, now: float, *, limit: int = 100) -> list[Job]:
        """Unfinished jobs whose lease ran out before `now` (their process died), oldest first."""

    @abstractmethod
    async def release_leases(self, owner: str) -> int:
        """End `owner`'s leases at once (a clean shutdown): a live process may take the jobs over now."""

    # Guild settings

    @abstractmethod
    async def get_guild_settings(self, guild_id: int) -> GuildSettings | None:
        """The guild's settings, or None if it never saved any."""

    @abstractmethod
    async def save_guild_settings(self, settings: GuildSettings) -> None:
        """Insert or replace the guild's settings."""

    @abstractmethod
    async def release_stale_chats(self, *, booked_before: float) -> int:
        """✨ Enhance chats booked before `booked_before` that still hold the images and cost of the job they were for
        (their process stopped during the chat): those are given back, and the chat counts at its own bound (it may
        have been paid). Returns how many."""

    @abstractmethod
    async def replace_guild_settings(self, settings: GuildSettings, *, over: GuildSettings | None) -> bool:
        """Save `settings` only if the stored ones are still `over` as it was read (None: none stored yet); False,
        saving nothing, when another change came in between (read them again and redo the change)."""

    # User preferences

    @abstractmethod
    async def get_user_prefs(self, user_id: int) -> dict[str, object]:
        """The user's saved preferences; an empty dict if none."""

    @abstractmethod
    async def save_user_prefs(self, user_id: int, prefs: Mapping[str, object]) -> None:
        """Insert or replace the user's preferences."""

    @abstractmethod
    async def replace_user_prefs(
        self, user_id: int, prefs: Mapping[str, object], *, over: Mapping[str, object]
    ) -> bool:
        """Save `prefs` only if the stored ones are still `over` as it was read (empty: none stored); False, saving
        nothing, when another change came in between (read them again and redo the change)."""

    @abstractmethod
    async def delete_user_prefs(self, user_id: int) -> None:
        """Forget the user's preferences (no error if there are none)."""

    # Metadata

    @abstractmethod
    async def get_meta(self, key: str) -> str | None:
        """A value of the small key/value table, or None."""

    @abstractmethod
    async def set_meta(self, key: str, value: str) -> None:
        """Insert or replace a value of the key/value table."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The highest applied migration version (0 if none), e.g. for a health check."""

    # Lifetime

    @abstractmethod
    async def close(self) -> None:
        """Release the connection(s). Safe to call twice."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# Helpers shared by the backends.


class RowLike(Protocol):
    """A result row addressable by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str | int, /) -> Any: ...


def dump_json(value: Mapping[str, object] | Sequence[object]) -> str:
    """Compact JSON text; raises ValueError for values JSON cannot hold (NaN included)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except TypeError as exc:
        raise ValueError(f"not JSON-serialisable: {exc}") from exc


def load_json_object(text: str) -> dict[str, object]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise StoreError(f"expected a JSON object in the database, got {type(value).__name__}")
    return value


_HINTS = get_type_hints(Job)
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_JSON_FIELDS = frozenset(name for name, hint in _HINTS.items() if getattr(hint, "__origin__", None) is dict)
_TIME_FIELDS = frozenset(name for name, hint in _HINTS.items() if float in getattr(hint, "__args__", (hint,)))
_INT_FIELDS = frozenset(
    name for name, hint in _HINTS.items() if int in getattr(hint, "__args__", (hint,)) and name not in _TIME_FIELDS
)
_NULLABLE = frozenset(name for name, hint in _HINTS.items() if type(None) in getattr(hint, "__args__", ()))


def unneeded(active_in: str) -> str:
    """The condition that no unfinished job names an input image: its sha256 appears nowhere in their `input`
    (a `stored:` reference) or `extra` (a link's stored copy). `active_in` is the backend's test of
    `jobs.status` against ACTIVE. A job naming one by chance only keeps it longer."""
    named = "LIKE '%' || input_images.sha256 || '%'"
    return (
        f"NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.status {active_in} AND (jobs.input {named} OR jobs.extra {named}))"  # noqa: S608
    )


def beyond_cap(rows: Sequence[RowLike], total: int, max_bytes: int) -> list[str]:
    """Of (sha256, size_bytes) rows, least recently used first, the ones to delete to bring `total` within
    `max_bytes`."""
    doomed: list[str] = []
    for row in rows:
        if total <= max_bytes:
            break
        doomed.append(str(row[0]))
        total -= int(row[1])
    return doomed


def job_params(job: Job) -> tuple[object, ...]:
    """The values of `JOB_COLUMNS` for inserting `job`, after checking it."""
    if job.status not in JOB_STATUSES:
        raise ValueError(f"unknown job status {job.status!r}")
    if not _KIND.fullmatch(job.kind):
        raise ValueError(f"a job kind is a lower-case name, not {job.kind!r}")
    if not job.id:
        raise ValueError("a job needs an id")
    return tuple(_column(f.name, getattr(job, f.name)) for f in JOB_FIELDS)


def _column(name: str, value: object) -> object:
    if value is None:
        return None
    if name == "extra":
        return dump_json(value.to_json())  # type: ignore[attr-defined]
    if name in _JSON_FIELDS:
        return dump_json(value)  # type: ignore[arg-type]
    if name in _TIME_FIELDS:
        return float(value)  # type: ignore[arg-type]
    if name in ("status", "kind"):
        return str(value)
    return value


def job_from_row(row: RowLike) -> Job:
    values: dict[str, Any] = {name: row[name] for name in JOB_COLUMNS}
    for name in _JSON_FIELDS:
        values[name] = load_json_object(values[name])
    values["extra"] = JobExtra.from_json(load_json_object(values["extra"]))
    values["status"] = JobStatus(values["status"])
    return Job(**values)


def encode_job_fields(fields: Mapping[str, object]) -> dict[str, object]:
    """Check the names and types of the fields `transition`/`update_job` set and encode them as columns.

    Raises ValueError for a name outside `MUTABLE_JOB_FIELDS` and TypeError for a value of the wrong type.
    """
    unknown = sorted(set(fields) - MUTABLE_JOB_FIELDS)
    if unknown:
        hint = " (change the status with transition())" if "status" in unknown else ""
        raise ValueError(f"cannot set job field(s) {', '.join(unknown)}{hint}")
    encoded: dict[str, object] = {}
    for name, value in fields.items():
        if value is None:
            if name not in _NULLABLE:
                raise TypeError(f"job field {name} cannot be None")
            encoded[name] = None
        elif name == "extra":
            if not isinstance(value, JobExtra):
                raise TypeError(f"job field extra must be a JobExtra, got {type(value).__name__}")
            encoded[name] = dump_json(value.to_json())
        elif name in _JSON_FIELDS:
            if not isinstance(value, Mapping):
                raise TypeError(f"job field {name} must be a dict, got {type(value).__name__}")
            encoded[name] = dump_json(value)
        elif name in _TIME_FIELDS:
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise TypeError(f"job field {name} must be a finite number of seconds, got {value!r}")
            encoded[name] = float(value)
        elif name in _INT_FIELDS:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"job field {name} must be an int, got {type(value).__name__}")
            encoded[name] = value
        else:
            if not isinstance(value, str):
                raise TypeError(f"job field {name} must be a str, got {type(value).__name__}")
            encoded[name] = value
    return encoded


def history_filter(
    user_id: int | None,
    guild_id: int | None,
    placeholder: Callable[[int], str],
    *,
    shown_to: int | None = None,
    not_private: str,
    older_than: PageMark | None = None,
    newer_than: PageMark | None = None,
) -> tuple[str, list[object]]:
    """The WHERE condition and parameters of a history query; `placeholder(n)` spells the n-th (1-based).

    `not_private` is the backend's condition that a job's `extra` does not say PRIVATE_REPLY: with `shown_to`,
    only that user's own jobs may be private ones. `older_than`/`newer_than`: only the jobs after/before that
    mark in the history's order (created_at, then id, both descending).
    """
    conditions: list[str] = []
    params: list[object] = []
    for column, value in (("user_id", user_id), ("guild_id", guild_id)):
        if value is not None:
            params.append(value)
            conditions.append(f"{column} = {placeholder(len(params))}")
    if not conditions:
        raise ValueError("a job history needs a user_id or a guild_id")
    if shown_to is not None:
        params.append(shown_to)
        conditions.append(f"(user_id = {placeholder(len(params))} OR {not_private})")
    conditions.append(f"kind NOT IN ({WORDS_IN})")  # a chat's cost row shows nothing
    for mark, side in ((older_than, "<"), (newer_than, ">")):
        if mark is not None:
            params += [mark.created_at, mark.job_id]
            conditions.append(f"(created_at, id) {side} ({placeholder(len(params) - 1)}, {placeholder(len(params))})")
    return " AND ".join(conditions), params


def counted_scopes(limits: Limits, *, in_guild: bool) -> list[str]:
    """The scopes whose usage admitting a job under `limits` must count (SCOPE_COLUMNS)."""
    wanted = {
        "member": in_guild and limits.per_member,
        "guild": in_guild and limits.guild_wide,
        "user": limits.everywhere,
        "bot": limits.bot_wide,
    }
    return [scope for scope, needed in wanted.items() if needed]


def window_query(scope: str, placeholder: Callable[[int], str]) -> str:
    """The usage of one scope: images and spend of the last day, spend of the last month, and the oldest job
    in each window. Parameters: the day's start, the window's start, then the scope's columns' values."""
    day, start = placeholder(1), placeholder(2)
    condition = "".join(f" AND {c} = {placeholder(3 + i)}" for i, c in enumerate(SCOPE_COLUMNS[scope]))
    return (
        f"SELECT COALESCE(SUM(CASE WHEN created_at >= {day} THEN {COUNTED_IMAGES} ELSE 0 END), 0), "  # noqa: S608 (constants)
        f"COALESCE(SUM(CASE WHEN created_at >= {day} THEN {COUNTED_COST} ELSE 0 END), 0), "
        f"COALESCE(SUM({COUNTED_COST}), 0), MIN(CASE WHEN created_at >= {day} THEN created_at END), MIN(created_at) "
        f"FROM jobs WHERE created_at >= {start}{condition}"
    )


def window_params(scope: str, job: Job, now: float) -> tuple[object, ...]:
    # Only the server's limits have a 30-day window: the others need not read a month of jobs.
    start = now - MONTH if scope in ("member", "guild") else now - DAY
    return (now - DAY, start, *(getattr(job, column) for column in SCOPE_COLUMNS[scope]))


def window_from_row(row: RowLike | None) -> Window:
    if row is None:
        return Window()
    oldest_day, oldest_month = row[3], row[4]
    return Window(
        images_day=int(row[0]),
        spend_day=int(row[1]),
        spend_month=int(row[2]),
        oldest_day=None if oldest_day is None else float(oldest_day),
        oldest_month=None if oldest_month is None else float(oldest_month),
    )


def balance_query(placeholder: Callable[[int], str]) -> str:
    """A user's balance; parameter 1: the user's id."""
    user = placeholder(1)
    return (
        f"SELECT (SELECT COALESCE(SUM(micros), 0) FROM credit_entitlements WHERE user_id = {user} "  # noqa: S608 (constants)
        f"AND kind = '{PACK}' AND revoked_at IS NULL) - (SELECT COALESCE(SUM({COUNTED_COST}), 0) FROM jobs "
        f"WHERE user_id = {user} AND paid_with = '{BALANCE}')"
    )


def subscription_query(placeholder: Callable[[int], str]) -> str:
    """A server's subscription budget (NULL: none running) and what its jobs drew from it in the last 30 days.
    Parameters: the server's id, now, the window's start."""
    guild, now, since = placeholder(1), placeholder(2), placeholder(3)
    return (
        f"SELECT (SELECT MAX(micros) FROM credit_entitlements WHERE guild_id = {guild} AND kind = '{SUBSCRIPTION}' "  # noqa: S608 (constants)
        f"AND revoked_at IS NULL AND (ends_at IS NULL OR ends_at > {now})), "
        f"(SELECT COALESCE(SUM({COUNTED_COST}), 0) FROM jobs WHERE guild_id = {guild} AND paid_with = '{SUBSCRIPTION}' "
        f"AND created_at >= {since})"
    )


def credit_usage_query(placeholder: Callable[[int], str]) -> str:
    """Credits sold in a server and spent on its jobs. Parameters: the server's id, the window's start."""
    guild, since = placeholder(1), placeholder(2)
    return (
        f"SELECT (SELECT COALESCE(SUM(micros), 0) FROM credit_entitlements WHERE guild_id = {guild} "  # noqa: S608 (constants)
        f"AND revoked_at IS NULL AND credited_at >= {since}), "
        f"COALESCE(SUM(CASE WHEN paid_with = '{BALANCE}' THEN {COUNTED_COST} ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN paid_with = '{SUBSCRIPTION}' THEN {COUNTED_COST} ELSE 0 END), 0) "
        f"FROM jobs WHERE guild_id = {guild} AND created_at >= {since} AND paid_with IS NOT NULL"
    )


def credit_params(credit: Credit, now: float, revoked_at: float | None = None) -> tuple[object, ...]:
    """The values of CREDIT_COLUMNS for one ledger row."""
    return (
        credit.entitlement_id,
        credit.sku_id,
        credit.kind,
        credit.user_id,
        credit.guild_id,
        credit.micros,
        float(now),
        credit.ends_at,
        revoked_at,
    )


CREDIT_COLUMNS = "entitlement_id, sku_id, kind, user_id, guild_id, micros, credited_at, ends_at, revoked_at"


def usage_from_row(row: RowLike | None) -> CreditUsage:
    if row is None:
        return CreditUsage()
    return CreditUsage(sold=int(row[0] or 0), spent_balance=int(row[1] or 0), spent_subscription=int(row[2] or 0))


def credit_payment(job: Job, balance: int, budget: int | None, drawn: int) -> tuple[str | None, Refusal | None]:
    """What pays for `job` when credits are on (None for a free job), or the refusal when nothing can."""
    cost = job.cost_microusd
    if cost <= 0:
        return None, None
    left = None if budget is None or job.guild_id is None else budget - drawn
    paid_with = payer(cost, balance, left)
    if paid_with is None:
        return None, Refusal("credits", max(balance, 0), 0, cost)
    return paid_with, None


def check_paging(
    limit: int, offset: int, older_than: PageMark | None = None, newer_than: PageMark | None = None
) -> str:
    """The order of a history page's query: newest first, or oldest first for the page newer than a mark (its rows
    are then given back reversed)."""
    if limit < 1 or offset < 0 or (older_than is not None and newer_than is not None):
        raise ValueError(f"bad page: limit {limit}, offset {offset}, marks {older_than}, {newer_than}")
    return "ASC" if newer_than is not None else "DESC"


# Deleted when a job ends: the interaction token is a secret, and once the job has shown its end (before the
# transition for a success, from the job in memory for a failure) nothing needs it any more.
CLEARED_AT_END: Final[tuple[str, ...]] = ("interaction_token",)


def end_assignments(to_status: str) -> list[str]:
    """The SET clauses a transition into `to_status` adds: a finished job's secrets deleted."""
    return [f"{name} = NULL" for name in CLEARED_AT_END] if to_status in TERMINAL else []


def check_statuses(from_statuses: Sequence[str] | str, to_status: str) -> tuple[str, ...]:
    """Validate a transition's statuses; a lone string means one status (not its characters)."""
    froms = (from_statuses,) if isinstance(from_statuses, str) else tuple(from_statuses)
    if not froms:
        raise ValueError("from_statuses is empty")
    for status in (*froms, to_status):
        if status not in JOB_STATUSES:
            raise ValueError(f"unknown job status {status!r}")
    return froms


def guild_settings_params(settings: GuildSettings) -> tuple[object, ...]:
    allowed = None if settings.allowed_models is None else dump_json(list(settings.allowed_models))
    return (
        settings.guild_id,
        dump_json(settings.defaults),
        allowed,
        dump_json(settings.limits),
        float(settings.updated_at),
        dump_json(settings.moderation),
    )


def guild_settings_from_row(row: RowLike) -> GuildSettings:
    allowed_text = row["allowed_models"]
    allowed: list[str] | None = None
    if allowed_text is not None:
        value = json.loads(allowed_text)
        if not isinstance(value, list):
            raise StoreError("expected a JSON list of allowed models in the database")
        allowed = [str(item) for item in value]
    limits: dict[str, float | int] = {}
    for key, limit in load_json_object(row["limits"]).items():
        if isinstance(limit, int | float) and not isinstance(limit, bool):
            limits[key] = limit
    return GuildSettings(
        guild_id=row["guild_id"],
        defaults=load_json_object(row["defaults"]),
        allowed_models=allowed,
        limits=limits,
        updated_at=row["updated_at"],
        moderation=load_json_object(row["moderation"]),
    )


# Migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # the script for one dialect


def load_migrations(dialect: Dialect, directory: Path | None = None) -> list[Migration]:
    """Read `NNN_name.sql` files from `directory` (default: the repository's `migrations/`), in order.

    Raises MigrationError if the folder has none, a `.sql` file is misnamed, or two share a version.
    """
    folder = directory or MIGRATIONS_DIR
    if not folder.is_dir():
        raise MigrationError(f"migrations folder {folder} does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name!r} is not named NNN_name.sql")
        version = int(match.group(1))
        if version <= 0:
            raise MigrationError(f"migration {path.name!r}: version must be positive")
        if version in found:
            raise MigrationError(f"migrations {found[version].name!r} and {path.name!r} share version {version}")
        sql = dialect_script(path.read_text(encoding="utf-8"), dialect)
        found[version] = Migration(version=version, name=path.name, sql=sql)
    if not found:
        raise MigrationError(f"no migration files in {folder}")
    return [found[v] for v in sorted(found)]


def dialect_script(text: str, dialect: Dialect) -> str:
    """Resolve `-- sqlite:` / `-- postgres:` variant lines for one dialect."""
    lines: list[str] = []
    for line in text.splitlines():
        match = _VARIANT.match(line)
        if match is None:
            lines.append(line)
        elif match.group(1) == dialect:
            lines.append(match.group(2))
    return "\n".join(lines) + "\n"


def pending(migrations: Sequence[Migration], applied: set[int]) -> list[Migration]:
    """The migrations not yet applied; warns when the database knows versions the files do not."""
    known = {m.version for m in migrations}
    unknown = sorted(applied - known)
    if unknown:
        log.warning(
            "The database has migration version(s) %s that this code does not know: is an older release running?",
            unknown,
        )
    return [m for m in migrations if m.version not in applied]
