"""The fold that blocked phrases and prompts are compared in, and whole-word matching on it (no Discord here)."""

from __future__ import annotations

import pytest

from services.errors import BadInput
from services.rules.catalogue import built_in, clean_prompt
from services.rules.folding import fold, readings
from services.rules.moderation import (
    BOT_REFUSES,
    SERVER_REFUSES_PUBLIC,
    BlockedPrompt,
    Moderation,
    blocked_after,
    blocked_phrase,
    check_prompt,
)
from services.rules.prompt_params import apply
from tests.blocked_variants import ALLOWED, BLOCKED, VARIANTS


def sent(prompt: str) -> str:
    """The prompt as admission sends it: its parameters taken out, then cleaned."""
    return clean_prompt(apply(prompt, {}, built_in()).prompt)


@pytest.mark.parametrize("prompt", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_hostile_variant_is_caught_as_sent(prompt):
    assert blocked_phrase(sent(prompt), BLOCKED) is not None


@pytest.mark.parametrize("prompt", ALLOWED.values(), ids=ALLOWED.keys())
def test_look_alike_and_non_latin_prompts_still_pass(prompt):
    assert blocked_phrase(sent(prompt), BLOCKED) is None


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Nu\u200bDE", "nude"),  # zero-width space, any case
        ("nu\u00adde nu\u2060de", "nude nude"),  # soft hyphen, word joiner
        ("\uff4e\uff55\uff44\uff45", "nude"),  # fullwidth
        ("nud\u0435", "nude"),  # Cyrillic е
        ("\u041d\u041e\u0422", "\u043do\u0442"),  # case first: small н and т look like no Latin letter
        ("n\u0336u\u0336d\u0336e\u0336", "nude"),  # combining marks on Latin letters
        ("taylor-swift", "taylor swift"),
        ("taylor__swift!!", "taylor swift"),
        ("  taylor \t\n swift ", "taylor swift"),
        ("nude_", "nude"),
        ("a\u202enude\u202c", "anude"),  # bidi controls draw nothing
        ("\U000e0041nude", "nude"),  # tag characters too
        ("窓辺に座る猫", "窓辺に座る猫"),  # Japanese kept, its voiced marks included (が stays が)
        ("がぎ", "がぎ"),
        ("йога", "йora"),  # Cyrillic й keeps its breve; г looks like r, as Unicode's data has it
        ("🍆 and ©", "🍆 and ©"),  # symbols are kept: a server may block an emoji
        ("!!!", ""),
    ],
)
def test_the_fold(text, folded):
    assert fold(text) == folded


def test_capitals_are_also_read_as_the_latin_capitals_they_look_like():
    assert readings("\u041d\u041e\u0422 \u039dUD\u0395") == ("\u043do\u0442 vud\u03b5", "hot nude")
    assert readings("plain") == ("plain",)
    assert blocked_phrase("\u041d\u041e\u0422 tea", ("hot",)) == "hot"
    assert blocked_phrase("НОТЫ", ("ноты",)) == "ноты"  # and a Cyrillic phrase still matches in capitals


def test_whole_words_only():
    assert blocked_phrase("a class of assassins", ("ass",)) is None
    assert blocked_phrase("kick ass.", ("ass",)) == "ass"
    assert blocked_phrase("ass_", ("ass",)) == "ass"
    assert blocked_phrase("a gorey tale", ("gore",)) is None
    assert blocked_phrase("Taylor swiftly left", ("taylor swift",)) is None
    assert blocked_phrase("mytaylor swift", ("taylor swift",)) is None
    assert blocked_phrase("an 🍆 here", ("🍆",)) == "🍆"


def test_an_edge_in_a_script_without_spaces_matches_inside_a_sentence():
    assert blocked_phrase("一个裸体女人", ("裸体",)) == "裸体"
    assert blocked_phrase("女性のヌード写真", ("ヌード",)) == "ヌード"
    assert blocked_phrase("ภาพนู้ดผู้หญิง", ("นู้ด",)) == "นู้ด"
    assert blocked_phrase("多くの人々が", ("人々",)) == "人々"  # 々 repeats the ideograph before it
    # Edge by edge: a Latin edge is still a whole word's, the Japanese one is not.
    assert blocked_phrase("有名な AV女優たち", ("AV女優",)) == "AV女優"
    assert blocked_phrase("有名な DAV女優たち", ("AV女優",)) is None
    # And a Latin word ends where such a script begins: the letters next to it are no part of it.
    assert blocked_phrase("有名なAV女優たち", ("AV女優",)) == "AV女優"
    assert blocked_phrase("nudeの女性", ("nude",)) == "nude"
    assert blocked_phrase("女性のnude写真", ("nude",)) == "nude"
    assert blocked_phrase("classの写真", ("ass",)) is None  # still inside a Latin word


def test_the_phrase_is_folded_too():
    # Whatever spelling the admin typed, it blocks every spelling that reads alike.
    assert blocked_phrase("taylor swift", ("Taylor-Swift",)) == "Taylor-Swift"
    assert blocked_phrase("Голый человек", ("голый",)) == "голый"  # a Russian phrase blocks in Russian
    assert blocked_phrase("---", ("---",)) is None  # a phrase of punctuation alone matches nothing


def test_the_operators_words_are_never_named_and_the_servers_only_privately():
    with pytest.raises(BlockedPrompt) as caught:
        check_prompt("a nud\u0435 portrait", Moderation(blocked=("nude",)), operator=("nude",))
    assert caught.value.text == BOT_REFUSES  # the operator's list is judged first
    assert "nude" not in str(caught.value.public)
    with pytest.raises(BlockedPrompt) as caught:
        check_prompt("a nud\u0435 portrait", Moderation(blocked=("nude",)))
    assert str(caught.value.text) == 'This server does not allow "nude" in prompts; change the prompt and try again.'
    assert caught.value.public == SERVER_REFUSES_PUBLIC
    check_prompt("a portrait", Moderation(blocked=("nude",)), operator=("taylor swift",))


def test_phrases_that_read_alike_are_one_phrase_in_the_list():
    words = blocked_after((), add="Taylor Swift, taylor-swift, TAYLOR_SWIFT", remove=None)
    assert words == ("Taylor Swift",)
    assert blocked_after(words, add=None, remove="taylor  swift") == ()
    with pytest.raises(BadInput, match="only punctuation"):
        blocked_after((), add="--", remove=None)


def test_plain_ascii_folds_as_the_general_path_does() -> None:
    """ASCII text takes a short path; a zero-width space (dropped) sends the same text down the general one."""
    every_ascii = "".join(map(chr, range(128)))
    samples = [every_ascii, "Taylor_Swift--NUDE!!", "  a\tb\nc\x00d\x7fe  ", "x-ray $100 | 50% off", ""]
    for text in samples:
        assert fold(text) == fold(text + "\u200b"), repr(text)
        assert readings(text) == readings(text + "\u200b"), repr(text)
