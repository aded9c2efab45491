"""/imagine under limits: the shared queue (position shown, round robin between users), per-user limits and
cooldown, and results that do not fit in one Discord message."""

from __future__ import annotations

import io
import re

from PIL import Image

from cli.harness import wait_status
from fakes.cometapi import Outcome
from tests.card import card
from tests.helpers import (
    EPHEMERAL,
    add_member,
    delivered,
    imagine,
    job_shown_in,
    prediction_outputs,
    private_reply,
    setup_guild,
    started_job,
)


async def test_a_second_user_sees_their_place_in_line_then_both_are_delivered(world):
    guild, channel, alice = setup_guild(world, "alice")
    bob = add_member(world, guild, "bob")
    world.comet.queue_outcome(Outcome(duration=0.8, queue_time=0.0), times=2)
    async with world.bot(MAX_CONCURRENT_PREDICTIONS="1") as bot:
        first = await imagine(world, guild, channel, alice, prompt="alice's fox")
        first_job, _ = await started_job(world, bot, first)
        await wait_status(bot, first_job.id, "running")
        second = await imagine(world, guild, channel, bob, prompt="bob's owl")
        queued = await second.wait_original(lambda m: "in line" in m.text)
        assert re.search(r"Queued — #1 in line", queued.text), queued.text
        second_job = await job_shown_in(bot, queued.id)
        assert second_job is not None and second_job.status == "queued"
        assert len(world.comet.creates()) == 1  # bob's waits for the one slot

        _, job_a = await delivered(world, bot, first)
        final_b, job_b = await delivered(world, bot, second)
    assert (job_a.status, job_b.status) == ("succeeded", "succeeded")
    assert [c.json["input"]["prompt"] for c in world.comet.creates()] == ["alice's fox", "bob's owl"]
    # bob's create came only after alice's prediction had finished
    alice_done = world.comet.predictions[job_a.prediction_id].done_at_wall
    assert alice_done is not None and world.comet.creates()[1].wall >= alice_done
    assert final_b.attachment_bytes() == [
        world.comet.file_bytes(u) for u in prediction_outputs(world, job_b.prediction_id)
    ]
    shown_b = [line for line in final_b.lines_shown if line]
    assert "in line" in shown_b[0], shown_b  # the place in line came before anything else


async def test_queue_is_round_robin_between_users(world):
    guild, channel, alice = setup_guild(world, "alice")
    bob = add_member(world, guild, "bob")
    world.comet.queue_outcome(Outcome(duration=0.4, queue_time=0.0), times=4)
    async with world.bot(MAX_CONCURRENT_PREDICTIONS="1") as bot:
        handles = []
        for user, prompt in ((alice, "a1"), (alice, "a2"), (alice, "a3"), (bob, "b1")):
            handle = await imagine(world, guild, channel, user, prompt=prompt)
            await started_job(world, bot, handle)  # stored and queued in this order
            handles.append(handle)
        jobs = [await delivered(world, bot, h, timeout=15) for h in handles]
    assert [job.status for _, job in jobs] == ["succeeded"] * 4
    order = [c.json["input"]["prompt"] for c in world.comet.creates()]
    # a1 took the free slot; then one job per user in turn: a2 (alice was first in line), b1, a3
    assert order.index("b1") < order.index("a3"), order
    assert order == ["a1", "a2", "b1", "a3"]


async def test_one_job_at_a_time_per_user_refuses_a_second_privately(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(status="never"))
    async with world.bot(MAX_JOBS_PER_USER="1") as bot:
        first = await imagine(world, guild, channel, alice, prompt="one")
        job, _ = await started_job(world, bot, first)
        await wait_status(bot, job.id, "running")

        second = await imagine(world, guild, channel, alice, prompt="two")
        refusal = await private_reply(world, second)
        assert refusal.flags & EPHEMERAL
        assert re.search(r"already have 1 .*running", refusal.text), refusal.text
        await bot.interaction_handled(second.id)
        assert [c.json["input"]["prompt"] for c in world.comet.creates()] == ["one"]
        assert (reply := second.original_message()) is None or reply.deleted or reply.ephemeral
        assert (await bot.store.get_job(job.id)).status == "running"  # the first is untouched


