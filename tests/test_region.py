"""Vary (Region) end to end: the cells picked in the form, the change asked, and every pixel outside the chosen
cells exactly the original's; refusals at no cost."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from services.imaging.outpaint import cells_box
from tests.helpers import decoded, delivered, patterned_png, private_reply, result_of, setup_guild, show_instead


async def open_form(world, result, parent, user):
    click = await world.discord.click_button(result, f"flux:vary_region:{parent.id}", user)
    await click.wait_response()
    assert click.modal is not None, "Vary (Region) opens a form"
    return click


async def test_only_the_chosen_cells_change(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        original = show_instead(world, result, patterned_png((90, 60)))
        click = await open_form(world, result, parent, alice)
        values = {"cells": ["1", "2"], "instruction": "a red sailing boat"}
        message, job = await delivered(world, bot, await world.discord.submit_modal(click, values, user_id=alice.id))
    assert (job.kind, job.parent_id) == ("region", parent.id)
    assert "top left, top centre part" in job.input["prompt"] and "a red sailing boat" in job.input["prompt"]
    assert job.input["input_image"] == result.attachments[0].url  # the whole image, as the user saw it
    made = decoded(message.attachments[0].data)
    assert made.size == original.size
    region = [cells_box(cell, original.size) for cell in (1, 2)]
    outside = [
        (x, y)
        for y in range(original.height)
        for x in range(original.width)
        if not any(left <= x < right and top <= y < bottom for left, top, right, bottom in region)
    ]
    assert all(made.getpixel(p) == original.getpixel(p) for p in outside)
    # Well inside the region, the model's picture shows.
    assert made.getpixel((15, 10)) != original.getpixel((15, 10))


async def test_a_form_with_no_cell_or_a_made_up_one_is_refused_privately_at_no_cost(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        click = await open_form(world, result, parent, alice)
        submitted = await world.discord.submit_modal(
            click, {"cells": ["10"], "instruction": "a boat"}, user_id=alice.id
        )
        reply = await private_reply(world, submitted)
        await bot.interaction_handled(submitted.id)
        jobs = await bot.store.recent_jobs(user_id=alice.id, limit=10)
    assert reply.ephemeral and "at least one part" in reply.text
    assert len(world.comet.creates()) == 1
    assert jobs == [parent]


def mask_png(size, white) -> bytes:
    """A black PNG of `size` with the box `white` (left, top, right, bottom) painted white."""
    image = Image.new("L", size, 0)
    if white[0] < white[2] and white[1] < white[3]:
        ImageDraw.Draw(image).rectangle((white[0], white[1], white[2] - 1, white[3] - 1), fill=255)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def test_a_mask_uploaded_in_the_form_says_where_and_is_never_sent(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    # drawn at twice the picture's size: it is scaled to the picture
    mask = world.discord.add_attachment("mask.png", mask_png((180, 120), (0, 0, 90, 120)), "image/png")
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        original = show_instead(world, result, patterned_png((90, 60)))
        click = await open_form(world, result, parent, alice)
        values = {"mask": [mask], "instruction": "a lighthouse"}
        message, job = await delivered(world, bot, await world.discord.submit_modal(click, values, user_id=alice.id))
    assert job.kind == "region" and job.extra.restore is not None and job.extra.restore.mask
    sent = world.comet.creates()[-1].json["input"]
    assert sent["input_image"] == result.attachments[0].url  # the picture alone: the model takes no mask
    assert "a lighthouse" in sent["prompt"] and "grid" not in sent["prompt"]
    made = decoded(message.attachments[0].data)
    right_half = [(x, y) for y in range(original.height) for x in range(45, original.width)]
    assert all(made.getpixel(p) == original.getpixel(p) for p in right_half)  # black in the mask: untouched
    assert made.getpixel((15, 30)) != original.getpixel((15, 30))  # well inside the white: the model's


async def test_a_mask_that_marks_nothing_or_is_no_image_is_refused_privately_at_no_cost(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    black = world.discord.add_attachment("black.png", mask_png((90, 60), (0, 0, 0, 0)), "image/png")
    text = world.discord.add_attachment("mask.txt", b"white on the left", "text/plain")
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        for mask, words in ((black, "marks nothing"), (text, "mask.txt")):
            click = await open_form(world, result, parent, alice)
            submitted = await world.discord.submit_modal(
                click, {"mask": [mask], "instruction": "a boat"}, user_id=alice.id
            )
            reply = await private_reply(world, submitted)
            await bot.interaction_handled(submitted.id)
            assert reply.ephemeral and words in reply.text, reply.text
        jobs = await bot.store.recent_jobs(user_id=alice.id, limit=10)
    assert len(world.comet.creates()) == 1
    assert jobs == [parent]
