"""A server's moderation rules: blocked words, how permissive the safety settings may be, and where jobs are logged.

Judged on admission, before anything is sent to the API:

* a prompt containing a blocked word or phrase (whole words, any case, any spacing) is refused, naming it;
* `safety_tolerance` above the API's default (2) and `disable_safety_checker` are permissive settings: they
  are allowed only in age-restricted (NSFW) channels, and only as far as the server allows
  (`max_safety_tolerance`; turning the checker off needs a server that allows more than the default);
* a tolerance the user did not ask for (the model's default) is lowered to the server's maximum.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.errors import BadInput
from services.store.models import GuildSettings
from services.text import Text, _, verbatim

SAFE_TOLERANCE = 2  # the API's own default
MAX_TOLERANCE = 6
MAX_BLOCKED = 200
MAX_PHRASE_CHARS = 100
TOLERANCE = "safety_tolerance"
CHECKER_OFF = "disable_safety_checker"


@dataclass(frozen=True)
class Moderation:
    blocked: tuple[str, ...] = ()
    max_safety_tolerance: int = SAFE_TOLERANCE
    log_channel_id: int | None = None

    @classmethod
    def of(cls, guild: GuildSettings | None) -> Moderation:
        raw = guild.moderation if guild else {}
        words = raw.get("blocked_words")
        tolerance = raw.get("max_safety_tolerance")
        channel = raw.get("log_channel_id")
        return cls(
            blocked=tuple(str(w) for w in words) if isinstance(words, list) else (),
            max_safety_tolerance=tolerance if isinstance(tolerance, int) else SAFE_TOLERANCE,
            log_channel_id=channel if isinstance(channel, int) and channel > 0 else None,
        )

    def stored(self) -> dict[str, object]:
        """As kept in the server's settings."""
        values: dict[str, object] = {
            "blocked_words": list(self.blocked),
            "max_safety_tolerance": self.max_safety_tolerance,
        }
        if self.log_channel_id is not None:
            values["log_channel_id"] = self.log_channel_id
        return values

    @property
    def permissive(self) -> bool:
        """Whether the server allows more than the default anywhere (in its age-restricted channels)."""
        return self.max_safety_tolerance > SAFE_TOLERANCE


def normalized(text: str) -> str:
    """Compared form: compatibility characters folded (ｆｕｌｌ width, ligatures), any case, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def blocked_phrase(prompt: str, phrases: Iterable[str]) -> str | None:
    """The first blocked word or phrase found in `prompt` as a whole word (not inside another word), or None."""
    text = normalized(prompt)
    for phrase in phrases:
        wanted = normalized(phrase)
        if not wanted:
            continue
        pattern = r"(?<!\w)" + r"\s+".join(re.escape(part) for part in wanted.split(" ")) + r"(?!\w)"
        if re.search(pattern, text):
            return phrase
    return None


def check_prompt(prompt: str, moderation: Moderation) -> None:
    found = blocked_phrase(prompt, moderation.blocked)
    if found is not None:
        raise BadInput(
            _('This server does not allow "{phrase}" in prompts; change the prompt and try again.', phrase=found)
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
    """The blocked list with comma-separated phrases added and removed; BadInput if it grows too long."""
    words = list(current)
    for phrase in _phrases(remove):
        words = [w for w in words if normalized(w) != normalized(phrase)]
    for phrase in _phrases(add):
        if len(phrase) > MAX_PHRASE_CHARS:
            raise BadInput(_("A blocked phrase can be at most {count} characters long.", count=MAX_PHRASE_CHARS))
        if all(normalized(w) != normalized(phrase) for w in words):
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
    ]
