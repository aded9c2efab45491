"""A server's usage for `/imagine-settings usage`: images and estimated cost today, over 7 and 30 days, by model
and by member. Plain data in, a catalogue text out; the cost figures are the estimates recorded at admission."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from services.limits import DAY
from services.money import dollars
from services.store.base import SpendRow
from services.store.credits import CreditUsage
from services.text import Text, _, _n, joined, verbatim

# L10N: a period of /imagine-settings usage, shown in bold before its totals
PERIODS = ((_("Today (24 h)"), 1), (_("7 days"), 7), (_("30 days"), 30))
TOP_USERS = 5
K = TypeVar("K", str, int)
BAR = 12  # characters of the widest bar


@dataclass(frozen=True)
class Totals:
    images: int
    cost_microusd: int


@dataclass(frozen=True)
class Period:
    label: Text
    total: Totals
    by_model: list[tuple[str, Totals]]  # most expensive first
    top_users: list[tuple[int, Totals]]  # most expensive first


def summarize(label: Text, rows: Iterable[SpendRow]) -> Period:
    models: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    users: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        for bucket in (models[row.model], users[row.user_id]):
            bucket[0] += row.images
            bucket[1] += row.cost_microusd

    by_model = _ranked(models)
    total = Totals(sum(t.images for _, t in by_model), sum(t.cost_microusd for _, t in by_model))
    return Period(label, total, by_model, _ranked(users)[:TOP_USERS])


def _ranked(totals: Mapping[K, list[int]]) -> list[tuple[K, Totals]]:
    items = [(key, Totals(v[0], v[1])) for key, v in totals.items()]
    return sorted(items, key=lambda item: (-item[1].cost_microusd, -item[1].images, str(item[0])))


def since(now: float, days: int) -> float:
    return now - days * DAY


def report(periods: Sequence[Period]) -> Text:
    """Each period with a bar per model (its share of the period's cost) and the top members."""
    lines: list[Text] = []
    shown: list[Period] = []
    for period in periods:
        if shown and _same(period, shown[-1]):
            continue  # a longer window with nothing more in it: said once, below, instead of repeated
        shown.append(period)
        total = period.total
        lines.append(
            _n(
                "**{period}**: {count} image, about {cost}",
                "**{period}**: {count} images, about {cost}",
                total.images,
                period=period.label,
                count=total.images,
                cost=dollars(total.cost_microusd),
            )
        )
        widest = max((t.cost_microusd for _, t in period.by_model), default=0)
        for model, totals in period.by_model:
            lines.append(
                _n(
                    "`{bar}` {model}: {count} image, {cost}",
                    "`{bar}` {model}: {count} images, {cost}",
                    totals.images,
                    bar=_bar(totals.cost_microusd, widest),
                    model=model.split("/")[-1],
                    count=totals.images,
                    cost=dollars(totals.cost_microusd),
                )
            )
        if period.top_users:
            tops = [
                # L10N: one of the top members in /imagine-settings usage; {member} is a mention
                _n(
                    "{member} {count} image {cost}",
                    "{member} {count} images {cost}",
                    t.images,
                    member=f"<@{user}>",
                    count=t.images,
                    cost=dollars(t.cost_microusd),
                )
                for user, t in period.top_users
            ]
            lines.append(_("Top members: {members}", members=joined(tops, ", ")))
        lines.append(verbatim(""))
    if same := _same_as_shown(periods, shown):
        lines += [same, verbatim("")]
    lines.append(_("Costs are estimates from the list prices; failed and cancelled jobs are not counted."))
    return joined(lines)


def _same(longer: Period, shorter: Period) -> bool:
    return (longer.total, longer.by_model, longer.top_users) == (shorter.total, shorter.by_model, shorter.top_users)


def _same_as_shown(periods: Sequence[Period], shown: Sequence[Period]) -> Text | None:
    """What the left-out periods are the same as (they are PERIODS: today, 7 and 30 days)."""
    if len(periods) != len(PERIODS) or len(shown) == len(periods):
        return None
    if len(shown) == 1:
        return _("**7 days** and **30 days**: the same as today.")
    if shown[1] is periods[1]:
        return _("**30 days**: the same as 7 days.")
    return _("**7 days**: the same as today.")


def _bar(value: int, widest: int) -> str:
    filled = round(BAR * value / widest) if widest else 0
    return "█" * filled + "·" * (BAR - filled)


def credits_report(spent: CreditUsage) -> Text:
    """The credits line of the usage report (credits on): sold in the server and spent on its jobs, 30 days."""
    return _(
        "**Credits (30 days)**: {sold} sold here; {spent} spent ({balance} from members' credits, {subscription} "
        "from the server subscription).",
        sold=dollars(spent.sold),
        spent=dollars(spent.spent_balance + spent.spent_subscription),
        balance=dollars(spent.spent_balance),
        subscription=dollars(spent.spent_subscription),
    )
