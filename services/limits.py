"""A user's and a server's limits, and the judgement the store makes when it admits a job.

The store reads the numbers and inserts the job in one transaction (see `Store.admit_job`), so two
commands racing each other are judged one after the other: a cooldown, a jobs-in-flight limit or a daily
quota or a budget can never be exceeded by commands that arrive together.

Budgets are in US dollars as set by a server's managers (0 = none), judged against each job's estimated
cost in millionths of a dollar (`Job.cost_microusd`); "per day" is the last 24 hours and "per month" the
last 30 days, like the image quotas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from services.rules.pricing import dollars, to_micros
from services.text import Text, _, _n

DAY = 86400.0
MONTH = 30 * DAY
LimitName = Literal[
    "cooldown",
    "jobs_in_flight",
    "user_quota",
    "guild_quota",
    "user_budget_day",
    "user_budget_month",
    "guild_budget_day",
    "guild_budget_month",
]
# The server settings (US dollars) -> the Limits fields (millionths of a dollar).
BUDGET_SETTINGS = {
    "usd_per_user_per_day": "user_budget_day",
    "usd_per_user_per_month": "user_budget_month",
    "usd_per_guild_per_day": "guild_budget_day",
    "usd_per_guild_per_month": "guild_budget_month",
}


@dataclass(frozen=True)
class Limits:
    cooldown_seconds: float
    jobs_in_flight: int
    images_per_user_per_day: int | None = None
    images_per_guild_per_day: int | None = None
    # Budgets in millionths of a US dollar; None = no budget.
    user_budget_day: int | None = None
    user_budget_month: int | None = None
    guild_budget_day: int | None = None
    guild_budget_month: int | None = None

    def merged(self, overrides: Mapping[str, float | int]) -> Limits:
        values = {**self.__dict__, **{k: v for k, v in overrides.items() if k in self.__dict__}}
        budgets = {field: values[field] for field in BUDGET_SETTINGS.values()}
        for setting, field in BUDGET_SETTINGS.items():
            if setting in overrides:
                budgets[field] = _budget(overrides[setting])
        return Limits(
            cooldown_seconds=float(values["cooldown_seconds"]),
            jobs_in_flight=int(values["jobs_in_flight"]),
            images_per_user_per_day=_quota(values["images_per_user_per_day"]),
            images_per_guild_per_day=_quota(values["images_per_guild_per_day"]),
            **budgets,
        )

    @property
    def guild_wide(self) -> bool:
        """Whether admitting a job must count the whole server's usage (and so wait for its other admissions)."""
        return any(
            v is not None for v in (self.images_per_guild_per_day, self.guild_budget_day, self.guild_budget_month)
        )


def _quota(value: object) -> int | None:
    """0 (or nothing) means no quota."""
    return None if value is None or value == 0 else int(value)  # type: ignore[call-overload]


def _budget(value: object) -> int | None:
    """Dollars (as stored in the server's settings) in millionths; 0 (or nothing) means no budget."""
    if value is None or isinstance(value, bool):
        return None
    try:
        micros = to_micros(Decimal(str(value)))
    except InvalidOperation:
        return None
    return micros if micros > 0 else None


@dataclass(frozen=True)
class Usage:
    """What the store counted for one user (and server) inside the admitting transaction."""

    seconds_since_last: float | None  # since the user's newest job; None if they have none
    jobs_in_flight: int
    user_images_today: int  # images reserved or delivered in the last 24 h (failed and canceled give theirs back)
    guild_images_today: int
    # Estimated spend (millionths of a dollar) of jobs that did not fail or get canceled.
    user_spend_day: int = 0
    user_spend_month: int = 0
    guild_spend_day: int = 0
    guild_spend_month: int = 0


@dataclass(frozen=True)
class Refusal:
    limit: LimitName
    used: float
    allowed: float
    cost: int = 0  # the refused job's estimated cost (budgets), in millionths of a dollar

    def text(self) -> Text:
        used, allowed = round(self.used), round(self.allowed)
        if self.limit == "cooldown":
            seconds = max(round(self.allowed - self.used), 1)
            return _("Slow down a little: you can start another image in {seconds} s.", seconds=seconds)
        if self.limit == "jobs_in_flight":
            return _n(
                "You already have {count} image job running; wait for it to finish (limit {limit}).",
                "You already have {count} image jobs running; wait for one to finish (limit {limit}).",
                used,
                count=used,
                limit=allowed,
            )
        if self.limit == "user_quota":
            return _("You have used {used} of your {allowed} images for today.", used=used, allowed=allowed)
        if self.limit == "guild_quota":
            return _("This server has used {used} of its {allowed} images for today.", used=used, allowed=allowed)
        left = dollars(max(int(self.allowed - self.used), 0))
        budget, estimate = dollars(int(self.allowed)), dollars(self.cost)
        if self.limit == "user_budget_day":
            return _(
                "Your budget is {budget} per day, and {left} of it is left; this request is estimated at {estimate}.",
                budget=budget, left=left, estimate=estimate,
            )  # fmt: skip
        if self.limit == "user_budget_month":
            return _(
                "Your budget is {budget} per 30 days, and {left} of it is left; this request is estimated at "
                "{estimate}.",
                budget=budget, left=left, estimate=estimate,
            )  # fmt: skip
        if self.limit == "guild_budget_day":
            return _(
                "This server's budget is {budget} per day, and {left} of it is left; this request is estimated "
                "at {estimate}.",
                budget=budget, left=left, estimate=estimate,
            )  # fmt: skip
        return _(
            "This server's budget is {budget} per 30 days, and {left} of it is left; this request is estimated "
            "at {estimate}.",
            budget=budget, left=left, estimate=estimate,
        )  # fmt: skip


def judge(limits: Limits, usage: Usage, images: int, *, in_guild: bool, cost: int = 0) -> Refusal | None:
    """Whether a job of `images` images estimated at `cost` (millionths of a dollar) may start now; the first
    limit it breaks, if any."""
    since = usage.seconds_since_last
    if limits.cooldown_seconds > 0 and since is not None and since < limits.cooldown_seconds:
        return Refusal("cooldown", since, limits.cooldown_seconds)
    if usage.jobs_in_flight >= limits.jobs_in_flight:
        return Refusal("jobs_in_flight", usage.jobs_in_flight, limits.jobs_in_flight)
    user_quota = limits.images_per_user_per_day
    if user_quota is not None and usage.user_images_today + images > user_quota:
        return Refusal("user_quota", usage.user_images_today, user_quota)
    guild_quota = limits.images_per_guild_per_day
    if in_guild and guild_quota is not None and usage.guild_images_today + images > guild_quota:
        return Refusal("guild_quota", usage.guild_images_today, guild_quota)
    budgets: list[tuple[LimitName, int | None, int]] = [
        ("user_budget_day", limits.user_budget_day, usage.user_spend_day),
        ("user_budget_month", limits.user_budget_month, usage.user_spend_month),
    ]
    if in_guild:
        budgets += [
            ("guild_budget_day", limits.guild_budget_day, usage.guild_spend_day),
            ("guild_budget_month", limits.guild_budget_month, usage.guild_spend_month),
        ]
    for name, budget, spent in budgets:
        if budget is not None and spent + cost > budget:
            return Refusal(name, spent, budget, cost)
    return None