async def test_cooldown_asks_to_slow_down(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=0.1))
    async with world.bot(USER_COOLDOWN="30") as bot:
        first = await imagine(world, guild, channel, alice, prompt="one")
        await delivered(world, bot, first)

        second = await imagine(world, guild, channel, alice, prompt="two")
        refusal = await private_reply(world, second)
        assert refusal.flags & EPHEMERAL
        assert "Slow down" in refusal.text
        assert second.response_type == 4  # one private answer: no "thinking…" posted and taken back
        wait = re.search(r"in (\d+) s", refusal.text)
        assert wait is not None and 0 < int(wait.group(1)) <= 30, refusal.text
        await bot.interaction_handled(second.id)
        assert len(world.comet.creates()) == 1
        assert (reply := second.original_message()) is None or reply.deleted or reply.ephemeral


# --- results over the upload limit -------------------------------------------------------------------------


async def test_images_that_do_not_fit_one_message_follow_in_more_messages(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.image_size = 30_000
    world.comet.queue_outcome(Outcome(duration=0.2))
    async with world.bot() as bot:
        # 4 x 30 kB against a 70 kB limit: two per message
        handle = await imagine(
            world, guild, channel, alice, prompt="four foxes", num_outputs=4, attachment_size_limit=70_000
        )
        final, job = await delivered(world, bot, handle)
        rest = await world.discord.wait_for(
            lambda: [m for m in world.discord.messages_in(channel) if m.id != final.id and m.attachments] or None
        )
    assert job.status == "succeeded"
    served = [world.comet.file_bytes(u) for u in prediction_outputs(world, job.prediction_id)]
    assert len(final.attachments) == 2
    assert sum(a.size for a in final.attachments) <= 70_000
    assert [b for m in [final, *rest] for b in m.attachment_bytes()] == served
    for msg in rest:
        assert msg.message_reference is not None and int(msg.message_reference["message_id"]) == final.id
    note = notes_of(final)
    assert "did not fit in one message" in note and "1 more" in note, final.text


def notes_of(message) -> str:
    return "\n".join(card(message).notes)


def attachments_in(world, channel):
    """Every file the bot posted in the channel, in order, and the messages they are in."""
    messages = [m for m in world.discord.messages_in(channel) if m.attachments]
    return [a for m in messages for a in m.attachments], messages


def picture(data: bytes) -> Image.Image:
    opened = Image.open(io.BytesIO(data))
    opened.load()  # the whole file decodes
    return opened


async def test_an_image_over_the_limit_is_re_encoded_to_fit_and_posted(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.image_size = 100_000
    world.comet.queue_outcome(Outcome(duration=0.2))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a big fox", attachment_size_limit=70_000)
        final, job = await delivered(world, bot, handle)
    assert (job.status, job.image_count) == ("succeeded", 1)
    [attachment] = final.attachments
    assert attachment.size <= 70_000 and attachment.filename.endswith(".jpg")
    [served] = [world.comet.file_bytes(u) for u in prediction_outputs(world, job.prediction_id)]
    assert picture(attachment.data).size == picture(served).size  # the same picture, at full size
    assert re.fullmatch(r"image 1 was re-encoded as JPEG \(100 kB → \d+ kB\)", notes_of(final)), notes_of(final)
    assert [r for r in world.discord.requests if r.status == 413] == [], "an upload Discord refuses was tried"


async def test_four_12_mb_pngs_are_all_posted_within_the_10_mib_limit(world):
    """The case from the issue: four 12 MB PNGs, Discord's default 10 MiB limit per file (the fake refuses more
    with 413 / 40005). Each is made to fit; none is dropped; the note says what was changed."""
    guild, channel, alice = setup_guild(world, "alice")
    limit = 10 * 1024 * 1024
    world.comet.image_size = 12_000_000
    world.comet.queue_outcome(Outcome(duration=0.2))
    async with world.bot() as bot:
        handle = await imagine(
            world, guild, channel, alice, prompt="four big foxes", model="flux-dev", num_outputs=4,
            output_format="png", attachment_size_limit=limit,
        )  # fmt: skip
        final, job = await delivered(world, bot, handle, timeout=30)
        await world.discord.wait_for(lambda: len(attachments_in(world, channel)[0]) >= 4, timeout=30)
    assert handle.payload["attachment_size_limit"] == limit
    assert (job.status, job.image_count) == ("succeeded", 4)
    posted, messages = attachments_in(world, channel)
    served = [world.comet.file_bytes(u) for u in prediction_outputs(world, job.prediction_id)]
    assert [len(s) for s in served] == [12_000_000] * 4
    assert len(posted) == 4
    for attachment, original in zip(posted, served, strict=True):
        assert attachment.size <= limit
        assert picture(attachment.data).size == picture(original).size
    assert all(sum(a.size for a in m.attachments) <= limit for m in messages)
    note = notes_of(final)
    for n in range(1, 5):
        assert re.search(rf"image {n} was re-encoded as JPEG \(12\.0 MB → \d", note), note
    assert [r for r in world.discord.requests if r.status == 413] == []


async def test_a_job_whose_images_could_not_be_posted_is_not_a_success(world):
    """An image over the limit that cannot be read cannot be made smaller: the user gets no image, so the job
    fails (and counts against no quota), and the reply says why."""
    guild, channel, alice = setup_guild(world, "alice")
    broken = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 400  # a PNG's signature, then garbage: 102 kB
    world.comet.inject("file", status=200, body=broken, content_type="image/png")
    world.comet.queue_outcome(Outcome(duration=0.2))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a broken fox", attachment_size_limit=70_000)
        final = await handle.wait_original(lambda m: "None of the images could be posted" in m.text, timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded", "failed")
        assert sum(row.images for row in await bot.store.spend_since(guild.id, 0)) == 0
    assert (job.status, job.image_count) == ("failed", 0)
    assert final.attachments == []
    assert "image 1 (102 kB) is over the upload limit and could not be read" in notes_of(final), final.text
    assert [r for r in world.discord.requests if r.status == 413] == []


async def test_cancelling_a_queued_job_frees_its_place_and_creates_nothing(world):
    guild, channel, alice = setup_guild(world, "alice")
    bob = add_member(world, guild, "bob")
    world.comet.queue_outcome(Outcome(duration=0.6, queue_time=0.0), times=3)
    async with world.bot(MAX_CONCURRENT_PREDICTIONS="1") as bot:
        first = await imagine(world, guild, channel, alice, prompt="alice's fox")
        first_job, _ = await started_job(world, bot, first)
        await wait_status(bot, first_job.id, "running")
        second = await imagine(world, guild, channel, bob, prompt="bob's owl")
        queued = await second.wait_original(lambda m: "in line" in m.text)
        bob_job = await job_shown_in(bot, queued.id)
        click = await world.discord.click_button(queued.id, f"flux:cancel:{bob_job.id}", bob)
        await click.wait_response()
        bob_job = await wait_status(bot, bob_job.id, "canceled", "failed", "succeeded")
        assert bob_job.status == "canceled" and bob_job.prediction_id is None
        await second.wait_original(lambda m: "Cancelled" in m.text)

        # the slot is not leaked: alice's finishes, and a third job still gets to run
        _, job_a = await delivered(world, bot, first)
        third = await imagine(world, guild, channel, bob, prompt="bob's second owl")
        _, job_c = await delivered(world, bot, third)
    assert (job_a.status, job_c.status) == ("succeeded", "succeeded")
    assert [c.json["input"]["prompt"] for c in world.comet.creates()] == ["alice's fox", "bob's second owl"]
