"""Texts for people, kept as a catalogue key and its values until they are shown in someone's language.

Code that has something to tell a user writes `_("English text with {placeholders}", name=value)` (or
`_n(...)` when the wording depends on a number). The English text is the key of the message catalogue
(`locales/*.po`, read by `services/locales.py`); the values are filled in only when the text is rendered in
the reader's language. `str(text)` is the English rendering, for logs, the command line and tests.

Translator notes go in a comment starting with `L10N:` just above the call; "at most N characters" there
is checked by the catalogue test (buttons, modal titles and other short slots have their own limits).
"""

from __future__ import annotations

import gettext
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Translations = gettext.NullTranslations
ENGLISH = gettext.NullTranslations()


@dataclass(frozen=True)
class Text:
    """A catalogue message and the values for its placeholders."""

    msgid: str
    params: Mapping[str, object] = field(default_factory=dict)
    plural: str | None = None  # the English plural form, for _n()
    count: int | None = None  # which of the plural forms to use
    verbatim: bool = False  # not from the catalogue (the API's words, old stored text): `msgid` is used as it is

    def render(self, translations: Translations = ENGLISH) -> str:
        if self.verbatim and not self.params:
            return self.msgid
        if self.verbatim:
            template = self.msgid
        elif self.plural is not None:
            template = translations.ngettext(self.msgid, self.plural, self.count or 0)
        else:
            template = translations.gettext(self.msgid)
        values = {k: v.render(translations) if isinstance(v, Text) else v for k, v in self.params.items()}
        try:
            return template.format(**values)
        except (KeyError, IndexError, ValueError):
            # A broken translation must not hide the message: fall back to the English text.
            english = self.msgid if self.plural is None or self.count == 1 else self.plural
            return english.format(**values)

    def __str__(self) -> str:
        return self.render()

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible form, to store with a job (values that are Texts are stored as such too)."""
        data: dict[str, Any] = {"msgid": self.msgid}
        if self.params:
            data["params"] = {k: v.to_json() if isinstance(v, Text) else v for k, v in self.params.items()}
        if self.plural is not None:
            data["plural"], data["count"] = self.plural, self.count
        if self.verbatim:
            data["verbatim"] = True
        return data

    @classmethod
    def from_json(cls, data: object) -> Text:
        """Back from `to_json`; a plain string (stored before texts were kept this way) is shown as it is."""
        if not isinstance(data, Mapping) or not isinstance(data.get("msgid"), str):
            return verbatim(str(data))
        raw = data.get("params")
        params = {str(k): cls.from_json(v) if isinstance(v, Mapping) else v for k, v in dict(raw or {}).items()}
        count = data.get("count")
        return cls(
            data["msgid"],
            params,
            plural=data.get("plural"),
            count=count if isinstance(count, int) else None,
            verbatim=bool(data.get("verbatim")),
        )


def _(msgid: str, /, **params: object) -> Text:
    """A catalogue message (its English text) with the values of its placeholders."""
    return Text(msgid, params)


def _n(singular: str, plural: str, count: int, /, **params: object) -> Text:
    """A catalogue message whose wording depends on `count` (pass it as a placeholder too if it is shown)."""
    return Text(singular, params, plural=plural, count=count)


def verbatim(text: str) -> Text:
    """Text that is not in the catalogue (the API's own words, an old stored note): shown as it is."""
    return Text(text, verbatim=True)


def joined(parts: Sequence[Text | str], separator: str = "\n") -> Text:
    """Several texts shown one after the other (each in the reader's language), one a line by default."""
    params = {f"part{i}": part if isinstance(part, Text) else verbatim(part) for i, part in enumerate(parts)}
    return Text(separator.join("{" + name + "}" for name in params), params, verbatim=True)


def as_text(value: Text | str) -> Text:
    """A Text as it is; a plain string, written before it was put in the catalogue, shown as it is."""
    return value if isinstance(value, Text) else verbatim(value)


def placeholders(template: str) -> set[str]:
    """The `{name:spec}` fields of a template, as written (for checking translations keep them all)."""
    found = set()
    for _literal, name, spec, conversion in string.Formatter().parse(template):
        if name is not None:
            found.add(name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else ""))
    return found


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, the last of them "…" when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
