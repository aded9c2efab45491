"""Per-image actions on results: V1..Vn and E1..En under several images, Vary (Subtle/Strong), ✏️ Edit and 🔄
Reroll under one; every button, after a restart, by another member, on a deleted or failed parent."""

from __future__ import annotations

import base64
import time
import uuid

import pytest

from cli.harness import wait_status
from fakes.cometapi import Outcome
from services.store.models import Job, JobStatus
from tests.campaign import inject_on_upload
from tests.card import button_rows, card
from tests.helpers import KONTEXT, delivered, job_shown_in, link_to, png, private_reply, result_of, rows, setup_guild

DEV = "black-forest-labs/flux-dev"
ULTRA = "black-forest-labs/flux-1.1-pro-ultra"
SCHNELL = "black-forest-labs/flux-schnell"
SUBTLE, STRONG = 0.35, 0.75  # flux-dev's prompt_strength for each (README)


def builtin_rows(message, bot):
    """`rows` without the buttons other features offer under every result (JobButtons.offered)."""
    offered = tuple(f"flux:{action}:" for action in bot.job_buttons.offered)
    kept = [[button for button in row if not button[1].startswith(offered)] for row in rows(message)]
    return [row for row in kept if row]


async def click_vary(world, bot, result, custom_id, user):
    handle = await world.discord.click_button(result, custom_id, user)
    return await delivered(world, bot, handle)


async def click_edit(world, bot, result, custom_id, user, instruction="add snow"):
    click = await world.discord.click_button(result, custom_id, user)
    await click.wait_response()
    modal = click.modal
    assert modal is not None, "the edit button should open the modal"
    fields = [c["custom_id"] for row in modal["components"] for c in row.get("components", [row.get("component")])]
    assert fields == ["instruction", "references"], "an edit of one named image does not ask which image"
    submitted = await world.discord.submit_modal(click, {"instruction": instruction}, user_id=user.id)
    return await delivered(world, bot, submitted)


def assert_variation_of(child, parent, result, n, strength, user):
    assert (child.kind, child.parent_id, child.user_id, child.model) == ("variation", parent.id, user.id, DEV)
    assert child.input["image"] == result.attachments[n - 1].url  # the image the user saw, by its link
    assert child.input["prompt_strength"] == strength
    assert child.input["prompt"] == parent.input["prompt"]
    assert (child.extra.of_image, child.extra.strength) == (n, "subtle" if strength == SUBTLE else "strong")


def assert_edit_of(child, parent, result, n):
    assert (child.kind, child.parent_id, child.model) == ("edit", parent.id, KONTEXT)
    assert child.input["input_image"] == result.attachments[n - 1].url
    assert child.extra.of_image == n


