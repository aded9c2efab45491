"""/imagine end to end: real bot, real discord.py, fake Discord and fake CometAPI.

The helpers at the top are shared with test_imagine_failures.py and test_imagine_limits.py.
"""

from __future__ import annotations

import itertools
import re

import pytest

from cli.harness import wait_status
from fakes.cometapi import Outcome
from fakes.discord_interactions import find_component
from services.cometapi.polling import DurationStats
from tests.card import card
from tests.helpers import (
    EPHEMERAL,
    add_member,
    cancel_requests,
    custom_ids,
    has_component,
    imagine,
    job_shown_in,
    png,
    prediction_outputs,
    private_reply,
    progress_edits,
    running_job_with_cancel_button,
    setup_guild,
    started_job,
)
from ui.display import EDIT_INTERVAL


async def test_imagine_answers_with_its_progress_card_and_delivers_the_files(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=0.6))
    async with world.bot() as bot:
        handle = await world.discord.slash_command(
            guild, channel, alice, "imagine", {"prompt": "a red fox", "num_outputs": 2, "seed": 42}
        )
        await handle.wait_response()
        # Answered with the job's card itself (no "thinking…" to edit afterwards), in time.
        assert handle.response_type == 4
        assert handle.response_delay < 3.0
        first = handle.original_message()
        assert first is not None and first.components_v2 and not first.ephemeral
        assert "a red fox" in first.first_text

        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await job_shown_in(bot, final.id)
        assert job is not None
        job = await wait_status(bot, job.id, "succeeded", "failed")
        assert job.status == "succeeded"
        assert job.image_count == 2
        assert job.input["seed"] == 42
        assert job.input["num_outputs"] == 2

    [create] = world.comet.creates()
    assert create.json["input"]["prompt"] == "a red fox"
    prediction = world.comet.predictions[job.prediction_id]
    served = [world.comet.file_bytes(u) for u in prediction_outputs(world, job.prediction_id)]
    assert final.attachment_bytes() == served
    assert final.components_v2 and not final.content and not final.embeds
    shown = card(final)
    assert shown.prompt == "a red fox"
    assert shown.facts[0] == "flux-schnell"
    assert "seed 42" in shown.facts
    assert shown.facts[-1] == f"<@{alice.id}>"
    # the gallery shows the two files, in order, with the prompt as their alt text
    assert final.shown_bytes() == served
    assert [item.description for item in shown.gallery] == ["a red fox", "a red fox"]
    assert not any(item.spoiler for item in shown.gallery)
    assert prediction.gets >= 1
    progress = [text for text in final.lines_shown if text]
    assert any("Generating" in text or "Starting" in text for text in progress), progress


# --- the Cancel button ------------------------------------------------------------------------------------


async def test_cancel_button_pressed_by_the_requester_cancels_the_prediction(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(status="never"))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a very slow cat")
        job, msg, custom_id = await running_job_with_cancel_button(world, bot, handle)

        click = await world.discord.click_button(msg.id, custom_id, alice)
        await click.wait_response()
        assert click.response_type == 6  # acknowledged silently; the reply itself says what happened
        job = await wait_status(bot, job.id, "canceled", "failed", "succeeded")
        assert job.status == "canceled"
        final = await handle.wait_original(lambda m: "Cancelled" in m.text)
    assert cancel_requests(world, job.prediction_id)
    assert world.comet.predictions[job.prediction_id].cancel_requested
    assert "a very slow cat" in final.text
    # no Cancel button on a finished job; 🔄 to try again
    assert list(custom_ids(final.components)) == [f"flux:reroll:{job.id}"]
    assert world.discord.internal_errors == []


async def test_cancel_button_refuses_other_members_and_the_job_goes_on(world):
    guild, channel, alice = setup_guild(world, "alice")
    bob = add_member(world, guild, "bob")
    world.comet.queue_outcome(Outcome(duration=0.8))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="alice's cat")
        job, msg, custom_id = await running_job_with_cancel_button(world, bot, handle)

        click = await world.discord.click_button(msg.id, custom_id, bob)
        refusal = await private_reply(world, click)
        assert refusal.flags & EPHEMERAL
        assert "moderator" in refusal.text or "Only the person" in refusal.text

        job = await wait_status(bot, job.id, "succeeded", "failed", "canceled")
    assert job.status == "succeeded"
    assert world.comet.requests_for("cancel") == []
    assert world.discord.message(msg.id).attachments


