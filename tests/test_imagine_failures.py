"""/imagine when something is wrong: bad input (private answer, nothing sent), failed jobs (a short reason in
the same reply), and unexpected errors (the command tree's handler)."""

from __future__ import annotations

import logging
import re
import sqlite3

import pytest

from cli.harness import KEY, wait_status
from fakes.cometapi import Outcome
from services.cometapi.client import RetryPolicy
from tests.helpers import (
    EPHEMERAL,
    assert_refused_privately,
    cancel_requests,
    imagine,
    job_shown_in,
    png,
    private_reply,
    setup_guild,
)

KONTEXT = "flux-kontext-pro"


def _attachment(world, filename, data, content_type):
    return world.discord.add_attachment(filename, data, content_type)


# (id, options for /imagine given the world, bot settings, words the answer must contain)
BAD_INPUT = [
    ("whitespace-prompt", lambda w: {"prompt": "  \t  "}, {}, ["prompt", "empty"]),
    ("zero-width-prompt", lambda w: {"prompt": "\u200b\u200c\u2060\ufeff"}, {}, ["prompt", "empty"]),
    ("unknown-model", lambda w: {"prompt": "a cat", "model": "flux-9000"}, {}, ["unknown model", "flux-schnell"]),
    (
        "ultra-refuses-webp",
        lambda w: {"prompt": "a cat", "model": "flux-1.1-pro-ultra", "output_format": "webp"},
        {},
        ["output_format", "jpg, png"],
    ),
    (
        "schnell-refuses-7:3",
        lambda w: {"prompt": "a cat", "model": "flux-schnell", "aspect_ratio": "7:3"},
        {},
        ["aspect_ratio", "16:9", "7:3"],
    ),
    (
        "pro-makes-one-image",
        lambda w: {"prompt": "a cat", "model": "flux-1.1-pro", "num_outputs": 3},
        {},
        ["one image", "num_outputs"],
    ),
    (
        "schnell-takes-no-image",
        lambda w: {
            "prompt": "a cat",
            "model": "flux-schnell",
            "image": _attachment(w, "cat.png", png(1, 1), "image/png"),
        },
        {},
        ["text only", "remove the attachment|kontext"],
    ),
    ("kontext-needs-an-image", lambda w: {"prompt": "make it blue", "model": KONTEXT}, {}, ["attach", "image"]),
    (
        "text-attachment",
        lambda w: {
            "prompt": "make it blue",
            "model": KONTEXT,
            "image": _attachment(w, "notes.txt", b"hello, not an image", "text/plain"),
        },
        {},
        ["notes.txt", "PNG, JPEG"],
    ),
    (
        "oversized-attachment",
        lambda w: {
            "prompt": "make it blue",
            "model": KONTEXT,
            "image": _attachment(w, "big.png", png(1, 1) + b"\0" * 20_000, "image/png"),
        },
        {"MAX_INPUT_IMAGE_MB": "0.01"},
        ["big.png", "limit"],
    ),
]


