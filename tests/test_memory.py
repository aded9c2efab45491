"""What jobs leave in memory. Images past the memory budget (IMAGE_MEMORY_MB) wait in temporary files and are
delivered from there, whole, and the files are gone once the job is delivered; the buttons under job messages are
not kept by discord.py. End to end: real bot, fake Discord, fake CometAPI."""

from __future__ import annotations

import asyncio
import gc
import os

from cli.harness import wait_status
from fakes.cometapi import Outcome
from tests.helpers import job_shown_in
from ui.display import UPLOADS_AT_ONCE


def setup(world):
    d = world.discord
    guild = d.add_guild("art club")
    channel = d.add_channel(guild, "images")
    alice = d.add_user("alice")
    d.add_member(guild, alice)
    return d, guild, channel, alice


async def test_images_past_the_memory_budget_are_posted_whole_from_temporary_files(world, tmp_path):
    d, guild, channel, alice = setup(world)
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
        job = await job_shown_in(bot, final.id)
        assert job is not None
        job = await wait_status(bot, job.id, "succeeded", "failed")
        assert job.status == "succeeded"
        assert spool.budget.spilled >= 2
        gc.collect()
        await spool.idle()  # (files are removed in a worker thread)
        assert [name for name in os.listdir(tmp_path) if name.startswith("flux-image-")] == []
        assert spool.budget.used == 0
    prediction = world.comet.predictions[job.prediction_id]
    urls = [f"{world.comet.base_url}/files/{job.prediction_id}/{n}.{prediction.ext}" for n in range(4)]
    assert final.attachment_bytes() == [world.comet.file_bytes(url) for url in urls]  # in order, byte for byte
    assert [a.filename for a in final.attachments] == [f"flux-{job.id[:8]}-{n}.png" for n in range(1, 5)]


async def test_job_messages_leave_no_buttons_behind_in_discord_py(world):
    """discord.py keeps a view sent with a message (timeout=None) for as long as the process runs, keyed by the
    message: one per job, for good. The job's buttons are dynamic items, so nothing needs them kept."""
    d, guild, channel, alice = setup(world)
    world.comet.queue_outcome(Outcome(duration=1.6))  # long enough for progress edits with the Cancel button
    async with world.bot() as bot:
        handle = await d.slash_command(guild, channel, alice, "imagine", {"prompt": "a red fox", "num_outputs": 2})
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await job_shown_in(bot, final.id)
        assert job is not None
        await wait_status(bot, job.id, "succeeded")
        assert any("Cancel" in str(e.components) for e in d.edits_of(final.id))  # progress had the button
        assert bot.persistent_views == []
        # The buttons still work: a reroll makes a new job.
        reroll = next(c for c in custom_ids(final.components) if c.startswith("flux:reroll:"))
        pressed = await d.click_button(final.id, reroll, alice.id)
        await bot.interaction_handled(pressed.id)
        assert await bot.store.count_jobs(user_id=alice.id) == 2


def custom_ids(components):
    for comp in components:
        if comp.get("custom_id"):
            yield comp["custom_id"]
        yield from custom_ids(comp.get("components") or [])


async def test_results_past_the_upload_limit_wait_for_one_to_be_posted(world):
    """Each upload under way holds socket buffers outside the images' budget: a burst's results take turns."""
    d = world.discord
    guild = d.add_guild("art club")
    channel = d.add_channel(guild, "images")
    members = [d.add_user(f"member {n}") for n in range(UPLOADS_AT_ONCE + 8)]
    for member in members:
        d.add_member(guild, member)
    world.comet.queue_outcome(Outcome(duration=0.05), times=len(members))
    # Every result is ready at the same moment, however slow the machine: the downloads are held until all have
    # been asked for. Then each upload is answered 2 s after it arrives.
    downloads = asyncio.Event()
    world.comet.inject("file", status=None, gate=downloads, times=len(members))
    d.inject("PATCH", r"/webhooks/", None, delay=2.0, times=None, with_files=True)
    async with world.bot():
        handles = await asyncio.gather(
            *(d.slash_command(guild, channel, member, "imagine", {"prompt": f"a red fox, take {n}"})
              for n, member in enumerate(members))
        )  # fmt: skip
        await world.comet.wait_for(lambda: len(world.comet.requests_for("file")) >= len(members), timeout=30)
        downloads.set()
        for handle in handles:
            await handle.wait_original(lambda m: bool(m.attachments), timeout=60)
    uploads = [r for r in d.requests if r.files]
    assert len(uploads) == len(members)
    in_the_air = [sum(1 for other in uploads if other.at <= r.at < (other.answered_at or 0)) for r in uploads]
    assert max(in_the_air) == UPLOADS_AT_ONCE  # as many as allowed at once, and never more
