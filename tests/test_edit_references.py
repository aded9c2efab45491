"""Edits with FLUX.2: the server's editing model may be FLUX.2, which takes all of a message's images."""

from __future__ import annotations

import re

from tests.helpers import (
    EPHEMERAL,
    KONTEXT,
    delivered,
    open_and_submit,
    png,
    private_reply,
    set_edit_model,
    setup_guild,
)

PRO2, DEV2 = "black-forest-labs/flux-2-pro", "black-forest-labs/flux-2-dev"


async def photos(world, channel, user, count):
    files = [(f"photo{n}.png", png(grey=30 * n)) for n in range(count)]
    return await world.discord.post_message(channel, user, "my photos", files=files)


async def edit(world, message, user, instruction, **fields):
    menu = await world.discord.message_command(message, user, "Edit with FLUX")
    return await open_and_submit(world, menu, user, instruction, **fields)


async def test_a_flux_2_editing_model_takes_every_image_of_the_message(world):
    guild, channel, admin, alice = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        assert "flux-2-pro" in await set_edit_model(world, guild, admin, "flux-2-pro")
        posted = await photos(world, channel, alice, 3)
        _, job = await delivered(world, bot, await edit(world, posted, alice, "put all three in one room"))
        _, picked = await delivered(world, bot, await edit(world, posted, alice, "just these two", which="3, 1"))
    assert (job.kind, job.model) == ("edit", PRO2)
    assert job.input["input_images"] == [a.url for a in posted.attachments]
    assert job.input["aspect_ratio"] == "match_input_image"  # an edit keeps the picture's shape
    assert picked.input["input_images"] == [posted.attachments[2].url, posted.attachments[0].url]


async def test_left_blank_an_edit_sends_as_many_images_as_the_model_takes(world):
    guild, channel, admin, alice = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        posted = await photos(world, channel, alice, 5)
        _, kontext = await delivered(world, bot, await edit(world, posted, alice, "make it night"))
        await set_edit_model(world, guild, admin, "flux-2-dev")
        _, dev = await delivered(world, bot, await edit(world, posted, alice, "make it night"))
    assert (kontext.model, kontext.input["input_image"]) == (KONTEXT, posted.attachments[0].url)  # as before
    assert dev.model == DEV2
    assert dev.input["input_images"] == [a.url for a in posted.attachments[:4]]  # flux-2-dev takes 4


async def test_a_model_named_in_the_instruction_is_used(world):
    _, channel, _, alice = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        posted = await photos(world, channel, alice, 2)
        _, job = await delivered(world, bot, await edit(world, posted, alice, "swap their hats --m flux-2-flex"))
    assert job.model == "black-forest-labs/flux-2-flex"
    assert job.input["prompt"] == "swap their hats"
    assert len(job.input["input_images"]) == 2


async def test_asking_kontext_for_several_images_is_refused_and_costs_nothing(world):
    _, channel, _, alice = setup_guild(world, "alice", admin=True)
    async with world.bot():
        posted = await photos(world, channel, alice, 3)
        for which in ("all", "1,2"):
            submitted = await edit(world, posted, alice, "make it night", which=which)
            [reply] = await submitted.wait_followups(1)
            assert reply.ephemeral
            assert re.search(r"flux-kontext-pro takes up to 1 input image\(s\), got \d", reply.text), reply.text
    assert world.comet.creates() == []


async def test_the_editing_model_must_edit_images(world):
    guild, _, admin, _ = setup_guild(world, "alice", admin=True)
    async with world.bot() as bot:
        text = await set_edit_model(world, guild, admin, "flux-schnell")
        assert "Not saved" in text
        assert "flux-schnell does not edit images" in text
        assert "flux-2-pro" in text
        assert await bot.store.get_guild_settings(guild.id) is None


async def edit_result_with(world, bot, guild, channel, user, references, instruction="in this style"):
    """✏️ Edit on a fresh result, with `references` uploaded in the form."""
    first = await world.discord.slash_command(guild, channel, user, "imagine", {"prompt": "a cabin"})
    result, parent = await delivered(world, bot, first)
    click = await world.discord.click_button(result, f"flux:edit:{parent.id}", user)
    return result, await open_and_submit(world, click, user, instruction, references=references)


async def test_the_edit_form_takes_more_reference_images_for_a_flux_2_model(world):
    guild, channel, admin, alice = setup_guild(world, "alice", admin=True)
    refs = [world.discord.add_attachment(f"style{n}.png", png(grey=20 + n), "image/png") for n in range(2)]
    async with world.bot() as bot:
        await set_edit_model(world, guild, admin, "flux-2-pro")
        result, submitted = await edit_result_with(world, bot, guild, channel, alice, refs)
        _, job = await delivered(world, bot, submitted)
    assert (job.kind, job.model) == ("edit", PRO2)
    # the image edited first, then the references in the order given
    assert job.input["input_images"] == [result.attachments[0].url, *(ref["url"] for ref in refs)]


async def refused_privately(world, bot, handle, *words):
    """A short private answer naming the problem, and no prediction made for it."""
    creates = len(world.comet.creates())
    reply = await private_reply(world, handle)
    await bot.interaction_handled(handle.id)
    assert reply.flags & EPHEMERAL, reply.content
    for word in words:
        assert re.search(word, reply.content, re.IGNORECASE), (word, reply.content)
    assert len(world.comet.creates()) == creates
    return reply.content


async def test_references_the_model_cannot_take_are_refused_before_anything_is_sent(world):
    guild, channel, admin, alice = setup_guild(world, "alice", admin=True)
    text = world.discord.add_attachment("notes.txt", b"not an image", "text/plain")
    four = [world.discord.add_attachment(f"r{n}.png", png(grey=20 + n), "image/png") for n in range(4)]
    async with world.bot() as bot:
        # Kontext takes one image: the result's own
        _, submitted = await edit_result_with(world, bot, guild, channel, alice, four[:1])
        await refused_privately(world, bot, submitted, "kontext", r"\b1\b")
        await set_edit_model(world, guild, admin, "flux-2-dev")
        _, submitted = await edit_result_with(world, bot, guild, channel, alice, [text])
        await refused_privately(world, bot, submitted, "notes.txt")
        # flux-2-dev takes 4: the result and four more is one too many
        _, submitted = await edit_result_with(world, bot, guild, channel, alice, four)
        await refused_privately(world, bot, submitted, "4")
    assert len(world.comet.creates()) == 3  # the three results edited, nothing else
