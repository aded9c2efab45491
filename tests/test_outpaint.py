"""Zoom Out, Pan and Make Square end to end: the canvas sent, the original's pixels exactly kept in the result,
refusals at no cost, the buttons after a restart."""

from __future__ import annotations

import base64

import pytest

from cli.harness import wait_status
from fakes.cometapi import Outcome
from fakes.discord_interactions import find_component
from services.errors import BadInput
from services.imaging.outpaint import Placement, zoom
from services.jobs.input_refs import referenced
from services.jobs.kinds.outpaint import FILL_INSTRUCTION, ZoomOut
from services.jobs.kinds.region import Region
from services.jobs.kinds.upscale import SUBTLE_INSTRUCTION, instruction, subject
from services.rules.catalogue import MAX_PROMPT_CHARS
from tests.card import button_rows, card
from tests.helpers import (
    KONTEXT,
    decoded,
    delivered,
    job_shown_in,
    patterned_png,
    private_reply,
    result_of,
    set_edit_model,
    setup_guild,
    show_instead,
)

FLUX2 = "black-forest-labs/flux-2-pro"


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
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
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


async def test_pan_adds_half_the_image_on_that_side_and_keeps_the_original(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        original = show_instead(world, result, patterned_png((96, 64)))
        panned = {
            direction: await click(world, bot, result, f"pan_{direction}", parent, alice)
            for direction in ("left", "right", "up", "down")
        }
    expected = {
        "left": ((144, 64), (48, 0)),
        "right": ((144, 64), (0, 0)),
        "up": ((96, 96), (0, 32)),
        "down": ((96, 96), (0, 0)),
    }
    for direction, (message, job) in panned.items():
        size, corner = expected[direction]
        assert job.kind == "pan" and job.extra.restore.placement == (*size, *corner, 96, 64)
        assert decoded(message.attachments[0].data).size == size, direction
        assert_original_kept(message, original, corner)
    assert len(world.comet.creates()) == 1 + 4


async def test_make_square_centres_the_image_on_a_square(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        original = show_instead(world, result, patterned_png((60, 100)))
        message, job = await click(world, bot, result, "make_square", parent, alice)
        canvas = await sent_canvas(world, bot, job)
    assert job.kind == "square"
    assert canvas.size == decoded(message.attachments[0].data).size == (100, 100)
    assert_original_kept(message, original, (20, 0))


async def test_make_square_of_a_square_image_is_refused_privately_at_no_cost(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        handle = await world.discord.click_button(result, f"flux:make_square:{parent.id}", alice)
        reply = await private_reply(world, handle)
        await bot.interaction_handled(handle.id)
        jobs = await bot.store.recent_jobs(user_id=alice.id, limit=10)
    assert reply.ephemeral and "already square" in reply.text
    assert len(world.comet.creates()) == 1
    assert jobs == [parent]


async def open_custom_zoom(world, result, parent, user):
    click = await world.discord.click_button(result, f"flux:zoom_custom:{parent.id}", user)
    await click.wait_response()
    assert click.modal is not None, "Custom Zoom opens a form"
    return click


def text_input(modal, custom_id: str) -> dict[str, object]:
    """The modal's text input of that custom id, wherever it sits (a row or a label)."""
    found: list[dict[str, object]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("custom_id") == custom_id:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(modal)
    [field] = found
    return field


async def test_custom_zoom_takes_the_longest_prompt_its_form_allows(world):
    """The form's limit leaves room for the instruction the model is given around the prompt: a prompt as long as
    the form takes is not refused as too long."""
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        show_instead(world, result, patterned_png((80, 40)))
        click = await open_custom_zoom(world, result, parent, alice)
        longest = "a" * int(str(text_input(click.modal, "prompt")["max_length"]))
        submitted = await world.discord.submit_modal(click, {"factor": "1.25", "prompt": longest}, user_id=alice.id)
        _, job = await delivered(world, bot, submitted)
    assert job.input["prompt"].endswith(longest) and len(job.input["prompt"]) <= MAX_PROMPT_CHARS


async def test_custom_zoom_takes_a_factor_and_a_new_prompt(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        original = show_instead(world, result, patterned_png((80, 40)))
        click = await open_custom_zoom(world, result, parent, alice)
        values = {"factor": "1.25", "prompt": "a harbour at night"}
        message, job = await delivered(world, bot, await world.discord.submit_modal(click, values, user_id=alice.id))
    assert job.kind == "zoom" and job.input["prompt"].endswith("a harbour at night")
    assert decoded(message.attachments[0].data).size == (100, 50)
    assert_original_kept(message, original, (10, 5))


async def test_custom_zoom_refuses_a_factor_outside_1_to_2_privately_at_no_cost(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        for factor in ("3", "0.5", "big", "nan"):
            click = await open_custom_zoom(world, result, parent, alice)
            submitted = await world.discord.submit_modal(click, {"factor": factor}, user_id=alice.id)
            reply = await private_reply(world, submitted)
            await bot.interaction_handled(submitted.id)
            assert reply.ephemeral and "more than 1.0 and at most 2.0" in reply.text, factor
        jobs = await bot.store.recent_jobs(user_id=alice.id, limit=10)
    assert len(world.comet.creates()) == 1
    assert jobs == [parent]


async def test_a_custom_zoom_that_adds_no_border_is_refused_privately_at_no_cost(world):
    """A factor of 1.0 (or one so close to it that the canvas, in whole pixels, is the image's own size) would pay
    the model to give back the original: refused like Make Square of a square image; 1.1 still zooms."""
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        original = show_instead(world, result, patterned_png((80, 40)))
        refusals = {}
        for factor in ("1.0", "1", "1.005"):  # 1.005: 80.4 x 40.2, no whole pixel added
            click = await open_custom_zoom(world, result, parent, alice)
            label = find_component(click.modal["components"], "factor")
            assert "more than 1.0" in str(label) and "(1.0 to 2.0)" not in str(label)  # the form's stated range
            submitted = await world.discord.submit_modal(click, {"factor": factor}, user_id=alice.id)
            refusals[factor] = await private_reply(world, submitted)
            await bot.interaction_handled(submitted.id)
        jobs = await bot.store.recent_jobs(user_id=alice.id, limit=10)
        creates = len(world.comet.creates())
        click = await open_custom_zoom(world, result, parent, alice)
        message, job = await delivered(
            world, bot, await world.discord.submit_modal(click, {"factor": "1.1"}, user_id=alice.id)
        )
    for factor, reply in refusals.items():
        assert reply.ephemeral, factor
    assert "more than 1.0 and at most 2.0" in refusals["1.0"].text and "more than 1.0" in refusals["1"].text
    assert "too small to add anything" in refusals["1.005"].text, refusals["1.005"].text
    assert creates == 1 and jobs == [parent]  # nothing stored, nothing sent
    assert job.kind == "zoom" and len(world.comet.creates()) == 2
    assert decoded(message.attachments[0].data).size == (88, 44)
    assert_original_kept(message, original, (4, 2))


def test_a_zoom_refuses_a_canvas_with_no_border_in_whole_pixels():
    for factor in (1.0, 0.9999):
        with pytest.raises(BadInput, match=r"more than 1\.0"):
            zoom((100, 60), factor)
    with pytest.raises(BadInput, match="too small to add anything"):
        zoom((100, 60), 1.004)  # 100.4 x 60.24
    assert zoom((1000, 60), 1.004) == Placement((1004, 60), 2, 0, (1000, 60))  # a border on two sides is one
    assert zoom((100, 60), 1.01) == Placement((101, 61), 0, 0, (100, 60))


async def test_refusals_cost_nothing(world):
    guild, channel, admin, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        # A server that allows no model able to extend an image.
        for model in ("flux-kontext-pro", "flux-kontext-max", "flux-2-pro", "flux-2-flex", "flux-2-dev"):
            denied = await world.discord.slash_command(
                guild, channel, admin, "imagine-settings models", {"deny": model}
            )
            await denied.wait_response()
        handle = await world.discord.click_button(result, f"flux:zoom_double:{parent.id}", alice)
        assert "allows no model that can extend an image" in (await private_reply(world, handle)).content
        await bot.interaction_handled(handle.id)
        allowed = await world.discord.slash_command(
            guild, channel, admin, "imagine-settings models", {"allow": "flux-kontext-pro"}
        )
        await allowed.wait_response()
        # A budget the zoom would go over (flux-schnell's $0.003 spent, Kontext's $0.04 asked).
        budget = await world.discord.slash_command(
            guild, channel, admin, "imagine-settings budgets", {"usd_per_user_per_day": 0.02}
        )
        await budget.wait_response()
        handle = await world.discord.click_button(result, f"flux:pan_left:{parent.id}", alice)
        assert "budget" in (await private_reply(world, handle)).content
        await bot.interaction_handled(handle.id)
        await (
            await world.discord.slash_command(
                guild, channel, admin, "imagine-settings budgets", {"usd_per_user_per_day": 0}
            )
        ).wait_response()
        # An image whose link has expired (days later, the message's old payload).
        world.discord.cdn_time_shift = 3 * 86_400
        handle = await world.discord.click_button(result, f"flux:zoom_half:{parent.id}", alice)
        refusal = (await private_reply(world, handle)).content
        await bot.interaction_handled(handle.id)
        jobs = await bot.store.recent_jobs(user_id=alice.id, limit=10)
    assert "image file is gone" in refusal, refusal
    assert len(world.comet.creates()) == 1
    assert jobs == [parent]


async def test_the_buttons_work_after_a_restart(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
    offered = [c["custom_id"] for row in button_rows(world.discord.message(result.id)) for c in row]
    for action in ("zoom_double", "zoom_half", "zoom_custom", "make_square", "pan_left", "pan_right", "pan_up"):
        assert f"flux:{action}:{parent.id}" in offered
    async with world.bot() as bot:  # a new process: nothing cached
        original = show_instead(world, result, patterned_png((64, 64)))
        message, job = await click(world, bot, result, "zoom_half", parent, alice)
    assert (job.kind, job.parent_id) == ("zoom", parent.id)
    assert_original_kept(message, original, (16, 16))


async def test_a_zoom_in_flight_at_a_restart_is_delivered_with_the_original_kept(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        original = show_instead(world, result, patterned_png((50, 30)))
        world.comet.queue_outcome(Outcome(duration=2.0))
        handle = await world.discord.click_button(result, f"flux:pan_down:{parent.id}", alice)
        await world.discord.wait_for(lambda: len(world.comet.creates()) == 2, timeout=10)
        message = await handle.wait_original(lambda m: "Starting" in m.text or "Generating" in m.text)
        job = await wait_status(bot, (await job_shown_in(bot, message.id)).id, "running")
    async with world.bot() as bot:  # a new process picks the job up by its prediction id
        job = await wait_status(bot, job.id, "succeeded", "failed")
    assert job.status == "succeeded" and len(world.comet.creates()) == 2
    final = world.discord.message(message.id)
    assert decoded(final.attachments[0].data).size == (50, 45)
    assert_original_kept(final, original, (0, 0))


async def test_a_reroll_of_a_zoom_zooms_again_keeping_the_original(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        original = show_instead(world, result, patterned_png((40, 40)))
        zoomed, zoom_job = await click(world, bot, result, "zoom_double", parent, alice)
        message, reroll = await click(world, bot, zoomed, "reroll", zoom_job, alice)
    assert (reroll.kind, reroll.parent_id) == ("reroll", zoom_job.id)
    assert reroll.input["input_image"] == zoom_job.input["input_image"]  # the same canvas, a new seed
    assert reroll.input["seed"] != zoom_job.input["seed"]
    assert decoded(message.attachments[0].data).size == (80, 80)
    assert_original_kept(message, original, (20, 20))


async def test_on_flux_2_the_canvas_goes_in_input_images_shaped_and_sized_by_it(world):

    guild, channel, admin, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        await set_edit_model(world, guild, admin, "flux-2-pro")
        result, parent = await result_of(world, bot, guild, channel, alice)
        original = show_instead(world, result, patterned_png((64, 48)))
        message, job = await click(world, bot, result, "zoom_half", parent, alice)
        canvas = await sent_canvas(world, bot, job)
    sent = world.comet.creates()[-1].json["input"]
    assert job.model == FLUX2 and len(sent["input_images"]) == 1
    assert (sent["aspect_ratio"], sent["resolution"], sent["output_format"]) == (("match_input_image",) * 2 + ("png",))
    assert canvas.size == (96, 72)
    assert job.extra.input_sizes == ((96, 72),)  # what FLUX.2 is priced by
    assert_original_kept(message, original, (16, 12))


def sent_prompt(world):
    """The prompt of the newest create the API got."""
    return world.comet.creates()[-1].json["input"]["prompt"]


async def test_zooming_a_zoom_wraps_the_original_subject_in_one_instruction(world):
    """The second zoom (and a pan after it) asks with what the user asked for, not the zoom's own instruction."""
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, prompt="a lighthouse")
        zoomed, first = await click(world, bot, result, "zoom_double", parent, alice)
        again, second = await click(world, bot, zoomed, "zoom_double", first, alice)
        second_sent = sent_prompt(world)
        pan_message, panned = await click(world, bot, again, "pan_left", second, alice)
        pan_sent = sent_prompt(world)
        vary = await world.discord.click_button(pan_message, f"flux:vary:{panned.id}:1:strong", alice)
        _, varied = await delivered(world, bot, vary)
    expected = FILL_INSTRUCTION + "a lighthouse"
    assert first.input["prompt"] == expected
    assert second_sent == second.input["prompt"] == expected
    assert pan_sent == panned.input["prompt"] == expected
    assert pan_sent.count("Outpaint:") == 1
    assert (varied.kind, varied.input["prompt"]) == ("variation", "a lighthouse")  # the subject alone
    # People read what they asked for, not the instruction the model was given.
    assert card(again).prompt == "a lighthouse", card(again).prompt


async def test_zooming_a_region_or_a_subtle_upscale_names_the_subject_they_came_from(world):
    """Neither a region's change nor a subtle upscale says what the picture shows: the job they came from does."""
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, prompt="a lighthouse")
        form = await world.discord.click_button(result, f"flux:vary_region:{parent.id}", alice)
        await form.wait_response()
        values = {"cells": ["5"], "instruction": "a red sailing boat"}
        varied, region = await delivered(world, bot, await world.discord.submit_modal(form, values, user_id=alice.id))
        zoomed, zoom = await click(world, bot, varied, "zoom_half", region, alice)
        zoom_sent = sent_prompt(world)
        upscaled, upscale = await delivered(
            world, bot, await world.discord.click_button(zoomed, f"flux:upscale:{zoom.id}:1:subtle", alice)
        )
        _, square = await click(world, bot, show_wide(world, upscaled), "make_square", upscale, alice)
        square_sent = sent_prompt(world)
    assert "make this change: a red sailing boat" in region.input["prompt"]
    assert zoom_sent == zoom.input["prompt"] == FILL_INSTRUCTION + "a lighthouse"
    assert upscale.input["prompt"] == SUBTLE_INSTRUCTION
    assert square_sent == square.input["prompt"] == FILL_INSTRUCTION + "a lighthouse"


def show_wide(world, message):
    show_instead(world, message, patterned_png((64, 32)))
    return message


async def test_a_zoom_of_a_long_prompt_cuts_it_to_fit_rather_than_refusing_it(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    long = ("a lighthouse on a cliff above a stormy sea, " * 50)[:1990].strip()
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, prompt=long)
        _, job = await click(world, bot, result, "zoom_double", parent, alice)
    sent = sent_prompt(world)
    assert job.input["prompt"] == sent
    assert parent.input["prompt"] == long
    assert len(sent) == MAX_PROMPT_CHARS and sent.startswith(FILL_INSTRUCTION + long[:100]) and sent.endswith("…")


def test_the_subject_of_a_prompt_drops_every_instruction_of_ours_however_deep():
    zoom, region = ZoomOut(1), Region((5,), 1)
    assert subject("a lighthouse") == "a lighthouse"
    assert subject(zoom.prompt(zoom.prompt(zoom.prompt("a lighthouse")))) == "a lighthouse"  # as stored before
    assert subject(instruction(zoom.prompt("a lighthouse"), creative=True)) == "a lighthouse"
    assert subject(zoom.prompt(instruction("a lighthouse", creative=True))) == "a lighthouse"
    for nothing in (zoom.prompt(""), region.prompt("a boat"), zoom.prompt(region.prompt("a boat")), SUBTLE_INSTRUCTION):
        assert subject(nothing) == "", nothing
    assert subject(zoom.prompt(instruction(SUBTLE_INSTRUCTION, creative=True))) == ""
    assert subject("make this change: more light") == "make this change: more light"  # the user's own words
