"""Open the database before the bot logs in to Discord (the bot then uses that store).

A DATABASE_URL that cannot be opened is a start-up mistake: `open_checked` turns it into a `ConfigError`
naming DATABASE_URL with one line saying what is wrong (which folder cannot be written, or whether the
PostgreSQL server is not listening, lacks the database or the role). The password in the URL is never
part of the message.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from services.errors import ConfigError
from services.store import MigrationError, Store, open_store, sqlite_path
from services.store.sqlite import MEMORY

VARIABLE = "DATABASE_URL"


async def open_checked(database_url: str) -> Store:
    """Open (creating and migrating) the database for the bot; ConfigError saying what is wrong if that fails."""
    sqlite = urlsplit(database_url).scheme.lower() == "sqlite"
    if sqlite:
        path = _sqlite_file(database_url)
        if path != MEMORY:
            _check_writable(path)
    try:
        store = await open_store(database_url)
    except (OSError, TimeoutError, ValueError, OverflowError, sqlite3.Error, asyncpg.PostgresError,
            asyncpg.InterfaceError, MigrationError) as exc:  # fmt: skip
        problem = _sqlite_problem(database_url, exc) if sqlite else _postgres_problem(database_url, exc)
        raise ConfigError(VARIABLE, _redact(problem, database_url)) from None
    return store


def _sqlite_file(database_url: str) -> str:
    try:
        return sqlite_path(database_url)
    except ValueError as exc:
        raise ConfigError(VARIABLE, str(exc)) from None


def _check_writable(path: str) -> None:
    """SQLite creates the folder, and next to the database its -wal and -shm files: all must be writable.

    (A read-only file opens without complaint and fails at the first write, long after start-up.)
    Blocking file calls, but they run once, before anything else is on the event loop.
    """
    database = Path(os.path.abspath(path))
    folder = database.parent
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():  # sqlite:///data/bot.db where `data` is a file
                raise ConfigError(VARIABLE, f"cannot create {database}: {part} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(VARIABLE, f"cannot write in the folder {folder}: {_why(exc)}") from None
    if database.is_dir():
        raise ConfigError(VARIABLE, f"{database} is a folder; name a file in it, like {database / 'bot.db'}")
    if database.exists() and not os.access(database, os.W_OK):
        raise ConfigError(VARIABLE, f"cannot write the SQLite file {database}: permission denied for this user")


def _why(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied for this user"
    return exc.strerror or str(exc)


def _sqlite_problem(database_url: str, exc: BaseException) -> str:
    path = sqlite_path(database_url)
    if isinstance(exc, MigrationError):
        return f"the SQLite database {path} could not be brought up to date: {exc}"
    return f"cannot open the SQLite database {path}: {exc}"


def _postgres_problem(database_url: str, exc: BaseException) -> str:
    parts = urlsplit(database_url)
    server = parts.netloc.rpartition("@")[2] or "the local socket"  # host:port, never the user:password part
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"the database is missing on the PostgreSQL server at {server}: {exc}"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return f"the PostgreSQL server at {server} does not accept the role: {exc}"
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return f"the PostgreSQL server at {server} refused the password (it is not shown here)"
    if isinstance(exc, MigrationError):
        return f"the PostgreSQL database at {server} could not be brought up to date: {exc}"
    if isinstance(exc, asyncpg.PostgresError):
        return f"the PostgreSQL server at {server} refused the connection: {exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot find the PostgreSQL host {parts.hostname!r} ({exc.strerror})"
    # Several addresses (localhost: ::1 and 127.0.0.1) end in one OSError listing each failure.
    if isinstance(exc, ConnectionRefusedError) or f"[Errno {errno.ECONNREFUSED}]" in str(exc):
        return f"nothing is listening at {server} (connection refused); is PostgreSQL running there?"
    if isinstance(exc, TimeoutError):
        return f"no answer from a PostgreSQL server at {server} (timed out)"
    if isinstance(exc, OSError):
        return f"cannot connect to PostgreSQL at {server}: {exc.strerror or exc}"
    return f"is not a usable PostgreSQL URL: {exc}"


def _redact(message: str, database_url: str) -> str:
    """Drop the password, however the URL gives it (user:password@ or ?password=), from a message."""
    parts = urlsplit(database_url)
    secrets = [parts.password or "", *parse_qs(parts.query).get("password", [])]
    for secret in {s for raw in secrets for s in (raw, unquote(raw)) if s}:
        message = message.replace(secret, "***")
    return " ".join(message.split())  # one line, whatever the driver's message looked like
