"""Every text the bot can show, gathered from the code, and the tool that keeps `locales/*.po` in step with it.

Two sources: the `_()` / `_n()` calls in the code (Babel's extractor, with the `L10N:` comments above them),
and the command descriptions, option descriptions and context-menu names that discord.py hands the
Translator (read from the real command tree, so a new option's description is found without marking it).

    python -m cli.catalogue update          add what each .po lacks (empty: shown in English until translated),
                                           drop what the code no longer uses
    python -m cli.catalogue new pt-BR       start a new language: locales/pt-BR.po, every message empty

tests/test_catalogue_messages.py fails while any language lacks a message, so a text added in English alone
is noticed.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import discord
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import write_po
from discord import app_commands

from services.config import load_settings
from services.locales import LOCALES_DIR, babel_locale, read_catalog
from ui.flux_bot import EXTENSIONS, FluxBot
from ui.i18n import Location, translates

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("cogs", "ui", "services", "cli")
KEYWORDS = {"_": None, "_n": (1, 2)}
COMMENT_TAG = "L10N:"
MESSAGE_LIMIT = 2000  # a message's content
LIMIT_NOTE = re.compile(r"at most (\d+) characters")
# What Discord allows for each command text the Translator is asked for.
COMMAND_LIMITS = {
    Location.command_description: 100,
    Location.group_description: 100,
    Location.parameter_description: 100,
    Location.choice_name: 100,
    Location.command_name: 32,  # context-menu names (slash command names are not translated)
}

MsgId = str | tuple[str, str]


@dataclass
class Message:
    msgid: MsgId
    limit: int = MESSAGE_LIMIT
    comments: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.msgid if isinstance(self.msgid, str) else self.msgid[0]


def source_files() -> Iterator[Path]:
    yield ROOT / "bot.py"
    for folder in SOURCE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def code_messages() -> dict[str, Message]:
    """The `_()` and `_n()` texts of the code, with their translator notes and the limit a note gives."""
    found: dict[str, Message] = {}
    for path in source_files():
        for line, msgid, comments, _context in extract_from_file(
            "python", str(path), keywords=KEYWORDS, comment_tags=(COMMENT_TAG,), strip_comment_tags=True
        ):
            message = Message(msgid) if isinstance(msgid, str) else Message((msgid[0], msgid[1]))
            message = found.setdefault(message.key, message)
            for comment in comments:
                if comment not in message.comments:
                    message.comments.append(comment)
                if note := LIMIT_NOTE.search(comment):
                    message.limit = min(message.limit, int(note.group(1)))
            message.places.append(f"{path.relative_to(ROOT)}:{line}")
    return found


class _Recorder(app_commands.Translator):
    def __init__(self) -> None:
        self.seen: list[tuple[str, app_commands.TranslationContextTypes]] = []

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        # "…" is discord.py's stand-in for an option nobody described: nothing to translate.
        if locale is discord.Locale.american_english and translates(string, context) and string.message != "…":
            self.seen.append((string.message, context))
        return None


async def command_messages() -> dict[str, Message]:
    """The command texts discord.py asks the Translator for, read from the bot's real command tree."""
    settings = load_settings({"DISCORD_TOKEN": "catalogue-" + "x" * 50, "COMETAPI_KEY": "catalogue-key-xxxxxxxx"})
    bot = FluxBot(settings, sync_only=True)  # never logs in: nothing to close
    for extension in EXTENSIONS:
        await bot.load_extension(extension)
    recorder = _Recorder()
    for command in bot.tree.get_commands():
        await command.get_translated_payload(bot.tree, recorder)
    found: dict[str, Message] = {}
    for text, context in recorder.seen:
        limit = COMMAND_LIMITS[context.location]
        place = f"{context.location.name} of {_where(context.data)}"
        message = found.setdefault(text, Message(text, limit))
        message.limit = min(message.limit, limit)
        message.places.append(place)
        if not message.comments:
            message.comments.append(f"{context.location.name.replace('_', ' ')}, at most {limit} characters")
    return found


def _where(data: object) -> str:
    if isinstance(data, app_commands.Parameter):
        return f"{data.command.qualified_name} {data.name}"
    return str(getattr(data, "qualified_name", None) or getattr(data, "name", None) or data)


def all_messages() -> dict[str, Message]:
    """Every text the bot can show, by its English text (for plurals, the singular)."""
    found = asyncio.run(command_messages())
    for key, message in code_messages().items():
        if key in found:
            found[key].limit = min(found[key].limit, message.limit)
            found[key].places += message.places
        else:
            found[key] = message
    return found


def template(messages: dict[str, Message]) -> Catalog:
    catalog = Catalog(project="flux-discord-bot", charset="utf-8")
    for message in messages.values():
        catalog.add(message.msgid, auto_comments=message.comments, locations=())
    return catalog


def write(catalog: Catalog, path: Path) -> None:
    with path.open("wb") as f:
        # No line numbers and sorted entries: files change only where a text does, and merge cleanly.
        write_po(f, catalog, width=120, omit_header=False, sort_output=True, include_lineno=False)


def update(directory: Path = LOCALES_DIR) -> list[Path]:
    messages = all_messages()
    pot = template(messages)
    written = []
    for path in sorted(directory.glob("*.po")):
        catalog = read_catalog(path)
        catalog.update(pot, no_fuzzy_matching=True, update_creation_date=False)
        catalog.obsolete.clear()  # texts the code no longer uses
        write(catalog, path)
        written.append(path)
    return written


def new(code: str, directory: Path = LOCALES_DIR) -> Path:
    path = directory / f"{code}.po"
    if path.exists():
        raise SystemExit(f"{path} exists already; run `update`")
    catalog = Catalog(locale=babel_locale(code), project="flux-discord-bot", charset="utf-8", fuzzy=False)
    catalog.update(template(all_messages()), no_fuzzy_matching=True, update_creation_date=False)
    write(catalog, path)
    return path


def main(argv: list[str]) -> int:
    if argv[:1] == ["update"]:
        for path in update():
            print(f"updated {path.relative_to(ROOT)}")
        return 0
    if len(argv) == 2 and argv[0] == "new":
        print(f"created {new(argv[1]).relative_to(ROOT)}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
