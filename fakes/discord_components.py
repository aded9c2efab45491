"""Components V2 messages read as a person sees them: their texts, gallery and buttons (for the fake's checks,
in discord_messages.py, and for tests reading a job's card)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

ACTION_ROW, BUTTON = 1, 2
SECTION, TEXT_DISPLAY, THUMBNAIL, MEDIA_GALLERY, FILE, SEPARATOR, CONTAINER = 9, 10, 11, 12, 13, 14, 17
LAYOUT_TYPES = frozenset({SECTION, TEXT_DISPLAY, THUMBNAIL, MEDIA_GALLERY, FILE, SEPARATOR, CONTAINER})
MAX_COMPONENTS = 40
MAX_ROWS = 5
ATTACHMENT_SCHEME = "attachment://"


def walk(components: list[JSON]) -> Iterator[JSON]:
    """Every component, depth first: rows' and containers' children, and a section's accessory."""
    for component in components:
        yield component
        yield from walk(component.get("components") or [])
        if component.get("accessory"):
            yield from walk([component["accessory"]])


def media_urls(components: list[JSON]) -> Iterator[str]:
    """The URLs of everything shown: gallery items, thumbnails and files."""
    for component in walk(components):
        for item in component.get("items") or []:
            yield str((item.get("media") or {}).get("url", ""))
        if component.get("type") in (THUMBNAIL, FILE):
            yield str((component.get("media") or component.get("file") or {}).get("url", ""))


@dataclass(frozen=True)
class GalleryItem:
    """One image a card shows: its attachment's name (None: an outside URL), alt text and spoiler."""

    url: str
    description: str | None
    spoiler: bool

    @property
    def filename(self) -> str | None:
        return self.url.removeprefix(ATTACHMENT_SCHEME) if self.url.startswith(ATTACHMENT_SCHEME) else None


def texts(components: list[JSON]) -> list[str]:
    """The text displays' contents, in order (what a person reads on a V2 message)."""
    return [str(c.get("content", "")) for c in walk(components) if c.get("type") == TEXT_DISPLAY]


def gallery(components: list[JSON]) -> list[GalleryItem]:
    """The media gallery items, in order."""
    return [
        GalleryItem(str((item.get("media") or {}).get("url", "")), item.get("description"), bool(item.get("spoiler")))
        for c in walk(components)
        if c.get("type") == MEDIA_GALLERY
        for item in c.get("items") or []
    ]


def buttons(components: list[JSON]) -> list[Any]:
    """The buttons, in order."""
    return [c for c in walk(components) if c.get("type") == BUTTON]
