"""What a job costs at a model's default price (the `price` of its catalogue entry), estimated from its input.

Per-image models charge for each output image. FLUX.2 charges per megapixel of every input and output image
(rounded up per image, 1 MP = 1024 x 1024), plus a fee per run for flux-2-pro. An input image whose size is
not known is counted as 1 MP, and an output shaped like its input (match_input_image) as large as the first
input image. These are estimates at list prices, not what CometAPI will bill.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from services.rules.catalogue import CATALOGUE, MATCH_INPUT, SHORT_NAMES
from services.rules.model_spec import ModelSpec, Price, Rates

MEGAPIXEL = 1024 * 1024
_MP = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*MP\s*$", re.IGNORECASE)


def job_cost(
    model: str, model_input: Mapping[str, object], input_sizes: Sequence[tuple[int, int] | None] = ()
) -> float | None:
    """Dollars for one job of `model` with `model_input` (as sent to the API); None for a model with no price.

    `input_sizes` are the (width, height) of the input images where known, in the order they are sent.
    """
    spec = CATALOGUE.get(SHORT_NAMES.get(model, model))
    if spec is None or spec.price is None:
        return None
    return estimate(spec, model_input, input_sizes)


def estimate(
    spec: ModelSpec, model_input: Mapping[str, object], input_sizes: Sequence[tuple[int, int] | None] = ()
) -> float:
    assert spec.price is not None
    rates = rates_for(spec.price, model_input)
    images = model_input.get("num_outputs", 1)
    outputs = images if isinstance(images, int) and images > 0 else 1
    sizes = list(input_sizes) + [None] * (image_count(spec, model_input) - len(input_sizes))
    input_mp = sum(_megapixels(size) for size in sizes)
    output_mp = _output_megapixels(model_input, sizes)
    cost = rates.per_run + outputs * (rates.per_image + rates.per_output_mp * output_mp)
    return round(cost + rates.per_input_mp * input_mp, 6)


def rates_for(price: Price, model_input: Mapping[str, object]) -> Rates:
    """The rates that apply: those of the first `when` variant whose input matches, else the model's own."""
    for name, value, variant in price.when:
        if _as_text(model_input.get(name)) == value.lower():
            return variant
    return price.rates


def image_count(spec: ModelSpec, model_input: Mapping[str, object]) -> int:
    if spec.image_param is None:
        return 0
    images = model_input.get(spec.image_param)
    if isinstance(images, list):
        return len(images)
    return 1 if images else 0


def _output_megapixels(model_input: Mapping[str, object], sizes: Sequence[tuple[int, int] | None]) -> int:
    width, height = model_input.get("width"), model_input.get("height")
    if model_input.get("aspect_ratio") == "custom" and isinstance(width, int) and isinstance(height, int):
        return _megapixels((width, height))
    resolution = model_input.get("resolution")
    if resolution == MATCH_INPUT or (resolution is None and model_input.get("aspect_ratio") == MATCH_INPUT):
        return _megapixels(sizes[0] if sizes else None)
    match = _MP.match(str(resolution)) if resolution is not None else None
    return max(1, math.ceil(float(match[1]))) if match else 1


def _megapixels(size: tuple[int, int] | None) -> int:
    if size is None:
        return 1
    return max(1, math.ceil(size[0] * size[1] / MEGAPIXEL))


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value).lower()