async def test_every_button_under_one_image(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        assert builtin_rows(result, bot) == [
            [
                ("Upscale (Subtle)", f"flux:upscale:{parent.id}:1:subtle"),
                ("Upscale (Creative)", f"flux:upscale:{parent.id}:1:strong"),
                ("Vary (Subtle)", f"flux:vary:{parent.id}:1:subtle"),
                ("Vary (Strong)", f"flux:vary:{parent.id}:1:strong"),
            ],
            [
                ("Remix", f"flux:remix:{parent.id}:1"),
                ("Edit", f"flux:edit:{parent.id}"),
                ("Reroll", f"flux:reroll:{parent.id}"),
            ],
        ]
        subtle_msg, subtle = await click_vary(world, bot, result, f"flux:vary:{parent.id}:1:subtle", alice)
        _, strong = await click_vary(world, bot, result, f"flux:vary:{parent.id}:1:strong", alice)
        edit_msg, edit = await click_edit(world, bot, result, f"flux:edit:{parent.id}", alice)
        reroll_handle = await world.discord.click_button(result, f"flux:reroll:{parent.id}", alice)
        _, reroll = await delivered(world, bot, reroll_handle)
    assert_variation_of(subtle, parent, result, 1, SUBTLE, alice)
    assert_variation_of(strong, parent, result, 1, STRONG, alice)
    assert_edit_of(edit, parent, result, 1)
    assert "as the input" in card(edit_msg).facts
    assert (reroll.kind, reroll.parent_id, reroll.model) == ("reroll", parent.id, SCHNELL)
    assert len({job.input["seed"] for job in (parent, subtle, strong, reroll)}) == 4
    assert len(world.comet.creates()) == 5  # exactly one create per click
    # The variation's own result shows where it came from, with a link, and the buttons of a one-image result.
    description = subtle_msg.text
    assert f"Subtle variation of image 1 of [an earlier result]({link_to(result)})" in description
    assert rows(subtle_msg)[0][2] == ("Vary (Subtle)", f"flux:vary:{subtle.id}:1:subtle")


@pytest.mark.parametrize("count", [2, 4])
async def test_every_button_under_several_images(world, count):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, num_outputs=count)
        numbers = range(1, count + 1)
        assert builtin_rows(result, bot) == [
            [*((f"U{n}", f"flux:pick:{parent.id}:{n}") for n in numbers), ("Reroll", f"flux:reroll:{parent.id}")],
            [(f"V{n}", f"flux:vary:{parent.id}:{n}:strong") for n in numbers],
            [(f"E{n}", f"flux:edit:{parent.id}:{n}") for n in numbers],
        ]
        assert len(card(result).gallery) == count
        variations = [await click_vary(world, bot, result, f"flux:vary:{parent.id}:{n}:strong", alice) for n in numbers]
        edits = [await click_edit(world, bot, result, f"flux:edit:{parent.id}:{n}", alice) for n in numbers]
        _, reroll = await delivered(
            world, bot, await world.discord.click_button(result, f"flux:reroll:{parent.id}", alice)
        )
    for n, (message, child) in zip(numbers, variations, strict=True):
        assert_variation_of(child, parent, result, n, STRONG, alice)
        assert child.input["num_outputs"] == count  # a grid varies into a grid
        assert len(message.attachments) == count
        assert f"Strong variation of image {n} of [an earlier result]({link_to(result)})" in str(card(message).origin)
    for n, (message, child) in zip(numbers, edits, strict=True):
        assert_edit_of(child, parent, result, n)
        assert f"Edit of image {n} of [an earlier result]({link_to(result)})" in str(card(message).origin)
    assert (reroll.kind, reroll.input["num_outputs"]) == ("reroll", count)
    assert len(world.comet.creates()) == 1 + 2 * count + 1


async def test_buttons_after_a_restart_send_the_fresh_link_of_the_image_seen(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, num_outputs=2)
    old = [a.url for a in result.attachments]
    world.discord.renew_attachment_links()  # a day later: the links in the old payload answer 404
    fresh = [a.url for a in world.discord.message(result.id).attachments]
    assert set(old).isdisjoint(fresh)
    async with world.bot() as bot:  # a new process: nothing cached
        _, variation = await click_vary(world, bot, result, f"flux:vary:{parent.id}:2:strong", alice)
        _, edit = await click_edit(world, bot, result, f"flux:edit:{parent.id}:1", alice)
    assert variation.input["image"] == fresh[1]
    assert edit.input["input_image"] == fresh[0]


async def test_data_uri_mode_sends_the_bytes_of_the_image_seen(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot(INPUT_IMAGE_MODE="data_uri") as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, num_outputs=2)
        _, child = await click_vary(world, bot, result, f"flux:vary:{parent.id}:2:strong", alice)
    assert child.input["image"].startswith("stored:")  # the job keeps a reference to the bytes, once
    sent = world.comet.creates()[-1].json["input"]["image"]  # what the API got
    assert sent.startswith("data:image/")
    assert base64.b64decode(sent.split(",", 1)[1]) == world.discord.message(result.id).attachments[1].data


async def test_another_member_varies_as_themself_within_their_own_limits(world):
    guild, channel, _, alice, bob = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot(MAX_JOBS_PER_USER="1") as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, num_outputs=2)
        message, child = await click_vary(world, bot, result, f"flux:vary:{parent.id}:1:strong", bob)
        assert child.user_id == bob.id
        assert card(message).facts[-1] == f"<@{bob.id}>"
        # Bob's next variation while one of his jobs runs: refused by his limit, nothing sent.
        world.comet.queue_outcome(Outcome(duration=5))
        await world.discord.slash_command(guild, channel, bob, "imagine", {"prompt": "slow"})
        await world.discord.wait_for(lambda: len(world.comet.creates()) == 3, timeout=10)
        refused = await world.discord.click_button(result, f"flux:vary:{parent.id}:2:strong", bob)
        reply = await private_reply(world, refused)
        assert reply.ephemeral
        assert "already have 1 image job" in reply.text
        # Alice is not held back by Bob's limit.
        _, hers = await click_vary(world, bot, result, f"flux:vary:{parent.id}:2:strong", alice)
    assert hers.user_id == alice.id
    assert len(world.comet.creates()) == 4


