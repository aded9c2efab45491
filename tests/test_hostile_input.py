"""Hostile or mistaken input, end to end (issue 6).

Every case ends the same way: a short message saying what is wrong (private where it answers an interaction),
no prediction created on the fake CometAPI, no crash (the fake saw no internal errors, nothing was logged at
ERROR) and no change to the store (jobs, server settings and user preferences compared before and after).
A few cases are accepted by design (stripped characters, mentions, markdown, someone else's Reroll, /imagine
in DMs); those assert exactly what was sent and shown.

Discord's client enforces an option's min/max before sending; a modified client doesn't, so the range cases
first drop min/max from the synced command the fake keeps, and the fake then sends whatever it is given.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cli.harness import wait_status
from fakes.cometapi import Outcome
from fakes.discord_interactions import find_component
from services.rules.catalogue import MAX_PROMPT_CHARS
from services.store.models import GuildSettings
from tests.card import card
from tests.helpers import EPHEMERAL, imagine, job_shown_in, png, private_reply

KONTEXT = "flux-kontext-pro"
ZERO_JOB = "0" * 32


# --- the world and what must not change -------------------------------------------------------------------


@dataclass
class Scene:
    guild: Any
    channel: Any
    alice: Any  # a member with no special permissions
    bob: Any  # another one
    admin: Any  # Manage Server


def scene(world) -> Scene:
    d = world.discord
    guild = d.add_guild("art club")
    channel = d.add_channel(guild, "images")
    alice, bob, admin = d.add_user("alice"), d.add_user("bob"), d.add_user("admin")
    d.add_member(guild, alice)
    d.add_member(guild, bob)
    d.add_member(guild, admin, permissions=["manage_guild"])
    return Scene(guild, channel, alice, bob, admin)


async def seed_state(bot, s: Scene) -> None:
    """Something stored to compare against: a server default and a user preference."""
    await bot.store.save_guild_settings(
        GuildSettings(s.guild.id, {"output_quality": 70}, None, {"jobs_in_flight": 5}, updated_at=1.0)
    )
    await bot.store.save_user_prefs(s.alice.id, {"aspect_ratio": "3:2"})


def stored_state(world) -> tuple[list[Any], ...]:
    """Jobs (what defines them and their status), server settings and user preferences, as stored."""
    path = world.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        jobs = conn.execute("SELECT id, kind, user_id, model, input, status FROM jobs ORDER BY id").fetchall()
        guilds = conn.execute("SELECT * FROM guild_settings ORDER BY guild_id").fetchall()
        prefs = conn.execute("SELECT * FROM user_prefs ORDER BY user_id").fetchall()
    return jobs, guilds, prefs


def public_ids(world, channel) -> set[int]:
    return {m.id for m in world.discord.messages_in(channel) if not m.ephemeral}


def running_bot(world):
    [bot] = world.bots
    return bot


class Unchanged:
    """Taken before a hostile action; `check()` once the bot has handled it: nothing was created, stored or
    posted publicly."""

    def __init__(self, world, channel) -> None:
        self.world = world
        self.channel = channel
        self.creates = len(world.comet.creates())
        self.state = stored_state(world)
        self.public = public_ids(world, channel)

    def check(self) -> None:
        assert len(self.world.comet.creates()) == self.creates, "a prediction was created"
        assert stored_state(self.world) == self.state, "the store changed"
        assert public_ids(self.world, self.channel) == self.public, "a public message was left behind"
        assert self.world.discord.internal_errors == []


async def refused(world, handle, guard: Unchanged, *words: str) -> str:
    """A short private answer containing every one of `words` (regexes), and nothing else changed."""
    msg = await private_reply(world, handle)
    text = str(msg.text)
    assert msg.flags & EPHEMERAL, f"not private: {text!r}"
    assert len(text) <= 400, f"not short ({len(text)} chars): {text[:200]!r}…"
    for word in words:
        assert re.search(word, text, re.IGNORECASE), (word, text)
    for bad in ("Traceback", "Exception", "Something went wrong"):
        assert bad not in text, text
    await running_bot(world).interaction_handled(handle.id)  # whatever the handler was going to do, it has done
    guard.check()
    return text


async def ignored(world, handle, guard: Unchanged) -> None:
    """No answer at all (the client shows its own "interaction failed"), and nothing else changed."""
    await running_bot(world).interaction_handled(handle.id)
    assert handle.response is None, handle.response
    assert handle.followups() == []
    guard.check()


def message_bodies(world) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every message the bot sent or edited: channel messages, webhook edits and follow-ups, callbacks."""
    for request in world.discord.requests:
        if request.method not in ("POST", "PATCH") or not isinstance(request.json, dict):
            continue
        body = request.json
        if request.path.endswith("/callback"):
            body = body.get("data") or {}
        if isinstance(body, dict) and ("content" in body or "embeds" in body or "components" in body):
            yield request.path, body


