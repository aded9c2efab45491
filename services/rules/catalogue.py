"""The FLUX models we know: their inputs, allowed values, defaults and output shapes.

`build_input` validates and normalises what a user asked for BEFORE anything is sent, so a value the
model would refuse costs nothing and gets a message saying what is allowed.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from services.errors import BadInput
from services.text import Text as Message
from services.text import _, _n

OWNER = "black-forest-labs"
MAX_PROMPT_CHARS = 2000
MAX_SEED = 2**31 - 1
ONE_IMAGE_OPTION = "num_outputs"
ImagePolicy = Literal["none", "optional", "required"]

ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
KONTEXT_ASPECT_RATIOS = ("match_input_image", "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3",
                         "4:5", "5:4", "21:9", "9:21", "2:1", "1:2")  # fmt: skip
ALL_FORMATS = ("webp", "jpg", "png")
NO_WEBP = ("jpg", "png")


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]
    default: str | None = None


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    default: int | None = None


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    default: float | None = None


@dataclass(frozen=True)
class Flag:
    default: bool | None = None


@dataclass(frozen=True)
class Text:
    default: str | None = None


Param = OneOf | IntRange | FloatRange | Flag | Text


@dataclass(frozen=True)
class ModelSpec:
    id: str
    label: str
    params: Mapping[str, Param]
    list_output: bool
    max_outputs: int
    images: ImagePolicy = "none"
    image_param: str | None = None  # where one input image goes
    multi_image_param: str | None = None  # where several reference images go, if the model takes them
    max_images: int = 0
    # Typical seconds from create to done, a prior for the poll schedule until it has observed the model.
    typical_seconds: tuple[float, float] = (2.0, 15.0)
    premium: bool = False  # costly; servers may choose not to allow it
    # Safety tolerance is capped when an input image is given (Kontext: 2).
    image_safety_cap: int | None = None

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[1]

    @property
    def takes_images(self) -> bool:
        return self.images != "none"

    def choices(self, param: str) -> tuple[str, ...]:
        spec = self.params.get(param)
        return spec.values if isinstance(spec, OneOf) else ()


def _common(formats: tuple[str, ...], format_default: str, ratios: tuple[str, ...] = ASPECT_RATIOS,
            ratio_default: str = "1:1") -> dict[str, Param]:  # fmt: skip
    return {
        "aspect_ratio": OneOf(ratios, ratio_default),
        "output_format": OneOf(formats, format_default),
        "seed": IntRange(0, MAX_SEED),
    }


_SCHNELL_DEV: dict[str, Param] = {
    "num_outputs": IntRange(1, 4, 1),
    "output_quality": IntRange(0, 100, 80),
    "go_fast": Flag(),
    "megapixels": OneOf(("1", "0.25")),
    "disable_safety_checker": Flag(),
}

CATALOGUE: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec(
            id=f"{OWNER}/flux-schnell",
            label="FLUX schnell (fast)",
            params={**_common(ALL_FORMATS, "webp"), **_SCHNELL_DEV, "num_inference_steps": IntRange(1, 4)},
            list_output=True,
            max_outputs=4,
            typical_seconds=(0.8, 2.5),
        ),
        ModelSpec(
            id=f"{OWNER}/flux-dev",
            label="FLUX dev",
            params={
                **_common(ALL_FORMATS, "webp"),
                **_SCHNELL_DEV,
                "num_inference_steps": IntRange(1, 50),
                "guidance": FloatRange(0, 10),
            },
            list_output=True,
            max_outputs=4,
            typical_seconds=(2.5, 7.0),
        ),
        ModelSpec(
            id=f"{OWNER}/flux-1.1-pro",
            label="FLUX 1.1 pro",
            params={
                **_common(ALL_FORMATS, "webp"),
                "output_quality": IntRange(0, 100, 80),
                "safety_tolerance": IntRange(1, 6, 2),
                "prompt_upsampling": Flag(),
            },
            list_output=False,
            max_outputs=1,
            typical_seconds=(4.0, 16.0),
            premium=True,
        ),
        ModelSpec(
            id=f"{OWNER}/flux-1.1-pro-ultra",
            label="FLUX 1.1 pro ultra",
            params={
                **_common(NO_WEBP, "jpg"),
                "safety_tolerance": IntRange(1, 6, 2),
                "raw": Flag(),
            },
            list_output=False,
            max_outputs=1,
            typical_seconds=(4.0, 16.0),
            premium=True,
        ),
        *(
            ModelSpec(
                id=f"{OWNER}/flux-kontext-{tier}",
                label=f"FLUX Kontext {tier} (edits an image)",
                params={
                    **_common(NO_WEBP, "png", KONTEXT_ASPECT_RATIOS, "match_input_image"),
                    "safety_tolerance": IntRange(0, 6, 2),
                    "prompt_upsampling": Flag(),
                },
                list_output=False,
                max_outputs=1,
                images="required",
                image_param="input_image",
                max_images=1,
                typical_seconds=(4.0, 16.0),
                premium=tier == "max",
                image_safety_cap=2,
            )
            for tier in ("pro", "max")
        ),
    )
}

SHORT_NAMES = {spec.name: spec.id for spec in CATALOGUE.values()}


@dataclass(frozen=True)
class Request:
    """What a user asked for, before validation. Option values may be strings from a command line."""

    prompt: str
    options: Mapping[str, object] = field(default_factory=dict)
    image_urls: tuple[str, ...] = ()


def resolve_model(model: str, *, allow_unknown: bool = False) -> ModelSpec | None:
    """The spec for a model id or short name; None for an unknown model when those are allowed."""
    key = model.strip()
    full = SHORT_NAMES.get(key, key)
    spec = CATALOGUE.get(full)
    if spec is not None:
        return spec
    # Each part starts with a letter, digit or underscore: "." and ".." would climb out of /models/ in the URL.
    if allow_unknown and re.fullmatch(r"\w[\w.-]*/\w[\w.-]*", full, re.ASCII):
        return None
    known = ", ".join(sorted(SHORT_NAMES))
    raise BadInput(_("Unknown model `{model}`. Choose one of: {known}.", model=shown(model), known=known))


def shown(value: object, limit: int = 40) -> str:
    """A user's value quoted back in a message: one line, cut short, no backticks (it goes in a code span)."""
    text = " ".join(str(value).replace("`", "'").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_INVISIBLE = re.compile("[\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]")
# Letters that draw nothing, used to pass a blank prompt off as a real one (Hangul fillers, a blank braille cell).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def clean_prompt(prompt: str) -> str:
    """Drop control, format (zero-width, bidi, tag) and blank characters, and outer whitespace."""
    text = _INVISIBLE.sub("", prompt)
    text = "".join(
        ch for ch in text if ch in "\n\t" or (unicodedata.category(ch) not in ("Cc", "Cf") and ch not in _BLANK_LETTERS)
    )
    text = text.strip()
    if not text:
        raise BadInput(_("The prompt is empty: describe the image you want."))
    if len(text) > MAX_PROMPT_CHARS:
        raise BadInput(
            _("The prompt is {length} characters long; the limit is {limit}.", length=len(text), limit=MAX_PROMPT_CHARS)
        )
    return text


def build_input(model: str, request: Request, *, allow_unknown: bool = False) -> tuple[str, dict[str, object]]:
    """Validate a request for `model`; return the full model id and the `input` object to send.

    Defaults of the catalogue are filled in so the stored job shows exactly what was asked of the API.
    """
    spec = resolve_model(model, allow_unknown=allow_unknown)
    prompt = clean_prompt(request.prompt)
    if spec is None:  # an allowed model we don't know: pass the inputs through untouched
        passthrough: dict[str, object] = {"prompt": prompt, **request.options}
        if request.image_urls:
            passthrough["input_image"] = request.image_urls[0]
        return model.strip(), passthrough

    result: dict[str, object] = {"prompt": prompt}
    for name, raw in request.options.items():
        value = check_option(spec, name, raw)
        if value is not None:
            result[name] = value
    for name, param in spec.params.items():
        if name not in result and param.default is not None:
            result[name] = param.default

    count = result.get("num_outputs", 1)
    if isinstance(count, int) and count > spec.max_outputs:
        raise BadInput(
            _("{model} makes {count} image per request; ask for 1.", model=spec.name, count=spec.max_outputs)
        )
    check_images(spec, len(request.image_urls))
    _attach_images(spec, request.image_urls, result)
    return spec.id, result


def check_option(spec: ModelSpec, name: str, raw: object) -> object | None:
    """One option's value as `spec` takes it; None when it is to be left out. Raises BadInput."""
    if raw is None:
        return None
    param = spec.params.get(name)
    if param is None and name == ONE_IMAGE_OPTION:
        # Offered for every model; the one-image models don't take the parameter at all, so 1 is dropped.
        if _number(name, raw, integer=True) != 1:
            raise BadInput(
                _(
                    "{model} makes one image per request: leave out num_outputs, or pick flux-schnell or "
                    "flux-dev for up to 4.",
                    model=spec.name,
                )
            )
        return None
    if param is None:
        raise BadInput(_("{model} does not take `{option}`.", model=spec.name, option=name))
    return _coerce(spec, name, param, raw)


def check_images(spec: ModelSpec, count: int) -> None:
    """Whether `spec` takes `count` input images. Raises BadInput."""
    if count == 0:
        if spec.images == "required":
            raise BadInput(_("{model} edits an image: attach one with `image`.", model=spec.name))
        return
    if spec.images == "none":
        raise BadInput(
            _("{model} makes images from text only; remove the attachment or pick a Kontext model.", model=spec.name)
        )
    if count > spec.max_images:
        raise BadInput(
            _n(
                "{model} takes {limit} input image, got {count}.",
                "{model} takes {limit} input images, got {count}.",
                spec.max_images,
                model=spec.name,
                limit=spec.max_images,
                count=count,
            )
        )


def _attach_images(spec: ModelSpec, urls: tuple[str, ...], result: dict[str, object]) -> None:
    if not urls:
        return
    if len(urls) > 1 and spec.multi_image_param:
        result[spec.multi_image_param] = list(urls)
    else:
        assert spec.image_param is not None
        result[spec.image_param] = urls[0]
    tolerance = result.get("safety_tolerance")
    cap = spec.image_safety_cap
    if cap is not None and isinstance(tolerance, int) and tolerance > cap:
        raise BadInput(_("With an input image, {model} allows safety_tolerance up to {cap}.", model=spec.name, cap=cap))


def _coerce(spec: ModelSpec, name: str, param: Param, raw: object) -> object:
    if isinstance(param, OneOf):
        value = str(raw).strip().lower()
        if name == "output_format" and value == "jpeg":
            value = "jpg"
        if value not in param.values:
            raise BadInput(
                _(
                    "{model} takes {option} {values}; got `{value}`.",
                    model=spec.name,
                    option=name,
                    values=", ".join(param.values),
                    value=shown(raw),
                )
            )
        return value
    if isinstance(param, IntRange):
        number = _number(name, raw, integer=True)
        if not param.low <= number <= param.high:
            raise BadInput(_between(name, param.low, param.high, raw))
        return int(number)
    if isinstance(param, FloatRange):
        number = _number(name, raw, integer=False)
        if not param.low <= number <= param.high:
            raise BadInput(_between(name, f"{param.low:g}", f"{param.high:g}", raw))
        return number
    if isinstance(param, Flag):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise BadInput(_("{option} must be true or false; got `{value}`.", option=name, value=shown(raw)))
    return str(raw)


def _number(name: str, raw: object, *, integer: bool) -> float:
    if isinstance(raw, bool):
        raise BadInput(_("{option} must be a number; got `{value}`.", option=name, value=shown(raw)))
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise BadInput(_("{option} must be a number; got `{value}`.", option=name, value=shown(raw))) from None
    if not math.isfinite(value):  # NaN would slip through the range checks
        raise BadInput(_("{option} must be a finite number; got `{value}`.", option=name, value=shown(raw)))
    if integer and not value.is_integer():
        raise BadInput(_("{option} must be a whole number; got `{value}`.", option=name, value=shown(raw)))
    return value


def _between(name: str, low: object, high: object, raw: object) -> Message:
    return _(
        "{option} must be between {low} and {high}; got {value}.", option=name, low=low, high=high, value=shown(raw)
    )
