"""The 20 ms media clock: one timer for all rooms, each tick run as soon as it is due."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from twisted.internet.interfaces import IDelayedCall, IReactorTime

log = logging.getLogger(__name__)

# Ticks later than this count as late (the capacity target: <= 0.1 % of them).
LATE_TICK_S = 0.005
# After a stall, catch up at most this many frames at once; older ones are skipped,
# since a burst of stale audio helps no listener.
MAX_CATCH_UP_TICKS = 3
# A tick whose time has come within this much counts as due (the timer's float sums).
_DUE_TOLERANCE_S = 1e-6
# A tick that spent longer than this off the CPU (wall time minus the thread's CPU time)
# is counted apart: another task had the core, a virtual machine's host took it (where
# the guest accounts stolen time), or the thread waited for the disk.
OFF_CPU_S = 0.002


@dataclass
class ClockStatistics:
    ticks: int = 0
    late_ticks: int = 0
    skipped_ticks: int = 0
    max_lateness_s: float = 0.0


@dataclass
class _Window:
    """What the clock saw since its last report: each run's lateness, its work time and
    how much of that it spent off the CPU."""

    started_at: float
    lateness_s: list[float] = field(default_factory=list)
    work_s: list[float] = field(default_factory=list)
    off_cpu_s: list[float] = field(default_factory=list)
    late: int = 0
    skipped: int = 0


class MediaClock:
    """Call `on_tick(now)` every `interval_s`, one tick per timer call.

    A tick that is due when the one before ends runs at once, before the reactor next
    waits: a clock that fell behind (a stall, a burst of signalling) catches up in the
    spare time of the ticks that follow, instead of waiting for the next 20 ms boundary
    and running two ticks back to back there for good, as `LoopingCall` does (at 15 ms a
    tick it never gets its phase back). More than MAX_CATCH_UP_TICKS owed: the oldest
    are skipped.

    Every `report_interval_s` (0: never) it logs how it kept time since the last report:
    ticks, late ticks, lateness and the time the ticks took (p50, p99, max), and how many
    ticks spent over OFF_CPU_S of that time off the CPU (`cpu_clock`, the thread's CPU
    time, against the reactor's clock); `report` does it at once (SIGUSR1 in `telerapat
    serve`). Operators see from it whether the server keeps up, and whether a late tick
    was the bridge's own work or time taken from it (a busy neighbour on the core, a
    virtual machine's host); bench/capacity.py reads it over its measurement window.
    """

    def __init__(
        self,
        clock: IReactorTime,
        on_tick: Callable[[float], None],
        interval_s: float = 0.02,
        *,
        report_interval_s: float = 0.0,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._on_tick = on_tick
        self._interval_s = interval_s
        self._report_interval_s = report_interval_s
        self._call: IDelayedCall | None = None
        self._running = False
        self._started_at = 0.0
        self._done = 0  # ticks run or skipped since the start
        self._window = _Window(0.0)
        self.statistics = ClockStatistics()

    def start(self) -> None:
        self._started_at = self._clock.seconds()
        self._done = 0
        self._window = _Window(self._started_at)
        self._running = True
        self._schedule()

    def stop(self) -> None:
        """Stop ticking; also from within a tick (no next one is scheduled)."""
        self._running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self) -> None:
        if not self._running:
            return
        due_at = self._started_at + (self._done + 1) * self._interval_s
        self._call = self._clock.callLater(max(0.0, due_at - self._clock.seconds()), self._run)

    def _run(self) -> None:
        now = self._clock.seconds()
        owed = int((now - self._started_at + _DUE_TOLERANCE_S) / self._interval_s) - self._done
        if owed <= 0:  # woken a hair early
            self._schedule()
            return
        stats, window = self.statistics, self._window
        if owed > MAX_CATCH_UP_TICKS:
            skipped = owed - MAX_CATCH_UP_TICKS
            self._done += skipped
            stats.skipped_ticks += skipped
            window.skipped += skipped
            log.warning("media clock: %d ticks skipped after a %.0f ms stall",
                        skipped, owed * self._interval_s * 1000)
        self._done += 1
        lateness = now - (self._started_at + self._done * self._interval_s)
        stats.ticks += 1
        stats.max_lateness_s = max(stats.max_lateness_s, lateness)
        if lateness > LATE_TICK_S:
            stats.late_ticks += 1
            window.late += 1
        cpu_before = self._cpu_clock() if self._report_interval_s else 0.0
        try:
            self._on_tick(now)
        finally:  # the clock goes on whatever a tick raised
            self._schedule()
        if self._report_interval_s:
            work = self._clock.seconds() - now
            window.lateness_s.append(lateness)
            window.work_s.append(work)
            window.off_cpu_s.append(work - (self._cpu_clock() - cpu_before))
            # Half a tick early, so float rounding cannot push a report a tick later.
            if now - window.started_at >= self._report_interval_s - self._interval_s / 2:
                self.report()

    def report(self) -> None:
        """Log the timing since the last report and start a new window (none if nothing
        was recorded: reports are off, or no tick ran since)."""
        now = self._clock.seconds()
        window = self._window
        self._window = _Window(now)
        if not window.lateness_s:
            return
        lateness_ms = 1000 * np.array(window.lateness_s)
        work_ms = 1000 * np.array(window.work_s)
        off_cpu_ms = 1000 * np.array(window.off_cpu_s)
        runs = lateness_ms.size
        log.info(
            "media clock: %d ticks in %.0f s, %d late (%.2f %% over %.0f ms), %d skipped; "
            "lateness ms p50 %.2f p99 %.2f max %.2f; tick work ms p50 %.2f p99 %.2f max %.2f; "
            "%d of them over %.0f ms off the CPU (max %.2f ms)",
            runs, now - window.started_at, window.late, 100 * window.late / runs,
            LATE_TICK_S * 1000, window.skipped,
            *np.percentile(lateness_ms, [50, 99]), lateness_ms.max(),
            *np.percentile(work_ms, [50, 99]), work_ms.max(),
            np.count_nonzero(off_cpu_ms > OFF_CPU_S * 1000), OFF_CPU_S * 1000,
            off_cpu_ms.max(),
        )
