"""`python bot.py sync [--guild ID]` pushes the commands now, through the real process entry point."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.e2e import KEY, TOKEN

ROOT = Path(__file__).resolve().parent.parent


async def run_sync(world, tmp_path, *args: str) -> tuple[int, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": TOKEN,
        "COMETAPI_KEY": KEY,
        "COMETAPI_BASE_URL": world.comet.base_url,
        "DISCORD_API_BASE_URL": world.discord.api_base_url,
        "DISCORD_GATEWAY_URL": world.discord.gateway_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), "sync", *args, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode()


async def test_sync_to_one_guild_and_globally(world, tmp_path):
    guild = world.discord.add_guild("test server")
    code, out = await run_sync(world, tmp_path, "--guild", str(guild.id))
    assert code == 0, out
    assert "to guild" in out
    names = {c["name"] for c in world.discord.commands(guild.id)}
    assert {"imagine", "imagine-settings", "imagine-prefs", "Edit with FLUX"} <= names
    assert world.discord.commands() == []  # nothing global yet

    code, out = await run_sync(world, tmp_path)
    assert code == 0, out
    assert "globally" in out
    assert {c["name"] for c in world.discord.commands()} >= {"imagine", "Edit with FLUX"}
    assert world.discord.requests_matching("PUT", r"/applications/\d+/commands$")