async def test_cancel_button_works_for_a_member_who_can_manage_messages(world):
    guild, channel, alice = setup_guild(world, "alice")
    mod = add_member(world, guild, "mod", permissions=["manage_messages"])
    world.comet.queue_outcome(Outcome(status="never"))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a cat nobody wants")
        job, msg, custom_id = await running_job_with_cancel_button(world, bot, handle)

        click = await world.discord.click_button(msg.id, custom_id, mod)
        await click.wait_response()
        job = await wait_status(bot, job.id, "canceled", "failed", "succeeded")
    assert job.status == "canceled"
    assert cancel_requests(world, job.prediction_id)


async def test_cancel_during_the_create_still_cancels_the_prediction_it_made(world):
    """A create in flight is paid for: a cancel then must wait for its id and cancel that prediction."""
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(status="never"))
    world.comet.inject("create", status=None, delay=0.6)  # answered normally, but slowly
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a cat")
        job, _ = await started_job(world, bot, handle)
        custom_id = f"flux:cancel:{job.id}"
        msg = await handle.wait_original(has_component(custom_id))
        await world.comet.wait_for(world.comet.creates, what="the create")
        assert (await bot.store.get_job(job.id)).status == "submitting"

        click = await world.discord.click_button(msg.id, custom_id, alice)
        await click.wait_response()
        job = await wait_status(bot, job.id, "canceled", "failed", "succeeded")
    assert job.status == "canceled"
    [prediction] = world.comet.predictions.values()
    assert job.prediction_id == prediction.id
    assert prediction.cancel_requested, "the prediction made by the interrupted create was left running"


# --- the reply deleted while the job runs ----------------------------------------------------------------


async def test_deleting_the_reply_cancels_the_job_and_the_bot_carries_on(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=4.0))  # flux-dev: its logs move the progress on
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a cat", model="flux-dev")
        job, msg = await started_job(world, bot, handle)
        job = await wait_status(bot, job.id, "running")
        await world.discord.delete_message(channel, msg.id)

        job = await wait_status(bot, job.id, "canceled", "failed", "succeeded", timeout=5)
        assert job.status == "canceled"
        assert cancel_requests(world, job.prediction_id)
        assert world.comet.predictions[job.prediction_id].cancel_requested

        # nothing crashed: the bot still answers and delivers
        again = await imagine(world, guild, channel, alice, prompt="another cat")
        final = await again.wait_original(lambda m: bool(m.attachments), timeout=10)
        assert final.attachments
    assert world.discord.internal_errors == []
    assert world.discord.unhandled == []
    assert not [m for m in world.discord.messages_in(channel) if "Cancelled" in m.text]


async def test_deleting_the_reply_of_a_stalled_job_cancels_it_promptly(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(status="never", queue_time=0.0))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a cat", model="flux-1.1-pro")
        job, msg = await started_job(world, bot, handle)
        job = await wait_status(bot, job.id, "running")
        await world.discord.wait_for(lambda: any("Generating" in e.text for e in world.discord.edits_of(msg.id)))
        await world.discord.delete_message(channel, msg.id)
        try:
            job = await wait_status(bot, job.id, "canceled", "failed", "succeeded", timeout=3)
        except TimeoutError:
            job = await bot.store.get_job(job.id)
        assert job.status == "canceled", f"still {job.status} 3 s after its reply was deleted"
        assert cancel_requests(world, job.prediction_id)


# --- progress ---------------------------------------------------------------------------------------------

PERCENT = re.compile(r"\b(\d{1,3})%")


async def test_progress_shows_the_percentage_from_the_logs_at_a_calm_pace(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=3.0, queue_time=0.0))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a fox", model="flux-dev")
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
    edits = progress_edits(world, final.id)
    values = [int(m.group(1)) for e in edits if (m := PERCENT.search(e.text))]
    assert values, [e.text for e in edits]
    assert all("flux-dev" in e.text for e in edits)
    # percentages only go up
    assert values == sorted(values)
    assert all(b.at - a.at >= 1.4 for a, b in itertools.pairwise(edits)), [e.at for e in edits]
    assert job.status == "succeeded"


