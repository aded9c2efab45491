"""Data of the fake CometAPI: model table, outcomes, predictions, how a prediction looks at a given time, and
the error bodies of CometAPI and Replicate."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aiohttp import web

OWNER = "black-forest-labs"
STATUSES = ("succeeded", "failed", "canceled", "aborted", "never")
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
OUTPUT_SHAPES = ("auto", "list", "string", "data_uri")
STAGE_LINES = ("Loading the model", "Preparing the inputs", "Running prediction", "Generating image...")
LOGS_STYLES = ("tqdm", "tqdm_lf", "no_total", "plain", "stages", "empty")
DEFAULT_ERROR = "NSFW content detected. Try running it again, or try a different prompt."
QUEUE_RANGE = (0.0, 0.5)

_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
_KONTEXT_RATIOS = ("match_input_image", *_RATIOS, "2:1", "1:2")
_FLUX2_RATIOS = ("match_input_image", "custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
_PRO_RATIOS = ("custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MATCH_INPUT = "match_input_image"


@dataclass(frozen=True)
class Field:
    """One input of a model's schema (Replicate's OpenAPI input properties, as far as the fake needs them)."""

    kind: str  # enum | integer | number | boolean | string | uri | uri_list
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    multiple_of: int | None = None
    max_items: int | None = None
    default: Any = None


def _enum(*choices: str, default: str | None = None) -> Field:
    return Field("enum", choices, default=default)


def _int(low: int, high: int, default: int | None = None, multiple_of: int | None = None) -> Field:
    return Field("integer", low=low, high=high, multiple_of=multiple_of, default=default)


def _num(low: float, high: float, default: float | None = None) -> Field:
    return Field("number", low=low, high=high, default=default)


_BOOL = Field("boolean")
_SEED = _int(-(2**63), 2**63 - 1)
_QUALITY = _int(0, 100, 80)
_ALL_FORMATS = _enum("webp", "jpg", "png", default="webp")


def _schnell_dev(steps: Field, **more: Field) -> dict[str, Field]:
    return {
        "aspect_ratio": _enum(*_RATIOS, default="1:1"), "num_outputs": _int(1, 4, 1), "seed": _SEED,
        "output_format": _ALL_FORMATS, "output_quality": _QUALITY, "num_inference_steps": steps, "go_fast": _BOOL,
        "megapixels": _enum("1", "0.25", default="1"), "disable_safety_checker": _BOOL, **more,
    }  # fmt: skip


def _sized(side: int, step: int) -> dict[str, Field]:
    return {"width": _int(256, side, multiple_of=step), "height": _int(256, side, multiple_of=step)}


def _flux2(max_images: int, **more: Field) -> dict[str, Field]:
    return {
        "input_images": Field("uri_list", max_items=max_images), "aspect_ratio": _enum(*_FLUX2_RATIOS, default="1:1"),
        "seed": _SEED, "output_format": _ALL_FORMATS, "output_quality": _QUALITY, **more,
    }  # fmt: skip


_FLUX2_PRO = {
    "resolution": _enum("match_input_image", "0.5 MP", "1 MP", "2 MP", "4 MP", default="1 MP"),
    **_sized(2048, 16),
    "safety_tolerance": _int(1, 5, 2),
}
_KONTEXT = {
    "input_image": Field("uri"), "aspect_ratio": _enum(*_KONTEXT_RATIOS, default="match_input_image"),
    "output_format": _enum("jpg", "png", default="png"), "safety_tolerance": _int(0, 6, 2),
    "prompt_upsampling": _BOOL, "seed": _SEED,
}  # fmt: skip


@dataclass(frozen=True)
class ModelSpec:
    name: str
    output: str  # "list" or "string"
    duration: tuple[float, float]  # seconds at speed 1.0
    fields: dict[str, Field]  # every input besides prompt; anything else is refused
    steps: tuple[int, int, int] | None = None  # (min, max, default) of num_inference_steps; None: no tqdm
    max_outputs: int = 1
    image_field: str | None = None  # input_image (Kontext) or input_images (FLUX.2)
    needs_input_image: bool = False
    image_safety_cap: int | None = None  # safety_tolerance allowed at most this with an input image

    @property
    def formats(self) -> tuple[str, ...]:
        return self.fields["output_format"].choices

    @property
    def default_format(self) -> str:
        return str(self.fields["output_format"].default)

    @property
    def aspect_ratios(self) -> tuple[str, ...]:
        return self.fields["aspect_ratio"].choices

    @property
    def max_images(self) -> int:
        if self.image_field is None:
            return 0
        return self.fields[self.image_field].max_items or 1


MODELS: dict[str, ModelSpec] = {
    f"{OWNER}/{spec.name}": spec
    for spec in (
        ModelSpec("flux-schnell", "list", (1.0, 2.0), _schnell_dev(_int(1, 4, 4)), (1, 4, 4), 4),
        ModelSpec(
            "flux-dev",
            "list",
            (3.0, 6.0),
            _schnell_dev(_int(1, 50, 28), guidance=_num(0, 10, 3), image=Field("uri"), prompt_strength=_num(0, 1, 0.8)),
            (1, 50, 28),
            4,
        ),
        ModelSpec(
            "flux-pro",
            "string",
            (5.0, 15.0),
            {
                "aspect_ratio": _enum(*_PRO_RATIOS, default="1:1"),
                **_sized(1440, 32),
                "guidance": _num(2, 5, 3),
                "safety_tolerance": _int(1, 6, 2),
                "seed": _SEED,
                "output_format": _ALL_FORMATS,
                "output_quality": _QUALITY,
                "prompt_upsampling": _BOOL,
                "image_prompt": Field("uri"),
            },
        ),
        ModelSpec(
            "flux-1.1-pro",
            "string",
            (5.0, 15.0),
            {
                "aspect_ratio": _enum(*_RATIOS, "custom", default="1:1"),
                **_sized(1440, 32),
                "seed": _SEED,
                "output_format": _ALL_FORMATS,
                "output_quality": _QUALITY,
                "safety_tolerance": _int(1, 6, 2),
                "prompt_upsampling": _BOOL,
                "image_prompt": Field("uri"),
            },
        ),
        ModelSpec(
            "flux-1.1-pro-ultra",
            "string",
            (5.0, 15.0),
            {
                "aspect_ratio": _enum(*_RATIOS, default="1:1"),
                "raw": _BOOL,
                "output_format": _enum("jpg", "png", default="jpg"),
                "safety_tolerance": _int(1, 6, 2),
                "image_prompt": Field("uri"),
                "image_prompt_strength": _num(0, 1, 0.1),
                "seed": _SEED,
            },
        ),
        *(
            ModelSpec(
                f"flux-kontext-{tier}",
                "string",
                (5.0, 15.0),
                _KONTEXT,
                image_field="input_image",
                needs_input_image=True,
                image_safety_cap=2,
            )
            for tier in ("pro", "max")
        ),
        # FLUX.2: much slower than FLUX.1, and its logs carry no progress bar.
        ModelSpec("flux-2-pro", "string", (7.0, 30.0), _flux2(8, **_FLUX2_PRO), image_field="input_images"),
        ModelSpec(
            "flux-2-flex",
            "string",
            (12.0, 38.0),
            _flux2(10, **_FLUX2_PRO, steps=_int(1, 50, 30), guidance=_num(1.5, 10, 4.5), prompt_upsampling=_BOOL),
            image_field="input_images",
        ),
        ModelSpec(
            "flux-2-dev",
            "string",
            (3.0, 12.0),
            _flux2(4, **_sized(1440, 32), go_fast=_BOOL, disable_safety_checker=_BOOL),
            image_field="input_images",
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
    # tqdm | tqdm_lf | no_total | plain | stages (plain lines that change as it runs, never a percent) | empty;
    # None: per model
    logs_style: str | None = None

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
    created: float  # clock(), by default time.monotonic()
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
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)  # the fake's

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
        return (self.clock() if now is None else now) - self.created

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
        if style == "stages":  # a new plain line every quarter of the run, as some models log their steps
            shown = STAGE_LINES[: 1 + min(3, int(4 * run / max(self.duration, 1e-9)))]
            return text + "".join(f"{line}\n" for line in shown)
        if style == "plain":
            references = self.input.get("input_images")
            if isinstance(references, list) and references:  # FLUX.2 says what it was given
                text += f"Using {len(references)} reference image(s)\n"
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
        now = self.clock() if now is None else now
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
    """Replicate-style ``invalid_fields`` for an input; empty when it is acceptable.

    Stricter than Replicate in one way: an input the model's schema does not list is refused ("Additional
    property"), where the real API may silently ignore it; so a field sent in vain shows up in tests.
    """
    bad: list[dict[str, str]] = []

    def fail(kind: str, key: str, description: str) -> None:
        bad.append({"type": kind, "field": f"input.{key}" if key else "input", "description": description})

    prompt = inp.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        fail("required", "", "prompt is required")
    for key, value in inp.items():
        if key == "prompt":
            continue
        field = spec.fields.get(key)
        if field is None:
            fail("additional_property_not_allowed", "", f"Additional property {key} is not allowed")
        elif value is not None:
            _check_field(key, field, value, fail)
    images = inp.get(spec.image_field) if spec.image_field else None
    if spec.needs_input_image and not images:
        fail("required", "", f"{spec.image_field} is required")
    if not images:
        for key in ("aspect_ratio", "resolution"):
            if inp.get(key) == MATCH_INPUT:
                fail("invalid", key, f"{key} {MATCH_INPUT} needs an input image")
    tolerance = inp.get("safety_tolerance")
    cap = spec.image_safety_cap
    if images and cap is not None and isinstance(tolerance, int) and tolerance > cap:
        fail("number_lte", "safety_tolerance", f"Must be less than or equal to {cap} with an input image")
    return bad


def _check_field(key: str, field: Field, value: Any, fail: Callable[[str, str, str], None]) -> None:
    if field.kind == "enum":
        if value not in field.choices:
            choices = ", ".join(f'"{a}"' for a in field.choices)
            fail("enum", key, f"{key} must be one of the following: {choices}")
    elif field.kind in ("integer", "number"):
        integer = field.kind == "integer"
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            fail("invalid_type", key, f"Invalid type. Expected: {field.kind}, given: {type(value).__name__}")
        elif field.low is not None and value < field.low:
            fail("number_gte", key, f"Must be greater than or equal to {field.low:g}")
        elif field.high is not None and value > field.high:
            fail("number_lte", key, f"Must be less than or equal to {field.high:g}")
        elif field.multiple_of and value % field.multiple_of:
            fail("multiple_of", key, f"Must be a multiple of {field.multiple_of}")
    elif field.kind == "boolean":
        if not isinstance(value, bool):
            fail("invalid_type", key, f"Invalid type. Expected: boolean, given: {type(value).__name__}")
    elif field.kind == "string":
        if not isinstance(value, str):
            fail("invalid_type", key, f"Invalid type. Expected: string, given: {type(value).__name__}")
    elif field.kind == "uri":
        if not _is_image_uri(value):
            fail("format", key, "Does not match format 'uri' (an http(s) URL or a data: URI of an image)")
    elif field.kind == "uri_list":
        if not isinstance(value, list):
            fail("invalid_type", key, f"Invalid type. Expected: array, given: {type(value).__name__}")
        elif field.max_items is not None and len(value) > field.max_items:
            fail("array_max_items", key, f"Array must have at most {field.max_items} items")
        elif not all(_is_image_uri(item) for item in value):
            fail("format", key, "Every item must be an http(s) URL or a data: URI of an image")


def _is_image_uri(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if value.startswith("data:"):
        return any(value.startswith(f"data:{kind};base64,") for kind in IMAGE_TYPES)
    return value.startswith(("https://", "http://"))


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
