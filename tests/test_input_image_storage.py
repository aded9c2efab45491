"""Input images are stored once, by content; rerolls reuse them and send the API something it can use.

The fake CometAPI looks at every input image here as the real API does (`check_input_images`: fetches the
link, decodes the data: URI), and the fake Discord CDN refuses a link past its `ex`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import random
import sqlite3
import struct
import time
import zlib
from dataclasses import replace
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from cli.harness import wait_status
from services.errors import BadInput
from services.jobs.input_refs import LINK_MARGIN_SECONDS, api_input, reference
from services.limits import Limits
from services.store.base import InputImagesGone, Store
from services.store.job_extra import JobExtra
from services.store.models import InputImage, Job, JobStatus
from tests.conftest import postgres_test_url
from tests.helpers import (
    EPHEMERAL,
    KONTEXT,
    assert_refused_privately,
    delivered,
    imagine_with_image,
    job_shown_in,
    private_reply,
    setup_guild,
)

DAY = 86_400.0
BIG = 7_700_000  # the size of the edit in the report that made a 72 MB database


@cache
def noise_png(size: int, seed: int = 0) -> bytes:
    """A real PNG of random RGB pixels, about `size` bytes (noise does not compress: the bytes are the size)."""
    width = 1024
    height = max(1, size // (3 * width + 1))
    raw = random.Random(seed).randbytes(height * (3 * width + 1))
    rows = b"".join(b"\x00" + raw[y * (3 * width + 1) + 1 : (y + 1) * (3 * width + 1)] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 1))
        + chunk(b"IEND", b"")
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def database_bytes(database_url: str) -> int:
    """How much room the database takes: SQLite's pages, or every table of the PostgreSQL schema (with TOAST)."""
    if database_url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages * page_size)
    schema = parse_qs(urlsplit(database_url).query)["search_path"][0]
    conn = await asyncpg.connect(postgres_test_url())
    try:
        return int(
            await conn.fetchval(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
                schema,
            )
        )
    finally:
        await conn.close()


async def finished(bot, handle) -> Job:
    """The job a command or button started, once it has ended (succeeded, failed or canceled)."""
    message = await handle.wait_original(lambda m: True, timeout=10)
    job = await job_shown_in(bot, message.id)
    ended: Job = await wait_status(bot, job.id, "succeeded", "failed", "canceled")
    return ended


def sent_image(world, job: Job) -> tuple[str, dict[str, Any]]:
    """What the create of `job` sent as input_image, and what the fake API made of it."""
    prediction = world.comet.predictions[job.prediction_id]
    [seen] = prediction.extra["inputs"]
    return prediction.input["input_image"], seen


# --- end to end --------------------------------------------------------------------------------------------


async def test_data_uri_mode_stores_an_edit_image_once_for_the_edit_and_three_rerolls(world_any_store):
    world = world_any_store
    world.comet.check_input_images = True
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    picture = noise_png(BIG)
    async with world.bot(INPUT_IMAGE_MODE="data_uri") as bot:
        before = await database_bytes(world.database_url)
        _, handle = await imagine_with_image(world, guild, channel, alice, picture)
        result, edit = await delivered(world, bot, handle)
        jobs = [edit]
        for _ in range(3):
            click = await world.discord.click_button(result, f"flux:reroll:{edit.id}", alice)
            jobs.append(await finished(bot, click))
        grown = await database_bytes(world.database_url) - before
    assert [job.status for job in jobs] == ["succeeded"] * 4
    assert [job.kind for job in jobs] == ["imagine", "reroll", "reroll", "reroll"]
    for job in jobs:  # each create carried the picture's bytes, and the API could use them
        sent, seen = sent_image(world, job)
        assert sent.startswith("data:image/png;base64,")
        assert (seen["source"], seen["sha256"]) == ("data_uri", sha(picture))
    # One copy of the picture (and four small job rows), where each row used to hold it as a data: URI. (A little
    # under one copy is possible: SQLite reuses pages the migrations freed.)
    assert 0.9 * len(picture) <= grown < 1.5 * len(picture), f"the database grew by {grown} bytes"