async def test_progress_edits_are_spaced_from_the_end_of_one_to_the_start_of_the_next(world):
    """Each edit takes a while to reach Discord (0.4 s here). The next one may start only EDIT_INTERVAL after
    the previous one was answered: counted from its start, two edits can arrive closer than the interval."""
    guild, channel, alice = setup_guild(world, "alice")
    # flux-dev's logs report a new percentage at nearly every poll, so there is always a newer line to send
    world.comet.queue_outcome(Outcome(duration=5.5, queue_time=0.0))  # room for 3 edits 1.9 s apart
    world.discord.inject_delay("PATCH", r"/messages/@original$", 0.4, times=None)
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a slow fox", model="flux-dev")
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=15)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
    edits = [
        r for r in world.discord.requests_matching("PATCH", r"/messages/@original$") if r.interaction_id == handle.id
    ]
    assert edits[-1].files, "the last edit should be the result"
    progress = edits[:-1]
    assert len(progress) >= 3, [r.json.get("content") for r in progress]
    gaps = [b.at - a.answered_at for a, b in itertools.pairwise(progress)]
    assert all(gap >= EDIT_INTERVAL for gap in gaps), gaps
    assert job.status == "succeeded"


async def test_polls_that_show_nothing_new_are_not_edits(world):
    """A model without a percentage logs a new plain line now and then while it generates: each poll that sees one
    is an update, but what the reply shows (Generating, and the elapsed time the refresh moves on) is the same,
    so it is not an edit."""
    guild, channel, alice = setup_guild(world, "alice")
    # a new log line every 1.5 s: room for an edit after each
    world.comet.queue_outcome(Outcome(duration=6.0, queue_time=0.0, logs_style="stages"))
    async with world.bot() as bot:
        bot.runner.refresh_seconds = 60.0  # no refresh within the job: any later "Generating" edit is a poll's
        handle = await imagine(world, guild, channel, alice, prompt="a fox", model="flux-1.1-pro")
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=15)
    generating = [e.text for e in progress_edits(world, final.id) if "Generating" in e.text]
    assert len(generating) == 1, generating


def with_usual_times(bot) -> None:
    """The models' usual durations as the catalogue gives them (the test bot otherwise expects every job within
    0.5 s), at the test bot's polling speed."""
    bot.service.stats = DurationStats(bot.settings.catalogue.typical_seconds(), bot.service.stats.tuning)


@pytest.mark.parametrize(("duration", "shows_generating"), [(2.0, False), (6.0, True)])
async def test_a_generating_line_waits_for_a_result_that_is_due(world, duration, shows_generating):
    """flux-schnell is usually done within 2.5 s: its "Generating" line waits for the result, due by then, which
    takes its place (one edit fewer), so the reply goes from "Starting" to the images. A job past its model's
    usual time shows it is generating."""
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=duration, queue_time=0.0))
    async with world.bot() as bot:
        with_usual_times(bot)
        handle = await imagine(world, guild, channel, alice, prompt="a fox", model="flux-schnell")
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=15)
    assert any("Generating" in line for line in final.lines_shown) == shows_generating, final.lines_shown
    assert any("Starting" in line for line in final.lines_shown), final.lines_shown


async def test_no_percentage_is_invented_for_a_model_without_a_progress_bar(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=2.0, queue_time=0.0))
    async with world.bot():
        handle = await imagine(world, guild, channel, alice, prompt="a fox", model="flux-1.1-pro")
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
    edits = progress_edits(world, final.id)
    assert any("Generating" in e.text for e in edits), [e.text for e in edits]
    assert not [e.text for e in edits if "%" in e.text]
    assert all(b.at - a.at >= 1.4 for a, b in itertools.pairwise(edits))


# --- mentions ---------------------------------------------------------------------------------------------


async def test_mentions_in_the_prompt_never_ping(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=0.2))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="@everyone look at <@&123> and @here")
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
    assert "@everyone" in card(final).prompt
    sent = [
        r
        for r in world.discord.requests
        if r.method in ("PATCH", "POST")
        and isinstance(r.json, dict)
        and ("content" in r.json or "embeds" in r.json or "components" in r.json)
    ]
    assert sent, "the bot sent no messages?"
    for request in sent:
        assert request.json.get("allowed_mentions", {}).get("parse") == [], (request.path, request.json)
    shown = [e.text for e in world.discord.edits_of(final.id) if "@everyone" in e.text]
    assert shown, "the progress lines quote the prompt (with pings disabled)"


