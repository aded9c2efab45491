"""A job's message is one Components V2 card from the first answer to the last, and the buttons of results
posted by older versions (an embed and rows of buttons) still work."""

from __future__ import annotations

from cli.harness import wait_status
from fakes.cometapi import Outcome
from fakes.discord_components import CONTAINER
from tests.card import button_rows, card, posted_by_an_older_version
from tests.helpers import custom_ids, delivered, imagine, job_shown_in, result_of, setup_guild

CANCEL_IDS = ":cancel:"


async def test_every_edit_of_a_jobs_message_is_the_same_card(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=2.0, queue_time=0.0))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a fox in the snow", model="flux-dev", seed=5)
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
    edits = world.discord.edits_of(final.id)
    assert len(edits) >= 2, "progress, then the result"
    for edit in edits:
        assert edit.flags & (1 << 15), edit.body
        assert not edit.body.get("content") and not edit.body.get("embeds")  # cleared, if anything: only the card
        [container] = edit.components  # one container holds everything
        assert container["type"] == CONTAINER
        shown = card(edit)
        assert shown.prompt == "a fox in the snow"
        assert shown.facts[:2] == ["flux-dev", "seed 5"] and shown.facts[-1] == f"<@{alice.id}>"
    *progress, result = edits
    for edit in progress:  # the stage line where the images will be, and Cancel
        shown = card(edit)
        assert shown.gallery == [] and len(shown.texts) == 1, shown
        assert shown.custom_ids == [f"flux:cancel:{job.id}"]
    assert any("Generating" in card(edit).texts[0] for edit in progress)
    shown = card(result)
    assert [item.filename for item in shown.gallery] == [a.filename for a in final.attachments]
    assert shown.facts[-2].endswith(" s")  # the time it took
    assert f"flux:reroll:{job.id}" in shown.custom_ids and not [i for i in shown.custom_ids if CANCEL_IDS in i]


async def test_a_failed_job_is_a_card_whose_reroll_tries_again(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(status="failed", error="The model ran out of memory."))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="an unlucky fox")
        failed = await handle.wait_original(lambda m: "⚠️" in m.text, timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, failed.id)).id, "failed")
        shown = card(failed)
        assert shown.prompt == "an unlucky fox" and "ran out of memory" in shown.texts[0]
        assert list(custom_ids(failed.components)) == [f"flux:reroll:{job.id}"]
        click = await world.discord.click_button(failed, f"flux:reroll:{job.id}", alice)
        again, child = await delivered(world, bot, click)
    assert (child.kind, child.parent_id) == ("reroll", job.id)
    assert card(again).gallery


async def test_the_buttons_of_a_result_posted_by_an_older_version_still_work(world):
    """Older versions posted an embed and rows of buttons; the same custom ids start the same jobs."""
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, num_outputs=2)
        old_rows = [
            [{"type": 2, "style": 2, "label": f"U{n}", "custom_id": f"flux:pick:{parent.id}:{n}"} for n in (1, 2)]
            + [{"type": 2, "style": 2, "label": "Reroll", "custom_id": f"flux:reroll:{parent.id}"}],
            [
                {"type": 2, "style": 2, "label": f"V{n}", "custom_id": f"flux:vary:{parent.id}:{n}:strong"}
                for n in (1, 2)
            ],
        ]
        posted_by_an_older_version(world.discord.message(result.id), old_rows)
        old = world.discord.message(result.id)
        assert old.embeds and not old.components_v2 and button_rows(old)
        picked, pick = await delivered(
            world, bot, await world.discord.click_button(old, f"flux:pick:{parent.id}:2", alice)
        )
        varied, variation = await delivered(
            world, bot, await world.discord.click_button(old, f"flux:vary:{parent.id}:1:strong", alice)
        )
        rerolled, reroll = await delivered(
            world, bot, await world.discord.click_button(old, f"flux:reroll:{parent.id}", alice)
        )
    assert (pick.kind, pick.extra.of_image) == ("pick", 2)
    assert picked.attachment_bytes() == [old.attachments[1].data]
    assert (variation.kind, variation.extra.of_image, variation.input["image"]) == (
        "variation",
        1,
        old.attachments[0].url,
    )
    assert reroll.kind == "reroll"
    assert all(job.parent_id == parent.id for job in (pick, variation, reroll))
    for message in (picked, varied, rerolled):  # what they post is the new card
        assert message.components_v2 and card(message).gallery
