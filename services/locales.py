"""The message catalogues: one gettext `.po` file per language in `locales/`, read with Babel.

English is the catalogue's source language (its keys), so it needs no file. Adding a language is adding
`locales/<code>.po`, named by Discord's locale code (`id`, `pt-BR`, `es-ES`...) or by its language alone
(`es`), which then serves every Discord locale of that language. `python -m cli.catalogue update` adds the
messages a file lacks (empty, so they show in English until translated) and drops those no longer used.
"""

from __future__ import annotations

import functools
import gettext
import io
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from services.text import ENGLISH, Text, Translations

LOCALES_DIR = Path(__file__).resolve().parents[1] / "locales"


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=babel_locale(path.stem))


def babel_locale(code: str) -> str:
    """Discord's `pt-BR`, `es-419` as Babel names them (`pt_BR`, `es_419`)."""
    return code.replace("-", "_")


@dataclass(frozen=True)
class Catalogues:
    """Every language's translations, and which one serves a Discord locale."""

    by_code: dict[str, Translations]

    @classmethod
    def load(cls, directory: Path = LOCALES_DIR) -> Catalogues:
        found: dict[str, Translations] = {}
        for path in sorted(directory.glob("*.po")):
            compiled = io.BytesIO()
            write_mo(compiled, read_catalog(path))  # fuzzy and untranslated entries are left out: shown in English
            compiled.seek(0)
            found[path.stem] = gettext.GNUTranslations(compiled)
        return cls(found)

    @property
    def codes(self) -> list[str]:
        return sorted(self.by_code)

    def for_locale(self, locale: str | None) -> Translations:
        """The translations for a Discord locale: its own file, else its language's, else English."""
        if not locale:
            return ENGLISH
        exact = self.by_code.get(locale)
        if exact is not None:
            return exact
        return self.by_code.get(locale.split("-")[0], ENGLISH)

    def has(self, locale: str | None) -> bool:
        return self.for_locale(locale) is not ENGLISH

    def render(self, text: Text, locale: str | None) -> str:
        return text.render(self.for_locale(locale))

    def gettext(self, msgid: str, locale: str | None) -> str | None:
        """A translation of `msgid` in that locale, or None if it has none (for command descriptions)."""
        translations = self.for_locale(locale)
        if translations is ENGLISH:
            return None
        translated = translations.gettext(msgid)
        return translated if translated != msgid else None


@functools.cache
def catalogues() -> Catalogues:
    """The catalogues of `locales/`, read once."""
    return Catalogues.load()


def render(text: Text | str, locale: str | None) -> str:
    """`text` in the language of a Discord locale (English when that language has no catalogue)."""
    if isinstance(text, str):
        return text  # written before it was in the catalogue: shown as it is
    return catalogues().render(text, locale)
