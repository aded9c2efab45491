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
    Unavailable,
    UncertainCreate,
)

ASK_ADMINS = "Please let the server admins know."


def describe(error: BaseException) -> str:
    if isinstance(error, BadInput):
        return str(error)
    if isinstance(error, AuthError):
        return f"The image service refused the bot's API key. {ASK_ADMINS}"
    if isinstance(error, BillingError):
        return f"The bot's image service account is out of credit. {ASK_ADMINS}"
    if isinstance(error, RateLimited):
        wait = f" in about {error.retry_after:.0f} s" if error.retry_after else " in a minute"
        return f"The image service is rate limiting the bot. Try again{wait}."
    if isinstance(error, UncertainCreate):
        return (
            "The image service did not confirm the request. It was not sent again, so you are not charged "
            "twice; try again in a minute."
        )
    if isinstance(error, Unavailable):
        return "The image service is not answering right now. Try again in a minute."
    if isinstance(error, Rejected):
        return f"The image service refused the request: {_short(str(error).split(': ', 1)[-1])}"
    if isinstance(error, GenerationFailed):
        return f"The model could not make this image: {_short(str(error))}"
    if isinstance(error, TimedOut):
        return "It took too long and was cancelled. Try again, or pick a faster model."
    if isinstance(error, Canceled):
        return "Cancelled."
    if isinstance(error, ApiError):  # an answer the client has no rule for
        return "The image service could not take this request. Try again in a minute."
    if isinstance(error, DownloadError):
        return f"The finished image could not be fetched: {_short(_without_status(str(error)))}"
    return "Something went wrong on the bot's side. It has been logged."


def _without_status(text: str) -> str:
    """Drop HTTP status codes (kept in the log) from a message shown to the user."""
    text = re.sub(r"\s*\(HTTP \d{3}\)", "", text)
    return re.sub(r"answered HTTP \d{3}", "answered with an error", text)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
