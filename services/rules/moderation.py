"""A server's moderation rules: blocked words, how permissive the safety settings may be, and where jobs are logged.

Judged on admission, before anything is sent to the API:

* a prompt containing a blocked word or phrase is refused: the server's own list, and the operator's
  (`BLOCKED_WORDS_FILE`), which applies everywhere, DMs and user installs included. Both are judged on the
  prompt as it is sent, folded as a reader reads it (services/rules/folding.py: case, look-alike letters,
  invisible characters, punctuation between words), as whole words (where a phrase begins or ends in a script
  written without spaces, Chinese, Japanese or Thai, that edge matches inside a sentence). The server's phrase is
  named to the member privately; where others see the refusal (a 🔄 reaction's reply) and for the operator's list,
  it is not;
* `safety_tolerance` above the API's default (2) and `disable_safety_checker` are permissive settings: they
  are allowed only in age-restricted (NSFW) channels, and only as far as the server allows
  (`max_safety_tolerance`; turning the checker off needs a server that allows more than the default);
* a tolerance the user did not ask for (the model's default) is lowered to the server's maximum.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from services.errors import BadInput
from services.rules.folding import fold, readings
from services.store.models import GuildSettings
from services.text import Text, _, verbatim

SAFE_TOLERANCE = 2  # the API's own default
MAX_TOLERANCE = 6
MAX_BLOCKED = 200
MAX_PHRASE_CHARS = 100
TOLERANCE = "safety_tolerance"
CHECKER_OFF = "disable_safety_checker"
CHECK_IMAGES = ("off", "spoiler", "withhold")


@dataclass(frozen=True)
class Moderation:
    blocked: tuple[str, ...] = ()
    max_safety_tolerance: int = SAFE_TOLERANCE
    log_channel_id: int | None = None
    # Checked outputs: each image made outside age-restricted channels goes to the moderation endpoint, and a
    # flagged one is posted as a spoiler or withheld (services/jobs/checks.py); "off": not checked.
    check_images: str = "off"

    @classmethod
    def of(cls, guild: GuildSettings | None) -> Moderation:
        raw = guild.moderation if guild else {}
        words = raw.get("blocked_words")
        tolerance = raw.get("max_safety_tolerance")
        channel = raw.get("log_channel_id")
        check = raw.get("check_images")
        return cls(
            blocked=tuple(str(w) for w in words) if isinstance(words, list) else (),
            max_safety_tolerance=tolerance if isinstance(tolerance, int) else SAFE_TOLERANCE,
            log_channel_id=channel if isinstance(channel, int) and channel > 0 else None,
            check_images=check if check in CHECK_IMAGES else "off",
        )

    def stored(self) -> dict[str, object]:
        """As kept in the server's settings."""
        values: dict[str, object] = {
            "blocked_words": list(self.blocked),
            "max_safety_tolerance": self.max_safety_tolerance,
        }
        if self.log_channel_id is not None:
            values["log_channel_id"] = self.log_channel_id
        if self.check_images != "off":
            values["check_images"] = self.check_images
        return values

    @property
    def permissive(self) -> bool:
        """Whether the server allows more than the default anywhere (in its age-restricted channels)."""
        return self.max_safety_tolerance > SAFE_TOLERANCE


# The operator's words are never named to the member, and a server's are not named where others read the refusal.
BOT_REFUSES = _("This prompt contains a word this bot does not allow; change the prompt and try again.")
BOT_REFUSES_PUBLIC = _("The prompt contains a word this bot does not allow.")
SERVER_REFUSES_PUBLIC = _("The prompt contains a word or phrase this server does not allow.")


class BlockedPrompt(BadInput):
    """A prompt with a blocked word or phrase. `text` is said to the member alone; `public` names no phrase, for
    where others read the refusal."""

    def __init__(self, message: Text, public: Text) -> None:
        super().__init__(message)
        self.public = public


def blocked_phrase(prompt: str, phrases: Iterable[str]) -> str | None:
    """The first blocked word or phrase found in `prompt` as a whole word (not inside another word, but for an edge
    in a script written without spaces), or None."""
    texts = readings(prompt)
    for phrase in phrases:
        found = _pattern(phrase)
        # The first word as a plain substring first: most phrases are not there at all, and that is cheap to see.
        if found is not None and any(found[0] in text and found[1].search(text) for text in texts):
            return phrase
    return None


@lru_cache(maxsize=4096)
def _pattern(phrase: str) -> tuple[str, re.Pattern[str]] | None:
    """The phrase's first folded word, and the pattern of the whole phrase as whole words; None if it has none."""
    words = fold(phrase).split()
    if not words:
        return None
    # Words may also be run together (`taylorswift`): the cleaned prompt loses the invisible spaces between them.
    body = " ?".join(re.escape(word) for word in words)
    # A whole word stands apart from other letters, except in a script written without spaces between words:
    # an edge in one matches inside a sentence (`裸体` in `一个裸体女人`), and a letter of one next to a word of
    # another script is no part of that word (`nude` in `nudeの女性`).
    before = "" if _UNSPACED.match(words[0][0]) else rf"(?<![^\W{_UNSPACED_LETTERS}])"
    after = "" if _UNSPACED.match(words[-1][-1]) else rf"(?![^\W{_UNSPACED_LETTERS}])"
    return words[0], re.compile(before + body + after)


