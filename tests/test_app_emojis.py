"""The application's own emojis on the buttons: uploaded once at start-up, Unicode ones when Discord refuses."""

from __future__ import annotations

import base64
import io

from PIL import Image

from tests.card import button_rows
from tests.helpers import result_of, setup_guild
from ui.app_emojis import ICONS

UPLOADS = r"^/applications/\d+/emojis$"


def emojis_of(message, job_id):
    """The emoji of each one-image button that has an icon, by custom id."""
    return {
        button["custom_id"]: button.get("emoji")
        for row in button_rows(message)
        for button in row
        if button["custom_id"].startswith((f"flux:upscale:{job_id}", f"flux:vary:{job_id}"))
    }


async def test_the_icons_are_uploaded_once_and_shown_on_the_buttons(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
    async with world.bot():  # a second start finds them
        pass
    uploads = world.discord.requests_matching("POST", UPLOADS)
    assert len(uploads) == len(ICONS)
    owned = {emoji["name"]: emoji for emoji in world.discord.app_emojis.values()}
    assert sorted(owned) == sorted(ICONS)
    for emoji in owned.values():  # each a real PNG Discord would take
        data = base64.b64decode(emoji["image"].split(",", 1)[1])
        assert Image.open(io.BytesIO(data)).format == "PNG" and len(data) <= 256 * 1024
    shown = emojis_of(result, parent.id)
    assert shown[f"flux:upscale:{parent.id}:1:subtle"]["name"] == "flux_upscale_subtle"
    vary = shown[f"flux:vary:{parent.id}:1:strong"]
    assert (int(vary["id"]), vary["name"]) == (owned["flux_vary_strong"]["id"], "flux_vary_strong")


async def test_buttons_keep_their_unicode_emojis_when_the_upload_is_refused(world):
    guild, channel, _, alice, _ = setup_guild(world, "alice", "bob", admin=True)
    world.discord.inject_error("POST", UPLOADS, 403, times=None)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice)
    assert world.discord.app_emojis == {}
    shown = emojis_of(result, parent.id)
    assert {emoji["name"] for emoji in shown.values()} == {"🔍", "🪄"}
