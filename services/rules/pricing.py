"""What a job costs at a model's default price (the `price` of its catalogue entry), estimated from its input.

Per-image models charge for each output image. FLUX.2 charges per megapixel of every input and output image
(rounded up per image, 1 MP = 1024 x 1024), plus a fee per run for flux-2-pro.

Admission books an upper bound (`Pricing.estimate`): the fetched input images' real sizes, an input whose size
is not known as the largest the models make (UNKNOWN_INPUT_MP), an output shaped like its input
(match_input_image) as large as the first input image. When the prediction ends the job is settled
(`Pricing.settle`) from what came back: the number of outputs and, once downloaded, their real sizes.

An operator may change prices in the catalogue file (MODELS_FILE) or, more simply, with MODEL_PRICES
(`parse_prices`). Estimates are stored per job in millionths of a dollar (`to_micros`), so sums in the
database are exact.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

from services.money import to_micros
from services.rules.catalogue import MATCH_INPUT, Catalogue
from services.rules.model_spec import ModelSpec, Price, Rates

MEGAPIXEL = 1024 * 1024
# An input image of unknown size (a job from before sizes were kept) is booked as 4 MP, the largest FLUX.2 makes.
UNKNOWN_INPUT_MP = 4
MAX_PRICE = 1_000_000  # dollars per unit: far above any real price; a job's cost must fit the database
OWNER = "black-forest-labs"
PARTS = {"image": "per_image", "run": "per_run", "in_mp": "per_input_mp", "out_mp": "per_output_mp"}
Size = tuple[int, int]
_MP = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*MP\s*$", re.IGNORECASE)


def job_cost(
    catalogue: Catalogue,
    model: str,
    model_input: Mapping[str, object],
    input_sizes: Sequence[tuple[int, int] | None] = (),
) -> float | None:
    """Dollars for one job of `model` of `catalogue` with `model_input` (as sent to the API); None for a model
    with no price.

    `input_sizes` are the (width, height) of the input images where known, in the order they are sent.
    """
    spec = catalogue.get(catalogue.full_id(model))
    if spec is None or spec.price is None:
        return None
    return estimate(spec, model_input, input_sizes)


def estimate(
    spec: ModelSpec,
    model_input: Mapping[str, object],
    input_sizes: Sequence[tuple[int, int] | None] = (),
    *,
    output_sizes: Sequence[tuple[int, int]] | None = None,
    unknown_mp: int = 1,
) -> float:
    """Dollars for a run of `spec`; `output_sizes` are the outputs' real sizes once known (settling)."""
    assert spec.price is not None
    rates = rates_for(spec.price, model_input)
    sizes = list(input_sizes) + [None] * (image_count(spec, model_input) - len(input_sizes))
    input_mp = sum(_megapixels(size, unknown_mp) for size in sizes)
    if output_sizes is not None:
        outputs_cost = sum(rates.per_image + rates.per_output_mp * _megapixels(size) for size in output_sizes)
    else:
        output_mp = _output_megapixels(model_input, sizes, unknown_mp)
        outputs_cost = output_count(model_input) * (rates.per_image + rates.per_output_mp * output_mp)
    return round(rates.per_run + outputs_cost + rates.per_input_mp * input_mp, 6)


def output_count(model_input: Mapping[str, object]) -> int:
    images = model_input.get("num_outputs", 1)
    return images if isinstance(images, int) and not isinstance(images, bool) and images > 0 else 1


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


def _output_megapixels(
    model_input: Mapping[str, object], sizes: Sequence[tuple[int, int] | None], unknown_mp: int
) -> int:
    width, height = model_input.get("width"), model_input.get("height")
    if model_input.get("aspect_ratio") == "custom" and isinstance(width, int) and isinstance(height, int):
        return _megapixels((width, height))
    resolution = model_input.get("resolution")
    if resolution == MATCH_INPUT or (resolution is None and model_input.get("aspect_ratio") == MATCH_INPUT):
        return _megapixels(sizes[0] if sizes else None, unknown_mp)
    match = _MP.match(str(resolution)) if resolution is not None else None
    return max(1, math.ceil(float(match[1]))) if match else 1


def _megapixels(size: tuple[int, int] | None, unknown: int = 1) -> int:
    if size is None:
        return unknown
    return max(1, math.ceil(size[0] * size[1] / MEGAPIXEL))


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value).lower()


