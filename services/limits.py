"""A user's, a server's and the bot's limits, and the judgement the store makes when it admits a job.

The store reads the numbers and inserts the job in one transaction (see `Store.admit_job`), so two
commands racing each other are judged one after the other: a cooldown, a jobs-in-flight limit or a daily
quota or a budget can never be exceeded by commands that arrive together.

Whose jobs count:

* a server's limits (its per-member quota and budgets, its own quota and budgets) count only jobs made in
  that server;
* the operator's caps per user (USER_DAILY_IMAGES, USER_DAILY_BUDGET_USD) count the user's jobs everywhere,
  DMs and user installs included, and BOT_DAILY_BUDGET_USD counts every job of the bot;
* the cooldown and the jobs in flight are the user's everywhere (they protect the bot).

Budgets are in US dollars (0 = none), judged against each job's cost in millionths of a dollar: what it settled
at once its prediction ended, the upper bound booked at admission while it runs (see `COUNTED_COST` in
services/store/base.py). "Per day" is the last 24 hours and "per month" the last 30 days, like the quotas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from services.money import budget, dollars
from services.text import Text, _, _n, joined, verbatim

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
    "everywhere_quota",
    "everywhere_budget_day",
    "bot_budget_day",
    "credits",
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
    # The operator's caps: per user across every server, DM and user install, and for the whole bot.
    everywhere_images_day: int | None = None
    everywhere_budget_day: int | None = None
    bot_budget_day: int | None = None
    # Credits are on (services/store/credits.py): every job that costs something must be paid with them.
    pay_with_credits: bool = False

    def merged(self, overrides: Mapping[str, float | int]) -> Limits:
        values = {**self.__dict__, **{k: v for k, v in overrides.items() if k in self.__dict__}}
        budgets = {name: values[name] for name in BUDGET_SETTINGS.values()}
        for setting, name in BUDGET_SETTINGS.items():
            if setting in overrides:
                budgets[name] = budget(overrides[setting])
        return Limits(
            cooldown_seconds=float(values["cooldown_seconds"]),
            jobs_in_flight=int(values["jobs_in_flight"]),
            images_per_user_per_day=_quota(values["images_per_user_per_day"]),
            images_per_guild_per_day=_quota(values["images_per_guild_per_day"]),
            everywhere_images_day=self.everywhere_images_day,
            everywhere_budget_day=self.everywhere_budget_day,
            bot_budget_day=self.bot_budget_day,
            pay_with_credits=self.pay_with_credits,
            **budgets,
        )

    @property
    def guild_wide(self) -> bool:
        """Whether admitting a job must count the whole server's usage (and so wait for its other admissions)."""
        return any(
            v is not None for v in (self.images_per_guild_per_day, self.guild_budget_day, self.guild_budget_month)
        )

    @property
    def per_member(self) -> bool:
        """Whether the server limits a member's own usage in it."""
        return any(v is not None for v in (self.images_per_user_per_day, self.user_budget_day, self.user_budget_month))

    @property
    def everywhere(self) -> bool:
        return self.everywhere_images_day is not None or self.everywhere_budget_day is not None

    @property
    def bot_wide(self) -> bool:
        """Whether admitting a job must count every job of the bot (and so wait for every other admission)."""
        return self.bot_budget_day is not None


def _quota(value: object) -> int | None:
    """0 (or nothing) means no quota."""
    return None if value is None or value == 0 else int(value)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Window:
    """What one scope (a member in a server, a server, a user everywhere, the bot) used, as the store counted it."""

    images_day: int = 0  # images reserved or delivered in the last 24 h (failed and canceled give theirs back)
    spend_day: int = 0  # millionths of a dollar (see COUNTED_COST)
    spend_month: int = 0
    # When the oldest job counted in the day's and the month's window was made: from then on, the window frees up.
    oldest_day: float | None = None
    oldest_month: float | None = None


@dataclass(frozen=True)
class Usage:
    """What the store counted for one job's user, server and bot inside the admitting transaction."""

    seconds_since_last: float | None  # since the user's newest job; None if they have none
    jobs_in_flight: int
    member: Window = field(default_factory=Window)  # the user's jobs in this server
    guild: Window = field(default_factory=Window)
    user: Window = field(default_factory=Window)  # the user's jobs everywhere
    bot: Window = field(default_factory=Window)