async def test_a_variation_is_cancelled_and_resumed_like_any_job(world):
    guild, channel, _, alice, bob = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        world.comet.queue_outcome(Outcome(duration=30))
        handle = await world.discord.click_button(result, f"flux:vary:{parent.id}:1:subtle", bob)
        progress = await handle.wait_original(lambda m: bool(m.components), timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, progress.id)).id, "running")
        await world.discord.click_button(progress, f"flux:cancel:{job.id}", bob)
        job = await wait_status(bot, job.id, "canceled")
        assert world.comet.predictions[job.prediction_id].cancel_requested
        world.comet.queue_outcome(Outcome(duration=2))
        handle = await world.discord.click_button(result, f"flux:vary:{parent.id}:1:strong", bob)
        progress = await handle.wait_original(lambda m: bool(m.components), timeout=10)
        resumed = await wait_status(bot, (await job_shown_in(bot, progress.id)).id, "running")
    async with world.bot() as bot:  # stopped mid-job: the new process polls the same prediction
        resumed = await wait_status(bot, resumed.id, "succeeded")
    assert len(world.comet.creates()) == 3
    assert world.discord.message(progress.id).attachments
    assert resumed.input["prompt_strength"] == STRONG


async def test_a_reroll_of_a_variation_varies_the_same_image_again(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, num_outputs=2)
        varied, variation = await click_vary(world, bot, result, f"flux:vary:{parent.id}:2:strong", alice)
        handle = await world.discord.click_button(varied, f"flux:reroll:{variation.id}", alice)
        again_message, again = await delivered(world, bot, handle)
        # V1 on the variation's own grid: a variation of a variation, from the variation's image.
        _, deeper = await click_vary(world, bot, varied, f"flux:vary:{variation.id}:1:strong", alice)
    assert (again.kind, again.parent_id, again.model) == ("reroll", variation.id, DEV)
    assert again.input["image"] == variation.input["image"] == result.attachments[1].url
    assert again.input["prompt_strength"] == STRONG
    assert again.input["seed"] != variation.input["seed"]
    assert f"Reroll of [an earlier result]({link_to(varied)})" in str(card(again_message).origin)
    assert_variation_of(deeper, variation, varied, 1, STRONG, alice)


async def test_the_servers_admins_choose_the_variation_model(world):
    guild, channel, admin, alice, _ = setup_guild(world, "alice", "bob", admin=True)

    async def settings(options):
        handle = await world.discord.slash_command(guild, channel, admin, "imagine-settings set", options)
        return (await private_reply(world, handle)).content

    async with world.bot() as bot:
        assert "flux-schnell cannot make variations" in await settings({"variation_model": "flux-schnell"})
        assert "Server defaults updated" in await settings({"variation_model": "flux-1.1-pro-ultra"})
        show = await world.discord.slash_command(guild, channel, admin, "imagine-settings show")
        assert "Variations use**: flux-1.1-pro-ultra" in (await private_reply(world, show)).content
        result, parent = await result_of(world, bot, guild, channel, alice, num_outputs=2)
        _, strong = await click_vary(world, bot, result, f"flux:vary:{parent.id}:2:strong", alice)
        await settings({"model": "flux-dev"})  # the default model does not override the admins' choice
        _, still = await click_vary(world, bot, result, f"flux:vary:{parent.id}:1:strong", alice)
    assert (strong.model, still.model) == (ULTRA, ULTRA)
    assert strong.input["image_prompt"] == result.attachments[1].url
    assert strong.input["image_prompt_strength"] == 0.2
    assert "num_outputs" not in strong.input  # ultra makes one image: the parent's 2 falls back to its default
    assert "image" not in strong.input


