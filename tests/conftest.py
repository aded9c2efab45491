"""Shared fixtures.

`store` runs a test once against SQLite (a fresh file in a nested, not yet existing folder) and once
against PostgreSQL (a fresh schema with a random name in `TEST_DATABASE_URL`, dropped afterwards).
If PostgreSQL cannot be reached the postgres variant is skipped locally, but FAILS when `CI` is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import asyncpg
import pytest

from services.store import PostgresStore, Store, open_store

if TYPE_CHECKING:
    from fakes.discord import FakeDiscord

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_test_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL


async def connect_postgres_or_skip(url: str | None = None) -> Any:
    """An asyncpg connection to the test database; skip locally, fail in CI, if it is not reachable."""
    url = url or postgres_test_url()
    reason = _unreachable.get(url)
    if reason is None:
        try:
            return await asyncpg.connect(url, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            parts = urlsplit(url)
            where = f"{parts.hostname}:{parts.port or 5432}{parts.path}"  # no credentials
            reason = f"PostgreSQL is not reachable at {where} ({type(exc).__name__}: {exc}); set TEST_DATABASE_URL"
            _unreachable[url] = reason  # don't wait for the same timeout in every test
    return cannot_test(reason)


def cannot_test(reason: str) -> NoReturn:
    """Skip locally; in CI (the project's machine, which has PostgreSQL, capsh and ../shared) a skip would hide a
    gap: fail."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}. CI is set, so this fails instead of skipping.", pytrace=False)
    pytest.skip(reason)


_unreachable: dict[str, str] = {}


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh, empty schema in the test database, dropped (with everything in it) afterwards."""
    admin = await connect_postgres_or_skip()
    schema = f"test_store_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield schema
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@dataclass(frozen=True)
class StoreTarget:
    """Where a test's store lives, so a test can open more stores on it (as other processes would)."""

    backend: str  # "sqlite" | "postgres"
    url: str
    schema: str | None = None  # PostgreSQL only

    async def open(self, *, migrations_dir: Path | None = None) -> Store:
        if self.backend == "sqlite":
            return await open_store(self.url, migrations_dir=migrations_dir)
        assert self.schema is not None
        # search_path isolates the test; application_name lets a test find (and kill) its connections.
        return await PostgresStore.open(
            self.url,
            server_settings={"search_path": self.schema, "application_name": self.schema},
            migrations_dir=migrations_dir,
        )


STORE_TARGET = pytest.StashKey[StoreTarget]()


@asynccontextmanager
async def store_location(backend: str, tmp_path: Path) -> AsyncIterator[StoreTarget]:
    if backend == "sqlite":
        yield StoreTarget("sqlite", f"sqlite:///{tmp_path / 'nested' / 'folder' / 'bot.db'}")
    else:
        async with postgres_schema() as schema:
            yield StoreTarget("postgres", postgres_test_url(), schema)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated, empty store; the test runs once per backend."""
    async with store_location(request.param, tmp_path) as target:
        request.node.stash[STORE_TARGET] = target
        opened = await target.open()
        try:
            yield opened
        finally:
            await opened.close()


@pytest.fixture
def store_target(request: pytest.FixtureRequest, store: Store) -> StoreTarget:
    """Where `store` lives: `await store_target.open()` gives a second store on the same database."""
    target: StoreTarget = request.node.stash[STORE_TARGET]
    return target


# --- end-to-end: the real bot against the fake Discord and the fake CometAPI --------------------------------


@pytest.fixture
async def comet():
    from cli.harness import KEY
    from fakes.cometapi import FakeCometAPI

    fake = FakeCometAPI(api_key=KEY, speed=0.02, seed=1, image_size=30_000)
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def fake():
    """A fake CometAPI on its own (key `cli.harness.KEY`), for tests of the API client and of the fake itself."""
    from cli.harness import KEY
    from fakes.cometapi import FakeCometAPI

    async with FakeCometAPI(api_key=KEY, speed=0.02, seed=0, image_size=20_000) as server:
        yield server


@pytest.fixture
async def discord_fake():
    from fakes.discord import FakeDiscord

    fake = FakeDiscord()
    await fake.start()
    yield fake
    await fake.close()
    assert_no_spec_violations(fake)


@pytest.fixture
async def refusing_discord():
    """A fake Discord that refuses the bot's token: a bot that gets as far as logging in shows up here."""
    from fakes.discord import FakeDiscord

    async with FakeDiscord(token="not-the-token-the-bot-has") as fake:
        yield fake


def assert_no_spec_violations(fake: FakeDiscord) -> None:
    """Fail the test if the bot sent a body Discord's OpenAPI description forbids (the fake answered 400)."""
    found = "\n".join(f"  {v}" for v in fake.spec_violations)
    assert not fake.spec_violations, f"the bot sent request bodies Discord would refuse:\n{found}"


@pytest.fixture
async def world(tmp_path, discord_fake, comet):
    from cli.harness import World

    return World(discord_fake, comet, f"sqlite:///{tmp_path}/bot.db")


@pytest.fixture(params=["sqlite", "postgres"])
async def world_any_store(request, tmp_path, discord_fake, comet):
    """A world whose bots use SQLite, then (second run) PostgreSQL in a schema of its own."""
    from cli.harness import World

    async with store_location(request.param, tmp_path) as target:
        url = target.url if target.schema is None else f"{target.url}?search_path={target.schema}"
        yield World(discord_fake, comet, url)
