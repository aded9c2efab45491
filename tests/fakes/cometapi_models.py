"""Data of the fake CometAPI: model table, outcomes, predictions, how a prediction looks at a given time, and
the error bodies of CometAPI and Replicate."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aiohttp import web

OWNER = "black-forest-labs"
STATUSES = ("succeeded", "failed", "canceled", "aborted", "never")
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
OUTPUT_SHAPES = ("auto", "list", "string", "data_uri")
LOGS_STYLES = ("tqdm", "tqdm_lf", "no_total", "plain", "empty")
DEFAULT_ERROR = "NSFW content detected. Try running it again, or try a different prompt."
QUEUE_RANGE = (0.0, 0.5)

_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    output: str  # "list" or "string"
    formats: tuple[str, ...]
    default_format: str
    duration: tuple[float, float]  # seconds at speed 1.0
    steps: tuple[int, int, int] | None = None  # (min, max, default) of num_inference_steps; None: no tqdm
    max_outputs: int = 1
    aspect_ratios: tuple[str, ...] = _RATIOS
    needs_input_image: bool = False


_KONTEXT_RATIOS = ("match_input_image", *_RATIOS, "2:1", "1:2")
MODELS: dict[str, ModelSpec] = {
    f"{OWNER}/{spec.name}": spec
    for spec in (
        ModelSpec("flux-schnell", "list", ("webp", "jpg", "png"), "webp", (1.0, 2.0), (1, 4, 4), 4),
        ModelSpec("flux-dev", "list", ("webp", "jpg", "png"), "webp", (3.0, 6.0), (1, 50, 28), 4),
        ModelSpec(
            "flux-1.1-pro", "string", ("webp", "jpg", "png"), "webp", (5.0, 15.0), aspect_ratios=(*_RATIOS, "custom")
        ),
        ModelSpec("flux-1.1-pro-ultra", "string", ("jpg", "png"), "jpg", (5.0, 15.0)),
        ModelSpec(
            "flux-kontext-pro",
            "string",
            ("jpg", "png"),
            "png",
            (5.0, 15.0),
            aspect_ratios=_KONTEXT_RATIOS,
            needs_input_image=True,
        ),
        ModelSpec(
            "flux-kontext-max",
            "string",
            ("jpg", "png"),
            "png",
            (5.0, 15.0),
            aspect_ratios=_KONTEXT_RATIOS,
            needs_input_image=True,
        ),
    )
}


@dataclass
class Outcome:
    """How a prediction ends. Times are seconds and are not scaled by ``speed``."""

    status: str = "succeeded"  # succeeded | failed | canceled | aborted | never (processing forever)
    error: str | None = None  # for failed; DEFAULT_ERROR when None
    duration: float | None = None  # processing time
    queue_time: float | None = None  # time in "starting"
    output_shape: str = "auto"  # auto (per model) | list | string | data_uri (per model, as data: URIs)
    data_removed: bool = False  # succeeded, but output null and data_removed true
    unknown_status: str | None = None  # e.g. "queued_for_gpu", shown between starting and processing
    unknown_status_time: float | None = None  # how long; default 1 s * speed
    file_status: int | None = None  # e.g. 404 or 410: the output files answer this (expired)
    file_size: int | None = None  # bytes of each output file (default: the fake's image size)
    file_content_type: str | None = None  # Content-Type sent with the files
    not_image: bool = False  # the files are an HTML page
    logs_style: str | None = None  # tqdm | tqdm_lf | no_total | plain | empty; None: per model

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")
        if self.output_shape not in OUTPUT_SHAPES:
            raise ValueError(f"output_shape must be one of {OUTPUT_SHAPES}, not {self.output_shape!r}")
        if self.logs_style is not None and self.logs_style not in LOGS_STYLES:
            raise ValueError(f"logs_style must be one of {LOGS_STYLES}, not {self.logs_style!r}")
        for name in ("duration", "queue_time", "unknown_status_time"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Outcome fields: {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any | None
    t: float  # time.monotonic()
    wall: float  # time.time()
    route: str = "other"  # create | get | cancel | file | other
    body: bytes = b""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["body"] = self.body.decode("utf-8", "replace")
        return data


@dataclass(frozen=True)
class Injection:
    status: int | None = 500  # None: answer normally (after delay, with headers added)
    json: Any | None = None
    text: str | None = None
    content_type: str | None = None
    headers: dict[str, str] | None = None
    delay: float = 0.0
    drop: bool = False
    side_effects: bool = False  # run the real handler (e.g. create the prediction) before the injected answer
    body: bytes | None = None  # raw bytes to answer with (e.g. a broken image file)


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _mmss(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


def _rate(n: int, elapsed: float) -> str:
    if n == 0 or elapsed <= 0:
        return "?it/s"
    rate = n / elapsed
    return f"{rate:.2f}it/s" if rate >= 1 else f"{1 / rate:.2f}s/it"


def tqdm_line(n: int, total: int, elapsed: float) -> str:
    """One tqdm progress line, e.g. `` 50%|█████     | 2/4 [00:00<00:00, 15.38it/s]``."""
    frac = n / total
    fill = frac * 10
    full = int(fill)
    bar = "█" * full
    if full < 10:
        bar += " ▏▎▍▌▋▊▉"[int((fill - full) * 8)]
    remaining = "?" if n == 0 else _mmss(elapsed / n * (total - n))
    return f"{frac * 100:3.0f}%|{bar.ljust(10)}| {n}/{total} [{_mmss(elapsed)}<{remaining}, {_rate(n, elapsed)}]"


@dataclass
class FakePrediction:
    id: str
    model: str  # "owner/name"
    input: dict[str, Any]
    outcome: Outcome
    spec: ModelSpec
    seed: int
    created: float  # time.monotonic()
    created_wall: float  # time.time()
    queue_time: float
    unknown_time: float
    duration: float
    num_outputs: int
    ext: str
    steps: int | None
    file_size: int
    cancel_requested: bool = False
    canceled_after: float | None = None  # seconds after creation, when a cancel took effect
    gets: int = 0
    stream_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    # -- schedule (offsets in seconds from creation) ------------------------------------------------

    @property
    def start_offset(self) -> float:
        return self.queue_time + self.unknown_time

    def _natural_end(self) -> float | None:
        if self.outcome.status == "never":
            return None
        if self.outcome.status == "aborted":
            return self.start_offset
        return self.start_offset + self.duration

    @property
    def end_offset(self) -> float | None:
        """When it becomes (or became) terminal; None if never."""
        natural = self._natural_end()
        if self.canceled_after is not None and (natural is None or self.canceled_after < natural):
            return self.canceled_after
        return natural

    @property
    def final_status(self) -> str:
        natural = self._natural_end()
        if self.canceled_after is not None and (natural is None or self.canceled_after < natural):
            return "canceled"
        return self.outcome.status

    def elapsed(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.created

    def status_at(self, now: float | None = None) -> str:
        e = self.elapsed(now)
        end = self.end_offset
        if end is not None and e >= end:
            return self.final_status
        if e < self.queue_time:
            return "starting"
        if e < self.start_offset:
            return self.outcome.unknown_status or "starting"
        return "processing"

    @property
    def status(self) -> str:
        return self.status_at()

    def is_terminal(self, now: float | None = None) -> bool:
        return self.status_at(now) in TERMINAL

    def started_offset(self, now: float | None = None) -> float | None:
        """When processing started, if it did by ``now``."""
        e = self.elapsed(now)
        end = self.end_offset
        began = self.start_offset
        if e < began or (end is not None and end <= began):
            return None
        return began

    @property
    def started_at_wall(self) -> float | None:
        off = self.started_offset()
        return None if off is None else self.created_wall + off

    @property
    def done_at_wall(self) -> float | None:
        """time.time() at which it became terminal (the scheduled instant), or None while it is not."""
        end = self.end_offset
        if end is None or self.elapsed() < end:
            return None
        return self.created_wall + end

    # -- rendering ----------------------------------------------------------------------------------

    def file_urls(self, base_url: str) -> list[str]:
        return [f"{base_url}/files/{self.id}/{n}.{self.ext}" for n in range(self.num_outputs)]

    def logs_at(self, now: float | None = None) -> str:
        e = self.elapsed(now)
        began = self.started_offset(now)
        if began is None:
            return ""
        end = self.end_offset
        upto = e if end is None else min(e, end)
        run = upto - began  # seconds of processing shown
        style = self.outcome.logs_style or ("tqdm" if self.steps else "plain")
        if style == "empty":
            return ""
        done = self.final_status == "succeeded" and end is not None and e >= end
        text = f"Using seed: {self.seed}\n"
        if style == "plain":
            text += "Running prediction\nGenerating image...\n"
            if done:
                text += f"Generated image in {self.duration:.1f}sec\n"
            return text
        total = self.steps or 28
        # steps are spread over 5%..90% of the processing time
        step_time = max(self.duration, 1e-9) * 0.85 / total
        n = max(0, min(total, int((run - 0.05 * self.duration) / step_time)))
        if end is None:
            n = min(n, total - 1)  # a stuck prediction never finishes its bar
        if style == "no_total":
            lines = [f"{k}it [{_mmss(k * step_time)}, {_rate(k, k * step_time)}]" for k in range(1, n + 1)]
        else:
            lines = [tqdm_line(k, total, k * step_time) for k in range(n + 1)]
        sep = "\r" if style == "tqdm" else "\n"
        text += sep.join(lines)
        if n == total:
            text += "\n"
        if done:
            text += f"Total safe images: {self.num_outputs} out of {self.num_outputs}\n"
        return text

    def to_json(
        self, base_url: str, now: float | None = None, data_uri_bytes: list[bytes] | None = None
    ) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        status = self.status_at(now)
        started = self.started_offset(now)
        end = self.end_offset
        terminal = status in TERMINAL
        output: Any = None
        metrics: dict[str, Any] = {}
        error: str | None = None
        data_removed = False
        if terminal and end is not None:
            metrics["total_time"] = round(end, 6)
            if started is not None:
                metrics["predict_time"] = round(end - started, 6)
        if status == "succeeded":
            metrics["image_count"] = self.num_outputs
            if self.outcome.data_removed:
                data_removed = True
            else:
                urls = self.file_urls(base_url)
                if self.outcome.output_shape == "data_uri" and data_uri_bytes is not None:
                    mime = {"jpg": "image/jpeg"}.get(self.ext, f"image/{self.ext}")
                    urls = [f"data:{mime};base64,{base64.b64encode(b).decode()}" for b in data_uri_bytes]
                shape = self.outcome.output_shape
                if shape in ("auto", "data_uri"):
                    shape = self.spec.output
                output = urls if shape == "list" else urls[0]
        elif status == "failed":
            error = self.outcome.error or DEFAULT_ERROR
        api = "https://api.replicate.com/v1/predictions/" + self.id
        return {
            "id": self.id,
            "model": self.model,
            "version": "hidden",
            "input": self.input,
            "logs": self.logs_at(now),
            "output": output,
            "data_removed": data_removed,
            "error": error,
            "source": "api",
            "status": status,
            "created_at": iso(self.created_wall),
            "started_at": None if started is None else iso(self.created_wall + started),
            "completed_at": iso(self.created_wall + end) if terminal and end is not None else None,
            "urls": {
                "cancel": api + "/cancel",
                "get": api,
                "stream": f"https://stream.replicate.com/v1/files/{self.stream_id}",
                "web": f"https://replicate.com/p/{self.id}",
            },
            "metrics": metrics,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "prompt": self.input.get("prompt"),  # lets a benchmark match predictions to the jobs it started
            "seed": self.seed,
            "status": self.status,
            "outcome": self.outcome.status,
            "created_wall": self.created_wall,
            "started_wall": self.started_at_wall,
            "done_wall": self.done_at_wall,
            "gets": self.gets,
            "cancel_requested": self.cancel_requested,
        }


def validate_input(spec: ModelSpec, inp: dict[str, Any]) -> list[dict[str, str]]:
    """Replicate-style ``invalid_fields`` for an input; empty when it is acceptable."""
    bad: list[dict[str, str]] = []

    def enum(key: str, allowed: tuple[str, ...]) -> None:
        value = inp.get(key)
        if value is not None and value not in allowed:
            choices = ", ".join(f'"{a}"' for a in allowed)
            bad.append(
                {
                    "type": "enum",
                    "field": f"input.{key}",
                    "description": f"{key} must be one of the following: {choices}",
                }
            )

    def int_range(key: str, low: int, high: int) -> None:
        value = inp.get(key)
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool):
            bad.append(
                {
                    "type": "invalid_type",
                    "field": f"input.{key}",
                    "description": "Invalid type. Expected: integer, given: " + type(value).__name__,
                }
            )
        elif value < low:
            bad.append(
                {
                    "type": "number_gte",
                    "field": f"input.{key}",
                    "description": f"Must be greater than or equal to {low}",
                }
            )
        elif value > high:
            bad.append(
                {"type": "number_lte", "field": f"input.{key}", "description": f"Must be less than or equal to {high}"}
            )

    prompt = inp.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        bad.append({"type": "required", "field": "input", "description": "prompt is required"})
    enum("output_format", spec.formats)
    enum("aspect_ratio", spec.aspect_ratios)
    if spec.max_outputs > 1:
        int_range("num_outputs", 1, spec.max_outputs)
    if spec.steps is not None:
        int_range("num_inference_steps", spec.steps[0], spec.steps[1])
    int_range("seed", -(2**63), 2**63 - 1)
    if spec.needs_input_image and not inp.get("input_image"):
        bad.append({"type": "required", "field": "input", "description": "input_image is required"})
    return bad


# -- answer bodies ---------------------------------------------------------------------------------

NOT_IMAGE_HTML = (
    "<!DOCTYPE html>\n<html><head><title>Access denied</title></head>"
    "<body><h1>Access denied</h1><p>You do not have access to this file.</p></body></html>\n"
)


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _request_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")[:17] + secrets.token_hex(4)


def comet_error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> web.Response:
    """A CometAPI-shaped error answer."""
    body = {
        "error": {
            "message": f"{message} (request id: {_request_id()})",
            "type": "comet_api_error",
            "param": "",
            "code": code,
        }
    }
    return web.json_response(body, status=status, headers=headers)


def problem(
    status: int,
    title: str,
    detail: str,
    invalid_fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A Replicate-shaped (problem+json) error answer."""
    body: dict[str, Any] = {"title": title, "detail": detail, "status": status}
    if invalid_fields is not None:
        body["invalid_fields"] = invalid_fields
    return web.json_response(body, status=status, headers=headers, content_type="application/problem+json")