def estimate_cost(
    catalogue: Catalogue,
    model: str,
    model_input: Mapping[str, object],
    prices: Mapping[str, Price] | None = None,
    input_sizes: Sequence[tuple[int, int] | None] = (),
    *,
    output_sizes: Sequence[tuple[int, int]] | None = None,
) -> Decimal:
    """Dollars for a job of `model` at the operator's prices (MODEL_PRICES) where given, as an upper bound:
    an input image of unknown size counts as UNKNOWN_INPUT_MP. With `output_sizes` (what came back), the
    outputs are counted as they are instead of as asked for.

    A model with no price (an unknown model allowed by ALLOW_UNKNOWN_MODELS) is priced like the most
    expensive per-image model, so a budget still bounds it.
    """
    model_id = catalogue.full_id(model)
    spec = catalogue.get(model_id)
    override = (prices or {}).get(model_id)
    outputs = len(output_sizes) if output_sizes is not None else output_count(model_input)
    if spec is not None and (override or spec.price) is not None:
        priced = dataclasses.replace(spec, price=override or spec.price)
        cost = estimate(priced, model_input, input_sizes, output_sizes=output_sizes, unknown_mp=UNKNOWN_INPUT_MP)
        return Decimal(str(cost))
    if override is not None:
        rates = override.rates
        return Decimal(str(rates.per_run)) + Decimal(str(rates.per_image)) * outputs
    dearest = max((s.price.rates.per_image for s in catalogue.values() if s.price is not None), default=0.0)
    return Decimal(str(dearest)) * outputs


@dataclasses.dataclass(frozen=True)
class Pricing:
    """The prices in force (the catalogue's, with the operator's MODEL_PRICES over them), in millionths of a
    dollar: what admission books and what a job settles at. Every place that records a cost uses this."""

    catalogue: Catalogue
    overrides: Mapping[str, Price] = dataclasses.field(default_factory=dict)

    def book(self, model: str, model_input: Mapping[str, object], input_sizes: Sequence[Size | None]) -> int:
        """The upper bound booked at admission."""
        return to_micros(estimate_cost(self.catalogue, model, model_input, self.overrides, input_sizes))

    def settle(
        self,
        model: str,
        model_input: Mapping[str, object],
        input_sizes: Sequence[Size | None],
        *,
        outputs: int | None = None,
        output_sizes: Sequence[Size] | None = None,
    ) -> int:
        """What a finished prediction costs: its real outputs (their sizes once downloaded, else their number)."""
        if output_sizes is None and outputs:
            model_input = {**model_input, "num_outputs": outputs}
        return to_micros(
            estimate_cost(self.catalogue, model, model_input, self.overrides, input_sizes, output_sizes=output_sizes)
        )


def parse_prices(text: str) -> dict[str, Price]:
    """MODEL_PRICES: the prices an operator sets instead of the catalogue's.

    Entries are separated by spaces or semicolons: `model=0.02` is a price per image, and
    `model=run:0.015,in_mp:0.015,out_mp:0.015` names its parts (image, run, in_mp, out_mp; parts left
    out are 0). `model` is a short name (flux-dev) or a full id. Raises ValueError saying what is wrong.
    """
    table: dict[str, Price] = {}
    for entry in text.replace(";", " ").split():
        name, sep, value = entry.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{entry!r} is not model=price")
        model = name if "/" in name else f"{OWNER}/{name}"
        if ":" not in value:
            table[model] = Price(Rates(per_image=_amount(value, entry)))
            continue
        parts: dict[str, float] = {}
        for part in value.split(","):
            key, _, amount = part.partition(":")
            if key not in PARTS:
                raise ValueError(f"{entry!r}: unknown part {key!r} (use {', '.join(PARTS)})")
            parts[PARTS[key]] = _amount(amount, entry)
        table[model] = Price(Rates(**parts))
    return table


def _amount(text: str, entry: str) -> float:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{entry!r}: {text!r} is not a number of dollars") from None
    # The cap matters: Decimal("1e400") is finite, but float() makes it inf, which would crash every job.
    if not value.is_finite() or value < 0 or value > MAX_PRICE:
        raise ValueError(f"{entry!r}: a price is a finite number of dollars, from 0 to {MAX_PRICE:,}")
    return float(value)