async def test_url_mode_rerolls_send_a_fresh_link_and_the_stored_bytes_of_an_expired_one(world_any_store):
    world = world_any_store
    world.comet.check_input_images = True
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    fresh_picture, old_picture = noise_png(40_000, seed=1), noise_png(40_000, seed=2)
    async with world.bot() as bot:
        fresh_attachment, handle = await imagine_with_image(world, guild, channel, alice, fresh_picture)
        fresh_result, fresh_edit = await delivered(world, bot, handle)
        # An image posted two days ago: its link was good then (the CDN served it), and has expired since.
        world.discord.cdn_time_shift = -2 * DAY
        old_attachment, handle = await imagine_with_image(world, guild, channel, alice, old_picture)
        old_result, old_edit = await delivered(world, bot, handle)
        world.discord.cdn_time_shift = 0.0
        click = await world.discord.click_button(fresh_result, f"flux:reroll:{fresh_edit.id}", alice)
        fresh_reroll = await finished(bot, click)
        click = await world.discord.click_button(old_result, f"flux:reroll:{old_edit.id}", alice)
        old_reroll = await finished(bot, click)
    assert (fresh_reroll.status, old_reroll.status) == ("succeeded", "succeeded")
    # The stored inputs stay what was asked: the links.
    assert fresh_reroll.input["input_image"] == fresh_attachment["url"]
    assert old_reroll.input["input_image"] == old_attachment["url"]
    # A fresh link is sent as it is, and the API fetched the picture from it.
    sent, seen = sent_image(world, fresh_reroll)
    assert sent == fresh_attachment["url"]
    assert (seen["source"], seen["sha256"]) == ("url", sha(fresh_picture))
    # An expired one (the CDN now refuses it) is replaced by the bytes kept when the image was first used.
    sent, seen = sent_image(world, old_reroll)
    assert base64.b64decode(sent.removeprefix("data:image/png;base64,")) == old_picture
    assert (seen["source"], seen["sha256"]) == ("data_uri", sha(old_picture))


async def test_a_reroll_whose_input_image_is_no_longer_stored_is_refused_and_nothing_is_sent(world_any_store):
    world = world_any_store
    world.comet.check_input_images = True
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    picture = noise_png(40_000, seed=3)
    async with world.bot(INPUT_IMAGE_MODE="data_uri") as bot:
        _, handle = await imagine_with_image(world, guild, channel, alice, picture)
        result, edit = await delivered(world, bot, handle)
        await delete_input_images(world.database_url)
        click = await world.discord.click_button(result, f"flux:reroll:{edit.id}", alice)
        message = await private_reply(world, click)
        await bot.interaction_handled(click.id)
        assert [job.id for job in await bot.store.recent_jobs(user_id=alice.id, limit=10)] == [edit.id]
    assert message.flags & EPHEMERAL
    assert "no longer kept" in message.text and "attach them anew" in message.text
    assert len(world.comet.creates()) == 1  # the edit's only


async def delete_input_images(database_url: str) -> None:
    if database_url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn, conn:
            conn.execute("DELETE FROM input_images")
        return
    schema = parse_qs(urlsplit(database_url).query)["search_path"][0]
    conn = await asyncpg.connect(postgres_test_url(), server_settings={"search_path": schema})
    try:
        await conn.execute("DELETE FROM input_images")
    finally:
        await conn.close()


# --- the store and the references --------------------------------------------------------------------------


def job_with(model_input: dict[str, object], extra: JobExtra | None = None) -> Job:
    return Job(
        id=f"job-{random.getrandbits(64):x}",
        kind="edit",
        user_id=1,
        channel_id=2,
        guild_id=3,
        shard_id=0,
        model=KONTEXT,
        input={"prompt": "make it night", "seed": 7, **model_input},
        status=JobStatus.QUEUED,
        created_at=time.time(),
        extra=extra or JobExtra(),
    )


def link(expires_in: float) -> str:
    now = int(time.time())
    return f"https://cdn.discordapp.com/attachments/1/2/a.png?ex={now + int(expires_in):x}&is={now:x}&hm=ab&"


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


async def test_the_store_keeps_one_copy_of_the_same_bytes(store: Store) -> None:
    picture = noise_png(20_000, seed=4)
    image = InputImage.of(picture, "image/png")
    await store.put_input_image(image)
    await store.put_input_image(InputImage.of(picture, "image/png"))  # the same bytes again: no error, no change
    assert await store.get_input_image(image.sha256) == image
    assert await store.get_input_image(sha(b"never stored")) is None


async def test_admit_job_stores_its_images_only_when_it_is_admitted(store: Store) -> None:
    kept, refused = InputImage.of(noise_png(1000, seed=5), "image/png"), InputImage.of(noise_png(1000, 6), "image/png")
    one_at_a_time = Limits(cooldown_seconds=0, jobs_in_flight=1)
    first = job_with({"input_image": reference(kept.sha256)})
    assert await store.admit_job(first, one_at_a_time, now=first.created_at, images=[kept]) is None
    second = job_with({"input_image": reference(refused.sha256)})
    assert await store.admit_job(second, one_at_a_time, now=second.created_at, images=[refused]) is not None
    assert await store.get_input_image(kept.sha256) == kept
    assert await store.get_input_image(refused.sha256) is None


