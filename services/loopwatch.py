"""A cheap event-loop stall monitor.

A task sleeps `interval` seconds in a loop; when it wakes late, something held the loop (a CPU-heavy
call, blocking I/O) for that long, and every other task waited as well: interaction acknowledgements,
polls, uploads. The longest overshoot is kept; a stall over `warn_after` is logged as a WARNING at once,
and the longest one is logged (INFO) when the watch stops. Costs one wake-up per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

log = logging.getLogger(__name__)


class LoopWatch:
    def __init__(self, interval: float = 0.05, warn_after: float = 0.5) -> None:
        self.interval = interval
        self.warn_after = warn_after
        self.longest = 0.0  # seconds
        self.longest_at: float | None = None  # wall-clock time (time.time()) when that stall ended
        self.stalls = 0  # stalls over warn_after
        self._recent = 0.0  # the longest stall since `recent_lag` was last asked
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loopwatch")

    def stop(self) -> None:
        """Stop watching and log the longest stall seen."""
        if self._task is None:
            return
        self._task.cancel()
        self._task = None
        when = "" if self.longest_at is None else f" (at wall {self.longest_at:.3f})"
        log.info(
            "Event loop: longest stall %.1f ms%s; %d stall(s) over %.0f ms",
            self.longest * 1000, when, self.stalls, self.warn_after * 1000,
        )  # fmt: skip

    def recent_lag(self) -> float:
        """The longest stall (seconds) since the last call: what a scrape of the metrics reports."""
        lag, self._recent = self._recent, 0.0
        return lag

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                before = loop.time()
                await asyncio.sleep(self.interval)
                stall = loop.time() - before - self.interval
                self._recent = max(self._recent, stall)
                if stall > self.longest:
                    self.longest, self.longest_at = stall, time.time()
                if stall > self.warn_after:
                    self.stalls += 1
                    log.warning("Event loop stalled for %.0f ms", stall * 1000)
