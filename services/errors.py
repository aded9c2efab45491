"""Typed errors of the prediction service.

Each error carries a message a person can act on; the bot shows it (or a summary of it) to the user,
and the operator-facing detail goes to the log. Nothing here ever contains the API key.
"""

from __future__ import annotations

from services.text import Text, as_text


class ServiceError(Exception):
    """Base of every error this package raises on purpose."""


class BadInput(ServiceError):
    """The request is wrong and we can tell without asking the API: nothing was sent, nothing charged.

    `text` is the message for the user, from the catalogue (`_()`), shown in their language; str() is English.
    """

    def __init__(self, message: Text | str) -> None:
        self.text = as_text(message)
        super().__init__(str(self.text))


class ConfigError(ServiceError):
    """A setting is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class ApiError(ServiceError):
    """The API answered with an error or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(ApiError):
    """401/403: the API key is wrong or lacks access."""


class BillingError(ApiError):
    """402: the account is out of credit."""


class Rejected(ApiError):
    """400/404/422: the API refused the request; its detail says why."""


class RateLimited(ApiError):
    """429 that outlasted our retries (or a create we chose not to delay further)."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class Unavailable(ApiError):
    """5xx, timeouts or dropped connections that outlasted our retries."""


class UncertainCreate(Unavailable):
    """A create may have reached the server but no answer came back.

    It is never repeated: a second create would be a second charge.
    """


class GenerationFailed(ServiceError):
    """The prediction ended without images (the model's error, `aborted`, or outputs removed).

    `outcome` is the prediction's final status (succeeded, failed, aborted): what decides whether it is billed.
    """

    def __init__(self, message: str, *, prediction_id: str | None = None, outcome: str = "failed") -> None:
        super().__init__(message)
        self.prediction_id = prediction_id
        self.outcome = outcome


class TimedOut(ServiceError):
    """The prediction did not finish before its deadline; it was cancelled."""

    def __init__(self, message: str, *, prediction_id: str | None = None) -> None:
        super().__init__(message)
        self.prediction_id = prediction_id


class Canceled(ServiceError):
    """The prediction was cancelled (by a user, or on the API's side)."""

    def __init__(self, message: str = "The generation was cancelled.", *, prediction_id: str | None = None) -> None:
        super().__init__(message)
        self.prediction_id = prediction_id


class TooLate(ServiceError):
    """The job could not end before the only way to reach its user (an interaction's token) expires."""


class DownloadError(ServiceError):
    """An image could not be fetched: expired, too large, not an image, or a URL we refuse.

    `text` is what the user reads, from the catalogue; str() is English and adds what only the log needs (the
    HTTP status, the exception)."""

    def __init__(self, message: Text | str, *, logged: str | None = None) -> None:
        self.text = as_text(message)
        super().__init__(f"{self.text} ({logged})" if logged else str(self.text))


class LeaseLost(Exception):
    """This process can no longer prove it holds the job's lease: another process took the job, or it ended."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id}: its lease is no longer this process's")
        self.job_id = job_id