async def test_api_input_turns_references_into_what_the_api_can_use(store: Store) -> None:
    picture = noise_png(1000, seed=7)
    image = InputImage.of(picture, "image/png")
    await store.put_input_image(image)
    fresh, expiring = link(DAY), link(LINK_MARGIN_SECONDS / 2)
    now = time.time()

    stored = job_with({"input_image": reference(image.sha256)})
    for mode in ("url", "data_uri"):
        assert (await api_input(stored, store, mode=mode, now=now))["input_image"] == data_uri(picture)
    # A link with its stored copy: the link while it lives (url mode), the bytes when it is about to expire.
    linked = job_with({"input_image": fresh}, JobExtra(input_sha256={fresh: image.sha256, expiring: image.sha256}))
    assert (await api_input(linked, store, mode="url", now=now))["input_image"] == fresh
    assert (await api_input(linked, store, mode="data_uri", now=now))["input_image"] == data_uri(picture)
    later = now + DAY
    assert (await api_input(linked, store, mode="url", now=later))["input_image"] == data_uri(picture)
    several = job_with({"input_images": [expiring, reference(image.sha256)]}, linked.extra)
    sent = await api_input(several, store, mode="url", now=now)
    assert sent["input_images"] == [data_uri(picture), data_uri(picture)]
    assert (sent["prompt"], sent["seed"]) == ("make it night", 7)


async def test_api_input_sends_old_jobs_urls_and_data_uris_as_they_are(store: Store) -> None:
    old_link, inline = link(-DAY), data_uri(noise_png(1000, seed=8))
    for value in (old_link, inline):
        job = job_with({"input_image": value})
        for mode in ("url", "data_uri"):
            assert await api_input(job, store, mode=mode, now=time.time()) == job.input
    # Only the image parameters are read as references: a prompt that looks like one is left alone.
    prompt = reference(sha(b"x"))
    job = job_with({"input_image": old_link, "prompt": prompt})
    assert (await api_input(job, store, mode="data_uri", now=time.time()))["prompt"] == prompt


async def test_api_input_refuses_a_reference_whose_bytes_are_gone(store: Store) -> None:
    job = job_with({"input_image": reference(sha(b"gone"))})
    with pytest.raises(BadInput, match="no longer stored"):
        await api_input(job, store, mode="url", now=time.time())


# --- how long they are kept ----------------------------------------------------------------------------------

ANY_TIME = Limits(cooldown_seconds=0, jobs_in_flight=50)


async def admitted(store: Store, seed: int, *, at: float, reused: list[str] | None = None) -> tuple[Job, InputImage]:
    """A job admitted at `at` with an input image of its own (stored then, so last used then)."""
    image = InputImage.of(noise_png(1000 + 100 * seed, seed=100 + seed), "image/png")
    job = replace(job_with({"input_image": reference(image.sha256)}), created_at=at)
    assert await store.admit_job(job, ANY_TIME, now=at, images=[image], reused=reused or []) is None
    return job, image


async def finish(store: Store, job: Job) -> None:
    assert await store.transition(job.id, [JobStatus.QUEUED], JobStatus.SUCCEEDED, owner=None) is not None


async def kept(store: Store, *images: InputImage) -> set[str]:
    return set(await store.input_image_sizes([image.sha256 for image in images]))


async def test_images_unused_for_the_retention_are_deleted_unless_an_unfinished_job_needs_them(store: Store) -> None:
    now = time.time()
    old_job, old = await admitted(store, 1, at=now - 10 * DAY)
    recent_job, recent = await admitted(store, 2, at=now - DAY)
    queued_job, queued = await admitted(store, 3, at=now - 10 * DAY)  # still waiting to run: it needs its image
    for job in (old_job, recent_job):
        await finish(store, job)
    assert await store.input_image_sizes([old.sha256]) == {old.sha256: len(old.data)}

    pruned = await store.prune_input_images(unused_since=now - 3 * DAY, max_bytes=None)
    assert (pruned.images, pruned.bytes) == (1, len(old.data))
    assert await kept(store, old, recent, queued) == {recent.sha256, queued.sha256}
    assert await store.get_input_image(old.sha256) is None

    await finish(store, queued_job)  # done: nothing needs it any more
    assert (await store.prune_input_images(unused_since=now - 3 * DAY, max_bytes=None)).images == 1
    assert await kept(store, recent, queued) == {recent.sha256}


async def test_a_link_in_an_unfinished_jobs_extra_keeps_its_stored_copy(store: Store) -> None:
    image = InputImage.of(noise_png(1000, seed=120), "image/png")
    cdn = link(DAY)
    job = job_with({"input_image": cdn}, JobExtra(input_sha256={cdn: image.sha256}))
    assert await store.admit_job(job, ANY_TIME, now=job.created_at, images=[image]) is None
    assert (await store.prune_input_images(unused_since=time.time() + 1, max_bytes=0)).images == 0
    await finish(store, job)
    assert (await store.prune_input_images(unused_since=time.time() + 1, max_bytes=None)).images == 1


