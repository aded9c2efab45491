"""The FLUX models we know (`Catalogue`, kept as data in models.toml) and the checks of what is asked of them.

`Catalogue.build_input` validates and normalises what a user asked for BEFORE anything is sent, so a value the
model would refuse costs nothing and gets a message saying what is allowed.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from services.errors import BadInput
from services.rules.catalogue_file import load_catalogue
from services.rules.invisible import visible
from services.rules.model_spec import (
    MATCH_INPUT,
    Flag,
    FloatRange,
    ImagePolicy,
    IntRange,
    ModelSpec,
    OneOf,
    Param,
    Text,
)

__all__ = [
    "MATCH_INPUT", "Catalogue", "Flag", "FloatRange", "ImagePolicy", "ImageRefusal", "IntRange", "ModelSpec",
    "NeedsImage", "OneOf", "Param", "Request", "ShapeNeedsImage", "TakesNoImage", "Text", "built_in",
    "check_option", "clean_prompt", "shown",
]  # fmt: skip
from services.text import Text as Message
from services.text import _, clip

OWNER = "black-forest-labs"
MAX_PROMPT_CHARS = 2000
MAX_SEED = 2**31 - 1
ONE_IMAGE_OPTION = "num_outputs"


@dataclass(frozen=True)
class Request:
    """What a user asked for, before validation. Option values may be strings from a command line."""

    prompt: str
    options: Mapping[str, object] = field(default_factory=dict)
    image_urls: tuple[str, ...] = ()


class ImageRefusal(BadInput):
    """A refusal about the input images, whose words name the chat's way of giving one (an attachment, the
    `image` option): the command line says its own (`--image`), from `model`, `option` and `value`."""

    def __init__(self, message: Message, *, model: str, option: str | None = None, value: str | None = None) -> None:
        super().__init__(message)
        self.model, self.option, self.value = model, option, value


class NeedsImage(ImageRefusal):
    """The model edits an image and none was given."""


class TakesNoImage(ImageRefusal):
    """The model makes images from text only and one was given."""


class ShapeNeedsImage(ImageRefusal):
    """An option (`option` = `value`) takes the shape of an input image and none was given."""


class Catalogue(Mapping[str, ModelSpec]):
    """The models in use, by full id: the built-in models.toml, with the operator's MODELS_FILE over it.

    Read once with the settings (`Settings.catalogue`) and handed to whoever needs it; it never changes.
    """

    def __init__(self, models: Mapping[str, ModelSpec]) -> None:
        self._models = dict(models)
        self.short_names: Mapping[str, str] = MappingProxyType({spec.name: spec.id for spec in self._models.values()})

    @classmethod
    def load(cls, path: Path | str | None = None) -> Catalogue:
        """The built-in models, with the operator's file at `path` over them. Raises CatalogueError."""
        return cls(load_catalogue(path))

    def __getitem__(self, model_id: str) -> ModelSpec:
        return self._models[model_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"Catalogue({', '.join(self.short_names)})"

    def full_id(self, model: str) -> str:
        """The full id of a short name (flux-dev); any other name as it is."""
        return self.short_names.get(model, model)

    def names(self) -> str:
        """The short names, for messages that list the models."""
        return ", ".join(sorted(self.short_names))

    def resolve(self, model: str, *, allow_unknown: bool = False) -> ModelSpec | None:
        """The spec for a model id or short name; None for an unknown model when those are allowed."""
        key = model.strip()
        full = self.full_id(key)
        spec = self.get(full)
        if spec is not None:
            return spec
        # Each part starts with a letter, digit or underscore: "." and ".." would climb out of /models/ in the URL.
        if allow_unknown and re.fullmatch(r"\w[\w.-]*/\w[\w.-]*", full, re.ASCII):
            return None
        raise BadInput(_("Unknown model `{model}`. Choose one of: {known}.", model=shown(model), known=self.names()))

    def build_input(
        self, model: str, request: Request, *, allow_unknown: bool = False
    ) -> tuple[str, dict[str, object]]:
        """Validate a request for `model`; return the full model id and the `input` object to send.

        Defaults of the catalogue are filled in so the stored job shows exactly what was asked of the API.
        """
        spec = self.resolve(model, allow_unknown=allow_unknown)
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
        self.check_images(spec, len(request.image_urls))
        check_together(spec, result, len(request.image_urls))
        _attach_images(spec, request.image_urls, result)
        return spec.id, result

    def check_images(self, spec: ModelSpec, count: int) -> None:
        """Whether `spec` takes `count` input images (naming the model that takes the most). Raises BadInput."""
        if count == 0:
            if spec.images == "required":
                raise NeedsImage(
                    _("{model} edits an image: attach one with `image`.", model=spec.name), model=spec.name
                )
            return
        if spec.images == "none":
            raise TakesNoImage(
                _(
                    "{model} makes images from text only; remove the attachment or pick a Kontext or FLUX.2 model.",
                    model=spec.name,
                ),
                model=spec.name,
            )
        if count > spec.max_images:
            more = max(self.values(), key=lambda other: other.max_images, default=spec)
            if more.max_images > spec.max_images:
                raise BadInput(
                    _(
                        "{model} takes up to {limit} input image(s), got {count} ({other} takes up to {most}).",
                        model=spec.name, limit=spec.max_images, count=count, other=more.name, most=more.max_images,
                    )
                )  # fmt: skip
            raise BadInput(
                _("{model} takes up to {limit} input image(s), got {count}.", model=spec.name,
                  limit=spec.max_images, count=count)
            )  # fmt: skip

    def typical_seconds(self) -> dict[str, tuple[float, float]]:
        """Each model's usual duration (low, high), what the prediction service starts from until it learns."""
        return {spec.id: spec.typical_seconds for spec in self.values()}


@functools.cache
def built_in() -> Catalogue:
    """The built-in catalogue alone (models.toml), read once: what settings without MODELS_FILE use."""
    return Catalogue.load()


def shown(value: object, limit: int = 40) -> str:
    """A user's value quoted back in a message: one line, cut short, no backticks (it goes in a code span)."""
    return clip(" ".join(str(value).replace("`", "'").split()), limit)


def clean_prompt(prompt: str) -> str:
    """Drop control, format (zero-width, bidi, tag) and blank characters, and outer whitespace."""
    text = visible(prompt).strip()
    if not text:
        raise BadInput(_("The prompt is empty: describe the image you want."))
    if len(text) > MAX_PROMPT_CHARS:
        raise BadInput(
            _("The prompt is {length} characters long; the limit is {limit}.", length=len(text), limit=MAX_PROMPT_CHARS)
        )
    return text


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


def check_together(spec: ModelSpec, chosen: Mapping[str, object], image_count: int) -> None:
    """The rules between values: width/height only with a custom ratio (and then both), and a shape matched
    to an input image only when there is one. Raises BadInput."""
    for name, param in spec.params.items():
        if not isinstance(param, IntRange) or param.only_with is None:
            continue
        other, value = param.only_with
        if name in chosen and chosen.get(other) != value:
            raise BadInput(
                _("{model} takes {option} only with {other} {value}.", model=spec.name, option=name, other=other,
                  value=value)
            )  # fmt: skip
        if name not in chosen and chosen.get(other) == value:
            needed = " and ".join(n for n, p in spec.params.items() if isinstance(p, IntRange) and p.only_with)
            raise BadInput(_("{option} {value} needs {needed} too.", option=other, value=value, needed=needed))
    if image_count == 0:
        for key, chosen_value in chosen.items():
            if chosen_value == MATCH_INPUT:
                raise ShapeNeedsImage(
                    _("{option} {value} takes the shape of an input image: attach one, or pick another {option}.",
                      option=key, value=MATCH_INPUT),
                    model=spec.name, option=key, value=MATCH_INPUT,
                )  # fmt: skip


def _attach_images(spec: ModelSpec, urls: tuple[str, ...], result: dict[str, object]) -> None:
    if not urls:
        return
    assert spec.image_param is not None
    result[spec.image_param] = list(urls) if spec.image_list else urls[0]
    tolerance = result.get("safety_tolerance")
    cap = spec.image_safety_cap
    if cap is not None and isinstance(tolerance, int) and tolerance > cap:
        raise BadInput(_("With an input image, {model} allows safety_tolerance up to {cap}.", model=spec.name, cap=cap))


def _coerce(spec: ModelSpec, name: str, param: Param, raw: object) -> object:
    if isinstance(param, OneOf):
        value = _choice(param, raw)
        if value is None:
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
        if param.multiple_of and number % param.multiple_of:
            raise BadInput(
                _("{model} takes {option} in steps of {step}; got {value}.", model=spec.name, option=name,
                  step=param.multiple_of, value=shown(raw))
            )  # fmt: skip
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


def _choice(param: OneOf, raw: object) -> str | None:
    """The value as the model spells it: case and spaces don't matter ("2mp" is "2 MP"), jpeg is jpg, and a
    bare number names megapixels where the values are megapixels ("2" is "2 MP")."""
    key = "".join(str(raw).split()).lower()
    spelled = {"".join(value.split()).lower(): value for value in param.values}
    key = "jpg" if key == "jpeg" and "jpg" in spelled else key
    if key not in spelled and f"{key}mp" in spelled:
        key = f"{key}mp"
    return spelled.get(key)


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
