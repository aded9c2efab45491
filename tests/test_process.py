"""`python bot.py` as a real process against the fakes: SIGKILL mid-job, restart, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from fakes.cometapi import Outcome
from tests.campaign import ROOT, bot_env, count_in_log
from tests.e2e import KEY, TOKEN


async def start_bot(world, tmp_path: Path, log: Path) -> asyncio.subprocess.Process:
    """Start `python bot.py` and wait until it says it is logged in (its log is appended to `log`)."""
    ready_before = count_in_log(log, "Logged in as")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=bot_env(world, tmp_path),
        stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(30):
        while count_in_log(log, "Logged in as") == ready_before:
            assert process.returncode is None, log.read_text()
            await asyncio.sleep(0.05)
    return process


async def test_killed_mid_job_and_restarted_finishes_with_one_create(world, tmp_path):
    d = world.discord
    guild = d.add_guild("g")
    channel = d.add_channel(guild, "images")
    alice = d.add_user("alice")
    d.add_member(guild, alice)
    world.comet.queue_outcome(Outcome(duration=4.0))
    log = tmp_path / "bot.log"

    first = await start_bot(world, tmp_path, log)
    handle = await d.slash_command(guild, channel, alice, "imagine", {"prompt": "a fox", "num_outputs": 2})
    await handle.wait_response(timeout=10)
    # wait_for takes anything but None/False as done, so these predicates return booleans.
    await d.wait_for(lambda: len(world.comet.creates()) == 1, timeout=15, what="the create")
    # A poll of the prediction (not the start-up key check, which reads an id that does not exist): id stored.
    await d.wait_for(lambda: any(p.gets for p in world.comet.predictions.values()), timeout=15, what="a poll")
    first.send_signal(signal.SIGKILL)
    assert await first.wait() == -signal.SIGKILL

    second = await start_bot(world, tmp_path, log)
    try:
        final = await handle.wait_original(lambda m: len(m.attachments) == 2, timeout=30)
    finally:
        second.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(second.wait(), timeout=30)
    assert code == 0, log.read_text()
    assert len(world.comet.creates()) == 1
    [prediction_id] = list(world.comet.predictions)
    served = [world.comet.file_bytes(f"{world.comet.base_url}/files/{prediction_id}/{n}.webp") for n in range(2)]
    assert final.attachment_bytes() == served
    text = log.read_text()
    assert "Resumed 1 unfinished job" in text
    assert KEY not in text
    assert TOKEN not in text
    assert "Traceback" not in text
