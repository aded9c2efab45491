"""Server defaults, user preferences and their precedence, end to end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from cli.harness import wait_status
from fakes.cometapi import Outcome
from services.store.base import Store
from services.store.models import GuildSettings
from tests.card import card
from tests.helpers import EPHEMERAL, ephemeral_text, job_shown_in, private_reply, result_of, setup_guild


@pytest.fixture
def world(world_any_store):
    """These tests run once with SQLite and once with PostgreSQL."""
    return world_any_store


async def test_server_defaults_are_shown_and_used(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        text = await ephemeral_text(
            await world.discord.slash_command(
                guild, channel, admin, "imagine-settings set", {"aspect_ratio": "16:9", "output_format": "png"}
            )
        )
        assert "16:9" in text
        shown = await ephemeral_text(await world.discord.slash_command(guild, channel, admin, "imagine-settings show"))
        assert "**aspect_ratio**: `16:9` (server)" in shown
        assert "**output_format**: `png` (server)" in shown
        assert "**num_outputs**: `1` (built-in)" in shown

        _, job = await result_of(world, bot, guild, channel, member)
    sent = world.comet.creates()[-1].json["input"]
    assert sent["aspect_ratio"] == "16:9"
    assert sent["output_format"] == "png"
    assert job.input["aspect_ratio"] == "16:9"


async def test_precedence_command_then_user_then_server_then_builtin(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        await (
            await world.discord.slash_command(
                guild, channel, admin, "imagine-settings set", {"aspect_ratio": "16:9", "output_quality": 50}
            )
        ).wait_response()
        await (
            await world.discord.slash_command(guild, channel, member, "imagine-prefs set", {"aspect_ratio": "3:2"})
        ).wait_response()
        _, job = await result_of(world, bot, guild, channel, member)
        assert job.input["aspect_ratio"] == "3:2"  # user preference beats the server default
        assert job.input["output_quality"] == 50  # server default beats built-in 80
        assert job.input["output_format"] == "webp"  # built-in
        _, job = await result_of(world, bot, guild, channel, member, aspect_ratio="9:16")
        assert job.input["aspect_ratio"] == "9:16"  # the command beats everything
        await (await world.discord.slash_command(guild, channel, member, "imagine-prefs clear")).wait_response()
        _, job = await result_of(world, bot, guild, channel, member)
        assert job.input["aspect_ratio"] == "16:9"


async def test_settings_refused_without_manage_server_even_if_the_command_is_shown(world):
    guild, channel, _admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        command = world.discord.command("imagine-settings")
        assert command is not None
        assert int(command["default_member_permissions"]) & (1 << 5)  # hidden: Manage Server only
        command["default_member_permissions"] = None  # as if the server owner showed it to everyone
        text = await ephemeral_text(
            await world.discord.slash_command(guild, channel, member, "imagine-settings set", {"aspect_ratio": "1:1"})
        )
        assert "permission" in text
        assert await bot.store.get_guild_settings(guild.id) is None


async def test_set_validates_against_the_model_and_saves_nothing_when_wrong(world):
    guild, channel, admin, _member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        text = await ephemeral_text(
            await world.discord.slash_command(
                guild,
                channel,
                admin,
                "imagine-settings set",
                {"model": "black-forest-labs/flux-1.1-pro-ultra", "output_format": "webp"},
            )
        )
        assert "Not saved" in text
        assert "jpg, png" in text
        assert await bot.store.get_guild_settings(guild.id) is None


async def test_models_not_allowed_are_refused_before_any_prediction(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot():
        text = await ephemeral_text(
            await world.discord.slash_command(guild, channel, admin, "imagine-settings models", {"only_standard": True})
        )
        assert "flux-1.1-pro" not in text
        assert "flux-schnell" in text
        handle = await world.discord.slash_command(
            guild, channel, member, "imagine", {"prompt": "x", "model": "black-forest-labs/flux-1.1-pro"}
        )
        refusal = await private_reply(world, handle)
        assert refusal.ephemeral
        assert "does not allow" in refusal.text
    assert world.comet.creates() == []


async def test_daily_quota_and_cooldown_from_server_limits(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    world.comet.default_outcome = Outcome(duration=0.05)
    async with world.bot() as bot:
        await (
            await world.discord.slash_command(
                guild, channel, admin, "imagine-settings limits", {"images_per_user_per_day": 2}
            )
        ).wait_response()
        await result_of(world, bot, guild, channel, member, num_outputs=2)
        handle = await world.discord.slash_command(guild, channel, member, "imagine", {"prompt": "one more"})
        refusal = await private_reply(world, handle)
        assert "2 of your 2 images" in refusal.text
        await (
            await world.discord.slash_command(
                guild, channel, admin, "imagine-settings limits", {"images_per_user_per_day": 0, "cooldown_seconds": 60}
            )
        ).wait_response()
        handle = await world.discord.slash_command(guild, channel, member, "imagine", {"prompt": "again"})
        refusal = await private_reply(world, handle)
        assert "Slow down" in refusal.text
    assert len(world.comet.creates()) == 1


async def set_limits(world, guild, channel, admin, **limits):
    await (await world.discord.slash_command(guild, channel, admin, "imagine-settings limits", limits)).wait_response()


async def refused(world, bot, handle, user) -> str:
    """A private refusal, and nothing started for `user`: no job stored, no prediction created."""
    creates = len(world.comet.creates())
    msg = await private_reply(world, handle)
    assert msg.flags & EPHEMERAL, f"expected a private refusal, got {msg.text!r}"
    await bot.interaction_handled(handle.id)
    assert len(world.comet.creates()) == creates
    assert await bot.store.count_jobs(user_id=user.id) == 0
    return str(msg.text)


async def test_the_servers_daily_quota_counts_every_members_images(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    other = world.discord.add_user("other")
    world.discord.add_member(guild, other)
    world.comet.default_outcome = Outcome(duration=0.05)
    async with world.bot() as bot:
        await set_limits(world, guild, channel, admin, images_per_guild_per_day=3)
        await result_of(world, bot, guild, channel, member, num_outputs=2)

        # another member, with no images of their own today, asks for two more: the server has 1 left
        handle = await world.discord.slash_command(
            guild, channel, other, "imagine", {"prompt": "two more", "num_outputs": 2}
        )
        text = await refused(world, bot, handle, other)
        assert "This server has used 2 of its 3 images" in text

        _, job = await result_of(world, bot, guild, channel, other)  # one still fits
    assert job.image_count == 1
    assert len(world.comet.creates()) == 2


async def test_the_servers_jobs_in_flight_limit_replaces_the_bots(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    world.comet.default_outcome = Outcome(status="never")
    async with world.bot(MAX_JOBS_PER_USER="10") as bot:
        await set_limits(world, guild, channel, admin, jobs_in_flight=1)
        first = await world.discord.slash_command(guild, channel, member, "imagine", {"prompt": "one"})
        message = await first.wait_original(lambda m: not m.loading and bool(m.text))
        job = await job_shown_in(bot, message.id)
        await wait_status(bot, job.id, "running")

        second = await world.discord.slash_command(guild, channel, member, "imagine", {"prompt": "two"})
        msg = await private_reply(world, second)
        assert msg.flags & EPHEMERAL, f"expected a private refusal, got {msg.text!r}"
        assert "already have 1 image job running" in msg.text and "limit 1" in msg.text
        await bot.interaction_handled(second.id)
    assert [c.json["input"]["prompt"] for c in world.comet.creates()] == ["one"]


async def test_reset_brings_back_the_built_in_defaults_and_keeps_the_limits(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        await (
            await world.discord.slash_command(
                guild, channel, admin, "imagine-settings set",
                {"model": "flux-dev", "aspect_ratio": "16:9", "output_format": "png"},
            )
        ).wait_response()  # fmt: skip
        await set_limits(world, guild, channel, admin, jobs_in_flight=3)

        text = await ephemeral_text(await world.discord.slash_command(guild, channel, admin, "imagine-settings reset"))
        assert "reset" in text
        stored = await bot.store.get_guild_settings(guild.id)
        assert stored is not None and stored.defaults == {}
        assert stored.limits == {"jobs_in_flight": 3}
        shown = await ephemeral_text(await world.discord.slash_command(guild, channel, admin, "imagine-settings show"))
        assert "**model**: `flux-schnell` (built-in)" in shown
        assert "**aspect_ratio**: `1:1` (built-in)" in shown
        assert "**output_format**: `webp` (built-in)" in shown

        _, job = await result_of(world, bot, guild, channel, member)
    assert job.model == "black-forest-labs/flux-schnell"
    assert (job.input["aspect_ratio"], job.input["output_format"]) == ("1:1", "webp")


# --- a saved model the operator hid or removed, or the server no longer allows ----------------------------------

RETIRED = "black-forest-labs/flux-3-retired"  # saved while it was in the catalogue; the operator removed it since


def notes_of(message) -> list[str]:
    return ["\n".join(card(message).notes)] if card(message).notes else []


async def save_server(bot, guild, defaults, allowed=None):
    await bot.store.save_guild_settings(GuildSettings(guild.id, defaults, allowed, {}, time.time()))


async def test_a_removed_model_saved_as_preference_and_server_default_falls_back_to_the_bots(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        await bot.store.save_user_prefs(member.id, {"model": RETIRED, "aspect_ratio": "16:9"})
        await save_server(bot, guild, {"model": RETIRED})
        handle = await world.discord.slash_command(guild, channel, member, "imagine", {"prompt": "a lighthouse"})
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
        assert job.model == "black-forest-labs/flux-schnell"
        assert job.input["aspect_ratio"] == "16:9"  # the rest of the preference still applies
        # Said once, though both the preference and the server default name the removed model.
        assert [note for note in notes_of(final) if "flux-3-retired" in note] == [
            "The saved model flux-3-retired is not available here, so flux-schnell was used."
        ]
        shown = await ephemeral_text(await world.discord.slash_command(guild, channel, admin, "imagine-settings show"))
        assert "The default model flux-3-retired is no longer available, so /imagine uses flux-schnell." in shown
    assert world.comet.creates()[-1].path.endswith("/flux-schnell/predictions")


async def test_a_server_default_the_server_no_longer_allows_falls_back(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        await save_server(bot, guild, {"model": "black-forest-labs/flux-dev"}, ["black-forest-labs/flux-schnell"])
        _, job = await result_of(world, bot, guild, channel, member)
        assert job.model == "black-forest-labs/flux-schnell"
        assert "flux-dev" in str(job.extra.notes)
        shown = await ephemeral_text(await world.discord.slash_command(guild, channel, admin, "imagine-settings show"))
        assert "The default model flux-dev is no longer available, so /imagine uses flux-schnell." in shown


async def test_when_the_fallback_is_not_allowed_either_the_refusal_says_both(world):
    guild, channel, _admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        await bot.store.save_user_prefs(member.id, {"model": RETIRED})
        await save_server(bot, guild, {}, ["black-forest-labs/flux-dev"])
        handle = await world.discord.slash_command(guild, channel, member, "imagine", {"prompt": "a lighthouse"})
        text = await refused(world, bot, handle, member)
    assert text == (
        "The saved model flux-3-retired is not available here. "
        "This server does not allow flux-schnell. Allowed here: flux-dev."
    )


async def test_settings_and_preferences_name_models_by_their_short_names(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    options = {"model": "flux-dev", "edit_model": "black-forest-labs/flux-kontext-pro", "variation_model": "flux-dev"}
    async with world.bot():
        d = world.discord
        changed = await ephemeral_text(await d.slash_command(guild, channel, admin, "imagine-settings set", options))
        shown = await ephemeral_text(await d.slash_command(guild, channel, admin, "imagine-settings show"))
        saved = await ephemeral_text(
            await d.slash_command(
                guild, channel, member, "imagine-prefs set", {"model": "black-forest-labs/flux-2-pro"}
            )
        )
        mine = await ephemeral_text(await d.slash_command(guild, channel, member, "imagine-prefs show"))
    for text in (changed, shown, saved, mine):  # the full ids are stored, and never shown
        assert "black-forest-labs/" not in text, text
    assert "model → `flux-dev`, edit_model → `flux-kontext-pro`, variation_model → `flux-dev`" in changed
    assert "**model**: `flux-dev` (server)" in shown
    assert "**edit_model**: `flux-kontext-pro` (server)" in shown
    assert "**variation_model**: `flux-dev` (server)" in shown
    assert saved.endswith("model → `flux-2-pro`")
    assert "**model**: `flux-2-pro`" in mine


def first_two_reads_together(monkeypatch: pytest.MonkeyPatch, store: Store, method: str) -> Any:
    """Hold the first two calls of the store's `method` (one per command) until both have read, so that both
    commands read before either saves. Returns the method as it was."""
    read = getattr(store, method)
    both_read = asyncio.Barrier(2)
    calls = 0

    async def held(*args: Any) -> Any:
        nonlocal calls
        value = await read(*args)
        calls += 1
        if calls <= 2:
            await both_read.wait()
        return value

    monkeypatch.setattr(store, method, held)
    return read


async def test_two_settings_changes_at_once_both_keep_their_change(world, monkeypatch):
    """Two admins change different settings at the same moment: both changes are kept. Each used to save the whole
    row as it had read it, so the second save undid the first (a blocked word silently unblocked)."""
    guild, channel, admin, _ = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        read = first_two_reads_together(monkeypatch, bot.store, "get_guild_settings")
        d = world.discord
        block = await d.slash_command(guild, channel, admin, "imagine-settings moderation", {"block": "kraken"})
        limits = await d.slash_command(guild, channel, admin, "imagine-settings limits", {"cooldown_seconds": 42})
        said = await asyncio.gather(ephemeral_text(block), ephemeral_text(limits))
        stored = await read(guild.id)
    assert "kraken" in said[0] and "42" in said[1], said
    assert stored is not None
    assert stored.limits.get("cooldown_seconds") == 42
    assert "kraken" in stored.moderation.get("blocked_words", []), stored.moderation


async def test_two_preference_changes_at_once_both_keep_their_change(world, monkeypatch):
    """One person sets two of their defaults from two devices at the same moment: both are kept. Each command used
    to save the whole row as it had read it, so the second save undid the first."""
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        read = first_two_reads_together(monkeypatch, bot.store, "get_user_prefs")
        d = world.discord
        shape = await d.slash_command(guild, channel, alice, "imagine-prefs set", {"aspect_ratio": "16:9"})
        quality = await d.slash_command(guild, channel, alice, "imagine-prefs set", {"output_quality": 70})
        said = await asyncio.gather(ephemeral_text(shape), ephemeral_text(quality))
        stored = await read(alice.id)
    assert "16:9" in said[0] and "70" in said[1], said
    assert stored.get("aspect_ratio") == "16:9" and stored.get("output_quality") == 70, stored
