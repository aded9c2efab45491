"""The result, Midjourney's way: U1..Un post one image alone (no create, no cost), Upscale (Subtle/Creative)
redraws it at twice the size on FLUX.2 with the image as its only reference, Remix runs the same settings with a
changed prompt; their refusals cost nothing, and their buttons work after a restart."""

from __future__ import annotations

import time
import uuid

from services.jobs.kinds.outpaint import NO_SCENE
from services.jobs.kinds.upscale import CREATIVE_INSTRUCTION, SUBTLE_INSTRUCTION, instruction
from services.store.models import Job, JobStatus
from tests.card import card
from tests.helpers import delivered, ephemeral_text, link_to, png, private_reply, result_of, rows, setup_guild

DEV = "black-forest-labs/flux-dev"
SCHNELL = "black-forest-labs/flux-schnell"
FLUX2_PRO = "black-forest-labs/flux-2-pro"


def one_image_rows(job_id: str) -> list[list[tuple[str, str]]]:
    return [
        [
            ("Upscale (Subtle)", f"flux:upscale:{job_id}:1:subtle"),
            ("Upscale (Creative)", f"flux:upscale:{job_id}:1:strong"),
            ("Vary (Subtle)", f"flux:vary:{job_id}:1:subtle"),
            ("Vary (Strong)", f"flux:vary:{job_id}:1:strong"),
        ],
        [("Remix", f"flux:remix:{job_id}:1"), ("Edit", f"flux:edit:{job_id}"), ("Reroll", f"flux:reroll:{job_id}")],
    ]


async def posted_result(world, bot, guild, channel, user, size, prompt="a harbour at night"):
    """A finished one-image result of a known size (the fake API's images are tiny), as the bot posted it."""
    job_id = uuid.uuid4().hex
    buttons = [
        {"type": 2, "style": 2, "label": label, "custom_id": custom_id}
        for row in one_image_rows(job_id)
        for label, custom_id in row
    ]
    components = [{"type": 1, "components": buttons[:4]}, {"type": 1, "components": buttons[4:]}]
    message = await world.discord.post_message(
        channel, world.discord.bot, files=[("flux-1.png", png(*size))], components=components
    )
    job = Job(
        id=job_id, kind="imagine", user_id=user.id, channel_id=channel.id, guild_id=guild.id, shard_id=0,
        model=SCHNELL, input={"prompt": prompt, "seed": 3, "aspect_ratio": "4:3", "output_format": "png"},
        status=JobStatus.SUCCEEDED, created_at=time.time(), message_id=message.id,
    )  # fmt: skip
    await bot.store.create_job(job)
    return message, job


async def click(world, bot, message, custom_id, user):
    return await delivered(world, bot, await world.discord.click_button(message, custom_id, user))


async def remix(world, bot, message, custom_id, user, prompt):
    """Open the Remix form, check it holds the parent's prompt, and submit `prompt`; the click's handle."""
    opened = await world.discord.click_button(message, custom_id, user)
    await opened.wait_response()
    assert opened.modal is not None, "Remix opens a form"
    (field,) = [c for row in opened.modal["components"] for c in row["components"]]
    job = await bot.store.get_job(custom_id.split(":")[2])
    assert (field["custom_id"], field.get("value")) == ("prompt", job.input["prompt"])
    return await world.discord.submit_modal(opened, {"prompt": prompt}, user_id=user.id)


async def job_count(bot, guild):
    return await bot.store.count_jobs(guild_id=guild.id)


async def test_u_buttons_post_each_image_alone_with_no_create_and_no_cost(world):
    guild, channel, _, alice, bob = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, num_outputs=4)
        seen = world.discord.message(result.id).attachments
        picks = [await click(world, bot, result, f"flux:pick:{parent.id}:{n}", bob) for n in range(1, 5)]
    assert len(world.comet.creates()) == 1  # only the /imagine: a U-post calls no API
    for n, (message, pick) in enumerate(picks, start=1):
        assert [a.data for a in message.attachments] == [seen[n - 1].data]  # that image, alone
        assert (pick.kind, pick.parent_id, pick.user_id, pick.extra.of_image) == ("pick", parent.id, bob.id, n)
        assert (pick.cost_microusd, pick.settled_microusd, pick.image_count) == (0, 0, 0)
        assert (pick.model, pick.input) == (parent.model, parent.input)
        assert rows(message)[:2] == one_image_rows(pick.id)  # the one-image buttons at once (offered ones after)
        shown = card(message)
        assert f"Copy of image {n} of [an earlier result]({link_to(result)})" in str(shown.origin)
        assert not [fact for fact in shown.facts if fact.endswith(" s")]  # nothing ran: no time
    assert pick.created_at == parent.created_at  # so it starts no cooldown


