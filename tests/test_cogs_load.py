"""Every extension loads in a real bot, /imagine is synced with its options, and syncing happens only on change."""

from __future__ import annotations

import sys
import textwrap

import ui.flux_bot as bot_module

IMAGINE_OPTIONS = [
    "prompt",
    "model",
    "aspect_ratio",
    "resolution",
    "output_format",
    "output_quality",
    "seed",
    "num_outputs",
    "safety_tolerance",
    "image",
    *(f"image{n}" for n in range(2, 11)),
    "enhance",
]


def command_puts(world):
    app = world.discord.application_id
    return world.discord.requests_matching("PUT", rf"^/applications/{app}/commands$")


async def test_every_extension_loads_and_imagine_is_synced_with_its_options(world):
    async with world.bot() as bot:
        assert set(bot.extensions) == set(bot_module.EXTENSIONS)
        # each extension added at least one cog, defined in that extension's module
        cog_modules = {type(cog).__module__ for cog in bot.cogs.values()}
        assert set(bot_module.EXTENSIONS) <= cog_modules, (bot_module.EXTENSIONS, cog_modules)
        assert bot.get_cog("Imagine") is not None

    [put] = command_puts(world)
    assert put.status == 200
    imagine = world.discord.command("imagine")
    assert imagine is not None, [c["name"] for c in world.discord.commands()]
    assert [o["name"] for o in imagine["options"]] == IMAGINE_OPTIONS
    required = {o["name"] for o in imagine["options"] if o.get("required")}
    assert required == {"prompt"}
    blend = world.discord.command("blend")
    assert blend is not None
    assert {o["name"] for o in blend["options"] if o.get("required")} == {"image1", "image2"}
    assert [o["name"] for o in blend["options"] if o["type"] == 11] == [f"image{n}" for n in range(1, 11)]


EXTRA_EXTENSION = """
from discord import app_commands
from discord.ext import commands


class Extra(commands.Cog):
    @app_commands.command(name="extra-test-command", description="only in this test")
    async def extra(self, interaction):
        await interaction.response.send_message("extra")


async def setup(bot):
    await bot.add_cog(Extra())
"""


async def test_commands_are_synced_again_only_when_they_change(world, monkeypatch, tmp_path):
    async with world.bot():
        pass
    assert len(command_puts(world)) == 1

    async with world.bot():  # same commands, same store: the fingerprint matches, no PUT
        pass
    assert len(command_puts(world)) == 1

    # A new command (an extra extension, as a deploy adding a cog would) must be pushed at the next start.
    (tmp_path / "extra_test_cog.py").write_text(textwrap.dedent(EXTRA_EXTENSION))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "extra_test_cog", raising=False)
    monkeypatch.setattr(bot_module, "EXTENSIONS", (*bot_module.EXTENSIONS, "extra_test_cog"))
    async with world.bot():
        pass
    assert len(command_puts(world)) == 2
    assert world.discord.command("extra-test-command") is not None
    assert world.discord.command("imagine") is not None

    async with world.bot():  # and that new fingerprint is remembered
        pass
    assert len(command_puts(world)) == 2
