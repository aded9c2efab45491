"""What a test does as a person on Discord, the scenes it starts from, and the pictures and jobs it makes.

Where the test kit lives (a test module imports from these, never from another test module;
tests/test_layout.py checks it):

- fakes/                 the fake Discord and the fake CometAPI (fakes/common.py: `RecordedRequest`, `Fault`,
                         `wait_for`, `ManualClock`, shared by both).
- tests/conftest.py      the fixtures: `store` (SQLite, then PostgreSQL), `world` (the bot against both fakes),
                         `world_any_store`, `comet`, `discord_fake`, `fake` (a fake CometAPI on its own),
                         `refusing_discord`.
- cli/harness.py         the harness: `World` (starts bots), `TestBot`, `wait_status`, `TOKEN` and `KEY`.
- tests/helpers.py       this file: scenes (`setup_guild`), user actions (`imagine`, `result_of`, ...), what the
                         bot answered (`private_reply`, `delivered`, ...), pictures (`png`) and jobs (`make_job`).
- tests/campaign.py      the fault campaigns: jobs fired in bursts, what must hold after a fault, the bot as a real
                         `python bot.py` process.
- tests/blocked_variants.py  the word lists the moderation tests share.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import re
import struct
import subprocess
import sys
import textwrap
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from cli.harness import World, option_map, wait_status
from fakes.discord import FakeChannel, FakeGuild, FakeUser, InteractionHandle, StoredMessage
from fakes.discord_interactions import find_component
from services.limits import Limits, Refusal
from services.store import Store
from services.store.models import Job, JobStatus
from tests.card import button_rows

EPHEMERAL = 1 << 6  # the message flag of a reply only its user sees
KONTEXT = "black-forest-labs/flux-kontext-pro"
IMAGE_SLOTS = ["image", *(f"image{n}" for n in range(2, 11))]  # /imagine's attachment options, in order

# --- scenes ---------------------------------------------------------------------------------------------------


def setup_guild(
    world: World, *members: str, admin: bool = False, permissions: Any = None, name: str = "art club"
) -> tuple[Any, ...]:
    """A server `name` with a channel "images" and a member for each name in `members`, each with `permissions`
    (None: a plain member's). `admin=True` adds a member "admin" with Manage Server first.

    Returns ``(guild, channel, *people)``, people in that order: e.g.
    ``guild, channel, admin, alice = setup_guild(world, "alice", admin=True)``.
    """
    d = world.discord
    guild = d.add_guild(name)
    channel = d.add_channel(guild, "images")
    people = []
    if admin:
        people.append(add_member(world, guild, "admin", permissions=["manage_guild"]))
    people.extend(add_member(world, guild, member, permissions=permissions) for member in members)
    return (guild, channel, *people)


def add_member(world: World, guild: FakeGuild, name: str, permissions: Any = None) -> FakeUser:
    """A new user `name`, a member of `guild` with `permissions` (names, an int; None: a plain member's)."""
    user = world.discord.add_user(name)
    world.discord.add_member(guild, user, permissions=permissions)
    return user


# --- what a person does ---------------------------------------------------------------------------------------


async def imagine(
    world: World,
    guild: FakeGuild | None,
    channel: FakeChannel | None,
    user: FakeUser,
    *,
    attachments: Sequence[Mapping[str, Any]] = (),
    attachment_size_limit: int | None = None,
    **options: Any,
) -> InteractionHandle:
    """Run /imagine with these options (None ones left out); the interaction, not yet answered."""
    extra: dict[str, Any] = {"attachments": list(attachments)}
    if attachment_size_limit is not None:
        extra["attachment_size_limit"] = attachment_size_limit
    return await world.discord.slash_command(guild, channel, user, "imagine", option_map(**options), **extra)


async def imagine_with_image(world: World, guild, channel, user, data: bytes, **options: Any):
    """/imagine with Kontext and one uploaded picture; returns (the attachment, the interaction)."""
    attachment = world.discord.add_attachment("photo.png", data, "image/png")
    options = {"prompt": "make it night", "model": KONTEXT, "image": attachment["id"], **options}
    return attachment, await imagine(world, guild, channel, user, attachments=[attachment], **options)


async def result_of(world: World, bot, guild, channel, user, prompt: str = "a lighthouse", **options: Any):
    """/imagine, then its delivered result: (the reply with the images, the succeeded job)."""
    handle = await imagine(world, guild, channel, user, prompt=prompt, **options)
    return await delivered(world, bot, handle)


async def blend(world: World, guild, channel, user, count: int, **options: Any):
    """/blend with `count` uploaded pictures; returns (the attachments, the interaction)."""
    files = [world.discord.add_attachment(f"part{n}.png", png(grey=10 * n), "image/png") for n in range(count)]
    slots = {f"image{n + 1}": f["id"] for n, f in enumerate(files)}
    handle = await world.discord.slash_command(guild, channel, user, "blend", {**slots, **options}, attachments=files)
    return files, handle


async def open_and_submit(world: World, handle: InteractionHandle, user: FakeUser, instruction: str, **fields: Any):
    """The click opened a modal: fill it in with this instruction (and fields) and submit it."""
    await handle.wait_response()
    assert handle.response_type == 9, "a modal should open"
    return await world.discord.submit_modal(handle, {"instruction": instruction, **fields}, user_id=user.id)


async def set_edit_model(world: World, guild, admin, model: str) -> str:
    """An admin sets the server's edit model (from a channel of its own); the bot's answer."""
    channel = world.discord.add_channel(guild, f"admin-{len(world.discord.requests)}")
    handle = await world.discord.slash_command(guild, channel, admin, "imagine-settings set", {"edit_model": model})
    await handle.wait_response()
    answer = handle.original_message()
    assert answer is not None
    return str(answer.content)


async def history(world: World, guild, channel, user, **options: Any) -> StoredMessage:
    """/imagine-history; its private answer."""
    handle = await world.discord.slash_command(guild, channel, user, "imagine-history", options)
    message = await handle.wait_original(lambda m: bool(m.embeds), timeout=10)
    assert message.flags & EPHEMERAL, "history is a private answer"
    return message


# --- what the bot answered ------------------------------------------------------------------------------------


async def private_reply(world: World, handle: InteractionHandle, timeout: float = 5.0) -> StoredMessage:
    """The bot's answer to `handle` that is text only (no job): an immediate response or a follow-up.

    Returns the stored message; the caller asserts it is ephemeral (a public answer is found too, so a
    wrong flag fails on the assertion rather than on a timeout).
    """

    def answered() -> StoredMessage | None:
        # After a deferred update, @original is the clicked message itself: not an answer.
        original = handle.original_message() if handle.original_message_id != handle.source_message_id else None
        candidates = [original, *handle.followups()]
        for msg in reversed(candidates):
            if msg is not None and not msg.deleted and not msg.loading and msg.content:
                return msg
        return None

    return await world.discord.wait_for(answered, timeout=timeout, what=f"a text answer to {handle!r}")


async def ephemeral_text(handle: InteractionHandle) -> str:
    """The text of the bot's immediate answer, which must be private."""
    await handle.wait_response()
    message = handle.original_message()
    assert message is not None
    assert message.ephemeral
    return str(message.text)


async def assert_refused_privately(world: World, bot, handle: InteractionHandle, user, *pattern_words: str) -> str:
    """An ephemeral answer naming what to change, no public message left behind, nothing created or stored."""
    msg = await private_reply(world, handle)
    await bot.interaction_handled(handle.id)  # whatever the command was going to do, it has done
    assert msg.flags & EPHEMERAL, f"not ephemeral: {msg.text!r}"
    text = msg.text
    for word in pattern_words:
        assert re.search(word, text, re.IGNORECASE), (word, text)
    assert "Traceback" not in text
    # the public "thinking…" (when the bot deferred first) is gone, no other public message was posted
    public = [m for m in world.discord.messages_in(handle.channel_id) if not m.ephemeral]
    assert public == [], [m.text for m in public]
    assert world.comet.creates() == []
    assert await stored_jobs_of(bot.store, user.id) == 0
    return text


async def stored_jobs_of(store: Store, user_id: int) -> int:
    """How many jobs of this user the store holds (what /imagine-history counts)."""
    return await store.count_jobs(user_id=user_id)


async def until(predicate: Callable[[], Any], *, timeout: float = 10.0, what: str = "a condition") -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; returns that."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = predicate()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}") from None


async def job_shown_in(bot, message_id: int, *, timeout: float = 10.0) -> Job:
    """The stored job a message shows. A job answering its command with its first line is linked to that message
    right after Discord made it, so a test that sees the message may have to wait a moment for the link."""
    job: Job = await until(
        lambda: bot.store.job_by_message(message_id), timeout=timeout, what=f"the job of message {message_id}"
    )
    return job


async def started_job(world: World, bot, handle: InteractionHandle, timeout: float = 5.0):
    """The stored job behind a reply, once the reply shows progress; returns (job, message)."""
    msg = await handle.wait_original(lambda m: not m.loading and bool(m.text), timeout=timeout)
    job = await job_shown_in(bot, msg.id, timeout=timeout)
    return job, msg


async def running_job_with_cancel_button(world: World, bot, handle: InteractionHandle):
    """Wait until the job runs on the API and its reply offers Cancel; returns (job, message, custom id)."""
    job, _ = await started_job(world, bot, handle)
    custom_id = f"flux:cancel:{job.id}"
    msg = await handle.wait_original(has_component(custom_id))
    assert custom_id in list(custom_ids(msg.components))
    job = await wait_status(bot, job.id, "running")
    assert job.prediction_id is not None
    return job, msg, custom_id


async def delivered(world: World, bot, handle: InteractionHandle, *, timeout: float = 10.0):
    """The reply `handle` led to once it shows its images, and its job once succeeded: (message, job). Fails at
    once, with what the bot said, if it refused (privately) or the job failed (⚠️ or 🛑 in the reply)."""

    def outcome() -> StoredMessage | None:
        original = handle.original_message()
        refused = original is not None and original.ephemeral and original.text and not original.components_v2
        shown = original is not None and (original.attachments or refused)
        if original is not None and (shown or "⚠️" in original.text or "🛑" in original.text):
            return original
        refusals = [m for m in handle.followups() if m.text]
        return refusals[-1] if refusals else None

    final = await world.discord.wait_for(outcome, timeout=timeout, what=f"the outcome of {handle!r}")
    assert final.attachments, f"no images; the bot said: {final.text!r}"
    job = await job_shown_in(bot, final.id)
    assert job is not None
    return final, await wait_status(bot, job.id, "succeeded", timeout=timeout)


def custom_ids(components: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """Every custom id in a message's components, rows and nested ones included."""
    for comp in components:
        if comp.get("custom_id"):
            yield comp["custom_id"]
        yield from custom_ids(comp.get("components") or [])


def has_component(custom_id: str):
    return lambda m: find_component(m.components, custom_id) is not None


def rows(message: StoredMessage) -> list[list[tuple[str | None, str]]]:
    """The buttons of a message, row by row, as (label, custom_id)."""
    return [[(c.get("label"), c["custom_id"]) for c in row] for row in button_rows(message)]


def link_to(message: StoredMessage) -> str:
    return f"https://discord.com/channels/{message.guild_id}/{message.channel_id}/{message.id}"


def progress_edits(world: World, message_id: int) -> list[Any]:
    """The edits before the result (the last edit, with the files, is the result)."""
    edits = world.discord.edits_of(message_id)
    assert edits and edits[-1].attachments, "the last edit should be the result"
    return edits[:-1]


def history_lines(message: StoredMessage) -> list[str]:
    """The lines of a /imagine-history answer."""
    return str(message.embeds[0].get("description", "")).split("\n")


def prediction_outputs(world: World, prediction_id: str) -> list[str]:
    """The URLs of the files the fake API made for this prediction."""
    prediction = world.comet.predictions[prediction_id]
    return [f"{world.comet.base_url}/files/{prediction_id}/{n}.{prediction.ext}" for n in range(prediction.num_outputs)]


def cancel_requests(world: World, prediction_id: str) -> list[Any]:
    return [r for r in world.comet.requests_for("cancel") if prediction_id in r.path]


# --- pictures -------------------------------------------------------------------------------------------------


def png(width: int = 2, height: int = 2, *, grey: int = 0) -> bytes:
    """A real PNG of one grey (a different `grey`, different bytes), so the bot's image checks pass."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes([grey, grey, grey]) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def patterned_png(size: tuple[int, int], seed: int = 1) -> bytes:
    """A PNG of `size` whose every pixel differs from its neighbours (so a misplaced paste shows)."""
    w, h = size
    pixels = bytes((x * 7 + y * 13 + c * 101 + seed) % 256 for y in range(h) for x in range(w) for c in range(3))
    return encoded(Image.frombytes("RGB", size, pixels))


def encoded(image: Image.Image) -> bytes:
    """A Pillow image as PNG bytes."""
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    """PNG (or any image) bytes as an RGB Pillow image."""
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def show_instead(world: World, result: StoredMessage, data: bytes) -> Image.Image:
    """The result message shows `data` as its image from now on (the fake API makes only square images)."""
    world.discord.message(result.id).attachments[0].data = data
    return decoded(data)


# --- jobs -----------------------------------------------------------------------------------------------------

T0 = 1_760_000_000.125  # a fixed moment for stored jobs
GUILD = 42  # the server of `new_job`'s jobs


def make_job(**overrides: Any) -> Job:
    """A stored job's row: a queued flux-schnell /imagine at T0, with these fields changed."""
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "kind": "imagine",
        "user_id": 11,
        "channel_id": 22,
        "guild_id": 33,
        "shard_id": 0,
        "model": "black-forest-labs/flux-schnell",
        "input": {"prompt": "a cat", "seed": 42},
        "status": "queued",
        "created_at": T0,
    }
    values.update(overrides)
    return Job(**values)


def new_job(user_id: int, *, images: int = 1, guild_id: int | None = GUILD, created_at: float | None = None) -> Job:
    """A job of `images` images asked for now (or at `created_at`), to admit under limits."""
    return make_job(
        user_id=user_id,
        channel_id=7,
        guild_id=guild_id,
        input={"prompt": "a fox", "num_outputs": images},
        status=JobStatus.QUEUED,
        created_at=time.time() if created_at is None else created_at,
        image_count=images,
    )


async def admit_all(stores: Sequence[Store], jobs: Sequence[Job], limits: Limits) -> tuple[list[Job], list[Refusal]]:
    """Admit every job at once, alternating between the stores (as several processes would); (admitted, refusals)."""
    results = await asyncio.gather(
        *(stores[i % len(stores)].admit_job(job, limits, now=job.created_at) for i, job in enumerate(jobs))
    )
    admitted = [job for job, refusal in zip(jobs, results, strict=True) if refusal is None]
    return admitted, [r for r in results if r is not None]


def run_child(code: str) -> dict[str, object]:
    """Run `code` in a child Python at the repository's root (for settings that change the whole process, such as
    its allocator or its collector); its last line of output is JSON, returned as a dict."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))
