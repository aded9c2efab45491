"""The prediction object as we use it: parsed leniently from whatever the API returns."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.errors import Unavailable

STARTING = "starting"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
ABORTED = "aborted"  # the deadline passed before it started; not billed
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED, ABORTED})


@dataclass(frozen=True)
class Prediction:
    id: str
    status: str
    model: str | None = None
    output: tuple[str, ...] = ()
    error: str | None = None
    logs: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    data_removed: bool = False
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def server_seconds(self) -> float | None:
        """Create-to-done time by the server's own clock, when it says."""
        if self.created_at and self.completed_at:
            return max(0.0, (self.completed_at - self.created_at).total_seconds())
        return None

    @classmethod
    def from_api(cls, data: object) -> Prediction:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data["id"]:
            raise Unavailable("The API sent a prediction without an id.")
        status = data.get("status")
        metrics = data.get("metrics")
        logs = data.get("logs")
        return cls(
            id=data["id"],
            # A missing status is read as "starting": the poller keeps going rather than crash.
            status=status.strip().lower() if isinstance(status, str) and status.strip() else STARTING,
            model=data.get("model") if isinstance(data.get("model"), str) else None,
            output=normalise_output(data.get("output")),
            error=_error_text(data.get("error")),
            logs=logs if isinstance(logs, str) else "",
            created_at=_timestamp(data.get("created_at")),
            started_at=_timestamp(data.get("started_at")),
            completed_at=_timestamp(data.get("completed_at")),
            data_removed=data.get("data_removed") is True,
            metrics=metrics if isinstance(metrics, Mapping) else {},
        )


def normalise_output(output: object) -> tuple[str, ...]:
    """Outputs come as a list of URLs (schnell, dev), one URL string (pro, kontext), or data: URIs."""
    if isinstance(output, str):
        return (output,) if output else ()
    if isinstance(output, list):
        return tuple(item for item in output if isinstance(item, str) and item)
    return ()


def _error_text(error: object) -> str | None:
    if error is None or error == "":
        return None
    if isinstance(error, Mapping):
        detail = error.get("detail") or error.get("message")
        return str(detail) if detail else str(dict(error))
    return str(error)


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Python 3.11 accepts up to 6 fractional digits; Replicate sends up to 9.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A time without a zone is read as UTC, so it can be compared with one that has a zone.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Progress:
    percent: int | None = None
    step: int | None = None
    total: int | None = None
    seconds_left: float | None = None  # from the rate tqdm prints, when it prints one
    stage: str | None = None  # the last plain log line, e.g. "Generating image..."


_TQDM = re.compile(r"^\s*(\d+)%\s*\|.*?\|\s*(\d+)/(\d+)(?:\s*\[[^\]]*?,\s*([\d.]+)\s*(it/s|s/it))?")
_STAGE_MAX = 80


def parse_progress(logs: str) -> Progress:
    """Read the last tqdm line of the logs: percent, step/total and the time left.

    Never invents a percentage: lines like `4it [..]` or plain text give only a stage.
    """
    if not logs:
        return Progress()
    lines = [line for line in re.split(r"[\r\n]+", logs) if line.strip()]
    for line in reversed(lines):
        match = _TQDM.match(line)
        if match:
            percent, step, total = int(match[1]), int(match[2]), int(match[3])
            if total <= 0:
                continue
            seconds_left = None
            if match[4]:
                rate = float(match[4])
                per_step = (1 / rate if match[5] == "it/s" else rate) if rate > 0 else None
                if per_step is not None:
                    seconds_left = max(0.0, (total - step) * per_step)
            return Progress(min(percent, 100), step, total, seconds_left)
    stage = _stage(lines[-1]) if lines else None
    return Progress(stage=stage)


def _stage(line: str) -> str | None:
    text = line.strip()
    if re.match(r"^\d+it\b", text) or "|" in text:  # a tqdm line without a total: no honest percent
        return None
    return text[:_STAGE_MAX] or None
