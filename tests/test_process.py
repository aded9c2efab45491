"""`python bot.py` as a real process against the fakes: SIGKILL mid-job, restart, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from cli.harness import KEY, TOKEN
from fakes.cometapi import Outcome
from tests.campaign import start_bot


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
