"""Draw one Discord message (content, attachments, embeds, buttons, or a Components V2 container) with Pillow.

Used by `python -m cli.screens` for the README's pictures. It draws the message bodies the bot really sent; only
the look (colours, sizes, DejaVu Sans instead of Discord's font) is an approximation. Emoji the font lacks are
left out rather than drawn as empty boxes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
WIDTH = 860
LEFT = 76  # where the message body starts, right of the avatar
PAD = 18
BACKGROUND = (49, 51, 56)
EMBED_BACKGROUND = (43, 45, 49)
TEXT = (219, 222, 225)
MUTED = (148, 155, 164)
WHITE = (242, 243, 245)
BLURPLE = (88, 101, 242)
MENTION = (60, 66, 112)
# Discord's button styles: 1 primary, 2 secondary, 3 success, 4 danger, 5 link.
BUTTON_COLOURS = {1: BLURPLE, 2: (78, 80, 88), 3: (36, 128, 70), 4: (218, 55, 60), 5: (78, 80, 88)}

Font = ImageFont.FreeTypeFont
Segment = tuple[str, bool]  # text, bold


@dataclass
class MessageBody:
    """What a message showed: the fields of the bot's request as the fake Discord stored them."""

    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # the attachments by name (what `attachment://` names)


def _font(size: int, *, bold: bool = False) -> Font:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(FONT_DIR / name), size)
    except OSError:  # no DejaVu here: Pillow's own font (Pillow >= 10.1 scales it)
        return ImageFont.load_default(size)  # type: ignore[return-value]


class _Fonts:
    def __init__(self) -> None:
        self.regular = _font(16)
        self.bold = _font(16, bold=True)
        self.small = _font(13)
        self.small_bold = _font(13, bold=True)
        self.name = _font(16, bold=True)
        self.button = _font(14)
        self._missing: dict[int, bytes] = {}

    def drawable(self, font: Font, text: str) -> str:
        """`text` without the characters `font` has no glyph for (they would be drawn as empty boxes)."""
        missing = self._missing.setdefault(id(font), bytes(font.getmask("\U0010fffd")))
        kept = [ch for ch in text if ch.isspace() or bytes(font.getmask(ch)) != missing]
        return re.sub(r" {2,}", " ", "".join(kept).replace("\ufe0f", ""))


def _segments(line: str) -> list[Segment]:
    """Discord's **bold** markdown, the only kind the bot's messages use here."""
    parts = line.split("**")
    return [(part, index % 2 == 1) for index, part in enumerate(parts) if part]


def _wrap(fonts: _Fonts, segments: Sequence[Segment], width: int, regular: Font, bold: Font) -> list[list[Segment]]:
    lines: list[list[Segment]] = [[]]
    used = 0.0
    for text, is_bold in segments:
        font = bold if is_bold else regular
        for word in re.findall(r"\S+\s*", fonts.drawable(font, text)):
            size = font.getlength(word)
            if used + size > width and lines[-1]:
                lines.append([])
                used = 0
            lines[-1].append((word, is_bold))
            used += size
    return lines


