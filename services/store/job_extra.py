"""A job's small data beside its input: where it came from, what its result shows, what delivery and billing
need later. Typed here, stored as one JSON object in the `extra` column (keys as below, defaults left out).

Rows written before this type existed hold the same keys; a key this code does not know (written by a newer
release) is kept in `more` and written back unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

Size = tuple[int, int]


@dataclass(frozen=True)
class MessageRef:
    """A Discord message by its ids (no Discord types here)."""

    guild_id: int | None
    channel_id: int
    message_id: int

    def to_json(self) -> dict[str, object]:
        return {"guild_id": self.guild_id, "channel_id": self.channel_id, "message_id": self.message_id}

    @classmethod
    def from_json(cls, data: object) -> MessageRef | None:
        if not isinstance(data, Mapping):
            return None
        guild, channel, message = data.get("guild_id"), data.get("channel_id"), data.get("message_id")
        if not isinstance(channel, int) or not isinstance(message, int):
            return None
        return cls(guild if isinstance(guild, int) else None, channel, message)


@dataclass(frozen=True)
class Restore:
    """What delivery puts back over the model's output so the user's pixels stay theirs (Zoom Out, Pan, Make
    Square, Vary (Region)): the original, by the sha256 of its stored bytes, and where it goes: on a larger canvas
    (`placement`: the canvas's width and height, the original's left, top, width and height) or only the grid
    cells that change (`cells`, 1-9), or the light parts of a mask the user drew (`mask`: its sha256)."""

    original: str
    placement: tuple[int, ...] = ()
    cells: tuple[int, ...] = ()
    mask: str = ""

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "original": self.original,
            "placement": list(self.placement),
            "cells": list(self.cells),
        }
        if self.mask:
            data["mask"] = self.mask
        return data

    @classmethod
    def from_json(cls, data: object) -> Restore | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("original"), str):
            return None
        placement, cells = data.get("placement"), data.get("cells")
        return cls(
            data["original"],
            tuple(v for v in placement if _int(v) is not None) if isinstance(placement, list) else (),
            tuple(v for v in cells if _int(v) is not None) if isinstance(cells, list) else (),
            data["mask"] if isinstance(data.get("mask"), str) else "",
        )


@dataclass(frozen=True)
class JobExtra:
    # What admission wrote
    notes: tuple[Mapping[str, Any], ...] = ()  # display notes (services.text.Text.to_json)
    parent_message: MessageRef | None = None  # the message of the job this one came from
    of_image: int | None = None  # which image of the parent's message (1-based)
    strength: str | None = None  # a variation's strength
    input_sha256: Mapping[str, str] = field(default_factory=dict)  # input link -> sha256 of its stored bytes
    input_sizes: tuple[Size | None, ...] = ()  # the input images' sizes, in the order sent
    private: bool = False  # Discord made the reply private (ephemeral): only its owner sees it in a history
    restore: Restore | None = None  # the original's pixels to put back over the output (outpaints, regions)
    # What delivery and the history wrote
    posted: Mapping[int, int] = field(default_factory=dict)  # image index (0-based) -> message showing it
    upload_limit: int | None = None  # the upload limit the posted messages were packed with
    message_deleted: bool = False
    # Keys this release does not know, kept as they were
    more: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.more)
        default = _DEFAULT
        for name in _NAMES:
            value = getattr(self, name)
            if value == getattr(default, name):
                continue
            if name in ("parent_message", "restore"):
                value = value.to_json()
            elif name == "posted":
                value = {str(index): message for index, message in value.items()}
            elif name in ("notes", "input_sizes"):
                value = [list(item) if isinstance(item, tuple) else item for item in value]
            elif name == "input_sha256":
                value = dict(value)
            data[name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        more = {key: value for key, value in data.items() if key not in _NAMES}
        notes = data.get("notes")
        links = data.get("input_sha256")
        posted = data.get("posted")
        return cls(
            notes=tuple(notes) if isinstance(notes, list) else (),
            parent_message=MessageRef.from_json(data.get("parent_message")),
            of_image=_int(data.get("of_image")),
            strength=data["strength"] if isinstance(data.get("strength"), str) else None,
            input_sha256={str(k): str(v) for k, v in links.items()} if isinstance(links, Mapping) else {},
            input_sizes=_sizes(data.get("input_sizes")),
            private=data.get("private") is True,
            restore=Restore.from_json(data.get("restore")),
            posted=_posted(posted) if isinstance(posted, Mapping) else {},
            upload_limit=_int(data.get("upload_limit")),
            message_deleted=data.get("message_deleted") is True,
            more=more,
        )


_NAMES = tuple(f.name for f in fields(JobExtra) if f.name != "more")
_DEFAULT = JobExtra()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sizes(value: object) -> tuple[Size | None, ...]:
    if not isinstance(value, list):
        return ()
    sizes: list[Size | None] = []
    for item in value:
        ok = isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(v, int) and v > 0 for v in item)
        sizes.append((item[0], item[1]) if ok else None)
    return tuple(sizes)


def _posted(raw: Mapping[Any, Any]) -> dict[int, int]:
    posted: dict[int, int] = {}
    for index, message in raw.items():
        if str(index).isdigit() and isinstance(message, int):
            posted[int(index)] = message
    return posted
