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
    # L10N: what kind of job a line of /imagine-history is, after an emoji
    "blend": Words("🧪", history=_("blend")),
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
    # Buttons that start no kind of their own, or whose name is older than the kind's.
    # L10N: a button on an image job in progress, at most 80 characters
    "cancel": Words(button=_("Cancel")),
    # L10N: a button on a finished image (a variation of it), at most 80 characters
    "vary": Words("🪄", button=_("Vary")),
    # L10N: a button under /describe's four prompts (write four new ones), at most 80 characters
    "describe": Words("🔄", button=_("Describe again")),
}


def words(name: str) -> Words:
    """The words for a kind or button `name`; its name itself where the table has none."""
    return WORDS.get(name) or Words(lead=verbatim(name), history=verbatim(name), button=verbatim(name))
