"""The 20 ms media clock: one LoopingCall for all rooms, noticing every missed tick."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

log = logging.getLogger(__name__)

# Ticks later than this count as late (the capacity target: <= 0.1 % of them).
LATE_TICK_S = 0.005
# After a stall, catch up at most this many frames at once; older ones are skipped,
# since a burst of stale audio helps no listener.
MAX_CATCH_UP_TICKS = 3


@dataclass
class ClockStatistics:
    ticks: int = 0
    late_ticks: int = 0
    skipped_ticks: int = 0
    max_lateness_s: float = 0.0


class MediaClock:
    """Call `on_tick(now)` every `interval_s`, using `LoopingCall.withCount`."""

    def __init__(
        self, clock: IReactorTime, on_tick: Callable[[float], None], interval_s: float = 0.02
    ) -> None:
        self._clock = clock
        self._on_tick = on_tick
        self._interval_s = interval_s
        self._loop = LoopingCall.withCount(self._run)
        self._loop.clock = clock
        self._started_at = 0.0
        self._elapsed_ticks = 0
        self.statistics = ClockStatistics()

    def start(self) -> None:
        self._started_at = self._clock.seconds()
        self._loop.start(self._interval_s, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _run(self, count: int) -> None:
        now = self._clock.seconds()
        self._elapsed_ticks += count
        lateness = now - (self._started_at + self._elapsed_ticks * self._interval_s)
        stats = self.statistics
        stats.max_lateness_s = max(stats.max_lateness_s, lateness)
        if lateness > LATE_TICK_S or count > 1:
            stats.late_ticks += 1
        runs = min(count, MAX_CATCH_UP_TICKS)
        if count > runs:
            stats.skipped_ticks += count - runs
            log.warning("media clock: %d ticks skipped after a %.0f ms stall",
                        count - runs, count * self._interval_s * 1000)
        for _ in range(runs):
            stats.ticks += 1
            self._on_tick(now)
