"""Zoom Out, Pan and Make Square end to end: the canvas sent, the original's pixels exactly kept in the result,
refusals at no cost, the buttons after a restart."""

from __future__ import annotations

import base64
import io

from PIL import Image

from services.jobs.input_refs import referenced
from tests.test_edit import KONTEXT
from tests.test_variations import delivered, result_of, setup_guild

FLUX2 = "black-forest-labs/flux-2-pro"


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


async def click(world, bot, result, action, job, user):
    handle = await world.discord.click_button(result, f"flux:{action}:{job.id}", user)
    return await delivered(world, bot, handle)


async def sent_canvas(world, bot, job):
    """The canvas the API got (inline or as the stored bytes), decoded."""
    sent = world.comet.creates()[-1].json["input"]
    value = sent.get("input_image") or sent["input_images"][0]
    if value.startswith("data:"):
        return decoded(base64.b64decode(value.split(",", 1)[1]))
    stored = await bot.store.get_input_image(referenced(value))
    return decoded(stored.data)


def assert_original_kept(message, original, box):
    """The posted image holds the original's pixels, exactly, at `box`'s corner."""
    image = decoded(message.attachments[0].data)
    x, y = box
    inside = image.crop((x, y, x + original.width, y + original.height))
    assert inside.tobytes() == original.tobytes()


async def test_zoom_out_2x_keeps_the_original_in_the_middle_of_a_canvas_twice_its_size(world):
    guild, channel, _, alice, _ = setup_guild(world)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        original = decoded(result.attachments[0].data)
        message, job = await click(world, bot, result, "zoom_double", parent, alice)
        canvas = await sent_canvas(world, bot, job)
    w, h = original.size
    assert (job.kind, job.model, job.parent_id) == ("zoom", KONTEXT, parent.id)
    assert canvas.size == (2 * w, 2 * h)
    assert canvas.getpixel((0, 0)) == (128, 128, 128)  # the new area, as the instruction names it
    assert "grey border" in job.input["prompt"] and parent.input["prompt"] in job.input["prompt"]
    assert decoded(message.attachments[0].data).size == (2 * w, 2 * h)
    assert_original_kept(message, original, (w // 2, h // 2))
    assert len(world.comet.creates()) == 2
