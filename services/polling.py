"""When to poll next: cheap (few GETs) and quick (little delay between done and noticed).

A fixed interval wastes requests while an image cannot possibly be ready yet. Instead each model's
create-to-done times are learned (seeded with typical figures from the catalogue), and a prediction is
 - not polled before the fastest usual time (the window's low end; a first poll is never later than
   `max_interval`, so a stage change still shows),
 - polled every `fine_interval` inside the usual window,
 - polled less and less often past its high end, up to `max_interval`,
 - and when the logs give a tqdm rate, polled when the steps left should be done.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from services.predictions import Progress


@dataclass(frozen=True)
class PollTuning:
    fine_interval: float = 0.4
    min_interval: float = 0.1
    max_interval: float = 5.0
    tail_growth: float = 1.5
    samples_needed: int = 8  # observations before the learned window replaces the prior
    memory: int = 64  # observations kept per model
    default_window: tuple[float, float] = (1.0, 15.0)  # for a model with no prior


class DurationStats:
    """Create-to-done seconds per model, learned from finished predictions."""

    def __init__(self, priors: Mapping[str, tuple[float, float]], tuning: PollTuning | None = None) -> None:
        self.tuning = tuning or PollTuning()
        self._priors = dict(priors)
        self._seen: dict[str, deque[float]] = {}

    def observe(self, model: str, seconds: float) -> None:
        if seconds > 0:
            self._seen.setdefault(model, deque(maxlen=self.tuning.memory)).append(seconds)

    def window(self, model: str) -> tuple[float, float]:
        """Roughly the 5th and 95th percentile of how long the model takes."""
        prior = self._priors.get(model, self.tuning.default_window)
        seen = self._seen.get(model)
        if seen is None or len(seen) < self.tuning.samples_needed:
            return prior
        cuts = statistics.quantiles(seen, n=20, method="inclusive")
        # With many jobs in flight the first to finish are the fast ones, so the learned high end starts out
        # too low. A low end that is too early costs a few GETs; a high end that is too early costs delay.
        return cuts[0], max(cuts[-1], prior[1])

    def plan(self, model: str) -> PollPlan:
        return PollPlan(self.window(model), self.tuning)


class PollPlan:
    """The schedule for one prediction."""

    def __init__(self, window: tuple[float, float], tuning: PollTuning) -> None:
        self.low, self.high = window
        self.tuning = tuning
        self._tail_polls = 0

    def next_delay(self, elapsed: float, progress: Progress | None = None) -> float:
        t = self.tuning
        if progress is not None and progress.seconds_left is not None and progress.seconds_left > t.fine_interval:
            delay = progress.seconds_left
        elif elapsed < self.low:
            delay = self.low - elapsed
        elif elapsed <= self.high:
            delay = t.fine_interval
        else:
            delay = t.fine_interval * t.tail_growth**self._tail_polls
            self._tail_polls += 1
        return min(t.max_interval, max(t.min_interval, delay))
