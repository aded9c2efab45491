"""`python bot.py` as a real process against the fakes: SIGKILL mid-job, restart, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

from cli.harness import KEY, TOKEN
from fakes.cometapi import Outcome
from services.gc_tuning import YOUNG_THRESHOLD
from tests.campaign import ROOT, bot_env, count_in_log, start_bot


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
    collector = re.findall(r"Garbage collector: a young collection every (\d+) allocations; (\d+) start-up", text)
    assert collector and all(int(every) == YOUNG_THRESHOLD and int(frozen) > 0 for every, frozen in collector)
    assert KEY not in text
    assert TOKEN not in text
    assert "Traceback" not in text


async def test_sigterm_stops_a_bot_that_cannot_reach_the_gateway(world, tmp_path):
    """Logged in, but the gateway is out of reach: discord.py would retry it for ever, closed or not."""
    log = tmp_path / "bot.log"
    env = {**bot_env(world, tmp_path), "DISCORD_GATEWAY_URL": "ws://127.0.0.1:1/gateway"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env,
        stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            while count_in_log(log, "Retrying") == 0:  # discord.py: "Failed to connect ... Retrying..."
                assert process.returncode is None, log.read_text()
                await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, log.read_text()[-3000:]