@pytest.mark.parametrize(("options", "settings", "words"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
async def test_bad_input_gets_a_private_answer_and_nothing_is_sent(world, options, settings, words):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(**settings) as bot:
        handle = await imagine(world, guild, channel, alice, **options(world))
        await assert_refused_privately(world, bot, handle, alice, *words)
        assert world.discord.internal_errors == []


async def test_a_non_image_attachment_is_caught_after_the_download(world):
    """The declared type says PNG; only the bytes tell, so the bot fetched it and then refused."""
    guild, channel, alice = setup_guild(world, "alice")
    fake_png = world.discord.add_attachment("x.png", b"GIF? no. just text", "image/png")
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="make it blue", model=KONTEXT, image=fake_png)
        await assert_refused_privately(world, bot, handle, alice, "not a PNG")
    assert any("x.png" in path for path in world.discord.cdn_requests)


# --- jobs that fail: the reason replaces the progress in the same reply -------------------------------------


async def failed_reply(world, bot, handle, *statuses, timeout=10.0):
    job = None
    msg = await handle.wait_original(lambda m: not m.loading and bool(m.text), timeout=timeout)
    job = await job_shown_in(bot, msg.id)
    assert job is not None
    job = await wait_status(bot, job.id, "failed", "canceled", "succeeded", timeout=timeout)
    assert job.status in statuses, (job.status, job.error)
    msg = world.discord.message(msg.id)
    return job, msg


def assert_short_human_text(text):
    lines = [line for line in text.splitlines() if line.strip()]
    assert 3 <= len(lines) <= 4, text  # the prompt, its facts line, then one or two lines of reason
    for bad in ("Traceback", "Error:", "Exception", "HTTP 4", "HTTP 5", 'File "'):
        assert bad not in text, text


async def test_model_failure_is_shown_in_the_reply(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(status="failed", error="NSFW content detected", duration=0.1))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="something spicy")
        _, msg = await failed_reply(world, bot, handle, "failed")
    assert "NSFW content detected" in msg.text
    assert "something spicy" in msg.text
    assert_short_human_text(msg.text)
    assert not msg.ephemeral and msg.attachments == []
    # No Cancel button left on a finished job; a safety refusal offers 🔄 (tests/test_checked_outputs.py)
    assert ":cancel:" not in str(msg.components)
    assert len(world.comet.creates()) == 1


async def test_deadline_cancels_the_prediction_and_says_it_timed_out(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(status="never"))
    async with world.bot(PREDICTION_DEADLINE="1") as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a slow cat")
        job, msg = await failed_reply(world, bot, handle, "failed")
    assert "too long" in msg.text
    assert_short_human_text(msg.text)
    assert job.prediction_id is not None
    assert cancel_requests(world, job.prediction_id), "the prediction was left running on the API"
    assert world.comet.predictions[job.prediction_id].cancel_requested


