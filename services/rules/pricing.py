"""What a job is estimated to cost, in US dollars, before it is sent.

Defaults are Replicate's list prices (../shared/docs/cometapi.md, early 2026; CometAPI says it sells below
them): most FLUX models cost a fixed amount per image, FLUX.2 per run and per megapixel in and out. An
operator can change any of them with MODEL_PRICES (see `parse_prices`). Estimates are stored per job in
millionths of a dollar (`to_micros`), so sums in the database are exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

OWNER = "black-forest-labs"
MICROS = Decimal(1_000_000)
BYTES_PER_MP = 1024 * 1024  # 1 MP = 1024x1024, rounded up per image
RESOLUTION_MP = {"0.5 MP": 0.5, "1 MP": 1.0, "2 MP": 2.0, "4 MP": 4.0}
PART_NAMES = ("image", "run", "in_mp", "out_mp")


@dataclass(frozen=True)
class Price:
    """Dollars per output image, per run, per input megapixel and per output megapixel."""

    image: Decimal = Decimal(0)
    run: Decimal = Decimal(0)
    in_mp: Decimal = Decimal(0)
    out_mp: Decimal = Decimal(0)


def _d(text: str) -> Decimal:
    return Decimal(text)


DEFAULT_PRICES: dict[str, Price] = {
    f"{OWNER}/flux-schnell": Price(image=_d("0.003")),
    f"{OWNER}/flux-dev": Price(image=_d("0.025")),
    f"{OWNER}/flux-pro": Price(image=_d("0.055")),
    f"{OWNER}/flux-1.1-pro": Price(image=_d("0.04")),
    f"{OWNER}/flux-1.1-pro-ultra": Price(image=_d("0.06")),
    f"{OWNER}/flux-kontext-pro": Price(image=_d("0.04")),
    f"{OWNER}/flux-kontext-max": Price(image=_d("0.08")),
    f"{OWNER}/flux-2-pro": Price(run=_d("0.015"), in_mp=_d("0.015"), out_mp=_d("0.015")),
    f"{OWNER}/flux-2-flex": Price(in_mp=_d("0.06"), out_mp=_d("0.06")),
    # With go_fast, its default ($0.014 without).
    f"{OWNER}/flux-2-dev": Price(in_mp=_d("0.012"), out_mp=_d("0.012")),
}


def estimate_cost(model: str, model_input: Mapping[str, object], prices: Mapping[str, Price] | None = None) -> Decimal:
    """The estimated price of one run of `model` with `model_input`, in US dollars.

    A model with no price (an unknown model allowed by ALLOW_UNKNOWN_MODELS) is priced like the most
    expensive per-image model, so a budget still bounds it.
    """
    table = DEFAULT_PRICES if prices is None else prices
    price = table.get(model)
    if price is None:
        price = Price(image=max((p.image for p in table.values()), default=Decimal(0)))
    images = _int(model_input.get("num_outputs"), 1)
    out_mp = _output_megapixels(model_input)
    in_mp = _input_images(model_input)  # each input image counted as 1 MP (its size is not known here)
    return price.run + price.image * images + price.in_mp * in_mp + price.out_mp * out_mp * images


def to_micros(cost: Decimal) -> int:
    """Dollars as whole millionths of a dollar (what the database sums)."""
    return int((cost * MICROS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def dollars(micros: int) -> str:
    """Millionths of a dollar as text for people: $0.003, $0.052, $1.25, $12.50 (cents from $1 up)."""
    value = Decimal(micros) / MICROS
    cents = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if cents == value or abs(value) >= 1:
        return f"${cents:,}"
    return f"${value.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP).normalize():f}"


def parse_prices(text: str, known: Mapping[str, Price] = DEFAULT_PRICES) -> dict[str, Price]:
    """The default prices with the changes of MODEL_PRICES applied.

    Entries are separated by spaces or semicolons: `model=0.02` is a price per image, and
    `model=run:0.015,in_mp:0.015,out_mp:0.015` names its parts (image, run, in_mp, out_mp; parts left
    out are 0). `model` is a short name (flux-dev) or a full id. Raises ValueError saying what is wrong.
    """
    table = dict(known)
    for entry in text.replace(";", " ").split():
        name, sep, value = entry.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{entry!r} is not model=price")
        model = name if "/" in name else f"{OWNER}/{name}"
        if ":" not in value:
            table[model] = Price(image=_amount(value, entry))
            continue
        parts: dict[str, Decimal] = {}
        for part in value.split(","):
            key, _, amount = part.partition(":")
            if key not in PART_NAMES:
                raise ValueError(f"{entry!r}: unknown part {key!r} (use {', '.join(PART_NAMES)})")
            parts[key] = _amount(amount, entry)
        table[model] = Price(**parts)
    return table


def _amount(text: str, entry: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{entry!r}: {text!r} is not a number of dollars") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{entry!r}: a price is a finite number of dollars, 0 or more")
    return value


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def _output_megapixels(model_input: Mapping[str, object]) -> int:
    width, height = model_input.get("width"), model_input.get("height")
    if model_input.get("aspect_ratio") == "custom" and isinstance(width, int) and isinstance(height, int):
        return max(1, math.ceil(width * height / BYTES_PER_MP))
    resolution = model_input.get("resolution")
    mp = RESOLUTION_MP.get(str(resolution), 1.0) if resolution is not None else 1.0
    return max(1, math.ceil(mp))


def _input_images(model_input: Mapping[str, object]) -> int:
    several = model_input.get("input_images")
    if isinstance(several, list):
        return len(several)
    return 0
