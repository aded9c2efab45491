"""The form in which a prompt and a blocked phrase are compared: the text as a reader reads it.

Tricks that keep a word readable while changing its characters all fold away:

* compatibility forms (ｆｕｌｌｗｉｄｔｈ, ligatures, 𝐛𝐨𝐥𝐝) by Unicode NFKC, and case by casefolding;
* characters that draw nothing (zero-width, soft hyphen, word joiner, bidi controls, tag characters, Hangul
  fillers: services/rules/invisible.py, the same ones the cleaned prompt loses);
* letters of other scripts that look like Latin ones (Cyrillic `е`, Greek `ο`: services/rules/lookalikes.py),
  and in a second reading (`readings`) capitals as the Latin capitals they look like (Greek `Ν` as N);
* marks on a Latin letter (`núde`, `n̶u̶d̶e̶`); marks on other scripts' letters are kept (Japanese `が`, `й`);
* any run of whitespace and punctuation, `_` included, becomes one space, so `taylor-swift`, `taylor_swift`
  and `taylor  swift` read alike and `nude_` ends where `nude` does.

Symbols (emoji, ©) are kept: a server may block one.
"""

from __future__ import annotations

import string
import unicodedata

from services.rules.invisible import invisible
from services.rules.lookalikes import latin

_ASCII_PUNCTUATION = frozenset(string.punctuation)  # `_`, `-`, `$`, `|`...: separators between words


def _ascii_table() -> dict[int, str | None]:
    """What each ASCII character folds to: nothing (invisible), a space (a separator), or its small letter."""
    table: dict[int, str | None] = {}
    for code in range(128):
        ch = chr(code)
        table[code] = None if invisible(ch) else " " if ch.isspace() or ch in _ASCII_PUNCTUATION else ch.lower()
    return table


_ASCII_FOLD = _ascii_table()


def fold(text: str) -> str:
    """`text` as compared with blocked phrases: words of folded letters, separated by single spaces.

    Case is folded before look-alikes, so a phrase matches in any case (`Голый` as `голый`)."""
    return _fold(text, capitals=False)


def readings(text: str) -> tuple[str, ...]:
    """The ways a reader may read `text`: as `fold` has it, and with capitals read as the Latin capitals they look
    like (Greek `ΝUDΕ` as NUDE, Cyrillic `НОТ` as HOT, though small `ν` and `н` look like no Latin letter)."""
    return tuple(dict.fromkeys((_fold(text, capitals=False), _fold(text, capitals=True))))


def _fold(text: str, *, capitals: bool) -> str:
    if text.isascii():  # most prompts: no forms to normalise, no marks, no look-alikes, capitals read alike
        return " ".join(text.translate(_ASCII_FOLD).split())
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    out: list[str] = []
    on_latin = False  # whether the last letter kept is ASCII: its marks are dropped
    for ch in decomposed:
        if invisible(ch):
            continue
        if unicodedata.category(ch).startswith("M"):
            if not on_latin:
                out.append(ch)
            continue
        folded = _letter(ch, capitals=capitals)
        on_latin = folded.isascii()
        out.append(" " if _separator(folded) else folded)
    return " ".join(unicodedata.normalize("NFC", "".join(out)).split())


def _letter(ch: str, *, capitals: bool) -> str:
    if capitals and (shaped := latin(ch)).isascii():
        return shaped.lower()
    return "".join(latin(c).lower() for c in ch.casefold())


def _separator(ch: str) -> bool:
    return ch.isspace() or ch in _ASCII_PUNCTUATION or unicodedata.category(ch[:1]).startswith(("P", "Z"))
