"""The real FluxBot, through the real discord.py, against the two fakes: the harness of the end-to-end tests,
the playground (cli/playground.py) and the README's pictures (cli/screens.py).

Only Discord and CometAPI are fakes; the store is real (SQLite file or PostgreSQL), and so is everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import discord
import yarl

from fakes.cometapi import FakeCometAPI
from fakes.discord import FakeDiscord
from services.cometapi.polling import DurationStats, PollTuning
from services.config import Settings, load_settings
from ui.flux_bot import FluxBot

TOKEN = "bot-token-abcdefghijklmnopqrstuvwxyz"
KEY = "comet-key-0123456789abcdef"
FAST_POLL = PollTuning(fine_interval=0.03, min_interval=0.01, max_interval=0.2)
FAST_PRIORS = (0.01, 0.5)
# The tasks in which discord.py runs the bot's handlers: slash commands and autocompletes, buttons (views and
# dynamic items), modals, and event listeners such as on_raw_reaction_add.
HANDLER_TASKS = (
    "CommandTree-invoker",
    "discord-ui-view-dispatch-",
    "discord-ui-dynamic-item-",
    "discord-ui-modal-dispatch-",
    "discord.py: ",
)


class TestBot(FluxBot):
    """FluxBot with test-speed polling and a short wait for GUILD_CREATEs; nothing else differs. It also records
    the events it dispatches, so a test can wait until the bot has handled one (see `settled`)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # discord.py waits guild_ready_timeout (2 s) after the last GUILD_CREATE before on_ready; the fake
        # sends them at once after READY, so 2 s per start would only slow every test down.
        self._connection.guild_ready_timeout = 0.1
        self.received: list[tuple[str, tuple[Any, ...]]] = []  # every event dispatched, with its arguments
        self._dispatched = asyncio.Event()

    async def setup_hook(self) -> None:
        await super().setup_hook()
        if not self.sync_only:
            self.runner.refresh_seconds = 1.0
        self.service.stats = DurationStats({}, PollTuning(**{**FAST_POLL.__dict__, "default_window": FAST_PRIORS}))

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py waits 5 s between identifies; the fake has no such limit

    def dispatch(self, event_name: str, /, *args: Any, **kwargs: Any) -> None:
        super().dispatch(event_name, *args, **kwargs)  # starts the handlers' tasks first
        self.received.append((event_name, args))
        event, self._dispatched = self._dispatched, asyncio.Event()
        event.set()

    async def settled(self, received: Callable[[], bool], *, timeout: float = 5.0, what: str = "an event") -> None:
        """Wait until `received()` holds (checked at every event the bot dispatches), then until every handler
        discord.py has started so far has returned. After that the bot does nothing more about those events,
        so a test can conclude that something did not happen without sleeping."""
        try:
            async with asyncio.timeout(timeout):
                while not received():
                    await self._dispatched.wait()
                while pending := _handler_tasks():
                    await asyncio.wait(pending)
        except TimeoutError:
            raise TimeoutError(f"the bot did not settle within {timeout}s after {what}") from None

    async def interaction_handled(self, interaction_id: int, *, timeout: float = 5.0) -> None:
        """The bot received this interaction and its command, autocomplete, button or modal handler returned."""

        def received() -> bool:
            return any(name == "interaction" and args[0].id == interaction_id for name, args in self.received)

        await self.settled(received, timeout=timeout, what=f"interaction {interaction_id}")

    async def reaction_handled(self, message_id: int, user_id: int, emoji: str, *, timeout: float = 5.0) -> None:
        """The bot received this reaction and its reaction listeners returned."""

        def received() -> bool:
            return any(
                name == "raw_reaction_add"
                and (args[0].message_id, args[0].user_id, str(args[0].emoji)) == (message_id, user_id, emoji)
                for name, args in self.received
            )

        await self.settled(received, timeout=timeout, what=f"the {emoji} reaction on message {message_id}")


def _handler_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {
        task
        for task in asyncio.all_tasks()
        if task is not current and not task.done() and task.get_name().startswith(HANDLER_TASKS)
    }


@dataclass
class World:
    discord: FakeDiscord
    comet: FakeCometAPI
    database_url: str
    env: dict[str, str] = field(default_factory=dict)
    bots: list[TestBot] = field(default_factory=list)  # the bots running now, oldest first

    def settings(self, **overrides: str) -> Settings:
        environ = {
            "DISCORD_TOKEN": TOKEN,
            "COMETAPI_KEY": KEY,
            "COMETAPI_BASE_URL": self.comet.base_url,
            "DISCORD_API_BASE_URL": self.discord.api_base_url,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            "DATABASE_URL": self.database_url,
            "USER_COOLDOWN": "0",
            "MAX_JOBS_PER_USER": "10",
            "COMETAPI_READ_TIMEOUT": "5",
            **self.env,
            **overrides,
        }
        return load_settings(environ)

    @contextlib.asynccontextmanager
    async def bot(self, **overrides: str) -> AsyncIterator[TestBot]:
        """Start a bot process-alike; closed (jobs left resumable) on exit."""
        settings = self.settings(**overrides)
        saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.discord.api_base_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.discord.gateway_url)
        bot = TestBot(settings)
        task = asyncio.create_task(bot.start(TOKEN))
        self.discord.watch(task)
        try:
            async with asyncio.timeout(10):
                while not bot.is_ready():
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.01)
            self.bots.append(bot)
            yield bot
        finally:
            if bot in self.bots:
                self.bots.remove(bot)
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.discord.abort_waits(None)  # a deliberate stop, not a crash: later waits carry on
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


def option_map(**options: Any) -> Mapping[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


async def wait_status(bot: FluxBot, job_id: str, *statuses: str, timeout: float = 10.0) -> Any:
    """The job once it reaches one of `statuses` (the store is written just after Discord is)."""
    async with asyncio.timeout(timeout):
        while True:
            job = await bot.store.get_job(job_id)
            if job is not None and job.status in statuses:
                return job
            await asyncio.sleep(0.01)
