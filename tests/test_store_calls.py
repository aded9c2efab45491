"""How often one plain /imagine uses the store, from the command to the delivered result: the server's settings
and the user's preferences are read once per job (the job log line reuses what admission read), and the calls in
order are the figure docs/architecture.md gives ("the path of one /imagine")."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from tests.helpers import ephemeral_text, setup_guild

_inside = contextvars.ContextVar("inside_the_store", default=False)


def count_calls(store: Any) -> list[str]:
    """Wrap the real store's public coroutine methods on this object; returns the list their names are added to,
    in call order. A call the store makes to itself is not counted: only what its users ask of it."""
    calls: list[str] = []

    def counted(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            if _inside.get():
                return await method(*args, **kwargs)
            calls.append(name)
            token = _inside.set(True)
            try:
                return await method(*args, **kwargs)
            finally:
                _inside.reset(token)

        return call

    for name, method in inspect.getmembers(store, inspect.iscoroutinefunction):
        if not name.startswith("_"):
            setattr(store, name, counted(name, method))
    return calls


async def test_one_imagine_reads_the_servers_settings_once_and_its_store_calls_are_counted(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    log_channel = world.discord.add_channel(guild, "job-log")
    async with world.bot() as bot:
        # A server with a job log: its line is posted from the settings admission read.
        options = {"log_channel": log_channel.id}
        await ephemeral_text(
            await world.discord.slash_command(guild, channel, admin, "imagine-settings moderation", options)
        )
        calls = count_calls(bot.store)
        handle = await world.discord.slash_command(guild, channel, member, "imagine", {"prompt": "a lighthouse"})
        await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        await world.discord.wait_for(
            lambda: [m for m in world.discord.messages_in(log_channel.id) if "a lighthouse" in (m.content or "")],
            timeout=5,
            what="the job's line in the job log",
        )
        # The job's task (services/jobs/runner.py names it job-ID) ends once the job is marked succeeded.
        jobs = [task for task in asyncio.all_tasks() if re.fullmatch(r"job-[0-9a-f-]+", task.get_name())]
        assert jobs, "no job task"
        await asyncio.wait_for(asyncio.gather(*jobs), timeout=10)
        assert bot.runner.in_flight() == 0
        job_calls = list(calls)  # before the bot closes (which releases its leases and closes the store)
    assert job_calls.count("get_guild_settings") == 1, job_calls
    assert job_calls.count("get_user_prefs") == 1, job_calls
    # The settings, the preferences, the admission, the message its first line made, four steps (claim, created,
    # delivering, succeeded), and two sizes of stored input images that a job without any answers without the
    # database: docs/architecture.md.
    assert len(job_calls) <= 10, job_calls