@pytest.fixture(autouse=True)
def no_pings_no_errors(world, caplog) -> Iterator[None]:
    """After every case: no message could ping anyone, and nothing was logged as an error."""
    caplog.set_level(logging.WARNING)
    yield
    for path, body in message_bodies(world):
        mentions = body.get("allowed_mentions")
        assert mentions is not None, (path, body)
        assert mentions.get("parse") == [], (path, mentions)
        assert not mentions.get("users") and not mentions.get("roles"), (path, mentions)
        assert not mentions.get("replied_user"), (path, mentions)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], caplog.text
    assert "Traceback" not in caplog.text
    assert world.discord.internal_errors == []


def open_ranges(world, name: str) -> None:
    """Drop the min/max/choices of every option of a synced command, as a modified client would ignore them."""

    def strip(options: list[dict[str, Any]]) -> None:
        for option in options:
            for key in ("min_value", "max_value", "choices", "min_length", "max_length"):
                option.pop(key, None)
            strip(option.get("options") or [])

    command = world.discord.command(name)
    assert command is not None
    strip(command.get("options") or [])


def button_row(custom_id: str) -> list[dict[str, Any]]:
    return [{"type": 1, "components": [{"type": 2, "style": 2, "label": "press", "custom_id": custom_id}]}]


async def plant(world, channel, custom_id: str):
    """A message of the bot's carrying a button with a custom id the bot never made (a forged one)."""
    return await world.discord.post_message(channel, world.discord.bot.id, "look", components=button_row(custom_id))


async def finished_result(world, bot, s: Scene, user, prompt: str = "a red fox"):
    """A succeeded /imagine job of `user` and its result message (with the Reroll button)."""
    handle = await imagine(world, s.guild, s.channel, user, prompt=prompt)
    final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
    job = await job_shown_in(bot, final.id)
    assert job is not None
    job = await wait_status(bot, job.id, "succeeded")
    custom_id = f"flux:reroll:{job.id}"
    await world.discord.wait_for(
        lambda: find_component(world.discord.message(final.id).components, custom_id) is not None,
        what="the Reroll button",
    )
    return job, world.discord.message(final.id)


def created_prompts(world) -> list[str]:
    return [str(create.json["input"]["prompt"]) for create in world.comet.creates()]


# --- /imagine: prompts ----------------------------------------------------------------------------------------

PROMPTS = [
    ("empty", "", ["prompt", "empty"]),
    ("whitespace", " \t\n \u00a0\u3000 ", ["prompt", "empty"]),
    (
        "over-the-limit",
        "a" * (MAX_PROMPT_CHARS + 1),
        [f"{MAX_PROMPT_CHARS + 1} characters", f"limit is {MAX_PROMPT_CHARS}"],
    ),
    ("discord-maximum", "fox " * 1499 + "fox!", ["6000 characters", f"limit is {MAX_PROMPT_CHARS}"]),
    ("control-characters-only", "\x00\x01\x07\x08\x1b\x7f\x85", ["prompt", "empty"]),
    ("zero-width-only", "\u200b\u200c\u200d\u2060\ufeff", ["prompt", "empty"]),
    ("format-characters-only", "\u00ad\u061c\u180e\u202e\u2066\U000e0041\U000e007f", ["prompt", "empty"]),
    ("blank-fillers-only", "\u3164\u115f\u1160\uffa0\u2800", ["prompt", "empty"]),
]


