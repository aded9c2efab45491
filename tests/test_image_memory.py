"""Images past the memory budget (IMAGE_MEMORY_MB) wait in temporary files and are delivered from there, whole;
the files are gone once the job is delivered. End to end: real bot, fake Discord, fake CometAPI."""

from __future__ import annotations

import gc
import os

from tests.e2e import wait_status
from tests.fakes.cometapi import Outcome


async def test_images_past_the_memory_budget_are_posted_whole_from_temporary_files(world, tmp_path):
    d = world.discord
    guild = d.add_guild("art club")
    channel = d.add_channel(guild, "images")
    alice = d.add_user("alice")
    d.add_member(guild, alice)
    world.comet.queue_outcome(Outcome(duration=0.3, file_size=200_000))
    # Room for one and a half 200 kB images in memory: the others go to files, some half-way through their
    # download (in tmp_path, to see them removed).
    async with world.bot(IMAGE_MEMORY_MB="0.3") as bot:
        spool = bot.service.downloader.spool
        spool.directory = str(tmp_path)
        handle = await d.slash_command(
            guild, channel, alice, "imagine", {"prompt": "a red fox", "num_outputs": 4, "output_format": "png"}
        )
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await bot.store.job_by_message(final.id)
        assert job is not None
        job = await wait_status(bot, job.id, "succeeded", "failed")
        assert job.status == "succeeded"
        assert spool.budget.spilled >= 2
        gc.collect()
        assert [name for name in os.listdir(tmp_path) if name.startswith("flux-image-")] == []
        assert spool.budget.used == 0
    prediction = world.comet.predictions[job.prediction_id]
    urls = [f"{world.comet.base_url}/files/{job.prediction_id}/{n}.{prediction.ext}" for n in range(4)]
    assert final.attachment_bytes() == [world.comet.file_bytes(url) for url in urls]  # in order, byte for byte
    assert [a.filename for a in final.attachments] == [f"flux-{job.id[:8]}-{n}.png" for n in range(1, 5)]
