"""The message catalogue: every text in every language, with the same placeholders, within Discord's limits.

A text added in English alone (a new `_()` message, a new option's description) makes the first test fail and
list it, so it is noticed; `python -m cli.catalogue update` adds it to each `locales/*.po` for translating.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message

from cli import catalogue as tool
from cli.catalogue import MESSAGE_LIMIT, all_messages
from services.locales import LOCALES_DIR, Catalogues, read_catalog
from services.text import Text, _, _n, placeholders

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = sorted(LOCALES_DIR.glob("*.po"))


@pytest.fixture(scope="module")
def messages() -> dict[str, tool.Message]:
    return all_messages()


def translations(entry: Message) -> list[str]:
    return list(entry.string) if isinstance(entry.string, tuple | list) else [entry.string or ""]


def entries(catalog: Catalog) -> dict[str, Message]:
    return {entry.id if isinstance(entry.id, str) else entry.id[0]: entry for entry in catalog if entry.id}


def test_indonesian_is_there():
    assert LOCALES_DIR / "id.po" in LANGUAGES


@pytest.mark.parametrize("path", LANGUAGES, ids=lambda p: p.stem)
def test_every_message_is_translated_in_every_language(path, messages):
    catalog = entries(read_catalog(path))
    missing = [
        f"{key!r} (used at {', '.join(messages[key].places[:2])})"
        for key in sorted(messages)
        if key not in catalog or catalog[key].fuzzy or not all(translations(catalog[key]))
    ]
    unused = sorted(key for key in catalog if key not in messages)
    assert not missing, f"{path.name} lacks {len(missing)} message(s) (python -m cli.catalogue update):\n" + "\n".join(
        missing
    )
    assert not unused, f"{path.name} has messages the code no longer uses: {unused}"


@pytest.mark.parametrize("path", LANGUAGES, ids=lambda p: p.stem)
def test_translations_keep_the_placeholders(path):
    wrong = []
    for key, entry in entries(read_catalog(path)).items():
        wanted = placeholders(key)
        if isinstance(entry.id, tuple):
            wanted |= placeholders(entry.id[1])
        for translated in translations(entry):
            if translated and placeholders(translated) != wanted:
                wrong.append(f"{key!r}: {sorted(placeholders(translated))} instead of {sorted(wanted)}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", LANGUAGES, ids=lambda p: p.stem)
def test_translations_fit_discords_limits(path, messages):
    too_long = []
    for key, entry in entries(read_catalog(path)).items():
        limit = messages[key].limit if key in messages else MESSAGE_LIMIT
        for text in [key, *translations(entry)]:
            if len(text) > limit:
                too_long.append(f"{text!r}: {len(text)} > {limit}")
    assert not too_long, "\n".join(too_long)


def test_short_slots_are_known_with_their_limits(messages):
    """Buttons, modal titles and command texts carry their own, smaller limits."""
    assert messages["Cancel"].limit == 80  # a button label
    assert messages["Edit with FLUX"].limit == 32  # a context-menu name (and the form's title, 45)
    assert messages["What to draw"].limit == 100  # an option description, found in the command tree
    assert "parameter_description of imagine prompt" in messages["What to draw"].places


def test_the_english_texts_spell_cancelled_one_way(messages):
    """British English, as the job message's "Cancelled." is: history and usage said "canceled"."""
    american = sorted(key for key in messages if re.search(r"\bcancel(ed|ing)\b", key, re.IGNORECASE))
    assert not american, american
    assert "Cancelled." in messages and "cancelled" in messages


# --- the code shows users catalogue texts, not plain strings ---------------------------------------------------

# Calls whose text reaches a user: the argument that holds it (position, or keyword).
SINKS: dict[str, tuple[int | None, tuple[str, ...]]] = {
    "BadInput": (0, ()),
    "reply_ephemeral": (1, ("message", "text")),
    "send_message": (0, ("content",)),
    "send": (0, ("content",)),
    "reply": (0, ("content",)),
    "edit_original_response": (None, ("content",)),
    "_edit": (None, ("content",)),
    "edit": (None, ("content",)),
    "Button": (None, ("label",)),
    "TextInput": (None, ("label", "placeholder")),
    "Modal": (None, ("title",)),
    "Embed": (None, ("title", "description")),
    "add_field": (None, ("name",)),
    "set_footer": (None, ("text",)),
    "TextDisplay": (0, ("content",)),
}


