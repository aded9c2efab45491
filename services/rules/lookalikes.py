"""Letters from other scripts and styles that look like a plain Latin letter or digit: Cyrillic `е` for `e`,
Greek `ν` for `v`, `ɡ` for `g`.

The table comes from `confusable-homoglyphs`, which ships Unicode's confusables data (UTS #39), so it follows
Unicode instead of a list kept here. Only look-alikes of one ASCII letter or digit are kept: the blocked-word
check folds a prompt onto the letters its blocked phrases are written in.
"""

from __future__ import annotations

from functools import cache

from confusable_homoglyphs.confusables import confusables_data


def _ascii_lookalike(glyphs: object) -> str | None:
    """The ASCII letter or digit among a character's look-alikes, lower case first (`а`: a; `Н`: H)."""
    found = [
        str(glyph["c"])
        for glyph in (glyphs if isinstance(glyphs, list) else [])
        if isinstance(glyph, dict) and len(str(glyph.get("c"))) == 1 and str(glyph["c"]).isascii()
    ]
    letters = [c for c in found if c.isalnum()]
    letters.sort(key=lambda c: (not c.islower(), not c.isalpha(), c))
    return letters[0] if letters else None


@cache
def table() -> dict[str, str]:
    """Every non-ASCII character that looks like one ASCII letter or digit, to that letter (as the data spells it)."""
    pairs = ((char, _ascii_lookalike(glyphs)) for char, glyphs in confusables_data.items())
    return {char: letter for char, letter in pairs if letter is not None and len(char) == 1 and not char.isascii()}


def latin(ch: str) -> str:
    """`ch` as the Latin letter or digit it looks like; `ch` itself when it looks like none."""
    return ch if ch.isascii() else table().get(ch, ch)
