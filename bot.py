"""Entry point: runs the bot (ui/flux_bot.py), syncs its commands, or makes one image without Discord.

python bot.py                      run the Discord bot
python bot.py sync [--guild ID]    push the slash commands to Discord now (--clear: remove one server's copies)
python bot.py generate PROMPT ...  one prediction without Discord (see --help)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys

import aiohttp
import discord
import yarl

from cli import generate
from services.cometapi.keycheck import check_key
from services.config import Settings, configure_logging, load_settings
from services.errors import ConfigError
from services.gc_tuning import freeze_startup_objects, tune_collector
from services.malloc import tune_malloc
from services.metrics_server import check_port
from services.store.preflight import open_checked
from ui.flux_bot import FINGERPRINT_KEY, FluxBot

log = logging.getLogger("bot")


def point_discord_at(settings: Settings) -> None:
    """Send REST and gateway traffic to a proxy or a Discord-compatible server when configured."""
    if settings.discord_api_base_url:
        discord.http.Route.BASE = settings.discord_api_base_url
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def unreachable(settings: Settings, exc: BaseException) -> ConfigError:
    """Discord could not be reached to log in, as one line naming the setting that says where Discord is."""
    base = discord.http.Route.BASE
    where = base if settings.discord_api_base_url else f"{base} (DISCORD_API_BASE_URL is not set: Discord itself)"
    host = yarl.URL(base).host
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(getattr(exc, "os_error", None), socket.gaierror):
        reason = f"the name {host} does not resolve"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        why = "connection refused" if refused else (exc.os_error.strerror or str(exc.os_error))
        reason = f"cannot connect to {exc.host}:{exc.port} ({why})"
    elif isinstance(exc, discord.HTTPException):
        reason = f"the login request was answered HTTP {exc.status}, which Discord's API would not answer"
    elif isinstance(exc, TimeoutError):
        reason = "the login request timed out"
    else:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    return ConfigError(
        "DISCORD_API_BASE_URL", f"cannot reach Discord at {where}: {reason}; check the network, a proxy or this URL"
    )


async def log_in(bot: FluxBot, settings: Settings) -> None:
    """Log in (which also runs setup_hook); Discord out of reach at this point is a start-up mistake."""
    assert settings.discord_token is not None
    try:
        await bot.login(settings.discord_token.reveal())
    except (OSError, TimeoutError, aiohttp.ClientError, discord.HTTPException) as exc:
        if bot.user is not None:
            raise  # logged in: what failed later is not about reaching Discord
        raise unreachable(settings, exc) from None


async def run_bot(settings: Settings) -> None:
    point_discord_at(settings)
    # Before login: a refused key stops here; an API out of reach is only a warning (it may be back soon).
    if (warning := await check_key(settings.api())) is not None:
        log.warning("%s", warning)
    store = await open_checked(settings.database_url)  # before login: a bad DATABASE_URL is a start-up mistake
    async with FluxBot(settings, store=store) as bot:
        connection: asyncio.Future[None] | None = None

        def closed(_: asyncio.Future[None]) -> None:
            # discord.py keeps retrying a gateway it never reached, closed or not: once closed, stop waiting for it.
            if connection is not None:
                connection.cancel()

        def stop() -> None:
            asyncio.ensure_future(bot.close()).add_done_callback(closed)

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop)
        await log_in(bot, settings)
        frozen = freeze_startup_objects()  # services/gc_tuning.py
        log.info(
            "Garbage collector: a young collection every %d allocations; %d start-up objects left out",
            gc.get_threshold()[0],
            frozen,
        )
        connection = asyncio.ensure_future(bot.connect())
        await asyncio.wait({connection})
        if not connection.cancelled():
            connection.result()  # what ended the connection, if it failed


async def sync_commands(settings: Settings, guild_id: int | None, *, clear: bool = False) -> int:
    point_discord_at(settings)
    assert settings.discord_token is not None
    store = await open_checked(settings.database_url)
    async with FluxBot(settings, sync_only=True, store=store) as bot:
        await log_in(bot, settings)  # runs setup_hook, which loads the cogs
        guild = discord.Object(guild_id) if guild_id else None
        if guild is not None and not clear:
            bot.tree.copy_global_to(guild=guild)
        try:
            synced = await bot.tree.sync(guild=guild)  # with --clear the guild's list is empty: its copies go
        except (discord.Forbidden, discord.NotFound) as exc:
            if guild is None:
                raise
            # Discord answers 403 Missing Access (or 404 Unknown Guild) for a server the application is not in.
            raise ConfigError(
                f"--guild {guild_id}",
                f"the bot is not in that server, or it does not exist (Discord answered HTTP {exc.status}); "
                "invite it first",
            ) from None
        if guild is None:
            await bot.store.set_meta(FINGERPRINT_KEY, await bot.command_fingerprint())
            print(f"Synced {len(synced)} command(s) globally.")
        elif clear:
            print(f"Removed this bot's commands from guild {guild_id}; the global ones stay.")
        else:
            print(f"Synced {len(synced)} command(s) to guild {guild_id}.")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python bot.py", description="Run the FLUX image bot.")
    sub = parser.add_subparsers(dest="command")
    sync = sub.add_parser("sync", help="push the slash commands to Discord now")
    sync.add_argument("--guild", type=int, help="sync to one server only (instant), for testing")
    # Guild commands and global ones are listed side by side: once done trying, remove the server's copies.
    sync.add_argument("--clear", action="store_true", help="with --guild: remove the commands from that server")
    # generate parses its own arguments (see cli/generate.py): everything after the word is handed over as it is.
    sub.add_parser(
        "generate", help="one prediction without Discord; see `python bot.py generate --help`", add_help=False
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "generate":
        return generate.main(argv[argv.index("generate") + 1 :])
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if getattr(args, "clear", False) and not args.guild:
        parser.error("--clear needs --guild ID (global commands are what the bot keeps in sync)")
    try:
        settings = load_settings(require_discord=True)
        configure_logging(settings.log_level, settings.secrets(), stream=sys.stdout, log_format=settings.log_format)
        if settings.metrics_port is not None and args.command != "sync":
            check_port(settings.metrics_host, settings.metrics_port)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "sync":
            return asyncio.run(sync_commands(settings, args.guild, clear=args.clear))
        tune_collector()
        tuned = tune_malloc(os.environ)  # before any thread starts (services/malloc.py)
        if tuned:
            logging.getLogger(__name__).info("Memory allocator: %s", ", ".join(tuned))
        asyncio.run(run_bot(settings))
    except discord.LoginFailure:
        print("error: DISCORD_TOKEN: refused by Discord; check it in the developer portal.", file=sys.stderr)
        return 2
    except ConfigError as exc:  # found while starting: DATABASE_URL, COMETAPI_KEY, Discord out of reach, METRICS_PORT
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
