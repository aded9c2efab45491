"""The whole bot with no keys: the fake Discord, the fake CometAPI and the real FluxBot wired to them in one process.

Used by `python -m cli.screens` (the README's pictures) and `python -m cli.playground` (try it by hand). Only
Discord and CometAPI are fakes (fakes); the bot, discord.py and the store (SQLite in a temporary folder) are
the real ones, started through the tests' harness (cli/harness.py).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cli.harness import KEY, TestBot, World
from fakes.cometapi import FakeCometAPI
from fakes.discord import FakeDiscord
from fakes.discord_models import FakeChannel, FakeGuild, FakeUser


@dataclass
class Sandbox:
    """A running bot in a server with one channel and one member (the person at the keyboard)."""

    world: World
    bot: TestBot
    guild: FakeGuild
    channel: FakeChannel
    user: FakeUser

    @property
    def discord(self) -> FakeDiscord:
        return self.world.discord

    @property
    def comet(self) -> FakeCometAPI:
        return self.world.comet

    def name_of(self, user_id: int) -> str:
        """A user's name as Discord would show a mention of them."""
        user = self.discord.users.get(user_id)
        return user.name if user is not None else str(user_id)


@contextlib.asynccontextmanager
async def sandbox(*, speed: float = 0.3, seed: int = 1, user: str = "you") -> AsyncIterator[Sandbox]:
    """Start both fakes and the bot; everything (the database included) is gone on exit.

    `speed` scales the fake models' durations (1.0 is their real speed), so progress can be seen and yet
    nobody waits half a minute for FLUX.2.
    """
    with tempfile.TemporaryDirectory(prefix="flux-sandbox-") as folder:
        async with FakeDiscord(bot_name="FLUX") as fake_discord:
            comet = FakeCometAPI(api_key=KEY, speed=speed, seed=seed)
            await comet.start()
            try:
                world = World(fake_discord, comet, f"sqlite:///{Path(folder) / 'bot.db'}")
                guild = fake_discord.add_guild("art club")
                channel = fake_discord.add_channel(guild, "images")
                member = fake_discord.add_user(user)
                fake_discord.add_member(guild, member)
                async with world.bot() as bot:
                    yield Sandbox(world, bot, guild, channel, member)
            finally:
                await comet.close()