class _Canvas:
    def __init__(self, height: int) -> None:
        self.image = Image.new("RGB", (WIDTH, height), BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        self.fonts = _Fonts()

    def text(self, x: int, y: int, line: str, width: int, *, small: bool = False, colour: Any = TEXT) -> int:
        """Draw wrapped markdown text; returns the y below it."""
        fonts = self.fonts
        regular, bold = (fonts.small, fonts.small_bold) if small else (fonts.regular, fonts.bold)
        step = 18 if small else 22
        for source in line.split("\n"):
            for wrapped in _wrap(fonts, _segments(source), width, regular, bold) or [[]]:
                cursor = float(x)
                for word, is_bold in wrapped:
                    font = bold if is_bold else regular
                    self.draw.text((cursor, y), word, font=font, fill=WHITE if is_bold else colour)
                    cursor += font.getlength(word)
                y += step
        return y

    def images(self, x: int, y: int, images: Sequence[bytes]) -> int:
        if not images:
            return y
        side = 380 if len(images) == 1 else 220
        for index, data in enumerate(images):
            picture = Image.open(io.BytesIO(data)).convert("RGB")
            picture.thumbnail((side, side))
            picture = picture.resize((side, round(side * picture.height / picture.width)))
            column, row = index % 2, index // 2
            self.image.paste(picture, (x + column * (side + 6), y + row * (side + 6)))
        rows = (len(images) + 1) // 2
        return y + rows * (side + 6) + 4

    def embed(self, x: int, y: int, embed: dict[str, Any], mentions: Callable[[str], str]) -> int:
        """Draw an embed: its box first (measured by laying it out once on a scratch canvas), then its text."""
        bottom = _Canvas(4000)._embed_text(x, y, embed, mentions)
        self.draw.rectangle((x, y, WIDTH - PAD, bottom), fill=EMBED_BACKGROUND)
        self.draw.rectangle((x, y, x + 3, bottom), fill=_colour(embed.get("color")))
        return self._embed_text(x, y, embed, mentions)

    def _embed_text(self, x: int, y: int, embed: dict[str, Any], mentions: Callable[[str], str]) -> int:
        width = WIDTH - x - PAD
        inner = x + 16
        y += 12
        if embed.get("title"):
            y = self.text(inner, y, f"**{embed['title']}**", width - 32)
        if embed.get("description"):
            y = self.text(inner, y, mentions(embed["description"]), width - 32)
        fields = embed.get("fields") or []
        column_width = (width - 32) // 3
        for start in range(0, len(fields), 3):
            y += 8
            bottom = y
            for column, item in enumerate(fields[start : start + 3]):
                fx = inner + column * column_width
                below = self.text(fx, y, f"**{item['name']}**", column_width - 8, small=True)
                bottom = max(bottom, self.text(fx, below, mentions(item["value"]), column_width - 8, small=True))
            y = bottom
        if footer := (embed.get("footer") or {}).get("text"):
            y = self.text(inner, y + 10, footer, width - 32, small=True, colour=MUTED)
        return y + 12

    def container(self, x: int, y: int, box: dict[str, Any], body: MessageBody, mentions: Callable[[str], str]) -> int:
        """Draw a V2 container: its box first (measured on a scratch canvas), then what it holds."""
        bottom = _Canvas(4000)._inside(x, y, box, body, mentions)
        self.draw.rounded_rectangle((x, y, WIDTH - PAD, bottom), radius=8, fill=EMBED_BACKGROUND)
        self.draw.rectangle((x, y, x + 3, bottom), fill=_colour(box.get("accent_color")))
        return self._inside(x, y, box, body, mentions)

    def _inside(self, x: int, y: int, box: dict[str, Any], body: MessageBody, mentions: Callable[[str], str]) -> int:
        inner, width = x + 16, WIDTH - x - PAD - 32
        y += 12
        for item in box.get("components") or []:
            if item.get("type") == 10:  # a text display; "-# " lines are Discord's small print
                for line in mentions(item.get("content", "")).split("\n"):
                    small = line.startswith("-# ")
                    colour = MUTED if small else TEXT
                    y = self.text(inner, y, line.removeprefix("-# "), width, small=small, colour=colour)
                y += 6
            elif item.get("type") == 12:  # a media gallery of the message's attachments
                urls = [str(entry["media"]["url"]).removeprefix("attachment://") for entry in item.get("items") or []]
                y = self.images(inner, y + 2, [body.files[name] for name in urls if name in body.files]) + 4
            elif item.get("type") == 1:
                y = self.buttons(inner, y + 2, [item])
        return y + 6

    def buttons(self, x: int, y: int, rows: Sequence[dict[str, Any]]) -> int:
        font = self.fonts.button
        for row in rows:
            cursor = x
            for button in row.get("components") or []:
                icon = button.get("emoji") or {}
                emoji = "" if icon.get("id") else icon.get("name") or ""  # the app's own emojis are images
                label = self.fonts.drawable(font, f"{emoji} {button.get('label') or ''}").strip()
                width = int(font.getlength(label)) + 28
                if cursor + width > WIDTH - PAD:
                    cursor, y = x, y + 40
                fill = BUTTON_COLOURS.get(button.get("style", 2), BUTTON_COLOURS[2])
                if button.get("disabled"):
                    fill = (fill[0] // 2 + 20, fill[1] // 2 + 20, fill[2] // 2 + 20)
                self.draw.rounded_rectangle((cursor, y, cursor + width, y + 32), radius=4, fill=fill)
                self.draw.text((cursor + 14, y + 8), label, font=font, fill=WHITE)
                cursor += width + 8
            y += 40
        return y


def _colour(value: Any) -> tuple[int, int, int]:
    if not isinstance(value, int) or value <= 0:
        return (30, 31, 34)
    return (value >> 16 & 255, value >> 8 & 255, value & 255)


def _draw(canvas: _Canvas, body: MessageBody, author: str, mentions: Callable[[str], str]) -> int:
    draw, fonts = canvas.draw, canvas.fonts
    y = PAD
    draw.ellipse((PAD, y, PAD + 42, y + 42), fill=BLURPLE)
    draw.text((PAD + 21, y + 21), author[:1].upper(), font=fonts.name, fill=WHITE, anchor="mm")
    draw.text((LEFT, y), author, font=fonts.name, fill=WHITE)
    tag_x = LEFT + int(fonts.name.getlength(author)) + 8
    draw.rounded_rectangle((tag_x, y + 2, tag_x + 34, y + 18), radius=3, fill=BLURPLE)
    draw.text((tag_x + 17, y + 10), "APP", font=fonts.small_bold, fill=WHITE, anchor="mm")
    y += 26
    if body.content:
        y = canvas.text(LEFT, y, mentions(body.content), WIDTH - LEFT - PAD) + 4
    containers = [item for item in body.components if item.get("type") == 17]
    if containers:  # Components V2: the images are shown by the container's gallery
        for box in containers:
            y = canvas.container(LEFT, y + 4, box, body, mentions) + 4
        return y + PAD - 8
    y = canvas.images(LEFT, y + 2, body.images)
    for embed in body.embeds:
        y = canvas.embed(LEFT, y + 4, embed, mentions) + 4
    return canvas.buttons(LEFT, y + 6, body.components) + PAD - 8


def render(body: MessageBody, *, author: str, names: Callable[[int], str]) -> Image.Image:
    """The message as Discord's dark theme shows it, roughly; `names` gives the name behind a <@id> mention."""

    def mentions(text: str) -> str:
        return re.sub(r"<@!?(\d+)>", lambda match: "@" + names(int(match.group(1))), text)

    height = _draw(_Canvas(4000), body, author, mentions)  # measure on a tall canvas, then draw to size
    canvas = _Canvas(height)
    _draw(canvas, body, author, mentions)
    return canvas.image
