"""Secret values that cannot leak through repr(), str() or logging."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# Interaction tokens are secrets too (anyone holding one can post as the bot in that conversation for 15
# minutes), but new ones come with every interaction: they are found by their shape, in webhook URLs that
# libraries log, and as the values themselves (Discord's start with base64 of "interaction:").
_TOKEN_SHAPES = (
    (re.compile(r"(/webhooks/\d+/)[\w.-]{20,}"), r"\1[redacted]"),
    (re.compile(r"aW50ZXJhY3Rpb246[\w.-]+"), "[redacted]"),
)


class Secret:
    """Holds a secret string; only `reveal()` gives it back."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    for shape, replacement in _TOKEN_SHAPES:
        text = shape.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Last line of defence: scrubs known secrets from every formatted log record.

    Installed on the root handler, so a secret that slips into an exception message or a library's
    debug output (aiohttp, discord.py) is replaced before it is written.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short values would redact ordinary words; real tokens and keys are long.
        self._secrets = [s for s in secrets if len(s) >= 8]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self._secrets)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now so it can be scrubbed too.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self._secrets)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