@pytest.mark.parametrize(("prompt", "words"), [c[1:] for c in PROMPTS], ids=[c[0] for c in PROMPTS])
async def test_bad_prompts_are_refused(world, prompt, words):
    s = scene(world)
    async with world.bot() as bot:
        await seed_state(bot, s)
        guard = Unchanged(world, s.channel)
        handle = await imagine(world, s.guild, s.channel, s.alice, prompt=prompt)
        await refused(world, handle, guard, *words)


async def test_control_and_invisible_characters_are_stripped_from_a_real_prompt(world):
    s = scene(world)
    world.comet.queue_outcome(Outcome(duration=0.1))
    prompt = "\u200ba re\u200bd f\x00ox\u2060 in\u00ad the s\u202enow\x07\ufeff"
    async with world.bot() as bot:
        handle = await imagine(world, s.guild, s.channel, s.alice, prompt=prompt)
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await job_shown_in(bot, final.id)
        assert job is not None
        job = await wait_status(bot, job.id, "succeeded")
    assert created_prompts(world) == ["a red fox in the snow"]
    assert job.input["prompt"] == "a red fox in the snow"
    assert "a red fox in the snow" in card(final).prompt


# --- /imagine: options a modified client sends past Discord's checks ------------------------------------------

OPTIONS: list[tuple[str, dict[str, Any], dict[str, str], list[str]]] = [
    ("seed-negative", {"seed": -1}, {}, ["seed", "between 0 and 2147483647", "-1"]),
    ("seed-2**40", {"seed": 2**40}, {}, ["seed", "between 0 and 2147483647", str(2**40)]),
    ("quality-101", {"output_quality": 101}, {}, ["output_quality", "between 0 and 100", "101"]),
    ("num-outputs-0", {"num_outputs": 0}, {}, ["num_outputs", "between 1 and 4"]),
    ("num-outputs-9", {"num_outputs": 9}, {}, ["num_outputs", "between 1 and 4", "9"]),
    ("ratio-1:0", {"aspect_ratio": "1:0"}, {}, ["aspect_ratio", "16:9", "1:0"]),
    ("format-gif", {"output_format": "gif"}, {}, ["output_format", "webp, jpg, png", "gif"]),
    ("model-evil/model", {"model": "evil/model"}, {}, ["unknown model", "evil/model", "flux-schnell"]),
    ("model-../../etc", {"model": "../../etc"}, {}, ["unknown model", "flux-schnell"]),
    (
        # with unknown models allowed, the name still must not climb out of /models/ in the API's URL
        "unknown-allowed-model-../x",
        {"model": "../x"},
        {"ALLOW_UNKNOWN_MODELS": "true"},
        ["unknown model"],
    ),
    (
        "unknown-allowed-model-./predictions",
        {"model": "./predictions"},
        {"ALLOW_UNKNOWN_MODELS": "true"},
        ["unknown model"],
    ),
    # a value echoed back is cut short: the answer must still fit in a Discord message
    ("model-3000-chars", {"model": "m" * 3000}, {}, ["unknown model", "flux-schnell"]),
    ("ratio-3000-chars", {"aspect_ratio": "9" * 3000}, {}, ["aspect_ratio", "16:9"]),
]