# --- Reroll ----------------------------------------------------------------------------------------------


async def test_reroll_button_makes_a_new_job_with_a_new_seed(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=0.2), times=2)
    async with world.bot() as bot:
        handle = await imagine(
            world, guild, channel, alice, prompt="a red fox", model="flux-dev", aspect_ratio="16:9", num_outputs=2
        )
        first = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        parent = await job_shown_in(bot, first.id)
        parent = await wait_status(bot, parent.id, "succeeded")
        custom_id = f"flux:reroll:{parent.id}"
        first = await world.discord.wait_for(
            lambda: (m := world.discord.message(first.id)) and find_component(m.components, custom_id) and m
        )

        click = await world.discord.click_button(first.id, custom_id, alice)
        second = await click.wait_original(lambda m: bool(m.attachments), timeout=10)
        child = await job_shown_in(bot, second.id)
        assert child is not None and child.id != parent.id
        child = await wait_status(bot, child.id, "succeeded")

    assert child.kind == "reroll"
    assert child.parent_id == parent.id
    assert child.model == parent.model
    assert child.input["seed"] != parent.input["seed"]
    assert {k: v for k, v in child.input.items() if k != "seed"} == {
        k: v for k, v in parent.input.items() if k != "seed"
    }
    creates = world.comet.creates()
    assert len(creates) == 2
    assert creates[1].json["input"]["seed"] == child.input["seed"]
    assert creates[1].json["input"]["prompt"] == "a red fox"
    assert child.image_count == 2
    assert len(second.attachments) == 2
    assert world.discord.message(first.id).attachments, "the original result stays as it was"


async def test_one_image_models_accept_num_outputs_1(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=0.2))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a fox", model="flux-1.1-pro", num_outputs=1)
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
    assert "num_outputs" not in job.input
    [create] = world.comet.creates()
    assert "num_outputs" not in create.json["input"]


async def test_kontext_edits_an_attached_image(world):
    """The good case next to the bad-input ones: a real PNG for a Kontext model is passed on as its URL."""
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=0.2))
    picture = world.discord.add_attachment("cat.png", png(1, 1), "image/png")
    async with world.bot() as bot:
        handle = await imagine(
            world, guild, channel, alice, prompt="make it blue", model="flux-kontext-pro", image=picture
        )
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
    [create] = world.comet.creates()
    assert create.json["input"]["input_image"] == picture["url"]
    assert job.input["input_image"] == picture["url"]
    assert job.model.endswith("flux-kontext-pro")


# --- the interaction token ------------------------------------------------------------------------------------


async def test_the_token_is_timed_from_the_interaction_not_from_when_the_job_started(world):
    """The case from the issue: a Kontext edit whose interaction was already old when its job started (there, a
    slow attachment download; here, an interaction made 14 min 57 s before it reaches the bot). The token dies 15
    minutes after the interaction, during the job: the bot must have moved to the channel endpoints before that,
    never meeting a refused token, and the user gets the result."""
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=4.0))  # outlives the 3 s left of the token
    picture = world.discord.add_attachment("cat.png", png(1, 1), "image/png")
    async with world.bot() as bot:
        handle = await world.discord.slash_command(
            guild, channel, alice, "imagine", {"prompt": "make it night", "model": "flux-kontext-pro", "image": picture},
            created_ago=15 * 60 - 3,
        )  # fmt: skip
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=15)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded", "failed")
    assert handle.response_type == 4  # the first answer came in time, with the token
    assert (job.status, job.image_count) == ("succeeded", 1)
    refused = [r.route for r in world.discord.requests if r.status == 401]
    assert refused == [], f"the bot used a token it should have known was dead: {refused}"
    [result] = [e for e in world.discord.edits_of(final.id) if e.new_attachments]
    assert result.route.startswith(f"PATCH /channels/{channel.id}/messages/"), result.route
    assert "make it night" in card(final).prompt
