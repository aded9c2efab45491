"""/blend: 2 to 8 images (10 for flex) combined by a FLUX.2 model, the prompt optional, end to end."""

from __future__ import annotations

import re

from services.jobs.kinds.blend import BLEND_PROMPT
from tests.helpers import assert_refused_privately, blend, delivered, setup_guild

PRO2 = "black-forest-labs/flux-2-pro"


async def test_blend_sends_every_image_as_a_reference_to_flux_2_pro(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        files, handle = await blend(world, guild, channel, alice, 3)
        final, job = await delivered(world, bot, handle)
    assert job.status == "succeeded"
    assert job.model == PRO2
    sent = world.comet.creates()[-1].json["input"]
    assert sent["input_images"] == [f["url"] for f in files]  # all of them, in order
    assert sent["prompt"] == BLEND_PROMPT  # no prompt given: FLUX.2 still needs one
    assert final.attachments


async def test_blend_takes_ten_images_with_flex_and_parameters_in_its_prompt(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        _, handle = await blend(
            world, guild, channel, alice, 10, prompt="the cat from image 1 in every room --ar 16:9 --seed 9",
            model="black-forest-labs/flux-2-flex",
        )  # fmt: skip
        _, job = await delivered(world, bot, handle)
    assert job.status == "succeeded"
    sent = world.comet.creates()[-1].json["input"]
    assert len(sent["input_images"]) == 10
    assert (sent["prompt"], sent["aspect_ratio"], sent["seed"]) == ("the cat from image 1 in every room", "16:9", 9)


async def test_blend_refusals_say_what_is_allowed_and_cost_nothing(world):
    guild, _, alice = setup_guild(world, "alice")
    cases = [
        (9, {}, "flux-2-pro takes up to 8 input image(s), got 9 (flux-2-flex takes up to 10)"),
        (5, {"model": "flux-2-dev"}, "flux-2-dev takes up to 4"),
        (2, {"model": "flux-kontext-pro"}, "flux-kontext-pro takes up to 1 input image"),
        (2, {"model": "flux-schnell"}, "text only"),
        (2, {"prompt": "--no cats"}, "no negative prompt"),
        (2, {"resolution": "8 MP"}, "takes resolution 1 MP"),
    ]
    async with world.bot() as bot:
        for index, (count, options, message) in enumerate(cases):
            channel = world.discord.add_channel(guild, f"case-{index}")
            _, handle = await blend(world, guild, channel, alice, count, **options)
            await assert_refused_privately(world, bot, handle, alice, re.escape(message))
    assert world.comet.creates() == []


async def test_blend_where_no_model_takes_several_images(world):
    guild, channel, alice = setup_guild(world, "alice")
    admin = world.discord.add_user("admin")
    world.discord.add_member(guild, admin, permissions=["manage_guild"])
    async with world.bot() as bot:
        for model in ("flux-2-pro", "flux-2-flex", "flux-2-dev"):
            settings = await world.discord.slash_command(
                guild, world.discord.add_channel(guild, f"admin-{model}"), admin, "imagine-settings models",
                {"deny": model},
            )  # fmt: skip
            await settings.wait_response()
        _, handle = await blend(world, guild, channel, alice, 2)
        await assert_refused_privately(world, bot, handle, alice, "allows no model that blends images")
    assert world.comet.creates() == []