@dataclass(frozen=True)
class Refusal:
    limit: LimitName
    used: float
    allowed: float
    cost: int = 0  # the refused job's estimated cost (budgets), in millionths of a dollar
    # When the window starts to free up (the oldest counted job leaves it), epoch seconds; None: not known.
    resets_at: float | None = field(default=None, compare=False)
    # For "credits": the credit pack a refusal offers to sell (a Discord SKU id; None: none to offer).
    sku_id: int | None = field(default=None, compare=False)

    def text(self) -> Text:
        what = self._what()
        if self.resets_at is None or self.limit in ("cooldown", "jobs_in_flight", "credits"):
            return what
        # Discord shows <t:...:R> as "in 3 hours" in the reader's own language and time zone.
        when = verbatim(f"<t:{int(self.resets_at) + 1}:R>")
        return joined([what, _("It starts to free up {when}.", when=when)], " ")

    def _what(self) -> Text:
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
        if self.limit == "credits":
            return self._credits()
        if self.limit == "user_quota":
            return _("You have used {used} of your {allowed} images for today.", used=used, allowed=allowed)
        if self.limit == "guild_quota":
            return _("This server has used {used} of its {allowed} images for today.", used=used, allowed=allowed)
        if self.limit == "everywhere_quota":
            return _(
                "You have used {used} of the {allowed} images this bot allows each person per day.",
                used=used,
                allowed=allowed,
            )
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
        if self.limit == "everywhere_budget_day":
            return _(
                "This bot allows each person {budget} per day, and {left} of yours is left; this request is "
                "estimated at {estimate}.",
                budget=budget, left=left, estimate=estimate,
            )  # fmt: skip
        if self.limit == "bot_budget_day":
            return _(
                "This bot has spent its budget for the day ({budget}; {left} is left); this request is estimated "
                "at {estimate}.",
                budget=budget, left=left, estimate=estimate,
            )  # fmt: skip
        return _(
            "This server's budget is {budget} per 30 days, and {left} of it is left; this request is estimated "
            "at {estimate}.",
            budget=budget, left=left, estimate=estimate,
        )  # fmt: skip

    def _credits(self) -> Text:
        balance, estimate = dollars(int(self.used)), dollars(self.cost)
        if self.sku_id is None:
            return _(
                "Your credits ({balance}) don't cover this request (estimated at {estimate}).",
                balance=balance, estimate=estimate,
            )  # fmt: skip
        return _(
            "Your credits ({balance}) don't cover this request (estimated at {estimate}); buy a credit pack with "
            "the button below to go on.",
            balance=balance, estimate=estimate,
        )  # fmt: skip


def judge(limits: Limits, usage: Usage, images: int, *, in_guild: bool, cost: int = 0) -> Refusal | None:
    """Whether a job of `images` images estimated at `cost` (millionths of a dollar) may start now; the first
    limit it breaks, if any. The server's limits apply only to jobs made in a server (`in_guild`)."""
    since = usage.seconds_since_last
    if limits.cooldown_seconds > 0 and since is not None and since < limits.cooldown_seconds:
        return Refusal("cooldown", since, limits.cooldown_seconds)
    if usage.jobs_in_flight >= limits.jobs_in_flight:
        return Refusal("jobs_in_flight", usage.jobs_in_flight, limits.jobs_in_flight)
    quotas: list[tuple[LimitName, int | None, Window]] = [
        ("everywhere_quota", limits.everywhere_images_day, usage.user)
    ]
    if in_guild:
        quotas[:0] = [
            ("user_quota", limits.images_per_user_per_day, usage.member),
            ("guild_quota", limits.images_per_guild_per_day, usage.guild),
        ]
    for name, quota, window in quotas:
        if quota is not None and window.images_day + images > quota:
            return Refusal(name, window.images_day, quota, resets_at=_reset(window.oldest_day, DAY))
    budgets: list[tuple[LimitName, int | None, int, float | None, float]] = []
    if in_guild:
        budgets += [
            ("user_budget_day", limits.user_budget_day, usage.member.spend_day, usage.member.oldest_day, DAY),
            ("user_budget_month", limits.user_budget_month, usage.member.spend_month, usage.member.oldest_month, MONTH),
            ("guild_budget_day", limits.guild_budget_day, usage.guild.spend_day, usage.guild.oldest_day, DAY),
            ("guild_budget_month", limits.guild_budget_month, usage.guild.spend_month, usage.guild.oldest_month, MONTH),
        ]  # fmt: skip
    budgets += [
        ("everywhere_budget_day", limits.everywhere_budget_day, usage.user.spend_day, usage.user.oldest_day, DAY),
        ("bot_budget_day", limits.bot_budget_day, usage.bot.spend_day, usage.bot.oldest_day, DAY),
    ]
    for name, allowed, spent, oldest, period in budgets:
        if allowed is not None and spent + cost > allowed:
            return Refusal(name, spent, allowed, cost, resets_at=_reset(oldest, period))
    return None


def _reset(oldest: float | None, period: float) -> float | None:
    return None if oldest is None else oldest + period