async def test_variations_are_refused_where_no_model_can_make_them(world):
    guild, channel, admin, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        for model in ("flux-dev", "flux-1.1-pro-ultra"):
            handle = await world.discord.slash_command(
                guild, channel, admin, "imagine-settings models", {"deny": model}
            )
            await private_reply(world, handle)
        result, parent = await result_of(world, bot, guild, channel, alice)
        refused = await world.discord.click_button(result, f"flux:vary:{parent.id}:1:subtle", alice)
        reply = await private_reply(world, refused)
    assert reply.ephemeral
    assert "allows no model that makes variations" in reply.text
    assert len(world.comet.creates()) == 1
    assert [m for m in world.discord.messages_in(channel.id) if not m.ephemeral] == [result]


async def forget_job(bot, job_id):
    """The job's record is gone (deleted from the database by its operator)."""
    await bot.store._conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


async def test_buttons_whose_parent_record_is_deleted(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, num_outputs=2)
        await forget_job(bot, parent.id)
        refused = await world.discord.click_button(result, f"flux:vary:{parent.id}:1:strong", alice)
        reply = await private_reply(world, refused)
        assert reply.ephemeral
        assert "no longer in my records" in reply.text
        # An edit needs only the image, which is in the message: it runs, unlinked.
        message, edit = await click_edit(world, bot, result, f"flux:edit:{parent.id}:2", alice)
    assert (edit.parent_id, edit.input["input_image"]) == (None, result.attachments[1].url)
    assert "earlier result" not in message.text
    assert len(world.comet.creates()) == 2


async def test_a_variation_whose_parent_message_is_deleted_meanwhile_still_arrives(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
        world.comet.queue_outcome(Outcome(duration=0.5))
        handle = await world.discord.click_button(result, f"flux:vary:{parent.id}:1:subtle", alice)
        await world.discord.wait_for(lambda: len(world.comet.creates()) == 2, timeout=10)
        await world.discord.delete_message(channel.id, result.id)
        _, child = await delivered(world, bot, handle)
    assert child.parent_id == parent.id


async def test_a_failed_parent_offers_no_variation_or_edit(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    # A plain failure (an unsafe refusal would offer 🔄, see test_checked_outputs.py)
    world.comet.queue_outcome(Outcome(status="failed", error="The model ran out of memory."))
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "unlucky"})
        failed = await handle.wait_original(lambda m: "⚠️" in m.text, timeout=10)
        await wait_status(bot, (await job_shown_in(bot, failed.id)).id, "failed")
        assert [c for row in button_rows(failed) for c in row if ":reroll:" not in c["custom_id"]] == []
        # Images that could not be attached (no Attach Files): the job failed; only 🔄 Reroll is offered.
        refusal = {"message": "Missing Permissions", "code": 50013}
        inject_on_upload(world, r"^/webhooks/\d+/[^/]+/messages/@original$", 403, json=refusal)
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "no files"})
        shown = await handle.wait_original(lambda m: "Attach Files" in m.text, timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, shown.id)).id, "failed")
        assert rows(shown) == [[("Reroll", f"flux:reroll:{job.id}")]]
    assert len(world.comet.creates()) == 2


async def test_a_variation_button_on_a_job_that_did_not_succeed_is_refused(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        job_id = uuid.uuid4().hex
        button = {"type": 2, "style": 2, "label": "V1", "custom_id": f"flux:vary:{job_id}:1:strong"}
        message = await world.discord.post_message(
            channel, world.discord.bot, files=[("flux-1.png", png())],
            components=[{"type": 1, "components": [button]}],
        )  # fmt: skip
        failed = Job(
            id=job_id, kind="imagine", user_id=alice.id, channel_id=channel.id, guild_id=guild.id, shard_id=0,
            model=SCHNELL, input={"prompt": "x", "seed": 1}, status=JobStatus.FAILED, created_at=time.time(),
            message_id=message.id,
        )  # fmt: skip
        await bot.store.create_job(failed)
        refused = await world.discord.click_button(message, button["custom_id"], alice)
        reply = await private_reply(world, refused)
    assert reply.ephemeral
    assert "did not finish" in reply.text
    assert world.comet.creates() == []