async def test_beyond_the_cap_the_least_recently_used_go_first(store: Store) -> None:
    now = time.time()
    jobs_and_images = [await admitted(store, seed, at=now - (10 - seed) * 3600) for seed in range(4)]
    images = [image for _, image in jobs_and_images]
    for job, _ in jobs_and_images[1:]:
        await finish(store, job)  # the oldest (seed 0) is still queued: never deleted, even over the cap
    total = sum(len(image.data) for image in images)
    # Within the cap: nothing goes.
    assert (await store.prune_input_images(unused_since=0, max_bytes=total)).images == 0
    # One byte over: the least recently used that no unfinished job needs (seed 1), and only it.
    pruned = await store.prune_input_images(unused_since=0, max_bytes=total - 1)
    assert (pruned.images, pruned.bytes) == (1, len(images[1].data))
    assert await kept(store, *images) == {images[0].sha256, images[2].sha256, images[3].sha256}
    # A cap nothing fits in: all but the queued job's.
    assert (await store.prune_input_images(unused_since=0, max_bytes=0)).images == 2
    assert await kept(store, *images) == {images[0].sha256}


async def test_a_reroll_marks_its_images_used_and_is_refused_when_they_are_gone(store: Store) -> None:
    now = time.time()
    parent, image = await admitted(store, 5, at=now - 10 * DAY)
    await finish(store, parent)
    reroll = replace(job_with(dict(parent.input)), created_at=now)
    assert await store.admit_job(reroll, ANY_TIME, now=now, reused=[image.sha256]) is None
    # Used again just now: the retention counts from there.
    assert (await store.prune_input_images(unused_since=now - 3 * DAY, max_bytes=None)).images == 0
    await finish(store, reroll)
    assert (await store.prune_input_images(unused_since=now + 1, max_bytes=None)).images == 1
    again = replace(job_with(dict(parent.input)), created_at=now)
    with pytest.raises(InputImagesGone):
        await store.admit_job(again, ANY_TIME, now=now, reused=[image.sha256])
    assert await store.get_job(again.id) is None


async def test_the_bot_deletes_expired_images_and_a_reroll_of_their_job_is_refused_at_once(world_any_store):
    world = world_any_store
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    picture = noise_png(40_000, seed=9)
    async with world.bot(INPUT_IMAGE_MODE="data_uri") as bot:
        _, handle = await imagine_with_image(world, guild, channel, alice, picture)
        result, edit = await delivered(world, bot, handle)
        assert await bot.store.input_image_sizes([sha(picture)]) == {sha(picture): len(picture)}
    # Restarted with a retention that has passed for every image: its first pass deletes the edit's.
    async with world.bot(INPUT_IMAGE_MODE="data_uri", INPUT_IMAGE_RETENTION_DAYS="0") as bot:
        async with asyncio.timeout(10):
            while True:  # the pass runs as the bot starts, beside everything else
                if not await bot.store.input_image_sizes([sha(picture)]):
                    break
                await asyncio.sleep(0.02)
        click = await world.discord.click_button(result, f"flux:reroll:{edit.id}", alice)
        refusal = await private_reply(world, click)
        await bot.interaction_handled(click.id)
        jobs = await bot.store.recent_jobs(user_id=alice.id, limit=10)
    assert refusal.flags & EPHEMERAL, refusal.text
    assert refusal.text.startswith("The images of this job are no longer kept (the bot keeps them 0 days"), refusal
    assert [job.id for job in jobs] == [edit.id]  # nothing admitted, nothing booked
    assert len(world.comet.creates()) == 1  # the edit's only


async def test_a_request_too_large_with_its_images_inline_is_refused_before_it_is_built(world_any_store):
    world = world_any_store
    guild, channel, _, alice = setup_guild(world, "alice", admin=True)
    pictures = [noise_png(300_000, seed=20 + n) for n in range(10)]
    files = [world.discord.add_attachment(f"part{n}.png", data, "image/png") for n, data in enumerate(pictures)]
    options = {f"image{n + 1}": f["id"] for n, f in enumerate(files)} | {"model": "flux-2-flex"}
    async with world.bot(INPUT_IMAGE_MODE="data_uri", COMETAPI_MAX_REQUEST_MB="1") as bot:
        handle = await world.discord.slash_command(guild, channel, alice, "blend", options, attachments=files)
        text = await assert_refused_privately(world, bot, handle, alice, r"this request would be 3\.\d MB")
        assert await bot.store.input_image_sizes([sha(p) for p in pictures]) == {}  # nothing kept either
    assert "over the 1 MB the bot sends to the image service; use fewer or smaller images." in text
