"""/blend: 2 to 8 images (10 for flex) combined by a FLUX.2 model, the prompt optional, end to end."""

from __future__ import annotations

import re

from services.jobs.kinds.blend import BLEND_PROMPT
from tests.card import card
from tests.helpers import EPHEMERAL, assert_refused_privately, blend, delivered, png, private_reply, setup_guild

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


# --- "Blend with…" under a result -------------------------------------------------------------------------


async def blend_with(world, bot, guild, channel, user, uploads, prompt=""):
    """A fresh result, then its "Blend with…" form submitted with `uploads`."""
    handle = await world.discord.slash_command(guild, channel, user, "imagine", {"prompt": "a cat"})
    result, parent = await delivered(world, bot, handle)
    click = await world.discord.click_button(result, f"flux:blend_with:{parent.id}", user)
    await click.wait_response()
    assert click.response_type == 9, "the button opens a form"
    submitted = await world.discord.submit_modal(click, {"images": uploads, "prompt": prompt}, user_id=user.id)
    return result, parent, submitted


async def test_blend_with_a_result_sends_its_image_then_the_ones_uploaded(world):
    guild, channel, alice = setup_guild(world, "alice")
    uploads = [world.discord.add_attachment(f"room{n}.png", png(grey=10 + n), "image/png") for n in range(2)]
    async with world.bot() as bot:
        result, parent, submitted = await blend_with(world, bot, guild, channel, alice, uploads, "the cat in the room")
        final, job = await delivered(world, bot, submitted)
    assert (job.kind, job.model, job.parent_id) == ("blend", PRO2, parent.id)
    sent = world.comet.creates()[-1].json["input"]
    assert sent["input_images"] == [result.attachments[0].url, *(u["url"] for u in uploads)]
    assert sent["prompt"] == "the cat in the room"
    assert "Blend of" in str(card(final).origin)


async def test_blend_with_refuses_what_the_model_cannot_take_before_anything_is_sent(world):
    guild, channel, alice = setup_guild(world, "alice")
    eight = [world.discord.add_attachment(f"p{n}.png", png(grey=10 + n), "image/png") for n in range(8)]
    text = world.discord.add_attachment("notes.txt", b"not an image", "text/plain")
    async with world.bot() as bot:
        for uploads, words in ((eight, "takes up to 8 input image"), ([text], "notes.txt")):
            _, _, submitted = await blend_with(world, bot, guild, channel, alice, uploads)
            reply = await private_reply(world, submitted)
            await bot.interaction_handled(submitted.id)
            assert reply.flags & EPHEMERAL and words in reply.content, reply.content
    assert len(world.comet.creates()) == 2  # the two results, no blend


# --- the message menus on any image -----------------------------------------------------------------------


async def test_blend_with_flux_on_any_message_blends_its_images_and_one_image_is_refused(world):
    _, channel, alice = setup_guild(world, "alice")
    files = [(f"photo{n}.png", png(grey=10 + n)) for n in range(3)]
    photos = await world.discord.post_message(channel, alice, "my photos", files=files)
    lone = await world.discord.post_message(channel, alice, "one photo", files=files[:1])
    async with world.bot() as bot:
        final, job = await delivered(world, bot, await world.discord.message_command(photos, alice, "Blend with FLUX"))
        refused = await world.discord.message_command(lone, alice, "Blend with FLUX")
        reply = await private_reply(world, refused)
        await bot.interaction_handled(refused.id)
    assert (job.kind, job.model, job.parent_id) == ("blend", PRO2, None)
    assert world.comet.creates()[-1].json["input"]["input_images"] == [a.url for a in photos.attachments]
    assert card(final).gallery
    assert reply.flags & EPHEMERAL and "2 images or more" in reply.content
    assert len(world.comet.creates()) == 1
