"""A user's and a server's limits, and the judgement the store makes when it admits a job.

The store reads the numbers and inserts the job in one transaction (see `Store.admit_job`), so two
commands racing each other are judged one after the other: a cooldown, a jobs-in-flight limit or a daily
quota can never be exceeded by commands that arrive together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from services.text import Text, _, _n

DAY = 86400.0
LimitName = Literal["cooldown", "jobs_in_flight", "user_quota", "guild_quota"]


@dataclass(frozen=True)
class Limits:
    cooldown_seconds: float
    jobs_in_flight: int
    images_per_user_per_day: int | None = None
    images_per_guild_per_day: int | None = None

    def merged(self, overrides: Mapping[str, float | int]) -> Limits:
        values = {**self.__dict__, **{k: v for k, v in overrides.items() if k in self.__dict__}}
        return Limits(
            cooldown_seconds=float(values["cooldown_seconds"]),
            jobs_in_flight=int(values["jobs_in_flight"]),
            images_per_user_per_day=_quota(values["images_per_user_per_day"]),
            images_per_guild_per_day=_quota(values["images_per_guild_per_day"]),
        )


def _quota(value: object) -> int | None:
    """0 (or nothing) means no quota."""
    return None if value is None or value == 0 else int(value)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Usage:
    """What the store counted for one user (and server) inside the admitting transaction."""

    seconds_since_last: float | None  # since the user's newest job; None if they have none
    jobs_in_flight: int
    user_images_today: int  # images reserved or delivered in the last 24 h (failed and canceled give theirs back)
    guild_images_today: int


@dataclass(frozen=True)
class Refusal:
    limit: LimitName
    used: float
    allowed: float

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
        return _("This server has used {used} of its {allowed} images for today.", used=used, allowed=allowed)


def judge(limits: Limits, usage: Usage, images: int, *, in_guild: bool) -> Refusal | None:
    """Whether a job of `images` images may start now; the first limit it breaks, if any."""
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
    return None
