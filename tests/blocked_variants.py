"""Hostile spellings of blocked phrases, and harmless prompts that must still pass: shared by the unit tests of the
fold (test_folding.py) and the end-to-end tests of every path that sends a prompt (test_blocked_words.py)."""

from __future__ import annotations

# Chinese, Japanese and Thai put no spaces between words: their phrases must be found inside a sentence.
BLOCKED = ("nude", "taylor swift", "ass", "裸体", "ヌード", "นู้ด")

# name -> a prompt that reads as one of BLOCKED once sent (each is drawn by FLUX as the blocked word would be;
# in the scripts written without spaces, the phrase is simply part of the sentence).
VARIANTS = {
    "zero-width space": "a nu\u200bde portrait",
    "soft hyphen": "a nu\u00adde portrait",
    "word joiner": "a nu\u2060de portrait",
    "cyrillic e": "a nud\u0435 portrait",
    "trailing underscore": "a nude_ portrait",
    "hyphen": "taylor-swift on stage",
    "underscore": "taylor_swift on stage",
    "two spaces": "taylor  swift on stage",
    "punctuation run": "Taylor...Swift!! on stage",
    "fullwidth": "a \uff4e\uff55\uff44\uff45 portrait",
    "math bold": "a \U0001d427\U0001d42e\U0001d41d\U0001d41e portrait",
    "combining strokes": "a n\u0336u\u0336d\u0336e\u0336 portrait",
    "accented": "a n\u00fade portrait",
    "greek capitals": "a \u039dUD\u0395 portrait",
    "cyrillic whole word": "an \u0430\u0455\u0455 in the rain",
    "bidi override": "a \u202enude\u202c portrait",
    "tag characters": "a nu\U000e0020\U000e0041de portrait",
    "hangul filler": "a nu\u3164de portrait",
    "variation selector": "a nu\ufe0fde portrait",
    "narrow no-break space": "taylor\u202fswift on stage",
    "parameter in between": "taylor --ar 16:9 swift on stage",
    "run together": "TaylorSwift on stage",
    "chinese in a sentence": "一个裸体女人",  # "a nude woman"
    "japanese before a particle": "ヌードの女性",  # "a nude woman"
    "japanese after a particle": "女性のヌード写真",  # "a woman's nude photo"
    "thai in a sentence": "ภาพนู้ดผู้หญิง",  # "a nude picture of a woman"
}

# Prompts that look or sound close but hold none of BLOCKED as a word, in several scripts: all must pass.
ALLOWED = {
    "word containing ass": "a class of students",
    "assassin": "an assassin in the rain",
    "swiftly": "Taylor swiftly crossed the street",
    "russian": "Кот сидит на окне, акварель",
    "japanese": "窓辺に座る猫、水彩画",
    "chinese": "一只猫坐在窗边，水彩画",
    "thai": "แมวนั่งริมหน้าต่าง ภาพสีน้ำ",
    "indonesian": "Seekor kucing duduk di jendela, cat air",
    "accents": "un café naïve à Paris",
}