@pytest.mark.parametrize(("options", "settings", "words"), [c[1:] for c in OPTIONS], ids=[c[0] for c in OPTIONS])
async def test_out_of_range_values_and_wrong_names_are_refused(world, options, settings, words):
    s = scene(world)
    async with world.bot(**settings) as bot:
        open_ranges(world, "imagine")
        await seed_state(bot, s)
        guard = Unchanged(world, s.channel)
        handle = await imagine(world, s.guild, s.channel, s.alice, prompt="a cat", **options)
        await refused(world, handle, guard, *words)


async def test_a_value_echoed_in_an_error_cannot_bring_its_own_markdown(world):
    s = scene(world)
    async with world.bot() as bot:
        await seed_state(bot, s)
        guard = Unchanged(world, s.channel)
        handle = await imagine(
            world, s.guild, s.channel, s.alice, prompt="a cat", aspect_ratio="1:1` [click me](http://evil.example) `"
        )
        text = await refused(world, handle, guard, "aspect_ratio")
    # the value stays inside one code span (no backtick of its own), where Discord renders no link
    echoed = re.search(r"got `([^`]*)`", text)
    assert echoed is not None, text
    assert "[click me](http://evil.example)" in echoed.group(1)
    assert text.count("`") % 2 == 0, text


# --- /imagine: attachments ------------------------------------------------------------------------------------

ATTACHMENTS: list[tuple[str, str, Callable[[Any], dict[str, Any]], dict[str, str], list[str]]] = [
    (
        "text-file",
        KONTEXT,
        lambda d: {"image": d.add_attachment("notes.txt", b"just some words", "text/plain")},
        {},
        ["notes.txt", "not an image", "PNG, JPEG"],
    ),
    (
        "pdf",
        KONTEXT,
        lambda d: {"image": d.add_attachment("scan.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf")},
        {},
        ["scan.pdf", "not an image"],
    ),
    (
        "oversized",
        KONTEXT,
        lambda d: {"image": d.add_attachment("huge.png", png(1, 1) + b"\0" * 1_600_000, "image/png")},
        {"MAX_INPUT_IMAGE_MB": "1"},
        ["huge.png", "1.5 MiB", "limit is 1 MiB"],
    ),
    (
        "named-.png-but-not-an-image",
        KONTEXT,
        lambda d: {"image": d.add_attachment(".png", b"<html>surprise</html>", "image/png")},
        {},
        ["not a PNG, JPEG, GIF or WebP"],
    ),
    (
        "image-for-a-text-only-model",
        "flux-schnell",
        lambda d: {"image": d.add_attachment("cat.png", png(1, 1), "image/png")},
        {},
        ["text only", "remove the attachment"],
    ),
    (
        "two-images-for-a-one-image-model",
        KONTEXT,
        lambda d: {
            "image": d.add_attachment("a.png", png(1, 1), "image/png"),
            "image2": d.add_attachment("b.png", png(1, 1), "image/png"),
        },
        {},
        ["1 input image", "got 2"],
    ),
]


@pytest.mark.parametrize(
    ("model", "attach", "settings", "words"), [c[1:] for c in ATTACHMENTS], ids=[c[0] for c in ATTACHMENTS]
)
async def test_bad_attachments_are_refused(world, model, attach, settings, words):
    s = scene(world)
    async with world.bot(**settings) as bot:
        await seed_state(bot, s)
        guard = Unchanged(world, s.channel)
        handle = await imagine(
            world, s.guild, s.channel, s.alice, prompt="make it blue", model=model, **attach(world.discord)
        )
        await refused(world, handle, guard, *words)


# --- /imagine: mentions and markdown in the prompt ------------------------------------------------------------


