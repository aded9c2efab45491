"""/imagine end to end: real bot, real discord.py, fake Discord and fake CometAPI."""

from __future__ import annotations

import itertools

from tests.e2e import wait_status
from tests.fakes.cometapi import Outcome


def setup_guild(world, *, member_permissions=None):
    d = world.discord
    guild = d.add_guild("art club")
    channel = d.add_channel(guild, "images")
    alice = d.add_user("alice")
    d.add_member(guild, alice, permissions=member_permissions)
    return guild, channel, alice


async def test_imagine_defers_shows_progress_and_delivers_the_files(world):
    guild, channel, alice = setup_guild(world)
    world.comet.queue_outcome(Outcome(duration=0.6))
    async with world.bot() as bot:
        handle = await world.discord.slash_command(
            guild, channel, alice, "imagine", {"prompt": "a red fox", "num_outputs": 2, "seed": 42}
        )
        await handle.wait_response()
        assert handle.response_type == 5  # deferred, "thinking…"
        assert handle.response_delay < 3.0

        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await bot.store.job_by_message(final.id)
        assert job is not None
        job = await wait_status(bot, job.id, "succeeded", "failed")
        assert job.status == "succeeded"
        assert job.image_count == 2
        assert job.input["seed"] == 42
        assert job.input["num_outputs"] == 2

    [create] = world.comet.creates()
    assert create.json["input"]["prompt"] == "a red fox"
    prediction = world.comet.predictions[job.prediction_id]
    served = [world.comet.file_bytes(u) for u in prediction_outputs(world, job.prediction_id)]
    assert final.attachment_bytes() == served
    embed = final.embeds[0]
    assert "a red fox" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Seed"] == "42"
    assert fields["Model"] == "flux-schnell"
    assert fields["Requested by"] == f"<@{alice.id}>"
    assert prediction.gets >= 1
    progress = [e.content for e in world.discord.edits_of(final.id) if e.content]
    assert any("Generating" in text or "Starting" in text for text in progress), progress
    edit_times = [e.at for e in world.discord.edits_of(final.id)]
    progress_times = edit_times[:-1]
    assert all(b - a >= 1.4 for a, b in itertools.pairwise(progress_times))


def prediction_outputs(world, prediction_id):
    prediction = world.comet.predictions[prediction_id]
    return [f"{world.comet.base_url}/files/{prediction_id}/{n}.{prediction.ext}" for n in range(prediction.num_outputs)]
