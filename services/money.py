"""Money as the bot counts it: whole millionths of a US dollar (so sums in the database are exact), and as
people read it."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS = Decimal(1_000_000)


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


def budget(value: object) -> int | None:
    """A budget in dollars (a setting, or a server's stored value) in millionths; 0, nothing or junk: no budget."""
    if value is None or isinstance(value, bool):
        return None
    try:
        micros = to_micros(Decimal(str(value)))
    except InvalidOperation:
        return None
    return micros if micros > 0 else None