async def test_mentions_in_the_prompt_are_shown_but_ping_nobody(world):
    s = scene(world)
    role = world.discord.add_role(s.guild, "artists")
    world.comet.queue_outcome(Outcome(duration=1.7))  # long enough for a progress edit quoting the prompt
    prompt = f"@everyone @here <@&{role.id}> <@{s.bob.id}> <@!{s.bob.id}> draw us"
    async with world.bot() as bot:
        handle = await imagine(world, s.guild, s.channel, s.alice, prompt=prompt)
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await job_shown_in(bot, final.id)
        assert job is not None
        await wait_status(bot, job.id, "succeeded")
    assert created_prompts(world) == [prompt]
    assert "@everyone" in card(final).prompt
    progress = [e.text for e in world.discord.edits_of(final.id) if "@everyone" in e.text]
    assert progress, "the progress lines quote the prompt"
    bodies = list(message_bodies(world))
    assert any("@everyone" in json.dumps(body) for _, body in bodies)
    # the autouse fixture checks allowed_mentions on every one of them


MARKDOWN = "**bold** # heading [click](http://evil.example) `code` ||spoiler|| __under__ ~~gone~~ > quote \\"


def assert_neutralised(shown: str) -> None:
    assert "\\*\\*bold\\*\\*" in shown, shown
    assert "\\[click](http://evil.example)" in shown, shown
    assert "\\`code\\`" in shown, shown
    assert "\\|\\|spoiler\\|\\|" in shown, shown
    assert "\\_\\_under\\_\\_" in shown, shown
    assert "\\~\\~gone\\~\\~" in shown, shown
    # nothing of the user's is left unescaped: no masked link, spoiler, code or bold of theirs
    assert not re.search(r"(?<!\\)\[click\]\(", shown), shown
    assert not re.search(r"(?<!\\)\|\|", shown), shown
    assert not re.search(r"(?<!\\)`", shown), shown
    assert shown.startswith("**") and shown.endswith("**") and shown.count("**") == 2, shown  # only the bot's bold
    # the trailing backslash is escaped too, so it can't swallow the closing **
    assert "\\\\**" in shown, shown


async def test_markdown_in_the_prompt_is_neutralised_in_progress_and_embed(world):
    s = scene(world)
    world.comet.queue_outcome(Outcome(duration=1.7))
    async with world.bot() as bot:
        handle = await imagine(world, s.guild, s.channel, s.alice, prompt=f"# heading {MARKDOWN}")
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await job_shown_in(bot, final.id)
        assert job is not None
        await wait_status(bot, job.id, "succeeded")
    assert created_prompts(world) == [f"# heading {MARKDOWN}"]  # the model gets the prompt as written
    description = final.text.splitlines()[0]  # the card's first line: the prompt
    assert description.startswith("**\\# heading"), description
    assert_neutralised(description)
    progress = [e.text for e in world.discord.edits_of(final.id) if e.text]
    assert progress
    for text in progress:
        first_line = text.splitlines()[0]
        assert first_line.startswith("**\\# heading"), first_line
        assert_neutralised(first_line)


# --- buttons --------------------------------------------------------------------------------------------------


async def test_forged_cancel_of_someone_elses_job_is_refused_and_the_job_goes_on(world):
    s = scene(world)
    world.comet.queue_outcome(Outcome(status="never"))
    async with world.bot() as bot:
        handle = await imagine(world, s.guild, s.channel, s.alice, prompt="alice's slow cat")
        shown = await handle.wait_original(lambda m: not m.loading and bool(m.text))
        job = await job_shown_in(bot, shown.id)
        job = await wait_status(bot, job.id, "running")
        planted = await plant(world, s.channel, f"flux:cancel:{job.id}")
        guard = Unchanged(world, s.channel)
        click = await world.discord.click_button(planted.id, f"flux:cancel:{job.id}", s.bob)
        await refused(world, click, guard, "only the person who asked", "moderator")
        assert (await bot.store.get_job(job.id)).status == "running"
    assert world.comet.requests_for("cancel") == []
    assert not world.comet.predictions[job.prediction_id].cancel_requested


async def test_cancel_of_a_finished_job_says_so(world):
    s = scene(world)
    world.comet.queue_outcome(Outcome(duration=0.1))
    async with world.bot() as bot:
        job, _ = await finished_result(world, bot, s, s.alice)
        planted = await plant(world, s.channel, f"flux:cancel:{job.id}")
        guard = Unchanged(world, s.channel)
        click = await world.discord.click_button(planted.id, f"flux:cancel:{job.id}", s.alice)
        await refused(world, click, guard, "already finished")
    assert world.comet.requests_for("cancel") == []


