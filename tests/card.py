"""A job's card (ui/render.py) read back from a message the fake Discord recorded, so tests assert its facts.

The card's first text is the prompt in bold, then the facts line ("flux-schnell · seed 42 · 1:1 · 2.1 s ·
<@1>") and, for a job made from another, its origin line; its other texts are the stage line, the notes or
why the job ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.fakes.discord_components import GalleryItem, buttons, gallery, texts
from tests.fakes.discord_models import JSON, MessageEdit, StoredMessage

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
    def notes(self) -> str:
        return "\n".join(self.texts)


def card(message: StoredMessage | MessageEdit) -> Card:
    """The card a message shows (an empty Card for a message that is none, such as an old embed)."""
    components: list[JSON] = message.components
    shown = texts(components)
    if not message.flags & (1 << 15) or not shown:
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
