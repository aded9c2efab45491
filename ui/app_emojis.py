"""The application's own emojis for button icons where they read better than Unicode ones.

Upscale (Subtle) and Upscale (Creative) are both 🔍 in Unicode, Vary (Subtle) and Vary (Strong) both 🪄: their
icons here show the difference (plain or with sparkles, one wave or three). They are drawn with Pillow (no
files to ship), uploaded at start-up when the application lacks them (application emojis work everywhere the
app does, user installs included), and a button falls back to its Unicode emoji when one is missing.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable

import discord
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

SIZE = 96
LINE = (219, 222, 225, 255)  # light grey: readable on Discord's dark and light themes' grey buttons
ACCENT = (88, 101, 242, 255)  # blurple
UPLOAD_SECONDS = 20.0  # the start-up waits no longer for them: the Unicode icons do meanwhile

Draw = Callable[[ImageDraw.ImageDraw], None]


def _enlarge(draw: ImageDraw.ImageDraw) -> None:
    """A small square grown into a large one: twice the size."""
    draw.rectangle((10, 10, 86, 86), outline=LINE, width=7)
    draw.rectangle((18, 54, 42, 78), fill=ACCENT)
    draw.line((42, 54, 70, 26), fill=LINE, width=7)
    draw.polygon(((56, 22), (74, 22), (74, 40)), fill=LINE)


def _upscale_creative(draw: ImageDraw.ImageDraw) -> None:
    _enlarge(draw)
    for x, y in ((70, 64), (56, 74)):  # sparkles: detail added
        draw.polygon(((x, y - 9), (x + 3, y - 3), (x + 9, y), (x + 3, y + 3), (x, y + 9), (x - 3, y + 3),
                      (x - 9, y), (x - 3, y - 3)), fill=ACCENT)  # fmt: skip


def _waves(count: int) -> Draw:
    def draw_waves(draw: ImageDraw.ImageDraw) -> None:
        rows = [48] if count == 1 else [24, 48, 72]
        for y in rows:
            for x in range(8, 88, 20):  # a wave of half circles, up then down
                up = (x // 20) % 2 == 0
                draw.arc((x, y - 10, x + 20, y + 10), 180 if up else 0, 360 if up else 180, fill=LINE, width=7)
        draw.ellipse((38, 38, 58, 58) if count == 1 else (40, 40, 56, 56), fill=ACCENT)

    return draw_waves


# emoji name -> (the button it is for: action and strength, how it looks)
ICONS: dict[str, tuple[str, Draw]] = {
    "flux_upscale_subtle": ("upscale:subtle", _enlarge),
    "flux_upscale_creative": ("upscale:strong", _upscale_creative),
    "flux_vary_subtle": ("vary:subtle", _waves(1)),
    "flux_vary_strong": ("vary:strong", _waves(3)),
}


def icon_png(name: str) -> bytes:
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    ICONS[name][1](ImageDraw.Draw(image))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def app_icons(client: discord.Client) -> dict[str, str]:
    """The icon of each button that has one (`action:strength` -> "<:name:id>"), uploading those missing.

    Nothing is lost when Discord refuses: the buttons keep their Unicode emojis."""
    try:
        async with asyncio.timeout(UPLOAD_SECONDS):
            owned = {emoji.name: emoji for emoji in await client.fetch_application_emojis()}
            for name in ICONS:
                if name not in owned:
                    owned[name] = await client.create_application_emoji(name=name, image=icon_png(name))
    except (discord.HTTPException, TimeoutError) as exc:
        log.warning("Application emojis unavailable, the buttons keep Unicode ones: %s", exc)
        return {}
    return {button: str(owned[name]) for name, (button, _) in ICONS.items()}