async def test_reroll_of_someone_elses_result_is_allowed_and_is_theirs(world):
    """By design anyone who can see a result may reroll it; the new job is the presser's, not the author's."""
    s = scene(world)
    world.comet.queue_outcome(Outcome(duration=0.1), times=2)
    async with world.bot() as bot:
        parent, result = await finished_result(world, bot, s, s.alice, prompt="alice's fox")
        click = await world.discord.click_button(result.id, f"flux:reroll:{parent.id}", s.bob)
        second = await click.wait_original(lambda m: bool(m.attachments), timeout=10)
        child = await job_shown_in(bot, second.id)
        assert child is not None
        child = await wait_status(bot, child.id, "succeeded")
    assert child.user_id == s.bob.id
    assert child.parent_id == parent.id and child.kind == "reroll"
    assert created_prompts(world) == ["alice's fox", "alice's fox"]
    assert card(second).facts[-1] == f"<@{s.bob.id}>"
    assert world.discord.message(result.id).attachments, "alice's result is left as it was"


FORGED = [
    ("reroll-unknown-job", f"flux:reroll:{ZERO_JOB}", ["no longer in my records"]),
    ("cancel-unknown-job", f"flux:cancel:{ZERO_JOB}", ["no longer exists"]),
    ("edit-unknown-job-on-a-message-without-images", f"flux:edit:{ZERO_JOB}", ["no image to edit"]),
]


@pytest.mark.parametrize(("custom_id", "words"), [c[1:] for c in FORGED], ids=[c[0] for c in FORGED])
async def test_buttons_naming_a_job_that_does_not_exist(world, custom_id, words):
    s = scene(world)
    async with world.bot() as bot:
        await seed_state(bot, s)
        planted = await plant(world, s.channel, custom_id)
        guard = Unchanged(world, s.channel)
        click = await world.discord.click_button(planted.id, custom_id, s.alice)
        await refused(world, click, guard, *words)


MALFORMED = [
    ("reroll-xyz", "flux:reroll:xyz"),
    ("edit-xyz", "flux:edit:xyz"),
    ("cancel-500-chars", "flux:cancel:" + "a" * 500),
    ("reroll-uppercase-hex", "flux:reroll:" + "A" * 32),
    ("reroll-id-with-suffix", f"flux:reroll:{ZERO_JOB}/../x"),
]


