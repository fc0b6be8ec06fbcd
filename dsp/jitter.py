"""A timeline playout buffer: decoded packets are written where their timestamp says,
and the mixer reads one frame per tick.

Writing by timestamp handles reordering, duplicates (they overwrite the same samples)
and any packet duration (10, 20, 30, 60 ms ptime) without special cases; a lost packet
leaves a hole that reads as silence and is reported in the returned mask, so
concealment can fill it. The target delay is fixed here (prefill, default 40 ms);
the adaptive delay and concealment of issue #7 replace the policy, not the timeline.

Timestamps are RTP timestamps (Python ints modulo 2**32) on the stream's RTP clock, which
need not be the sample rate: G.722 counts 8000 per second for 16 kHz audio (RFC 3551
§4.5.2) and Opus 48000 for whatever rate it is decoded at (RFC 7587 §4.1). The buffer
unwraps them against its own read position and converts clock ticks to samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_HALF_RANGE = 2**31
_RANGE = 2**32
# Late packets in a row that mean the sender's timeline moved back, not jitter.
_LATE_PACKETS_BEFORE_RESYNC = 10


@dataclass(frozen=True, slots=True)
class JitterStatistics:
    """Counters of what the buffer did with the packets it was given."""

    packets: int
    late: int
    resyncs: int
    underrun_frames: int
    drift_drops: int


class JitterBuffer:
    """Fixed-delay timeline buffer for one member's decoded audio.

    `capacity` samples of float32 form a ring; `_read_ts` is the (unwrapped) timestamp
    of the next sample to play. Until the first packet arrives, reads return silence.
    """

    def __init__(
        self,
        rate_hz: int,
        *,
        clock_rate_hz: int | None = None,
        prefill_ms: int = 40,
        max_delay_ms: int = 200,
        capacity_ms: int = 1000,
    ) -> None:
        self.rate_hz = rate_hz
        self.clock_rate_hz = clock_rate_hz if clock_rate_hz is not None else rate_hz
        self._prefill = rate_hz * prefill_ms // 1000
        self._max_delay = rate_hz * max_delay_ms // 1000
        self._capacity = rate_hz * capacity_ms // 1000
        self._samples = np.zeros(self._capacity, dtype=np.float32)
        self._valid = np.zeros(self._capacity, dtype=np.bool_)
        self._read_ts: int | None = None
        self._consecutive_late = 0
        self._anchor_raw = 0  # raw 32-bit timestamp that maps to `_anchor`
        self._anchor = 0
        self._highest_end = 0
        self._packets = 0
        self._late = 0
        self._resyncs = 0
        self._underruns = 0
        self._drift_drops = 0

    def _unwrap(self, timestamp: int) -> int:
        """Return the sample position of an RTP timestamp, relative to the newest anchor."""
        delta = (timestamp - self._anchor_raw + _HALF_RANGE) % _RANGE - _HALF_RANGE
        if self.clock_rate_hz != self.rate_hz:
            delta = delta * self.rate_hz // self.clock_rate_hz
        return self._anchor + delta

    def gap_before(self, timestamp: int) -> int:
        """Samples missing between the newest audio buffered and a packet at `timestamp`.

        Zero when the packet follows on, fills an earlier hole, or is the first: only a
        gap that has not been played out yet can still be filled (by FEC or concealment).
        """
        if self._read_ts is None:
            return 0
        newest = max(self._highest_end, self._read_ts)
        return max(0, self._unwrap(timestamp) - newest)

    def _reset(self, timestamp: int) -> None:
        self._anchor_raw = timestamp
        self._anchor = 0
        self._read_ts = -self._prefill
        self._highest_end = 0
        self._samples.fill(0.0)
        self._valid.fill(False)

    def push(self, timestamp: int, samples: NDArray[np.float32]) -> None:
        """Place a decoded packet (`(k,)` float32) at its RTP timestamp (clock units)."""
        self._packets += 1
        if self._read_ts is None:
            self._reset(timestamp)
        assert self._read_ts is not None
        start = self._unwrap(timestamp)
        # Re-anchor on every packet so unwrapping never reaches the 2**31 ambiguity,
        # however long the call.
        self._anchor, self._anchor_raw = start, timestamp
        end = start + samples.shape[0]
        if end <= self._read_ts and self._read_ts - start < self._capacity:
            self._late += 1
            self._consecutive_late += 1
            if self._consecutive_late < _LATE_PACKETS_BEFORE_RESYNC:
                return
        self._consecutive_late = 0
        if end <= self._read_ts or start - self._read_ts > self._capacity - samples.shape[0]:
            # A timestamp jump either way (a peer restarting its clock, an SSRC change,
            # a phone that froze its timestamps during hold): start a new timeline
            # rather than wait out the gap or drop everything as late.
            self._resyncs += 1
            self._reset(timestamp)
            start, end = 0, samples.shape[0]
        if start < self._read_ts:
            samples = samples[self._read_ts - start :]
            start = self._read_ts
        self._write(start, samples)
        self._highest_end = max(self._highest_end, end)

    def push_before(self, timestamp: int, samples: NDArray[np.float32]) -> None:
        """Place audio that ends where the packet at `timestamp` starts (recovered by FEC)."""
        ticks = samples.shape[0] * self.clock_rate_hz // self.rate_hz
        self.push((timestamp - ticks) % _RANGE, samples)

    def _write(self, start: int, samples: NDArray[np.float32]) -> None:
        index = start % self._capacity
        first = min(samples.shape[0], self._capacity - index)
        self._samples[index : index + first] = samples[:first]
        self._valid[index : index + first] = True
        rest = samples.shape[0] - first
        if rest:
            self._samples[:rest] = samples[first:]
            self._valid[:rest] = True

    def _clear(self, start: int, count: int) -> None:
        """Forget `count` samples from timeline position `start` (ring wrap included)."""
        count = min(count, self._capacity)
        index = start % self._capacity
        first = min(count, self._capacity - index)
        self._samples[index : index + first] = 0.0
        self._valid[index : index + first] = False
        self._samples[: count - first] = 0.0
        self._valid[: count - first] = False

    def pop(self, count: int) -> tuple[NDArray[np.float32], bool]:
        """Return the next `count` samples and whether any of them came from a packet.

        Drift control: when more than `max_delay_ms` is buffered (the caller's clock runs
        fast, or a burst arrived after a stall), the read position jumps forward to the
        prefill target, dropping the oldest audio rather than letting delay grow.
        """
        if self._read_ts is None:
            return np.zeros(count, dtype=np.float32), False
        if self._highest_end - self._read_ts > self._max_delay + count:
            self._drift_drops += 1
            skipped_to = self._highest_end - self._prefill - count
            # Clear what is skipped, or a lost packet a lap later would play it back.
            self._clear(self._read_ts, skipped_to - self._read_ts)
            self._read_ts = skipped_to
        if self._read_ts >= self._highest_end:
            # Nothing buffered ahead (a silent or DTX line): nothing to read or clear,
            # since packets are only ever written below the highest end.
            self._read_ts += count
            self._underruns += 1
            return np.zeros(count, dtype=np.float32), False
        index = self._read_ts % self._capacity
        if index + count <= self._capacity:
            window: slice | NDArray[np.intp] = slice(index, index + count)
        else:
            window = (index + np.arange(count)) % self._capacity
        out = self._samples[window].copy()
        has_audio = bool(self._valid[window].any())
        self._valid[window] = False
        self._samples[window] = 0.0
        self._read_ts += count
        if not has_audio and self._read_ts >= self._highest_end:
            self._underruns += 1
        return out, has_audio

    @property
    def buffered_ms(self) -> float:
        """Audio between the read position and the newest sample, in milliseconds."""
        if self._read_ts is None:
            return 0.0
        return max(0, self._highest_end - self._read_ts) * 1000.0 / self.rate_hz

    def statistics(self) -> JitterStatistics:
        return JitterStatistics(
            self._packets, self._late, self._resyncs, self._underruns, self._drift_drops
        )
