"""Editing with FLUX Kontext: attachments on /imagine, ✏️ Edit on results, "Edit with FLUX" on any image."""

from __future__ import annotations

import base64

from cli.harness import wait_status
from fakes.cometapi import Outcome
from tests.card import button_rows, card, posted_by_an_older_version
from tests.helpers import (
    KONTEXT,
    delivered,
    imagine_with_image,
    job_shown_in,
    open_and_submit,
    png,
    private_reply,
    setup_guild,
)


async def test_imagine_with_an_image_sends_its_url_and_kontext_defaults(world):
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        attachment, handle = await imagine_with_image(world, guild, channel, alice, png())
        _, job = await delivered(world, bot, handle)
    sent = world.comet.creates()[-1].json["input"]
    assert sent["input_image"] == attachment["url"]
    assert sent["aspect_ratio"] == "match_input_image"
    assert sent["output_format"] == "png"
    assert sent["safety_tolerance"] <= 2
    assert job.model == KONTEXT


async def test_data_uri_mode_sends_the_bytes_inline(world):
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    picture = png(grey=200)
    async with world.bot(INPUT_IMAGE_MODE="data_uri") as bot:
        _, handle = await imagine_with_image(world, guild, channel, alice, picture)
        await delivered(world, bot, handle)
    sent = world.comet.creates()[-1].json["input"]["input_image"]
    assert sent.startswith("data:image/png;base64,")
    assert base64.b64decode(sent.split(",", 1)[1]) == picture


async def test_a_server_default_of_webp_becomes_png_for_kontext_and_says_so(world):
    guild, channel, admin, alice = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        await (
            await world.discord.slash_command(guild, channel, admin, "imagine-settings set", {"output_format": "webp"})
        ).wait_response()
        _, handle = await imagine_with_image(world, guild, channel, alice, png())
        final, _ = await delivered(world, bot, handle)
    assert world.comet.creates()[-1].json["input"]["output_format"] == "png"
    notes = card(final).notes
    assert notes
    assert "png was used" in notes[0]


async def test_kontext_without_an_image_gets_a_hint_and_costs_nothing(world):
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    async with world.bot():
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "x", "model": KONTEXT})
        await handle.wait_response()
        message = handle.original_message()
        assert message.ephemeral
        assert "flux-kontext-pro edits an image: attach one with `image`" in message.text
    assert world.comet.creates() == []


async def test_an_unreachable_attachment_is_refused_clearly(world):
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    async with world.bot():
        attachment = world.discord.add_attachment("gone.png", png(), "image/png")
        del world.discord.attachments[int(attachment["id"])]  # expired: the CDN answers 404 for it
        handle = await world.discord.slash_command(
            guild, channel, alice, "imagine", {"prompt": "x", "model": KONTEXT, "image": attachment["id"]},
            attachments=[attachment],
        )  # fmt: skip
        reply = await private_reply(world, handle)
        assert reply.ephemeral
        assert "Could not use the attached image" in reply.text
    assert world.comet.creates() == []


async def test_an_input_image_the_api_cannot_fetch_shows_the_apis_error(world):
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    world.comet.queue_outcome(Outcome(status="failed", error="Could not download input_image: HTTP 403 (expired)"))
    async with world.bot() as bot:
        _, handle = await imagine_with_image(world, guild, channel, alice, png())
        message = await handle.wait_original(lambda m: "Could not download" in m.text, timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, message.id)).id, "failed")
    assert "The model could not make this image" in message.text
    assert job.status == "failed"


async def test_edit_button_runs_kontext_on_the_result_and_links_the_jobs(world):
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        first = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a cabin"})
        result, parent = await delivered(world, bot, first)
        assert any(c.get("custom_id") == f"flux:edit:{parent.id}" for row in button_rows(result) for c in row)
        click = await world.discord.click_button(result, f"flux:edit:{parent.id}", alice)
        submitted = await open_and_submit(world, click, alice, "add snow on the roof")
        edited, child = await delivered(world, bot, submitted)
        # ✏️ on the edit's own result: an edit of an edit.
        click = await world.discord.click_button(edited, f"flux:edit:{child.id}", alice)
        grandchild_handle = await open_and_submit(world, click, alice, "now at night")
        _, grandchild = await delivered(world, bot, grandchild_handle)
    assert (child.kind, child.parent_id, child.model) == ("edit", parent.id, KONTEXT)
    assert child.input["prompt"] == "add snow on the roof"
    assert child.input["input_image"] == result.attachments[0].url
    assert child.input["aspect_ratio"] == "match_input_image"
    assert (grandchild.parent_id, grandchild.input["input_image"]) == (child.id, edited.attachments[0].url)
    assert len(world.comet.creates()) == 3


