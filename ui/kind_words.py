"""The words of each kind of job (services/jobs/kinds/) and of each job button, in one table.

A kind's entry gives its icon, the lead of the origin line under its result ("🪄 Subtle variation of image 2
of an earlier result"), and its label in /imagine-history; a button's entry gives its label and emoji. A new
kind or button adds its line here; a name with no entry is shown plainly (a kind made by a newer release).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.text import Text, _, verbatim


@dataclass(frozen=True)
class Words:
    icon: str = ""
    lead: Text | None = None  # the origin line's lead; None: the job has no origin line
    by_strength: Mapping[str, Text] = field(default_factory=dict)  # the lead of a variation of that strength
    names_image: bool = True  # the origin line says which image of the parent ("of image 2")
    history: Text | None = None  # the label in /imagine-history; None: none (a plain /imagine)
    button: Text | None = None  # the label of the button that starts it


WORDS: dict[str, Words] = {
    "imagine": Words("🎨"),
    "blend": Words(
        "🧪",
        # L10N: the lead of the line under a blend of a result, before "of image 1 of an earlier result"
        lead=_("Blend"),
        # L10N: what kind of job a line of /imagine-history is, after an emoji
        history=_("blend"),
    ),
    "reroll": Words(
        "🔄",
        lead=_("Reroll"),
        names_image=False,
        # L10N: what kind of job a line of /imagine-history is, after an emoji
        history=_("reroll"),
        # L10N: a button on a finished image (same settings, new seed), at most 80 characters
        button=_("Reroll"),
    ),
    "edit": Words(
        "✏️",
        lead=_("Edit"),
        # L10N: what kind of job a line of /imagine-history is, after an emoji
        history=_("edit"),
        # L10N: a button on a finished image (change it with a prompt), at most 80 characters
        button=_("Edit"),
    ),
    "variation": Words(
        "🪄",
        lead=_("Variation"),
        by_strength={"subtle": _("Subtle variation"), "strong": _("Strong variation")},
        # L10N: what kind of job a line of /imagine-history is, after an emoji
        history=_("variation"),
    ),
    "upscale": Words(
        "🔍",
        # L10N: the lead of the line under an upscaled image, before "of image 2 of an earlier result"
        lead=_("Upscale"),
        by_strength={
            # L10N: the lead of the line under an upscaled image, before "of image 2 of an earlier result"
            "subtle": _("Subtle upscale"),
            # L10N: the lead of the line under an upscaled image, before "of image 2 of an earlier result"
            "creative": _("Creative upscale"),
        },
        # L10N: what kind of job a line of /imagine-history is, after an emoji
        history=_("upscale"),
    ),
    "remix": Words(
        "🎛️",
        # L10N: the lead of the line under a remixed image, before "of image 2 of an earlier result"
        lead=_("Remix"),
        # L10N: what kind of job a line of /imagine-history is, after an emoji
        history=_("remix"),
        # L10N: a button on a finished image (run it again with a changed prompt), at most 80 characters
        button=_("Remix"),
    ),
    "pick": Words(
        "🖼️",
        # L10N: the lead of the line under one image posted alone, before "of image 2 of an earlier result"
        lead=_("Copy"),
        # L10N: what kind of job a line of /imagine-history is (one image of a result posted alone), after an emoji
        history=_("picked image"),
    ),
    "zoom": Words(
        "🔎",
        lead=_("Zoom out"),
        # L10N: what kind of job a line of /imagine-history is, after an emoji
        history=_("zoom out"),
    ),
    "pan": Words(
        "↔️",
        lead=_("Pan"),
        # L10N: what kind of job a line of /imagine-history is, after an emoji
        history=_("pan"),
    ),
    "square": Words(
        "🔲",
        lead=_("Make square"),
        # L10N: what kind of job a line of /imagine-history is, after an emoji
        history=_("make square"),
    ),
    "region": Words(
        "🖌️",
        lead=_("Vary (Region)"),
        # L10N: what kind of job a line of /imagine-history is, after an emoji
        history=_("vary region"),
    ),
    # Buttons that start no kind of their own, or whose name is older than the kind's.
    # L10N: a button on an image job in progress, at most 80 characters
    "cancel": Words(button=_("Cancel")),
    # L10N: a button on a finished image (a variation of it), at most 80 characters
    "vary": Words("🪄", button=_("Vary")),
    # L10N: a button on a finished image (extend it all round to twice its size), at most 80 characters
    "zoom_double": Words("🔎", button=_("Zoom Out 2x")),
    # L10N: a button on a finished image (extend it all round to 1.5 times its size), at most 80 characters
    "zoom_half": Words("🔎", button=_("Zoom Out 1.5x")),
    # L10N: a button on a finished image (extend it by a factor the user types), at most 80 characters
    "zoom_custom": Words("🔎", button=_("Custom Zoom")),
    # L10N: a button on a finished image (extend its short sides until it is square), at most 80 characters
    "make_square": Words("🔲", button=_("Make Square")),
    # L10N: a button on a finished image (extend it to the left by half its width), at most 80 characters
    "pan_left": Words("⬅️", button=_("Pan left")),
    # L10N: a button on a finished image (extend it to the right by half its width), at most 80 characters
    "pan_right": Words("➡️", button=_("Pan right")),
    # L10N: a button on a finished image (extend it upwards by half its height), at most 80 characters
    "pan_up": Words("⬆️", button=_("Pan up")),
    # L10N: a button on a finished image (extend it downwards by half its height), at most 80 characters
    "pan_down": Words("⬇️", button=_("Pan down")),
    # L10N: a button on a finished image (redraw the parts of it the user picks), at most 80 characters
    "vary_region": Words("🖌️", button=_("Vary (Region)")),
    # L10N: a button on a finished image (blend it with images the user uploads), at most 80 characters
    "blend_with": Words("🧪", button=_("Blend with…")),
    # L10N: a button under /describe's four prompts (write four new ones), at most 80 characters
    "describe": Words("🔄", button=_("Describe again")),
}


def words(name: str) -> Words:
    """The words for a kind or button `name`; its name itself where the table has none."""
    return WORDS.get(name) or Words(lead=verbatim(name), history=verbatim(name), button=verbatim(name))