def words_in(node: ast.expr) -> str | None:
    """The English words of a string literal or f-string (None for anything else: a variable, a `_()` call)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr):
        text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    elif isinstance(node, ast.BinOp):
        return words_in(node.left) or words_in(node.right)
    else:
        return None
    return text if any(ch.isalpha() for ch in text) else None


def plain_texts(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in SINKS:
            continue
        position, keywords = SINKS[name]
        args = [node.args[position]] if position is not None and len(node.args) > position else []
        args += [k.value for k in node.keywords if k.arg in keywords]
        for arg in args:
            if (words := words_in(arg)) is not None:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {name}({words!r})")
    return found


def test_texts_shown_to_users_come_from_the_catalogue():
    """A plain English string given to a reply, an error or a button would be shown untranslated: it must be
    wrapped in _() (and translated), like every other text."""
    found = [
        line
        for folder in ("cogs", "ui", "services")
        for p in sorted((ROOT / folder).rglob("*.py"))
        for line in plain_texts(p)
    ]
    assert not found, "texts not in the catalogue (wrap them in _()):\n" + "\n".join(found)


def test_the_check_finds_plain_strings(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        'raise BadInput(f"{name} is wrong")\n'
        'await reply_ephemeral(interaction, "Done.")\n'
        'await reply_ephemeral(interaction, _("Done."))\n'
        'embed.add_field(name="Seed", value="1")\n'
        'await result.reply(f"{icon} {text}")\n'
    )
    found = sorted(plain_texts(sample, tmp_path))
    assert found == [
        "sample.py:1: BadInput(' is wrong')",
        "sample.py:2: reply_ephemeral('Done.')",
        "sample.py:4: add_field('Seed')",
    ]


# --- rendering and languages -----------------------------------------------------------------------------------


def test_a_message_missing_from_a_catalogue_is_shown_in_english():
    found = Catalogues.load()
    assert found.render(_("A text nobody translated yet: {n}", n=3), "id") == "A text nobody translated yet: 3"
    assert found.render(_("Cancel"), "id") == "Batal"
    assert found.render(_("Cancel"), "ja") == "Cancel"  # no Japanese catalogue: English


def test_plural_forms_follow_the_count():
    one = _n("{count} image was over", "{count} images were over", 1, count=1)
    many = _n("{count} image was over", "{count} images were over", 3, count=3)
    assert (str(one), str(many)) == ("1 image was over", "3 images were over")


def test_texts_nest_and_survive_storage():
    text = _("Not saved: {reason}", reason=_("{count} per day", count=2))
    again = Text.from_json(text.to_json())
    assert again == text
    assert Catalogues.load().render(again, "id") == "Tidak disimpan: 2 per hari"
    assert Text.from_json("an old note stored as a plain string").render() == "an old note stored as a plain string"


def test_a_broken_translation_falls_back_to_english(tmp_path):
    catalog = read_catalog(LOCALES_DIR / "id.po")
    key = "Pick an image number from 1 to {count} (several like 1,3, or all)."
    assert Catalogues.load().render(_(key, count=4), "id").startswith("Pilih nomor gambar dari 1 sampai 4")
    catalog[key].string = "Pilih nomor dari 1 sampai {jumlah}."
    tool.write(catalog, tmp_path / "id.po")
    assert Catalogues.load(tmp_path).render(_(key, count=4), "id") == (
        "Pick an image number from 1 to 4 (several like 1,3, or all)."
    )


def test_adding_a_language_is_adding_one_file(tmp_path):
    shutil.copy(LOCALES_DIR / "id.po", tmp_path / "pt-BR.po")  # stands in for a Brazilian Portuguese file
    shutil.copy(LOCALES_DIR / "id.po", tmp_path / "es.po")  # a language file serves all its Discord locales
    found = Catalogues.load(tmp_path)
    assert found.codes == ["es", "pt-BR"]
    assert found.render(_("Cancel"), "pt-BR") == "Batal"
    assert found.render(_("Cancel"), "es-ES") == found.render(_("Cancel"), "es-419") == "Batal"
    assert found.render(_("Cancel"), "id") == "Cancel"  # not in this folder