def posted_before_per_image_buttons(world, message, job_id):
    """Give a stored result the buttons results had before E1..En: 🔄 Reroll and one ✏️ Edit for all images."""
    buttons = [
        {"type": 2, "style": 2, "label": label, "custom_id": f"flux:{action}:{job_id}"}
        for action, label in (("reroll", "Reroll"), ("edit", "Edit"))
    ]
    posted_by_an_older_version(world.discord.message(message.id), [buttons])


async def test_an_old_edit_button_asks_which_image_when_the_result_has_several(world):
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        first = await world.discord.slash_command(
            guild, channel, alice, "imagine", {"prompt": "a cabin", "num_outputs": 3}
        )
        result, parent = await delivered(world, bot, first)
    posted_before_per_image_buttons(world, result, parent.id)
    async with world.bot() as bot:  # a new process, and a button from the old layout
        click = await world.discord.click_button(result, f"flux:edit:{parent.id}", alice)
        submitted = await open_and_submit(world, click, alice, "paint it red", which="2")
        _, child = await delivered(world, bot, submitted)
        for which in ("7", "²"):  # "²" is a digit to str.isdigit, and no number to int()
            click = await world.discord.click_button(result, f"flux:edit:{parent.id}", alice)
            refused = await open_and_submit(world, click, alice, "paint it red", which=which)
            await refused.wait_response()
            assert "from 1 to 3" in refused.original_message().content
    assert child.input["input_image"] == result.attachments[1].url
    assert (child.parent_id, child.extra.of_image) == (parent.id, 2)


async def test_edit_with_flux_on_any_message_with_an_image(world):
    _, channel, _, alice = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        posted = await world.discord.post_message(channel, alice, "my photo", files=[("me.png", png(grey=90))])
        menu = await world.discord.message_command(posted, alice, "Edit with FLUX")
        submitted = await open_and_submit(world, menu, alice, "give me a hat")
        _, job = await delivered(world, bot, submitted)
        plain = await world.discord.post_message(channel, alice, "no picture here")
        refused = await world.discord.message_command(plain, alice, "Edit with FLUX")
        await refused.wait_response()
        assert refused.original_message().ephemeral
        assert "no image to edit" in refused.original_message().content
    assert (job.kind, job.parent_id) == ("edit", None)
    assert job.input["input_image"] == posted.attachments[0].url
    assert len(world.comet.creates()) == 1


async def test_reroll_of_an_edit_reuses_its_input_image(world):
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        attachment, handle = await imagine_with_image(world, guild, channel, alice, png())
        result, edit_job = await delivered(world, bot, handle)
        reroll = await world.discord.click_button(result, f"flux:reroll:{edit_job.id}", alice)
        _, child = await delivered(world, bot, reroll)
    assert child.input["input_image"] == attachment["url"] == edit_job.input["input_image"]
    assert child.input["seed"] != edit_job.input["seed"]
    assert child.model == KONTEXT


async def test_edit_is_refused_where_no_editing_model_is_allowed(world):
    guild, channel, admin, alice = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        for model in ("flux-kontext-pro", "flux-kontext-max", "flux-2-pro", "flux-2-flex", "flux-2-dev"):
            await (
                await world.discord.slash_command(guild, channel, admin, "imagine-settings models", {"deny": model})
            ).wait_response()
        first = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a cabin"})
        result, parent = await delivered(world, bot, first)
        click = await world.discord.click_button(result, f"flux:edit:{parent.id}", alice)
        submitted = await open_and_submit(world, click, alice, "add snow")
        [reply] = await submitted.wait_followups(1)
        assert reply.ephemeral
        assert "allows no model that edits images" in reply.text
    assert len(world.comet.creates()) == 1