async def test_upscale_sends_twice_the_size_with_the_image_as_its_only_reference(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        message, parent = await posted_result(world, bot, guild, channel, alice, (640, 480))
        subtle_message, subtle = await click(world, bot, message, f"flux:upscale:{parent.id}:1:subtle", alice)
        _, creative = await click(world, bot, message, f"flux:upscale:{parent.id}:1:strong", alice)
    link = world.discord.message(message.id).attachments[0].url
    sent = [create.json["input"] for create in world.comet.creates()]
    for job, body in zip((subtle, creative), sent, strict=True):
        assert (job.kind, job.model, job.parent_id) == ("upscale", FLUX2_PRO, parent.id)
        assert body["input_images"] == [link]  # the only reference: the image the user saw
        assert (body["aspect_ratio"], body["width"], body["height"]) == ("custom", 1280, 960)
        assert body["output_format"] == "png"  # the parent's format carries over
        assert body["seed"] != parent.input["seed"]
        # $0.015 a run + $0.015 for the 1 MP input + $0.015 for each of the 2 MP out (megapixels rounded up)
        assert job.cost_microusd == 60_000
    assert sent[0]["prompt"] == SUBTLE_INSTRUCTION
    assert sent[1]["prompt"] == CREATIVE_INSTRUCTION + parent.input["prompt"]
    assert (subtle.extra.strength, creative.extra.strength) == ("subtle", "creative")
    assert f"Subtle upscale of image 1 of [an earlier result]({link_to(message)})" in str(card(subtle_message).origin)
    assert rows(subtle_message)[:2] == one_image_rows(subtle.id)


async def test_an_upscale_stays_within_the_models_largest_size_and_says_so(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        message, parent = await posted_result(world, bot, guild, channel, alice, (1536, 1024))
        shown, job = await click(world, bot, message, f"flux:upscale:{parent.id}:1:subtle", alice)
    body = world.comet.creates()[-1].json["input"]
    assert (body["width"], body["height"]) == (2048, 1360)  # 3072x2048 scaled to 2048 a side, in steps of 16
    assert job.cost_microusd == 15_000 + 2 * 15_000 + 3 * 15_000  # 1.5 MP in, 2.7 MP out
    note = "Twice the size would be 3072×2048; flux-2-pro draws at most 2048 a side, so it is 2048×1360."
    assert note in card(shown).notes


async def test_an_upscale_that_would_not_be_larger_or_would_be_stretched_is_refused_privately_at_no_cost(world):
    """An upscale of an upscale at the model's largest size would be drawn at that size again (and a larger photo
    smaller); an image too long and thin for the model's sides would come out stretched: both refused, nothing
    stored or sent."""
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        largest, largest_job = await posted_result(world, bot, guild, channel, alice, (2048, 2048))
        photo, photo_job = await posted_result(world, bot, guild, channel, alice, (3000, 2000))
        thin, thin_job = await posted_result(world, bot, guild, channel, alice, (3000, 64))
        strip, strip_job = await posted_result(world, bot, guild, channel, alice, (1000, 60))
        jobs = await job_count(bot, guild)
        replies = {}
        for name, message, job in (
            ("largest", largest, largest_job),
            ("photo", photo, photo_job),
            ("thin", thin, thin_job),
            ("strip", strip, strip_job),
        ):
            handle = await world.discord.click_button(message, f"flux:upscale:{job.id}:1:subtle", alice)
            replies[name] = await private_reply(world, handle)
            await bot.interaction_handled(handle.id)
        assert await job_count(bot, guild) == jobs
    assert world.comet.creates() == []
    assert all(reply.ephemeral for reply in replies.values())
    assert "That image (2048×2048) is already as large as flux-2-pro makes" in replies["largest"].text
    assert "That image (3000×2000) is already as large as flux-2-pro makes" in replies["photo"].text
    for name in ("thin", "strip"):  # 3000x64 was sent as 2048x256, 1000x60 as 2000x256
        assert "too long and thin to upscale" in replies[name].text, replies[name].text


async def test_a_small_upscale_is_brought_up_to_the_models_smallest_side_keeping_its_shape(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        message, parent = await posted_result(world, bot, guild, channel, alice, (100, 50))
        shown, _ = await click(world, bot, message, f"flux:upscale:{parent.id}:1:subtle", alice)
    body = world.comet.creates()[-1].json["input"]
    assert (body["width"], body["height"]) == (512, 256)  # not 256x256: the shape kept
    note = "Twice the size would be 200×100; flux-2-pro draws at least 256 a side, so it is 512×256."
    assert note in card(shown).notes


async def test_remix_keeps_the_settings_and_sends_the_changed_prompt(world):
    guild, channel, _, alice, bob = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(
            world, bot, guild, channel, alice, model="flux-dev", seed=7, aspect_ratio="3:2"
        )
        handle = await remix(world, bot, result, f"flux:remix:{parent.id}:1", bob, "a lighthouse at dawn, in snow")
        message, child = await delivered(world, bot, handle)
        # On a text-only model there is no reference to send: the same seed and settings, the new prompt.
        plain, plain_parent = await result_of(world, bot, guild, channel, alice, seed=9, aspect_ratio="16:9")
        handle = await remix(world, bot, plain, f"flux:remix:{plain_parent.id}:1", bob, "a castle")
        _, plain_child = await delivered(world, bot, handle)
    body = world.comet.creates()[1].json["input"]
    assert (child.kind, child.parent_id, child.user_id, child.model) == ("remix", parent.id, bob.id, DEV)
    assert body["prompt"] == child.input["prompt"] == "a lighthouse at dawn, in snow"
    assert (body["seed"], body["aspect_ratio"]) == (7, "3:2")
    for name in ("output_format", "output_quality", "num_outputs"):
        assert body[name] == parent.input[name]
    assert (child.input["image"], child.input["prompt_strength"]) == (result.attachments[0].url, 0.75)
    assert "🎛️ Remix of image 1 of [an earlier result]" in str(card(message).origin)
    sent = world.comet.creates()[3].json["input"]
    assert (plain_child.model, sent["prompt"], sent["seed"], sent["aspect_ratio"]) == (SCHNELL, "a castle", 9, "16:9")
    assert "image" not in sent
    assert plain_child.extra.input_sha256 == {}  # nothing fetched or kept for it


async def test_a_remixed_prompt_is_moderated_like_any_prompt(world):
    guild, channel, admin, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        blocked = await world.discord.slash_command(
            guild, channel, admin, "imagine-settings moderation", {"block": "dragon"}
        )
        await private_reply(world, blocked)
        result, parent = await result_of(world, bot, guild, channel, alice)
        jobs = await job_count(bot, guild)
        handle = await remix(world, bot, result, f"flux:remix:{parent.id}:1", alice, "a red dragon")
        reply = await private_reply(world, handle)
        assert reply.ephemeral
        assert 'does not allow "dragon"' in reply.text
        assert await job_count(bot, guild) == jobs
    assert len(world.comet.creates()) == 1


async def test_refusals_cost_nothing_and_create_nothing(world):
    guild, channel, admin, alice, _ = setup_guild(world, "alice", "bob", admin=True)

    async def admin_says(command, options):
        await private_reply(world, await world.discord.slash_command(guild, channel, admin, command, options))

    async def refused(message, custom_id, expected):
        reply = await private_reply(world, await world.discord.click_button(message, custom_id, alice))
        assert reply.ephemeral
        assert expected in reply.text
        return reply

    async with world.bot() as bot:
        grid, grid_job = await result_of(world, bot, guild, channel, alice, num_outputs=2)
        message, parent = await posted_result(world, bot, guild, channel, alice, (640, 480))
        jobs = await job_count(bot, guild)
        # Over the budget: an upscale is estimated at $0.06.
        await admin_says("imagine-settings budgets", {"usd_per_user_per_day": 0.05})
        await refused(message, f"flux:upscale:{parent.id}:1:subtle", "this request is estimated at $0.06")
        await admin_says("imagine-settings budgets", {"usd_per_user_per_day": 0})
        # No model the server allows can upscale.
        for model in ("flux-2-pro", "flux-2-flex", "flux-2-dev"):
            await admin_says("imagine-settings models", {"deny": model})
        await refused(message, f"flux:upscale:{parent.id}:1:strong", "allows no model that upscales")
        # The result's own model is denied: its remix is refused once the form is sent.
        await admin_says("imagine-settings models", {"deny": "flux-schnell"})
        handle = await remix(world, bot, message, f"flux:remix:{parent.id}:1", alice, "a boat")
        reply = await private_reply(world, handle)
        assert "does not allow flux-schnell" in reply.text
        # The images' links have expired (days later, the message not loaded anew): nothing to post or send.
        world.discord.cdn_time_shift = 3 * 86_400
        await refused(grid, f"flux:pick:{grid_job.id}:1", "Could not use the attached image")
        await admin_says("imagine-settings models", {"allow": "flux-2-pro"})
        await refused(message, f"flux:upscale:{parent.id}:1:subtle", "Could not use the attached image")
        assert await job_count(bot, guild) == jobs
    assert len(world.comet.creates()) == 1  # the first /imagine only


async def test_a_u_post_and_its_buttons_work_after_a_restart(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        grid, grid_job = await result_of(world, bot, guild, channel, alice, num_outputs=2)
    world.discord.renew_attachment_links()  # a day later
    async with world.bot() as bot:  # U2 on a result from before the restart
        single, pick = await click(world, bot, grid, f"flux:pick:{grid_job.id}:2", alice)
    async with world.bot() as bot:  # and the U-post's own buttons, in another process again
        _, upscale = await click(world, bot, single, f"flux:upscale:{pick.id}:1:subtle", alice)
        handle = await remix(world, bot, single, f"flux:remix:{pick.id}:1", alice, "a lighthouse in fog")
        _, remixed = await delivered(world, bot, handle)
        _, reroll = await click(world, bot, single, f"flux:reroll:{pick.id}", alice)
    link = world.discord.message(single.id).attachments[0].url
    assert (upscale.parent_id, upscale.input["input_images"]) == (pick.id, [link])
    assert (remixed.parent_id, remixed.input["prompt"]) == (pick.id, "a lighthouse in fog")
    assert remixed.input["seed"] == grid_job.input["seed"]  # the grid's settings, through the pick
    assert (reroll.kind, reroll.parent_id, reroll.input["num_outputs"]) == ("reroll", pick.id, 2)
    assert len(world.comet.creates()) == 4


def test_a_creative_upscale_of_an_upscale_names_the_original_subject():
    first = instruction("a harbour at night", creative=True)
    assert instruction(first, creative=True) == first == CREATIVE_INSTRUCTION + "a harbour at night"
    again = instruction(SUBTLE_INSTRUCTION, creative=True)
    assert again.endswith("style.") and SUBTLE_INSTRUCTION not in again
    assert instruction(first, creative=False) == SUBTLE_INSTRUCTION


async def test_upscale_with_flux_on_any_message_upscales_its_first_image_subtly(world):
    _, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    posted = await world.discord.post_message(channel, alice, "my photo", files=[("photo.png", png(640, 480))])
    async with world.bot() as bot:
        menu = await world.discord.message_command(posted, alice, "Upscale with FLUX")
        message, job = await delivered(world, bot, menu)
    body = world.comet.creates()[-1].json["input"]
    assert (job.kind, job.model, job.parent_id) == ("upscale", FLUX2_PRO, None)
    assert body["input_images"] == [posted.attachments[0].url]
    assert (body["width"], body["height"]) == (1280, 960)
    assert body["prompt"] == SUBTLE_INSTRUCTION
    assert card(message).gallery


async def test_upscales_in_an_age_restricted_channel_are_not_checked_like_any_job_there(world):
    """The server checks the images made outside age-restricted channels; an upscale made in one, by its button
    or by the message menu, is a job of that channel too."""
    guild, channel, admin, alice = setup_guild(world, "alice", admin=True)
    adults = world.discord.add_channel(guild, "adults", nsfw=True)
    async with world.bot() as bot:
        text = await ephemeral_text(
            await world.discord.slash_command(
                guild, channel, admin, "imagine-settings moderation", {"check_images": "withhold"}
            )
        )
        assert "Images made outside age-restricted channels: checked" in text
        message, parent = await posted_result(world, bot, guild, adults, alice, (640, 480))
        by_button, _ = await click(world, bot, message, f"flux:upscale:{parent.id}:1:subtle", alice)
        by_menu = await delivered(world, bot, await world.discord.message_command(message, alice, "Upscale with FLUX"))
    assert by_button.attachments and by_menu[0].attachments
    assert world.comet.requests_for("moderation") == []


async def test_a_variation_or_upscale_of_an_upscale_asks_with_the_subject_not_the_upscales_instruction(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        message, parent = await posted_result(world, bot, guild, channel, alice, (640, 480), "a harbour at night")
        creative_message, creative = await click(world, bot, message, f"flux:upscale:{parent.id}:1:strong", alice)
        subtle_message, subtle = await click(world, bot, message, f"flux:upscale:{parent.id}:1:subtle", alice)
        varied_message, varied = await click(world, bot, creative_message, f"flux:vary:{creative.id}:1:strong", alice)
        vary_sent = world.comet.creates()[-1].json["input"]["prompt"]
        _, again = await click(world, bot, varied_message, f"flux:upscale:{varied.id}:1:strong", alice)
        again_sent = world.comet.creates()[-1].json["input"]["prompt"]
        _, unnamed = await click(world, bot, subtle_message, f"flux:vary:{subtle.id}:1:subtle", alice)
    assert creative.input["prompt"] == CREATIVE_INSTRUCTION + "a harbour at night"
    assert (varied.kind, varied.parent_id) == ("variation", creative.id)
    assert vary_sent == varied.input["prompt"] == "a harbour at night"
    assert again_sent == again.input["prompt"] == CREATIVE_INSTRUCTION + "a harbour at night"
    # A subtle upscale names nothing: its variation says so in a few neutral words, not "reproduce ... exactly".
    assert unnamed.input["prompt"] == NO_SCENE
