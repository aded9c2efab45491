"""The operator's own blocked words and phrases (`BLOCKED_WORDS_FILE`), refused in every prompt everywhere.

One phrase a line; blank lines and lines starting with `#` are skipped. Read once at start-up: a file that
cannot be read is a start-up mistake (services/config.py), never a bot that quietly blocks nothing.
"""

from __future__ import annotations

from pathlib import Path

from services.rules.folding import fold


def read_blocked_words(path: str) -> tuple[str, ...]:
    """The phrases in the file at `path`; ValueError, with a one-line message naming the file, if it can't be used."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    phrases: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        phrase = " ".join(line.split())
        if not phrase or phrase.startswith("#"):
            continue
        if not fold(phrase):  # punctuation alone: it would match nothing, and the operator would not know
            raise ValueError(f"{path} line {number}: {phrase!r} is only punctuation, which blocks nothing")
        phrases.append(phrase)
    return tuple(phrases)
