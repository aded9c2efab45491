"""What one model takes and gives: its parameters, input images, output shape, typical duration and price.

Plain data, read from the catalogue files (see catalogue_file.py); the checks that use it are in catalogue.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ImagePolicy = Literal["none", "optional", "required"]
MATCH_INPUT = "match_input_image"  # a choice value that takes its shape from the first input image


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]
    default: str | None = None


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    default: int | None = None
    multiple_of: int | None = None
    only_with: tuple[str, str] | None = None  # (param, value): taken only when that param has that value


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
class Rates:
    """Dollars; megapixels are counted rounded up per image (1 MP = 1024 x 1024)."""

    per_run: float = 0.0
    per_image: float = 0.0  # per output image
    per_input_mp: float = 0.0  # per megapixel of each input image
    per_output_mp: float = 0.0  # per megapixel of each output image


@dataclass(frozen=True)
class Price:
    """A model's default price; `when` holds other rates used when an input has a given value."""

    rates: Rates = field(default_factory=Rates)
    when: tuple[tuple[str, str, Rates], ...] = ()  # (param, value as text, rates)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    label: str
    params: Mapping[str, Param]
    list_output: bool
    max_outputs: int
    images: ImagePolicy = "none"
    image_param: str | None = None  # where input images go
    image_list: bool = False  # the model takes a list of images there (FLUX.2 `input_images`)
    max_images: int = 0
    # Typical seconds from create to done (about the 5th and 95th percentile), a prior for the poll schedule
    # until it has observed the model, and the "usually" shown while a model without a progress bar runs.
    typical_seconds: tuple[float, float] = (2.0, 15.0)
    premium: bool = False  # costly; servers may choose not to allow it
    # Safety tolerance is capped when an input image is given (Kontext: 2).
    image_safety_cap: int | None = None
    price: Price | None = None

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[1]

    @property
    def takes_images(self) -> bool:
        return self.images != "none"

    def choices(self, param: str) -> tuple[str, ...]:
        spec = self.params.get(param)
        return spec.values if isinstance(spec, OneOf) else ()