@pytest.mark.parametrize("custom_id", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
async def test_malformed_button_ids_are_ignored(world, custom_id):
    """No button of ours has such an id, so discord.py matches none and the bot stays silent."""
    s = scene(world)
    async with world.bot() as bot:
        await seed_state(bot, s)
        planted = await plant(world, s.channel, custom_id)
        guard = Unchanged(world, s.channel)
        click = await world.discord.click_button(planted.id, custom_id, s.alice)
        await ignored(world, click, guard)
        # and the bot is fine: the next command is answered
        shown = await world.discord.slash_command(s.guild, s.channel, s.alice, "imagine-prefs show")
        assert "3:2" in str((await private_reply(world, shown)).content)


# --- /imagine-settings and /imagine-prefs ---------------------------------------------------------------------


async def test_settings_from_a_member_without_manage_server_are_refused(world):
    s = scene(world)
    async with world.bot() as bot:
        await seed_state(bot, s)
        command = world.discord.command("imagine-settings")
        assert command is not None
        with pytest.raises(PermissionError):  # hidden from members by default
            await world.discord.slash_command(
                s.guild, s.channel, s.alice, "imagine-settings set", {"model": "flux-dev"}
            )
        command["default_member_permissions"] = None  # the owner showed it to everyone
        guard = Unchanged(world, s.channel)
        for sub, options in (
            ("set", {"model": "flux-dev"}),
            ("reset", {}),
            ("models", {"only_standard": True}),
            ("limits", {"cooldown_seconds": 0}),
        ):
            handle = await world.discord.slash_command(s.guild, s.channel, s.alice, f"imagine-settings {sub}", options)
            await refused(world, handle, guard, "permission")


SETTINGS = [
    ("format-gif", {"output_format": "gif"}, ["not saved", "output_format", "gif"]),
    ("ratio-1:0", {"aspect_ratio": "1:0"}, ["not saved", "aspect_ratio", "1:0"]),
    ("model-evil/model", {"model": "evil/model"}, ["not saved", "unknown model"]),
    ("model-../../etc", {"model": "../../etc"}, ["not saved", "unknown model"]),
    ("quality-101", {"output_quality": 101}, ["not saved", "output_quality", "101"]),
    ("num-outputs-9", {"num_outputs": 9}, ["not saved", "num_outputs", "9"]),
    ("ultra-webp", {"model": "flux-1.1-pro-ultra", "output_format": "webp"}, ["not saved", "jpg, png"]),
    ("pro-num-outputs", {"model": "flux-1.1-pro", "num_outputs": 2}, ["not saved", "num_outputs"]),
]


@pytest.mark.parametrize(("options", "words"), [c[1:] for c in SETTINGS], ids=[c[0] for c in SETTINGS])
async def test_server_defaults_the_model_refuses_are_not_saved(world, options, words):
    s = scene(world)
    async with world.bot() as bot:
        open_ranges(world, "imagine-settings")
        await seed_state(bot, s)
        guard = Unchanged(world, s.channel)
        handle = await world.discord.slash_command(s.guild, s.channel, s.admin, "imagine-settings set", options)
        await refused(world, handle, guard, *words)


LIMITS = [
    ("negative-cooldown", {"cooldown_seconds": -5.0}, ["not saved", "cooldown_seconds", "negative"]),
    ("zero-jobs-in-flight", {"jobs_in_flight": 0}, ["not saved", "jobs_in_flight", "at least 1"]),
    ("negative-quota", {"images_per_user_per_day": -1}, ["not saved", "images_per_user_per_day", "negative"]),
]


@pytest.mark.parametrize(("options", "words"), [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
async def test_server_limits_out_of_range_are_not_saved(world, options, words):
    s = scene(world)
    async with world.bot() as bot:
        open_ranges(world, "imagine-settings")
        await seed_state(bot, s)
        guard = Unchanged(world, s.channel)
        handle = await world.discord.slash_command(s.guild, s.channel, s.admin, "imagine-settings limits", options)
        await refused(world, handle, guard, *words)


async def test_settings_in_a_dm_are_refused(world):
    s = scene(world)
    async with world.bot() as bot:
        await seed_state(bot, s)
        with pytest.raises(PermissionError):  # Discord offers it in servers only
            await world.discord.slash_command(None, None, s.admin, "imagine-settings show")
        command = world.discord.command("imagine-settings")
        assert command is not None
        command["contexts"], command["dm_permission"] = None, True  # a client that sends it anyway
        dm = world.discord.dm_channel(s.admin)
        guard = Unchanged(world, dm)
        for sub, options in (("show", {}), ("set", {"model": "flux-dev"}), ("reset", {})):
            handle = await world.discord.slash_command(None, None, s.admin, f"imagine-settings {sub}", options)
            await refused(world, handle, guard, "servers only")


PREFS = [
    ("format-gif", {"output_format": "gif"}, ["not saved", "output_format", "gif"]),
    ("ratio-1:0", {"aspect_ratio": "1:0"}, ["not saved", "aspect_ratio"]),
    ("model-evil/model", {"model": "evil/model"}, ["not saved", "unknown model"]),
    ("quality-101", {"output_quality": 101}, ["not saved", "output_quality", "101"]),
    ("num-outputs-0", {"num_outputs": 0}, ["not saved", "num_outputs"]),
    ("kontext-webp", {"model": KONTEXT, "output_format": "webp"}, ["not saved", "jpg, png"]),
]


@pytest.mark.parametrize(("options", "words"), [c[1:] for c in PREFS], ids=[c[0] for c in PREFS])
async def test_bad_user_preferences_are_not_saved(world, options, words):
    s = scene(world)
    async with world.bot() as bot:
        open_ranges(world, "imagine-prefs")
        await seed_state(bot, s)
        guard = Unchanged(world, s.channel)
        handle = await world.discord.slash_command(s.guild, s.channel, s.alice, "imagine-prefs set", options)
        await refused(world, handle, guard, *words)


# --- reactions ------------------------------------------------------------------------------------------------


async def assert_reaction_ignored(world, channel, message_id, user) -> None:
    guard = Unchanged(world, channel)
    sent = len(world.discord.requests)
    await world.discord.add_reaction(channel, message_id, user, "🔄")
    await running_bot(world).reaction_handled(message_id, user.id, "🔄")
    guard.check()
    assert world.discord.requests[sent:] == [], [r.path for r in world.discord.requests[sent:]]


async def test_reroll_reaction_on_another_bots_message_is_ignored(world):
    s = scene(world)
    other = world.discord.add_user("otherbot", bot=True)
    world.discord.add_member(s.guild, other)
    async with world.bot() as bot:
        await seed_state(bot, s)
        theirs = await world.discord.post_message(s.channel, other, "a picture from another bot")
        await assert_reaction_ignored(world, s.channel, theirs.id, s.alice)


async def test_reroll_reaction_on_a_failed_jobs_reply_is_ignored(world):
    s = scene(world)
    world.comet.queue_outcome(Outcome(status="failed", error="NSFW content detected", duration=0.05))
    async with world.bot() as bot:
        handle = await imagine(world, s.guild, s.channel, s.alice, prompt="something spicy")
        msg = await handle.wait_original(lambda m: "NSFW" in m.text, timeout=10)
        job = await job_shown_in(bot, msg.id)
        assert job is not None
        await wait_status(bot, job.id, "failed")
        await assert_reaction_ignored(world, s.channel, msg.id, s.alice)
    assert len(world.comet.creates()) == 1  # the failed job's own


async def test_reroll_reaction_on_an_unrelated_message_of_the_bot_is_ignored(world):
    s = scene(world)
    async with world.bot() as bot:
        await seed_state(bot, s)
        ours = await world.discord.post_message(s.channel, world.discord.bot.id, "an announcement")
        await assert_reaction_ignored(world, s.channel, ours.id, s.alice)


async def test_reroll_reaction_by_a_bot_is_ignored(world):
    s = scene(world)
    other = world.discord.add_user("otherbot", bot=True)
    world.discord.add_member(s.guild, other)
    world.comet.queue_outcome(Outcome(duration=0.1))
    async with world.bot() as bot:
        _, result = await finished_result(world, bot, s, s.alice)
        await assert_reaction_ignored(world, s.channel, result.id, other)


# --- /imagine in DMs ------------------------------------------------------------------------------------------


async def test_imagine_works_in_dms_and_costs_one_prediction(world):
    """/imagine is not guild-only (the bot takes DM reactions too), so it works in a DM like in a server."""
    s = scene(world)
    world.comet.queue_outcome(Outcome(duration=0.1))
    async with world.bot() as bot:
        command = world.discord.command("imagine")
        assert command is not None and command["dm_permission"] is not False
        handle = await world.discord.slash_command(None, None, s.alice, "imagine", {"prompt": "a fox in a dm"})
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await job_shown_in(bot, final.id)
        assert job is not None
        job = await wait_status(bot, job.id, "succeeded")
    assert job.guild_id is None
    assert job.channel_id == world.discord.dm_channel(s.alice).id
    assert created_prompts(world) == ["a fox in a dm"]
