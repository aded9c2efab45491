"""A job's card (ui/render.py) read back from a message the fake Discord recorded, so tests assert its facts.

The card's first text is the prompt in bold, then the facts line ("flux-schnell · seed 42 · 1:1 · 2.1 s ·
<@1>") and, for a job made from another, its origin line; its other texts are the stage line, the notes or
why the job ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fakes.discord_components import ACTION_ROW, GalleryItem, buttons, gallery, texts, walk
from fakes.discord_models import FLAG_COMPONENTS_V2, JSON, MessageEdit, StoredMessage

SUBTEXT = "-# "


@dataclass
class Card:
    prompt: str = ""  # as shown (markdown escaped), without its bold
    facts: list[str] = field(default_factory=list)  # the facts line's parts: model, seed, ratio, time, who asked
    origin: str | None = None  # the origin line of a reroll, edit or variation
    texts: list[str] = field(default_factory=list)  # the other texts: stage line, notes, failure
    gallery: list[GalleryItem] = field(default_factory=list)
    custom_ids: list[str] = field(default_factory=list)  # the buttons, in order

    @property
    def line(self) -> str:
        return " · ".join(self.facts)

    @property
    def notes(self) -> list[str]:
        """The other texts' lines, without their small-print mark: the notes under a result."""
        return [line.removeprefix(SUBTEXT) for text in self.texts for line in text.split("\n")]


def card(message: StoredMessage | MessageEdit) -> Card:
    """The card a message shows (an empty Card for a message that is none, such as an old embed)."""
    components: list[JSON] = message.components
    shown = texts(components)
    if not message.flags & FLAG_COMPONENTS_V2 or not shown:
        return Card()
    heading, *rest = shown
    lines = heading.split("\n")
    subtext = [line.removeprefix(SUBTEXT) for line in lines[1:] if line.startswith(SUBTEXT)]
    return Card(
        prompt=lines[0].removeprefix("**").removesuffix("**"),
        facts=subtext[0].split(" · ") if subtext else [],
        origin=subtext[1] if len(subtext) > 1 else None,
        texts=rest,
        gallery=gallery(components),
        custom_ids=[str(b.get("custom_id")) for b in buttons(components) if b.get("custom_id")],
    )


def button_rows(message: StoredMessage | MessageEdit) -> list[list[JSON]]:
    """The buttons of each action row, wherever the rows are (top level on an old message, in the card on a new)."""
    return [list(row.get("components") or []) for row in walk(message.components) if row.get("type") == ACTION_ROW]


def posted_by_an_older_version(message: StoredMessage, rows: list[list[JSON]]) -> None:
    """Make a stored result look as older versions posted it: an embed and top-level rows of `rows` buttons,
    no V2 flag (its attachments stay)."""
    message.flags &= ~FLAG_COMPONENTS_V2
    message.embeds = [{"description": f"**{card(message).prompt}**", "fields": [{"name": "Model", "value": "?"}]}]
    message.components = [{"type": ACTION_ROW, "components": row} for row in rows]
