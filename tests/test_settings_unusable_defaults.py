"""Defaults that every plain /imagine would be refused for: aspect_ratio custom (it needs a width and height that
no default, command or `--` parameter gives) and a model that only edits images (Kontext). Refused when an admin
or a member saves one; one saved by an older version, which allowed them, is skipped when used."""

from __future__ import annotations

import time

import pytest

from services.store.models import GuildSettings
from tests.helpers import KONTEXT, blend, delivered, ephemeral_text, imagine_with_image, png, result_of, setup_guild

FLUX2_DEV = "black-forest-labs/flux-2-dev"
NEEDS_PARTNERS = "aspect_ratio custom cannot be a default: it needs width, height as well"


@pytest.fixture
def world(world_any_store):
    """These tests run once with SQLite and once with PostgreSQL."""
    return world_any_store


async def test_a_server_default_of_aspect_ratio_custom_is_refused_privately_and_nothing_changes(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        d = world.discord
        saved = await ephemeral_text(
            await d.slash_command(guild, channel, admin, "imagine-settings set", {"model": "flux-2-dev"})
        )
        assert "model → `flux-2-dev`" in saved  # a normal default still saves
        before = await bot.store.get_guild_settings(guild.id)
        assert before is not None and before.defaults == {"model": FLUX2_DEV}
        for options in (
            {"aspect_ratio": "custom"},
            {"aspect_ratio": "Custom", "output_format": "png"},  # spelled any way, and nothing else is saved
            {"model": "flux-1.1-pro", "aspect_ratio": "custom"},
        ):
            text = await ephemeral_text(await d.slash_command(guild, channel, admin, "imagine-settings set", options))
            assert text.startswith("Not saved: "), text
            assert NEEDS_PARTNERS in text and "Choose another aspect_ratio." in text, text
            after = await bot.store.get_guild_settings(guild.id)
            assert after is not None and after.defaults == before.defaults

        _, job = await result_of(world, bot, guild, channel, member)
    assert (job.model, job.input["aspect_ratio"]) == (FLUX2_DEV, "1:1")


async def test_a_personal_default_of_aspect_ratio_custom_is_refused_privately_and_nothing_changes(world):
    guild, channel, member = setup_guild(world, "member")
    async with world.bot() as bot:
        d = world.discord
        await bot.store.save_user_prefs(member.id, {"model": FLUX2_DEV, "output_format": "png"})
        for options in ({"aspect_ratio": "custom"}, {"model": "flux-2-pro", "aspect_ratio": "custom"}):
            text = await ephemeral_text(await d.slash_command(guild, channel, member, "imagine-prefs set", options))
            assert text.startswith("Not saved: "), text
            assert NEEDS_PARTNERS in text, text
            assert await bot.store.get_user_prefs(member.id) == {"model": FLUX2_DEV, "output_format": "png"}

        saved = await ephemeral_text(
            await d.slash_command(guild, channel, member, "imagine-prefs set", {"aspect_ratio": "16:9"})
        )
        assert saved == "Saved: aspect_ratio → `16:9`"
        _, job = await result_of(world, bot, guild, channel, member)
    assert (job.model, job.input["aspect_ratio"], job.input["output_format"]) == (FLUX2_DEV, "16:9", "png")


async def test_a_default_model_that_only_edits_images_is_refused_privately_and_nothing_changes(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        d = world.discord
        for model in ("flux-kontext-pro", "black-forest-labs/flux-kontext-max"):
            text = await ephemeral_text(
                await d.slash_command(guild, channel, admin, "imagine-settings set", {"model": model})
            )
            assert text.startswith("Not saved: "), text
            name = model.rsplit("/", maxsplit=1)[-1]
            assert f"{name} edits an image and cannot make one from a prompt alone" in text, text
            choices = text.split("Choose one of: ", 1)[1]
            assert "flux-schnell" in choices and "flux-2-pro" in choices and "kontext" not in choices, text
            assert await bot.store.get_guild_settings(guild.id) is None

            mine = await ephemeral_text(
                await d.slash_command(guild, channel, member, "imagine-prefs set", {"model": model})
            )
            assert mine.startswith("Not saved: ") and f"{name} edits an image" in mine, mine
            assert await bot.store.get_user_prefs(member.id) == {}

        # Kontext is still the server's model for edits, and a default model that draws still saves.
        both = {"model": "flux-dev", "edit_model": "flux-kontext-pro"}
        saved = await ephemeral_text(await d.slash_command(guild, channel, admin, "imagine-settings set", both))
        assert "model → `flux-dev`, edit_model → `flux-kontext-pro`" in saved
        _, job = await result_of(world, bot, guild, channel, member)
    assert job.model == "black-forest-labs/flux-dev"


async def test_a_stored_custom_default_from_an_older_version_no_longer_breaks_imagine_or_blend(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    stored: dict[str, object] = {"model": FLUX2_DEV, "aspect_ratio": "custom", "output_format": "png"}
    async with world.bot() as bot:
        # written straight to the store, as an older version accepted it
        await bot.store.save_guild_settings(GuildSettings(guild.id, stored, None, {}, time.time()))
        _, job = await result_of(world, bot, guild, channel, member)
        assert (job.model, job.input["aspect_ratio"]) == (FLUX2_DEV, "1:1")  # the model's own default
        assert job.input["output_format"] == "png"  # the rest of the defaults still apply
        assert "width" not in job.input and "height" not in job.input
        for model in ("flux-2-pro", "flux-1.1-pro", "flux-pro"):
            _, job = await result_of(world, bot, guild, channel, member, model=f"black-forest-labs/{model}")
            assert job.input["aspect_ratio"] == "1:1", model
        _, handle = await blend(world, guild, channel, member, 2)
        _, job = await delivered(world, bot, handle)
        assert job.status == "succeeded" and job.input["aspect_ratio"] == "1:1"
        # a command's own ratio is still used, and the admin is told why the saved one is not
        _, job = await result_of(world, bot, guild, channel, member, aspect_ratio="16:9")
        assert job.input["aspect_ratio"] == "16:9"
        shown = await ephemeral_text(await world.discord.slash_command(guild, channel, admin, "imagine-settings show"))
        assert "**aspect_ratio**: `custom` (server)" in shown
        assert (
            "⚠️ The default aspect_ratio custom needs width, height as well, which a default cannot give, so "
            "/imagine leaves it out."
        ) in shown
        # other settings can still be changed while it is stored
        changed = await ephemeral_text(
            await world.discord.slash_command(guild, channel, admin, "imagine-settings set", {"output_quality": 70})
        )
        assert "output_quality → `70`" in changed, changed
    assert all(c.json["input"].get("aspect_ratio") != "custom" for c in world.comet.creates())


async def test_a_stored_custom_preference_from_an_older_version_no_longer_breaks_imagine(world):
    guild, channel, member = setup_guild(world, "member")
    async with world.bot() as bot:
        await bot.store.save_user_prefs(member.id, {"model": "black-forest-labs/flux-2-pro", "aspect_ratio": "custom"})
        _, job = await result_of(world, bot, guild, channel, member)
        assert (job.model, job.input["aspect_ratio"]) == ("black-forest-labs/flux-2-pro", "1:1")
        mine = await ephemeral_text(await world.discord.slash_command(guild, channel, member, "imagine-prefs show"))
    assert "**aspect_ratio**: `custom`" in mine
    assert "⚠️ The default aspect_ratio custom needs width, height as well" in mine


@pytest.mark.parametrize("saved_as", ["server default", "personal default"])
async def test_a_stored_editing_model_from_an_older_version_no_longer_breaks_imagine_without_an_image(world, saved_as):
    """A Kontext model saved as the default model by an older version: /imagine without an image used to be refused
    for everyone ("attach one with `image`"). It is made by the built-in model, with a note saying why; with an
    image, the saved model still edits it."""
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        built_in = bot.settings.default_model
        if saved_as == "server default":  # written straight to the store, as an older version accepted it
            await bot.store.save_guild_settings(
                GuildSettings(guild.id, {"model": KONTEXT, "output_format": "png"}, None, {}, time.time())
            )
        else:
            await bot.store.save_user_prefs(member.id, {"model": KONTEXT, "output_format": "png"})
        reply, job = await result_of(world, bot, guild, channel, member)
        assert job.model == built_in and job.input["output_format"] == "png"
        short = built_in.rsplit("/", 1)[-1]
        assert f"The saved model flux-kontext-pro only edits images, so {short} made this one from the prompt." in (
            reply.text
        ), reply.text
        _, handle = await imagine_with_image(world, guild, channel, member, png(), model=None)
        _, job = await delivered(world, bot, handle)
        assert job.model == KONTEXT
        if saved_as == "server default":
            shown = await ephemeral_text(
                await world.discord.slash_command(guild, channel, admin, "imagine-settings show")
            )
            assert (
                f"⚠️ The default model flux-kontext-pro only edits images, so /imagine without an image uses {short}."
            ) in shown, shown
