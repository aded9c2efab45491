"""Characters that draw nothing: what the cleaned prompt drops, and what the blocked-word check reads through.

One definition for both, so the text judged and the text sent lose the same characters.
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width, bidi and separator controls that are not all of category Cf (U+2028, U+2029, U+202F).
_INVISIBLE = re.compile("[\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]")
# Letters that draw nothing, used to pass a blank prompt off as a real one (Hangul fillers, a blank braille cell).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
KEPT_CONTROLS = "\n\t"


def invisible(ch: str) -> bool:
    """Whether `ch` is dropped from a prompt: control and format characters (zero-width, bidi, soft hyphen, tag
    characters), other invisible separators and blank letters; new lines and tabs are kept."""
    if " " <= ch <= "~" or ch in KEPT_CONTROLS:  # printable ASCII, most of any prompt: nothing to look up
        return False
    return bool(_INVISIBLE.match(ch)) or ch in _BLANK_LETTERS or unicodedata.category(ch) in ("Cc", "Cf")


def visible(text: str) -> str:
    """`text` without its invisible characters."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(ch for ch in text if not invisible(ch))