# The scripts written without spaces between words: Thai, Lao, Myanmar, Khmer; `々`, Hiragana, Katakana (`ー`
# included), the CJK ideographs (and their extensions and compatibility forms) and half-width Katakana.
_UNSPACED_LETTERS = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u19e0-\u19ff\u3005\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_UNSPACED = re.compile(f"[{_UNSPACED_LETTERS}]")


def check_prompt(prompt: str, moderation: Moderation, operator: Iterable[str] = ()) -> None:
    """Raise BlockedPrompt if `prompt` has a phrase of the operator's list or of the server's."""
    if blocked_phrase(prompt, operator) is not None:
        raise BlockedPrompt(BOT_REFUSES, BOT_REFUSES_PUBLIC)
    found = blocked_phrase(prompt, moderation.blocked)
    if found is not None:
        raise BlockedPrompt(
            _('This server does not allow "{phrase}" in prompts; change the prompt and try again.', phrase=found),
            SERVER_REFUSES_PUBLIC,
        )


def apply_safety(
    model_input: Mapping[str, object], given: Mapping[str, object], moderation: Moderation, *, age_restricted: bool
) -> dict[str, object]:
    """`model_input` within the server's safety rules for this channel; BadInput for what the user asked beyond them."""
    result = dict(model_input)
    cap = moderation.max_safety_tolerance if age_restricted else min(SAFE_TOLERANCE, moderation.max_safety_tolerance)
    tolerance = result.get(TOLERANCE)
    if isinstance(tolerance, int) and not isinstance(tolerance, bool) and tolerance > cap:
        if given.get(TOLERANCE) is None:
            result[TOLERANCE] = cap  # the model's default, not the user's choice: lowered quietly
        elif not age_restricted and tolerance <= moderation.max_safety_tolerance:
            raise BadInput(
                _(
                    "safety_tolerance above {default} is only allowed in age-restricted channels; use {cap} or "
                    "less here.",
                    default=SAFE_TOLERANCE,
                    cap=cap,
                )
            )
        else:
            raise BadInput(
                _(
                    "This server allows safety_tolerance up to {cap} here; you asked for {value}.",
                    cap=cap,
                    value=tolerance,
                )
            )
    if result.get(CHECKER_OFF) is True:
        if not age_restricted:
            raise BadInput(_("disable_safety_checker is only allowed in age-restricted channels."))
        if not moderation.permissive:
            raise BadInput(_("This server does not allow turning the safety checker off."))
    return result


def blocked_after(current: Iterable[str], *, add: str | None, remove: str | None) -> tuple[str, ...]:
    """The blocked list with comma-separated phrases added and removed; BadInput if it grows too long.

    Phrases that read alike (`Red Fox`, `red-fox`) are one phrase."""
    words = list(current)
    for phrase in _phrases(remove):
        words = [w for w in words if fold(w) != fold(phrase)]
    for phrase in _phrases(add):
        if len(phrase) > MAX_PHRASE_CHARS:
            raise BadInput(_("A blocked phrase can be at most {count} characters long.", count=MAX_PHRASE_CHARS))
        if not fold(phrase):
            raise BadInput(_('"{phrase}" is only punctuation, which blocks nothing.', phrase=phrase))
        if all(fold(w) != fold(phrase) for w in words):
            words.append(phrase)
    if len(words) > MAX_BLOCKED:
        raise BadInput(_("A server can block at most {count} words or phrases.", count=MAX_BLOCKED))
    return tuple(words)


def _phrases(text: str | None) -> list[str]:
    if not text:
        return []
    return [" ".join(part.split()) for part in text.split(",") if part.strip()]


def describe(moderation: Moderation) -> list[Text]:
    # The phrases and the channel are shown as they are (they are the server's own words, or a mention).
    none = _("none")
    words = verbatim(", ".join(f'"{w}"' for w in moderation.blocked)) if moderation.blocked else none
    channel = verbatim(f"<#{moderation.log_channel_id}>") if moderation.log_channel_id else none
    return [
        _("Blocked words and phrases: {words}", words=words),
        _(
            "Highest safety_tolerance: {age_restricted} in age-restricted channels, {elsewhere} elsewhere",
            age_restricted=moderation.max_safety_tolerance,
            elsewhere=min(SAFE_TOLERANCE, moderation.max_safety_tolerance),
        ),
        _(
            "Safety checker may be turned off: {when}",
            when=_("in age-restricted channels only") if moderation.permissive else _("never"),
        ),
        _("Job log channel: {channel}", channel=channel),
        _(
            "Images made outside age-restricted channels: {what}",
            what={
                "spoiler": _("checked; a flagged one is posted as a spoiler"),
                "withhold": _("checked; a flagged one is withheld"),
            }.get(moderation.check_images, _("not checked")),
        ),
    ]