async def test_wrong_api_key_asks_for_the_admins_and_never_shows_the_key(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.api_key = "other"
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a cat")
        _, msg = await failed_reply(world, bot, handle, "failed")
    assert "admins" in msg.text
    assert_short_human_text(msg.text)
    assert world.comet.predictions == {}
    assert ":reroll:" not in str(msg.components)  # the same request would fail the same way
    sent = [repr(r.json) for r in world.discord.requests] + [
        repr((m.text, m.embeds)) for m in world.discord.messages.values()
    ]
    assert not [s for s in sent if KEY in s], "the API key reached Discord"


async def test_out_of_credit(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.inject("create", status=402)
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a cat")
        _, msg = await failed_reply(world, bot, handle, "failed")
    assert "out of credit" in msg.text
    assert_short_human_text(msg.text)
    assert world.comet.predictions == {}


async def test_rate_limiting_that_outlasts_the_retries_says_to_try_again(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.inject("create", status=429, headers={"Retry-After": "0"}, times=1000)
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a cat")
        _, msg = await failed_reply(world, bot, handle, "failed")
    assert re.search(r"try again", msg.text, re.IGNORECASE)
    assert_short_human_text(msg.text)
    assert len(world.comet.creates()) > 1  # it did retry
    assert world.comet.predictions == {}


# --- the command tree's error handler ----------------------------------------------------------------------


async def test_an_unexpected_error_gets_a_short_private_answer_and_a_logged_traceback(world, caplog):
    guild, channel, alice = setup_guild(world, "alice")
    caplog.set_level(logging.ERROR)
    async with world.bot() as bot:
        # A fault no code path expects: the user's stored preferences were damaged outside the bot.
        await bot.store.save_user_prefs(alice.id, {"model": "flux-dev"})
        damaged = sqlite3.connect(world.database_url.removeprefix("sqlite:///"))
        with damaged:
            damaged.execute("UPDATE user_prefs SET prefs = 'resolve exploded' WHERE user_id = ?", (alice.id,))
        damaged.close()
        handle = await imagine(world, guild, channel, alice, prompt="a cat")
        msg = await private_reply(world, handle)
        assert msg.flags & EPHEMERAL, msg.text
        assert "Something went wrong" in msg.text
        assert "resolve exploded" not in msg.text
        assert "Traceback" not in msg.text
        public = [m for m in world.discord.messages_in(channel) if not m.ephemeral and not m.deleted]
        assert public == [], [(m.text, m.flags) for m in public]
        assert world.comet.creates() == []
        assert await bot.store.count_jobs(user_id=alice.id) == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert errors, caplog.text
    assert any(isinstance(r.exc_info[1], ValueError) for r in errors)
    assert "Traceback" in caplog.text and "JSONDecodeError" in caplog.text


# --- what the user reads for each kind of API failure -------------------------------------------------------


async def test_an_api_that_keeps_failing_after_a_restart_is_not_answering(world):
    """The one place a poll is not ridden out until the deadline: the first look at a job resumed after a
    restart. When every retry of it fails, the job ends with "not answering", and nothing is created again."""
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(status="never"))
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a cat")
        message = await handle.wait_original(lambda m: not m.loading and bool(m.text))
        job = await job_shown_in(bot, message.id)
        job = await wait_status(bot, job.id, "running")
    gets_before = len(world.comet.requests_for("get"))
    # Retry-After: 0 so the retries are not spread over a minute (the client honours it)
    world.comet.inject("get", status=503, headers={"Retry-After": "0"}, times=1000)
    async with world.bot() as bot:
        job = await wait_status(bot, job.id, "failed", "succeeded", "canceled")
        msg = await world.discord.wait_for(
            lambda: m if "not answering" in (m := world.discord.message(message.id)).text else None,
            what="the failure in the reply",
        )
    assert job.status == "failed"
    assert "a cat" in msg.text
    assert_short_human_text(msg.text)
    assert re.search(r"(?<!\d)503(?!\d)", msg.text) is None  # (a seed may hold the digits)
    assert len(world.comet.requests_for("get")) - gets_before == RetryPolicy().attempts  # every retry was made
    assert len(world.comet.creates()) == 1
    # The prediction may still be running (and billed): the bot asked the API to stop it.
    assert world.comet.predictions[job.prediction_id].cancel_requested


async def test_a_request_the_api_refuses_says_why(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.inject(
        "create",
        status=422,
        json={
            "title": "Input validation failed",
            "detail": "input.prompt: flagged by the content filter",
            "status": 422,
        },
        content_type="application/problem+json",
    )
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a cat")
        _, msg = await failed_reply(world, bot, handle, "failed")
    assert "refused the request: input.prompt: flagged by the content filter" in msg.text
    assert_short_human_text(msg.text)
    assert re.search(r"(?<!\d)422(?!\d)", msg.text) is None  # (a seed may hold the digits)
    assert len(world.comet.creates()) == 1  # a refusal is not retried
    assert world.comet.predictions == {}


async def test_an_api_answer_the_bot_has_no_rule_for_is_blamed_on_the_service_not_the_bot(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.inject("create", status=409)  # none of the statuses the client knows what to make of
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a cat")
        _, msg = await failed_reply(world, bot, handle, "failed")
    assert "The image service could not take this request" in msg.text
    assert_short_human_text(msg.text)
    assert re.search(r"(?<!\d)409(?!\d)", msg.text) is None  # the status nowhere (a seed may hold the digits)
    assert len(world.comet.creates()) == 1


async def test_a_job_that_crashes_gets_the_generic_text_and_a_logged_traceback(world, caplog):
    """An exception nobody planned for (here Discord answers 400 to every edit through the interaction, so the
    result cannot be posted): the job ends, the user is told in a line (through the channel endpoint), and the
    traceback goes to the log."""
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=0.1))
    world.discord.inject_error("PATCH", r"/messages/@original$", 400, 50035, "Invalid Form Body", times=None)
    caplog.set_level(logging.ERROR)
    async with world.bot() as bot:
        await imagine(world, guild, channel, alice, prompt="a cat")
        msg = await world.discord.wait_for_message(lambda m: "Something went wrong" in m.text, timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, msg.id)).id, "failed", "succeeded")
    assert job.status == "failed"
    assert "a cat" in msg.text
    assert_short_human_text(msg.text)
    assert "Invalid Form Body" not in msg.text
    crashes = [r for r in caplog.records if "crashed" in r.getMessage() and r.exc_info]
    assert crashes, caplog.text
