"""/imagine's autocompletes, through real autocomplete interactions: the models this server allows, and the
aspect ratios and formats of the model the request will use (the one typed, else the member's, the server's
or the built-in default)."""

from __future__ import annotations

from tests.helpers import setup_guild

KONTEXT_PRO = "black-forest-labs/flux-kontext-pro"
KONTEXT_MAX = "black-forest-labs/flux-kontext-max"


async def offered(world, guild, channel, user, focused, **typed) -> list[str]:
    """The values the bot offers while `user` types into option `focused` (the other options as given)."""
    handle = await world.discord.autocomplete(guild, channel, user, "imagine", typed, focused=focused)
    response = await handle.wait_response()
    assert response.type == 8, response  # an autocomplete result
    return [choice["value"] for choice in handle.choices or []]


async def test_model_autocomplete_offers_the_models_this_server_allows(world):
    guild, channel, alice = setup_guild(world, "alice")
    admin = world.discord.add_user("admin")
    world.discord.add_member(guild, admin, permissions=["manage_guild"])
    async with world.bot():
        assert await offered(world, guild, channel, alice, "model", model="kontext") == [KONTEXT_PRO, KONTEXT_MAX]
        everything = await offered(world, guild, channel, alice, "model", model="")
        assert len(everything) == 10 and "black-forest-labs/flux-1.1-pro-ultra" in everything

        allow = await world.discord.slash_command(
            guild, channel, admin, "imagine-settings models", {"only_standard": True}
        )
        await allow.wait_response()
        standard = await offered(world, guild, channel, alice, "model", model="")
    assert standard == [
        "black-forest-labs/flux-schnell", "black-forest-labs/flux-dev", KONTEXT_PRO, "black-forest-labs/flux-2-dev",
    ]  # fmt: skip


async def test_aspect_ratio_autocomplete_follows_the_model_typed_else_the_default(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot():
        # Kontext can keep the input image's shape; the default model (schnell) cannot
        assert await offered(
            world, guild, channel, alice, "aspect_ratio", model="flux-kontext-pro", aspect_ratio="match"
        ) == ["match_input_image"]
        assert await offered(world, guild, channel, alice, "aspect_ratio", aspect_ratio="match") == []
        assert await offered(world, guild, channel, alice, "aspect_ratio", aspect_ratio="9:") == ["9:16", "9:21"]


async def test_output_format_autocomplete_follows_the_members_preferred_model(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot():
        assert await offered(world, guild, channel, alice, "output_format", output_format="") == ["webp", "jpg", "png"]
        prefs = await world.discord.slash_command(
            guild, channel, alice, "imagine-prefs set", {"model": "flux-1.1-pro-ultra"}
        )
        await prefs.wait_response()
        assert await offered(world, guild, channel, alice, "output_format", output_format="") == ["jpg", "png"]
        # a model typed in the command comes first
        typed = await offered(world, guild, channel, alice, "output_format", model="flux-dev", output_format="")
    assert typed == ["webp", "jpg", "png"]
