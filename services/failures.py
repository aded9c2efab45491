"""One or two lines a person understands, for each way a job can fail.

Operator details (status codes, request ids) go to the log, not to the user.
"""

from __future__ import annotations

import re

from services.errors import (
    ApiError,
    AuthError,
    BadInput,
    BillingError,
    Canceled,
    DownloadError,
    GenerationFailed,
    RateLimited,
    Rejected,
    TimedOut,
    TooLate,
    Unavailable,
    UncertainCreate,
)
from services.text import Text, _, clip, verbatim

# A provider's own safety refusal ("NSFW content detected"), told apart from other failures so the reply can
# offer 🔄: the same request with a new seed often passes.
_UNSAFE = re.compile(r"nsfw|not safe for work|safety (?:filter|system|check)|content (?:policy|moderation)", re.I)
UNSAFE_REFUSAL = "The model refused to make this image as unsafe: {detail}. Change the prompt, or 🔄 try a new seed."


def refused_as_unsafe(message: Text) -> bool:
    """Whether `message` (from `describe`) is a provider's safety refusal."""
    return message.msgid == UNSAFE_REFUSAL


def worth_retrying(message: Text) -> bool:
    """Whether the same request may pass if tried again (a new seed, a service back up): not when the operator's
    key or account is at fault, nor when the service refused the request itself."""
    return message.msgid not in _NOT_WORTH_RETRYING


def describe(error: BaseException) -> Text:
    """What to tell the user; the API's own words (a refusal's reason, a model's error) are quoted as they are."""
    if isinstance(error, BadInput):
        return error.text
    if isinstance(error, AuthError):
        return _("The image service refused the bot's API key. Please let the server admins know.")
    if isinstance(error, BillingError):
        return _("The bot's image service account is out of credit. Please let the server admins know.")
    if isinstance(error, RateLimited):
        if error.retry_after:
            return _(
                "The image service is rate limiting the bot. Try again in about {seconds} s.",
                seconds=f"{error.retry_after:.0f}",
            )
        return _("The image service is rate limiting the bot. Try again in a minute.")
    if isinstance(error, UncertainCreate):
        return _(
            "The image service did not confirm the request. It was not sent again, so you are not charged "
            "twice; try again in a minute."
        )
    if isinstance(error, Unavailable):
        return _("The image service is not answering right now. Try again in a minute.")
    if isinstance(error, Rejected):
        detail = verbatim(_short(str(error).split(": ", 1)[-1]))
        return _("The image service refused the request: {detail}", detail=detail)
    if isinstance(error, GenerationFailed) and _UNSAFE.search(str(error)):
        return _(
            "The model refused to make this image as unsafe: {detail}. Change the prompt, or 🔄 try a new seed.",
            detail=verbatim(_short(str(error)).rstrip(".")),
        )
    if isinstance(error, GenerationFailed):
        return _("The model could not make this image: {detail}", detail=verbatim(_short(str(error))))
    if isinstance(error, TooLate):
        return _(
            "Discord gives me 15 minutes to answer here, and this image would not have been ready in time, so "
            "it was stopped. Try again, or pick a faster model."
        )
    if isinstance(error, TimedOut):
        return _("It took too long and was cancelled. Try again, or pick a faster model.")
    if isinstance(error, Canceled):
        return _("Cancelled.")
    if isinstance(error, ApiError):  # an answer the client has no rule for
        return _("The image service could not take this request. Try again in a minute.")
    if isinstance(error, DownloadError):
        return _("The finished image could not be fetched: {detail}", detail=error.text)
    return _("Something went wrong on the bot's side. It has been logged.")


def _without_status(text: str) -> str:
    """Drop HTTP status codes (kept in the log) from a message shown to the user."""
    text = re.sub(r"\s*\(HTTP \d{3}\)", "", text)
    return re.sub(r"answered HTTP \d{3}", "answered with an error", text)


def _short(text: str, limit: int = 300) -> str:
    return clip(" ".join(text.split()), limit)


# what `describe` says where trying the same request again would fail the same way
_NOT_WORTH_RETRYING = frozenset(
    describe(error).msgid for error in (AuthError("key"), BillingError("credit"), Rejected("refused"))
)
