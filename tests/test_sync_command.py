"""`python bot.py sync [--guild ID]` pushes the commands now, through the real process entry point."""

from __future__ import annotations

import asyncio
import sys

from tests.campaign import ROOT, bot_env


async def run_sync(world, tmp_path, *args: str) -> tuple[int, str]:
    env = bot_env(world, tmp_path)
    del env["LOG_LEVEL"]  # what `sync` prints by default is what is checked
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


async def test_sync_to_a_server_the_bot_is_not_in_is_one_line_and_exit_2(world, tmp_path):
    code, out = await run_sync(world, tmp_path, "--guild", "123456789012345678")
    assert code == 2, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if not line.startswith("20")]  # the rest are log lines
    assert errors == [
        "error: --guild 123456789012345678: the bot is not in that server, or it does not exist "
        "(Discord answered HTTP 403); invite it first"
    ], out
    assert world.discord.commands() == []


async def test_sync_clear_removes_a_servers_copies_and_keeps_the_global_commands(world, tmp_path):
    guild = world.discord.add_guild("test server")
    assert (await run_sync(world, tmp_path))[0] == 0
    assert (await run_sync(world, tmp_path, "--guild", str(guild.id)))[0] == 0
    assert world.discord.commands(guild.id)  # listed twice in that server now: guild copies and global ones

    code, out = await run_sync(world, tmp_path, "--guild", str(guild.id), "--clear")
    assert code == 0, out
    assert "Removed" in out
    assert world.discord.commands(guild.id) == []
    assert {c["name"] for c in world.discord.commands()} >= {"imagine", "Edit with FLUX"}


async def test_sync_clear_without_a_guild_is_refused(world, tmp_path):
    code, out = await run_sync(world, tmp_path, "--clear")
    assert code == 2, out
    assert "--clear needs --guild" in out
    assert world.discord.requests_matching("PUT", r"/applications/\d+/commands$") == []
