"""An adaptive timeline playout buffer: decoded packets are written where their timestamp
says, the mixer reads one frame per tick, and the delay between them follows the jitter.

Writing by timestamp handles reordering, duplicates and any packet duration (10, 20, 30,
60 ms ptime) without special cases. What is missing when it is due is concealed
(`dsp.plc.Concealer`, G.711 Appendix I style), or read as silence for a member whose codec
conceals itself (`conceal=False`).

Delay policy, after WebRTC NetEQ's delay manager: every packet's relative delay is its
transit time (arrival minus timestamp) above the fastest transit of the last 1-2 s; each
half second the largest relative delay goes into a forgetting histogram, and the target
delay is its 95th percentile (or a recent spike, decaying) plus a margin, clamped into
[min_delay_ms, max_target_ms]. The playout delay (how far the read position trails the
audio a fastest-path packet would bring now, lowest over the last 0.5-1 s) is steered to
the target by time-stretching: one pitch period is removed or repeated (`dsp.plc.compress`,
`dsp.plc.expand`), any length where the frame is nearly silent; speech is lengthened only
when the delay is well short of the target, otherwise a pause takes it. The same loop
absorbs clock skew between caller and bridge. A hole with audio buffered after it is
concealed toward that audio (`dsp.plc.Concealer.conceal_toward`). When the buffer runs
dry mid-speech the read position holds while concealment plays (delay grows, as NetEQ's
expand does), so a late packet still plays. Packets without an arrival time count as on
time, and the target stays at `prefill_ms`: the fixed buffer of old.

Timestamps are RTP timestamps (Python ints modulo 2**32) on the stream's RTP clock, which
need not be the sample rate: G.722 counts 8000 per second for 16 kHz audio (RFC 3551
§4.5.2) and Opus 48000 for whatever rate it is decoded at (RFC 7587 §4.1). The buffer
unwraps them against its own read position and converts clock ticks to samples.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from dsp.plc import (
    HISTORY_FRAMES,
    HISTORY_MS,
    RESUME_AFTER_MAX_MS,
    Concealer,
    compress,
    expand,
    fill_holes,
    pitch_period,
)

_HALF_RANGE = 2**31
_RANGE = 2**32
# Late packets in a row that mean the sender's timeline moved back, not jitter.
_LATE_PACKETS_BEFORE_RESYNC = 10
# A packet this much faster than the fastest of late is a forward timestamp jump, not
# jitter: the network cannot speed up by that much (clock skew moves it ~10 ms in 2 s).
_JUMP_AHEAD_MS = 150
# Relative delay: transit against the fastest transit within the last 1-2 s (NetEQ's
# relative arrival delay uses 2 s of history).
_TRANSIT_WINDOW_S = 1.0
# The histogram takes the largest relative delay of each half second (NetEQ resamples at
# 500 ms) and forgets with factor 0.983 per entry (NetEQ's default): ~30 s of memory.
_INTERVAL_MS = 500
_FORGET = 0.983
_QUANTILE = 0.95
_BIN_MS = 5
# A spike raises the target at once; its hold on the target shrinks by this much per
# interval, so a calm link comes back down over tens of seconds.
_SPIKE_DECAY_MS = 5
# Target above the percentile, and the band around it left alone (ms).
_MARGIN_MS = 10
_EXPAND_BELOW_MS = 0
_COMPRESS_ABOVE_MS = 20
# The drift cap (max_delay_ms) stays this far above the largest target, for bursts.
_BURST_HEADROOM_MS = 200
# A frame this quiet (RMS re full scale) is stretched by any amount, pitch or not.
_QUIET_RMS = 10 ** (-50 / 20)
# Cross-fade of a quiet-frame stretch.
_QUIET_OVERLAP_MS = 2.5
# Correlation a pitch period needs before it is removed or repeated: below it the frame is
# noise-like and a seam would show; the next frame may do.
_STRETCH_MIN_CORRELATION = 0.6
# Speech is lengthened only below NetEQ's low limit, max(3/4 of the target, target - 85 ms)
# (decision_logic.cc); between it and the target the buffer waits for a quiet frame, whose
# stretch nobody hears, rather than repeat a pitch period inside a word.
_EXPAND_SPEECH_SHARE = 0.75
_EXPAND_SPEECH_OFFSET_MS = 85
# Likewise speech is shortened only this far above the target; nearer, a pause is cut
# instead. A pitch period removed inside a word shifts the rest of it in time, and a
# listener (and PESQ's alignment) hears that more than 20 ms of extra delay until the
# next pause (5 % loss + 60±40 ms: one run in twenty lost 0.23 to a single removal).
_COMPRESS_SPEECH_ABOVE_MS = 40
# Audio after a hole needed to conceal toward it: the pitch search's window and longest lag.
_FUTURE_MS = 35


@dataclass(frozen=True, slots=True)
class JitterStatistics:
    """Counters of what the buffer did with the packets it was given."""

    packets: int
    late: int
    resyncs: int
    underrun_frames: int
    drift_drops: int
    duplicates: int = 0
    concealed_frames: int = 0
    stretched_frames: int = 0  # frames lengthened: a pitch period or quiet time repeated
    compressed_frames: int = 0  # frames shortened: a pitch period or quiet time removed


class JitterBuffer:
    """Adaptive timeline buffer for one member's decoded audio.

    `capacity` samples of float32 form a ring; `_read_ts` is the (unwrapped) timestamp
    of the next sample to play. Until the first packet arrives, reads return silence.
    `delay_ms` and `target_ms` say where the delay is and where it is steered.

    A bridge pushes and pops for every member 50 times a second, so a steady stream (in
    order, nothing missing, the delay within its band) is kept to one slice copy per
    packet and one per frame: the flag array that marks which positions hold audio is
    neither written nor read then (`_complete_to`, `_unflagged_from`); steering the
    delay (`_stretch`) and anything out of line settle the flags first.
    """

    # Slots, the bank's first: every tick reads these objects in loops over hundreds of
    # members, and a slot lies in the object, not in a values array of its own (one
    # cache line fewer per object and pass once the tick's memory has gone cold).
    __slots__ = ("_row", "_banked", "_bank", "rate_hz", "clock_rate_hz", "_rescaled", "conceal",
                 "last_pop_concealed", "_prefill", "_max_delay", "_capacity", "_min_target",
                 "_max_target", "_samples", "_valid", "_read_ts", "_consecutive_late",
                 "_anchor_raw", "_anchor", "_highest_end", "_complete_to", "_unflagged_from",
                 "_concealer", "_future_len", "_quiet_energy", "_margin", "_expand_offset",
                 "_expand_speech_offset", "_compress_offset", "_compress_speech_offset", "_target",
                 "_expand_below", "_compress_above", "_delay", "_delay_now_min", "_delay_last_min",
                 "_interval", "_interval_end", "_held", "_transit_now_min", "_transit_last_min",
                 "_transit_window_end", "_interval_peak", "_spike", "_jump_ahead", "_histogram",
                 "_learned", "_bin", "_packets", "_late", "_resyncs", "_underruns", "_drift_drops",
                 "_duplicates", "_concealed", "_stretched", "_compressed", "_expand_speech_below",
                 "_compress_speech_above", "__weakref__")

    def __init__(
        self,
        rate_hz: int,
        *,
        clock_rate_hz: int | None = None,
        prefill_ms: int = 40,
        min_delay_ms: int = 20,
        max_target_ms: int = 300,
        max_delay_ms: int = 500,
        capacity_ms: int = 1000,
        conceal: bool = True,
    ) -> None:
        self.rate_hz = rate_hz
        self.clock_rate_hz = clock_rate_hz if clock_rate_hz is not None else rate_hz
        self._rescaled = self.clock_rate_hz != rate_hz  # clock ticks are not samples
        self.conceal = conceal
        self.last_pop_concealed = False
        self._prefill = rate_hz * prefill_ms // 1000
        self._max_delay = rate_hz * max_delay_ms // 1000
        self._capacity = rate_hz * capacity_ms // 1000
        self._min_target = rate_hz * min_delay_ms // 1000
        self._max_target = max(
            self._min_target,
            rate_hz * min(max_target_ms, max_delay_ms - _BURST_HEADROOM_MS) // 1000,
        )
        self._samples = np.zeros(self._capacity, dtype=np.float32)
        self._valid = np.zeros(self._capacity, dtype=np.bool_)
        self._read_ts: int | None = None
        self._consecutive_late = 0
        self._anchor_raw = 0  # raw 32-bit timestamp that maps to `_anchor`
        self._anchor = 0
        self._highest_end = 0
        # Every position in [_read_ts, _complete_to) holds audio (a lower bound of where the
        # first hole is; stale once reads pass it): a frame below it needs no flag check.
        self._complete_to = 0
        # A steady stream leaves `_valid` alone: audio appended at the highest end is written
        # without its flags, and read back without clearing them. Positions in
        # [max(_read_ts, _unflagged_from), _highest_end) hold audio whose flags are still
        # False; `_settle` sets them before anything reads the flags.
        self._unflagged_from = 0
        self._concealer = Concealer(rate_hz)
        self._future_len = rate_hz * _FUTURE_MS // 1000
        self._quiet_energy = _QUIET_RMS * _QUIET_RMS
        # Delay control, all in samples.
        self._margin = rate_hz * _MARGIN_MS // 1000
        self._expand_offset = rate_hz * _EXPAND_BELOW_MS // 1000
        self._expand_speech_offset = rate_hz * _EXPAND_SPEECH_OFFSET_MS // 1000
        self._compress_offset = rate_hz * _COMPRESS_ABOVE_MS // 1000
        self._compress_speech_offset = rate_hz * _COMPRESS_SPEECH_ABOVE_MS // 1000
        self._target = self._prefill
        self._expand_below = self._target
        self._compress_above = self._target
        self._delay = self._prefill
        self._delay_now_min = self._prefill  # lowest playout delay this interval
        self._delay_last_min = self._prefill  # ... and in the interval before
        self._interval = rate_hz * _INTERVAL_MS // 1000
        self._interval_end = 0
        self._held = 0  # samples concealed while the read position held (buffer ran dry)
        # Arrival statistics (only for packets that carry an arrival time).
        self._transit_now_min: float | None = None
        self._transit_last_min = 0.0
        self._transit_window_end = 0.0
        self._interval_peak = -1.0  # largest relative delay this interval; -1: none
        self._spike = 0.0
        self._jump_ahead = -self.rate_hz * _JUMP_AHEAD_MS / 1000
        bins = max_target_ms // _BIN_MS + 2
        self._histogram = np.zeros(bins)
        self._learned = False  # whether the histogram holds anything
        self._bin = rate_hz * _BIN_MS / 1000
        self._set_target(self._prefill)
        # Counters.
        self._packets = 0
        self._late = 0
        self._resyncs = 0
        self._underruns = 0
        self._drift_drops = 0
        self._duplicates = 0
        self._concealed = 0
        self._stretched = 0
        self._compressed = 0
        # Membership of a `JitterBank`: the ring is a row of the bank's arrays, and while
        # `_banked` the steady-stream state below lives in the bank (see `_take_back`).
        self._bank: JitterBank | None = None
        self._row = -1
        self._banked = False

    # -- timeline ------------------------------------------------------------------------

    def _unwrap(self, timestamp: int) -> int:
        """Return the sample position of an RTP timestamp, relative to the newest anchor."""
        delta = (timestamp - self._anchor_raw + _HALF_RANGE) % _RANGE - _HALF_RANGE
        if self._rescaled:
            delta = delta * self.rate_hz // self.clock_rate_hz
        return self._anchor + delta

    def gap_before(self, timestamp: int) -> int:
        """Samples missing between the newest audio buffered and a packet at `timestamp`.

        Zero when the packet follows on, fills an earlier hole, or is the first: only a
        gap that has not been played out yet can still be filled (by FEC or concealment).
        """
        if self._banked:
            self._take_back()
        if self._read_ts is None:
            return 0
        newest = max(self._highest_end, self._read_ts)
        return max(0, self._unwrap(timestamp) - newest)

    def _reset(self, timestamp: int) -> None:
        """Start a new timeline at `timestamp`, played after the current target delay."""
        self._anchor_raw = timestamp
        self._anchor = 0
        self._read_ts = -self._target
        self._highest_end = 0
        self._complete_to = self._read_ts
        self._unflagged_from = 0
        self._held = 0
        self._valid.fill(False)
        self._transit_now_min = None
        self._interval_end = 0

    # -- input ---------------------------------------------------------------------------

    def push(self, timestamp: int, samples: NDArray[np.float32],
             arrival_s: float | None = None) -> None:
        """Place a decoded packet (`(k,)` float32) at its RTP timestamp (clock units).

        `arrival_s`: when it was received, in seconds on any monotonic clock (the
        controller's `now`); None counts it as on time, and leaves the target alone.
        """
        if self._banked:
            self._take_back()
        self._packets += 1
        if self._read_ts is None:
            self._reset(timestamp)
        read = self._read_ts
        assert read is not None
        if self._rescaled:
            start = self._unwrap(timestamp)
        else:  # `_unwrap` without the call (this runs for every packet)
            start = self._anchor + (
                (timestamp - self._anchor_raw + _HALF_RANGE) % _RANGE - _HALF_RANGE
            )
        # Re-anchor on every packet so unwrapping never reaches the 2**31 ambiguity,
        # however long the call.
        self._anchor, self._anchor_raw = start, timestamp
        count = samples.shape[0]
        end = start + count
        capacity = self._capacity
        # Nothing from the highest end on holds audio: only a packet starting below it (or
        # an empty one) can be a duplicate, and only then are the flags looked up.
        if (start < self._highest_end or not count) and 0 <= start - read <= capacity - count:
            self._settle()
            if self._valid[start % capacity] and self._valid[(end - 1) % capacity]:
                self._duplicates += 1  # already here: its arrival would only look like jitter
                return
        relative = 0.0
        if arrival_s is not None:
            relative = self._relative_delay(start, arrival_s)
            if relative < self._jump_ahead:
                self._resync(timestamp)
                self._write(0, samples)
                self._note_delay(0, self._target)
                return
            if relative < 0.0:  # max(relative, 0.0) without the builtin's call
                relative = 0.0
        if end <= read and read - start < capacity:
            self._late += 1
            self._consecutive_late += 1
            if self._consecutive_late < _LATE_PACKETS_BEFORE_RESYNC:
                return
        self._consecutive_late = 0
        if end <= read or start - read > capacity - count:
            # A timestamp jump either way (a peer restarting its clock, an SSRC change,
            # a phone that froze its timestamps during hold): start a new timeline
            # rather than wait out the gap or drop everything as late.
            self._resync(timestamp)
            start, end, read = 0, count, self._read_ts
            assert read is not None
        elif start < read:
            samples = samples[read - start :]
            start = read
        self._write(start, samples)
        self._note_delay(start, start - read + int(relative))

    def push_before(self, timestamp: int, samples: NDArray[np.float32]) -> None:
        """Place audio that ends where the packet at `timestamp` starts (recovered by FEC)."""
        ticks = samples.shape[0] * self.clock_rate_hz // self.rate_hz
        self.push((timestamp - ticks) % _RANGE, samples)

    def _resync(self, timestamp: int) -> None:
        self._resyncs += 1
        self._reset(timestamp)

    def _write(self, start: int, samples: NDArray[np.float32]) -> None:
        """Put audio at positions `start` on (at or after the read position)."""
        count = samples.shape[0]
        end = start + count
        # Appended at the highest end, audio joins the unflagged positions: their flags are
        # False already, as they are from the highest end on.
        flag = start != self._highest_end
        if flag:
            self._settle()
        index = start % self._capacity
        stop = index + count
        if stop <= self._capacity:
            self._samples[index:stop] = samples
            if flag:
                self._valid[index:stop] = True
        else:  # across the end of the ring
            split = self._capacity - index
            self._samples[index:] = samples[:split]
            self._samples[: stop - self._capacity] = samples[split:]
            if flag:
                self._valid[index:] = True
                self._valid[: stop - self._capacity] = True
        if start <= self._complete_to < end:
            self._complete_to = end  # audio beyond may follow: found when needed
        if end > self._highest_end:
            self._highest_end = end
        if flag:
            self._unflagged_from = self._highest_end

    def _settle(self) -> None:
        """Set the flags of the audio the steady-stream paths wrote without them."""
        assert self._read_ts is not None
        start = max(self._read_ts, self._unflagged_from)
        if start < self._highest_end:
            self._valid[self._span(start, self._highest_end - start)] = True
        self._unflagged_from = self._highest_end

    # -- delay estimation ----------------------------------------------------------------

    def _relative_delay(self, start: int, arrival_s: float) -> float:
        """Return the packet's transit above the fastest of the last 1-2 s, in samples, and
        feed it to the spike detector and this interval's peak. Negative: faster than any."""
        transit = arrival_s * self.rate_hz - start
        now_min = self._transit_now_min
        if now_min is None:
            now_min = self._transit_now_min = self._transit_last_min = transit
            self._transit_window_end = arrival_s + _TRANSIT_WINDOW_S
        # Against the fastest before this packet, so a jump ahead shows as negative.
        last_min = self._transit_last_min
        relative = transit - (last_min if last_min < now_min else now_min)
        if arrival_s >= self._transit_window_end:
            self._transit_last_min, self._transit_now_min = now_min, transit
            self._transit_window_end = arrival_s + _TRANSIT_WINDOW_S
        elif transit < now_min:
            self._transit_now_min = transit
        if relative <= self._max_target:  # beyond: a timestamp jump, or past waiting for
            if relative > self._interval_peak:
                self._interval_peak = relative
            if relative > self._spike:
                self._spike = relative
                self._set_target(relative)
        return relative

    def _note_delay(self, start: int, delay: int) -> None:
        """Record the playout delay a packet met; roll the interval when it is over."""
        now_min = self._delay_now_min
        if start >= self._interval_end:
            self._interval_end = start + self._interval
            self._delay_last_min, now_min = now_min, delay
            self._delay_now_min = now_min
            if self._interval_peak >= 0:
                self._learn(self._interval_peak)
                self._interval_peak = -1.0
        elif delay < now_min:
            now_min = self._delay_now_min = delay
        last_min = self._delay_last_min
        self._delay = last_min if last_min < now_min else now_min

    def _learn(self, peak: float) -> None:
        """Put an interval's largest relative delay in the histogram; retarget (a bank
        does this for its banked buffers: `JitterBank._learn`)."""
        histogram = self._histogram
        histogram *= _FORGET
        histogram[min(int(peak / self._bin), histogram.shape[0] - 1)] += 1.0 - _FORGET
        self._learned = True  # for good: the newest entry is above zero until the next
        tail = np.add.accumulate(histogram[::-1])  # np.cumsum's loop, without its wrapper
        spilling = int(tail.searchsorted((1.0 - _QUANTILE) * tail[-1], "right"))
        percentile = (histogram.shape[0] - spilling) * self._bin
        self._spike = max(0.0, self._spike - self.rate_hz * _SPIKE_DECAY_MS / 1000)
        self._set_target(max(percentile, self._spike))

    def _set_target(self, relative: float) -> None:
        """Aim at `relative` plus the margin (within bounds), or keep the prefill while no
        arrival time has been seen."""
        if self._spike or self._learned:
            target = int(relative) + self._margin
            self._target = min(max(target, self._min_target), self._max_target)
        self._set_bands()

    def _set_bands(self) -> None:
        """The delay bands around the target, where stretching starts."""
        self._expand_below = self._target - self._expand_offset
        self._expand_speech_below = max(
            int(self._target * _EXPAND_SPEECH_SHARE), self._target - self._expand_speech_offset
        )
        self._compress_above = self._target + self._compress_offset
        self._compress_speech_above = self._target + self._compress_speech_offset

    def _shift_delay(self, samples: int) -> None:
        """The read position moved `samples` back against the clock (negative: forward)."""
        self._delay += samples
        self._delay_now_min += samples
        self._delay_last_min += samples

    # -- output --------------------------------------------------------------------------

    def _span(self, start: int, count: int) -> slice | NDArray[np.intp]:
        index = start % self._capacity
        if index + count <= self._capacity:
            return slice(index, index + count)
        return (index + np.arange(count)) % self._capacity

    def pop(self, count: int) -> tuple[NDArray[np.float32], bool]:
        """Return the next `count` samples and whether they hold audio (received or concealed).

        `last_pop_concealed` says whether any of it was concealment. Drift control: when
        more than `max_delay_ms` is buffered (the caller's clock runs fast, or a burst
        arrived after a stall), the read position jumps forward to the target, dropping
        the oldest audio rather than letting delay grow.
        """
        if self._banked:
            self._take_back()
        self.last_pop_concealed = False
        read = self._read_ts
        if read is None:
            return np.zeros(count, dtype=np.float32), False
        if self._highest_end - read > self._max_delay + count:
            self._drift_drops += 1
            skipped_to = self._highest_end - self._target - count
            self._valid[self._span(read, skipped_to - read)] = False
            self._shift_delay(read - skipped_to)
            self._read_ts = read = skipped_to
        if read >= self._highest_end:
            return self._underrun(count)
        if self._held:
            self._skip_concealed()
            read = self._read_ts
            assert read is not None
        end = read + count
        if end > self._complete_to:  # past what is known to be there: ask the flags
            self._settle()  # (for `_patch` and `_future` too)
            self._complete_to = self._first_hole()
        index = read % self._capacity
        # `_span` without the call for the usual frame that does not cross the ring's end.
        window = slice(index, index + count) if index + count <= self._capacity else (
            self._span(read, count))
        if end > self._complete_to:
            return self._patch(count, window, self._valid[window])
        if not self._expand_below <= self._delay <= self._compress_above:
            stretched = self._stretch(count)
            if stretched is not None:
                return stretched, True
        out = self._samples[window]  # fancy index: a copy; slice: copied by resume or below
        if read < self._unflagged_from:  # else the frame's flags were never set
            self._valid[window] = False
        self._read_ts = end
        if self._concealer.lost:
            out = self._concealer.resume(out.copy())
        elif isinstance(window, slice):
            out = out.copy()
        self._concealer.played(out)
        return out, True

    def _first_hole(self) -> int:
        """The lowest position from the read position on that holds no audio (nothing from
        the highest end on does); for a read position below the highest end."""
        assert self._read_ts is not None
        flags = self._valid[self._span(self._read_ts, self._highest_end - self._read_ts)]
        first = int(flags.argmin())  # the first False, or 0 when there is none
        return self._read_ts + (first if not flags[first] else flags.shape[0])

    def _underrun(self, count: int) -> tuple[NDArray[np.float32], bool]:
        """Nothing buffered ahead: conceal while it still sounds, holding the read position
        (up to the largest target) so a late packet still plays; else silence."""
        assert self._read_ts is not None
        if self.conceal and self._concealer.audible:
            out, audible = self._concealer.conceal(count)
            self._concealed += 1
            self.last_pop_concealed = True
            if self._delay + count <= self._max_target:
                self._held += count
                self._shift_delay(count)
            else:
                self._read_ts += count
            self._concealer.played(out)
            return out, audible
        # A silent or DTX line: nothing to read or clear, since packets are only ever
        # written below the highest end.
        if self._concealer.lost or self._concealer.audible:
            self._concealer.forget()
        self._read_ts += count
        self._underruns += 1
        return np.zeros(count, dtype=np.float32), False

    def _skip_concealed(self) -> None:
        """Audio came after a hold. A late packet plays (the hold paid off); a hole means
        the packet was lost, and the concealment already played stands in for it."""
        assert self._read_ts is not None
        held, self._held = self._held, 0
        self._settle()
        valid = self._valid[self._span(self._read_ts, held)]
        hole = int(np.argmax(valid)) if valid.any() else held
        if hole:
            self._read_ts += hole
            self._shift_delay(-hole)

    def _patch(
        self, count: int, window: slice | NDArray[np.intp], valid: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float32], bool]:
        """A frame with holes: real runs as they are, missing runs concealed (or silent)."""
        assert self._read_ts is not None
        frame_start = self._read_ts
        out = self._samples[window].copy()
        valid = valid.copy()  # a view of the ring's flags, cleared below
        self._read_ts += count
        if not self.conceal:
            self._valid[window] = False
            out[~valid] = 0.0
            has_audio = bool(valid.any())
            if not has_audio and self._read_ts >= self._highest_end:
                self._underruns += 1
            return out, has_audio
        edges = np.flatnonzero(valid[1:] != valid[:-1]) + 1
        bounds = [0, *edges.tolist(), count]
        has_audio = False
        for first, last in zip(bounds[:-1], bounds[1:], strict=True):
            if valid[first]:
                if self._concealer.lost:
                    out[first:last] = self._concealer.resume(out[first:last])
                has_audio = True
            else:
                # Before the timeline's start (0 since the last reset) nothing was lost.
                future = self._future(frame_start + last) if frame_start + first >= 0 else None
                if future is not None:
                    gap = future[0] - (frame_start + first)
                    out[first:last], audible = self._concealer.conceal_toward(
                        last - first, gap, future[1])
                else:
                    out[first:last], audible = self._concealer.conceal(last - first)
                has_audio = has_audio or audible
                self.last_pop_concealed = self.last_pop_concealed or audible
            # Run by run, so a loss that starts mid-frame repeats what was just played.
            self._concealer.played(out[first:last])
        self._valid[window] = False  # only now: a hole may end inside this frame
        if self.last_pop_concealed:
            self._concealed += 1
        return out, has_audio

    def _future(self, hole_end: int) -> tuple[int, NDArray[np.float32]] | None:
        """Where audio resumes at or after `hole_end`, and the first _FUTURE_MS of it, if
        that much is buffered unbroken; None otherwise."""
        assert self._read_ts is not None
        ahead = self._highest_end - hole_end
        if ahead <= 0:
            return None
        flags = self._valid[self._span(hole_end, ahead)]
        if not flags.any():
            return None
        resume = hole_end + int(np.argmax(flags))
        need = self._future_len
        if resume + need > self._highest_end:
            return None
        span = self._span(resume, need)
        if not self._valid[span].all():
            return None
        return resume, self._samples[span].copy()

    def _stretch(self, count: int) -> NDArray[np.float32] | None:
        """Play the next frame a pitch period (or, when quiet, any length) shorter or longer,
        to move the delay toward the target; None when this frame is not fit for it."""
        assert self._read_ts is not None
        self._settle()
        shorten = self._delay > self._compress_above
        available = self._highest_end - self._read_ts
        extra = min(count, available - count) if shorten else 0
        if shorten and extra <= 0:
            return None
        window = self._span(self._read_ts, count + extra)
        if extra and not self._valid[window].all():
            extra = int(np.argmin(self._valid[window][count:]))  # up to the first hole
            if extra == 0:
                return None
            window = self._span(self._read_ts, count + extra)
        frame = self._samples[window]
        head = frame[:count]
        excess = abs(self._delay - self._target)
        if float(head @ head) < self._quiet_energy * count:
            overlap = min(int(self.rate_hz * _QUIET_OVERLAP_MS) // 1000, count // 4)
            step = min(excess, extra if shorten else count - overlap)
        else:
            if not shorten and self._delay >= self._expand_speech_below:
                return None  # near enough: wait for a quiet frame rather than warp a word
            if shorten and self._delay <= self._compress_speech_above:
                return None  # the same, for shortening
            recent = self._concealer.recent()
            period, correlation = pitch_period(np.concatenate([*recent, head]), self.rate_hz)
            if correlation < _STRETCH_MIN_CORRELATION:
                return None
            step = period
            overlap = period if shorten else min(period, count - period)
            if (shorten and period > min(extra, count)) or overlap <= 0:
                return None
        if step <= 0:
            return None
        if shorten:
            out = compress(frame, count, step, overlap)
            self._compressed += 1
            consumed, moved = count + step, -step
        else:
            out = expand(frame, count, step, overlap)
            self._stretched += 1
            consumed, moved = count - step, step
        self._valid[self._span(self._read_ts, consumed)] = False
        self._read_ts += consumed
        self._shift_delay(moved)
        if self._concealer.lost:
            out = self._concealer.resume(out)
        self._concealer.played(out)
        return out

    # -- bank membership -----------------------------------------------------------------

    def _bankable(self, count: int) -> bool:
        """Whether the next `count`-sample read is steady (audio there, delay in its band,
        nothing held, concealed or out of line) and the stream has an arrival history, so
        the bank can take the buffer over. A hole further ahead does not keep it out: the
        bank plays up to it."""
        read = self._read_ts
        return (
            read is not None and not self._rescaled and not self._held
            and not self._concealer.lost and not self.last_pop_concealed
            and self._transit_now_min is not None
            and read + count <= self._complete_to
            and self._highest_end - read <= self._max_delay + count
            and self._expand_below <= self._delay <= self._compress_above
        )

    def _take_back(self) -> None:
        """Take the steady-stream state back from the bank, for this buffer's own code."""
        assert self._bank is not None
        self._bank.release(self)

    # -- state ---------------------------------------------------------------------------

    @property
    def buffered_ms(self) -> float:
        """Audio between the read position and the newest sample, in milliseconds."""
        if self._banked:
            self._take_back()
        if self._read_ts is None:
            return 0.0
        return max(0, self._highest_end - self._read_ts) * 1000.0 / self.rate_hz

    @property
    def delay_ms(self) -> float:
        """Playout delay of the fastest packets of late (lowest over the last 0.5-1 s)."""
        if self._banked:
            self._take_back()
        return self._delay * 1000.0 / self.rate_hz

    @property
    def target_ms(self) -> float:
        """Delay the buffer steers to: the jitter's 95th percentile plus a margin."""
        return self._target * 1000.0 / self.rate_hz

    def statistics(self) -> JitterStatistics:
        if self._banked:
            self._take_back()
        return JitterStatistics(
            self._packets, self._late, self._resyncs, self._underruns, self._drift_drops,
            self._duplicates, self._concealed, self._stretched, self._compressed,
        )


# Columns of a JitterBank's state arrays: what a banked buffer's steady stream changes, and
# the bounds it is checked against (copied when it is banked; a spike moves the target,
# and the delay bands follow from the target as in JitterBuffer._set_bands).
(_READ, _HIGHEST, _ANCHOR, _ANCHOR_RAW, _COMPLETE_TO, _UNFLAGGED_FROM, _DELAY,
 _DELAY_NOW_MIN, _DELAY_LAST_MIN, _INTERVAL_END, _TARGET, _MIN_TARGET, _MAX_DELAY,
 _LEARNED, _PUSHED, _POPPED, _CONCEALED, _CONCEALED_TO) = range(18)
_INT_FIELDS = 18
# `_CONCEALED_TO` when no pop since the buffer was banked was concealment.
_NEVER = -(1 << 62)
(_TRANSIT_NOW_MIN, _TRANSIT_LAST_MIN, _TRANSIT_WINDOW_END, _INTERVAL_PEAK, _SPIKE,
 _MAX_TARGET) = range(6)
_FLOAT_FIELDS = 6
_BANK_FIRST_ROWS = 64
_Element = TypeVar("_Element", bound=np.generic)


def _grown(array: NDArray[_Element], rows: int) -> NDArray[_Element]:
    """`array` with `rows` rows, the new ones zero."""
    bigger = np.zeros((rows, *array.shape[1:]), array.dtype)
    bigger[: array.shape[0]] = array
    return bigger


class _RowsOf:
    """The bank rows of a list of buffers, worked out again only when the list changes:
    a room pops its buffers, and a sweep pushes them, in the same order tick after tick,
    and a buffer's row is its own while it lives. Read-only for the caller."""

    def __init__(self) -> None:
        self._buffers: list[JitterBuffer] = []
        self._rows: NDArray[np.intp] = np.zeros(0, np.intp)

    def __call__(self, buffers: list[JitterBuffer]) -> NDArray[np.intp]:
        if buffers != self._buffers:  # the same objects: compared by identity, in C
            self._buffers = list(buffers)
            self._rows = np.fromiter((buffer._row for buffer in buffers), np.intp,
                                     len(buffers))
        return self._rows


class JitterBank:
    """The playout buffers of many members at one rate, pushed and popped together.

    A bridge pushes a packet into and pops a frame out of every member's buffer each
    tick, and nearly always the buffer is steady: the packet follows on the newest audio
    and arrives within the jitter already learned, the frame is there, the delay is inside
    its band. Buffer by buffer in Python that is ~8 us per member and tick (~40 lines of
    bookkeeping); here the steady case is a few array operations over all members.

    Each buffer's ring and delay histogram are rows of the bank's arrays (`add`). A steady
    buffer is "banked": its positions, delay and arrival bookkeeping (a delay spike's new
    target, the half-second histogram update too) live in the bank's state arrays, and
    `push_many`/`pop_many` update them for all banked buffers at once, a packet after a
    gap and the pop that meets a one-frame hole (a lost packet) included. Anything else (a
    longer hole, a late, duplicate or jumping packet, a stretch, a drift drop, an
    underrun) goes to the buffer's own
    `push`/`pop`, which first takes its state back (`release`), including the frames it
    played while banked, which its Concealer remembers; the buffer is banked again once a
    read is steady (`JitterBuffer._bankable`). The output is the same, sample for sample
    and counter for counter, as pushing and popping each buffer on its own
    (tests/dsp/test_jitter_bank.py).
    """

    def __init__(self, rate_hz: int, frame_samples: int, *, capacity_ms: int = 1000) -> None:
        self.rate_hz = rate_hz
        self.frame_samples = frame_samples
        self._capacity = rate_hz * capacity_ms // 1000
        self._interval = rate_hz * _INTERVAL_MS // 1000
        self._jump_ahead = -rate_hz * _JUMP_AHEAD_MS / 1000
        # As JitterBuffer works them out from the rate: the target's margin, and the delay
        # band around the target that a steady read stays in.
        self._margin = rate_hz * _MARGIN_MS // 1000
        self._expand_offset = rate_hz * _EXPAND_BELOW_MS // 1000
        self._compress_offset = rate_hz * _COMPRESS_ABOVE_MS // 1000
        self._bin = rate_hz * _BIN_MS / 1000
        self._spike_decay = rate_hz * _SPIKE_DECAY_MS / 1000
        # A one-frame hole is filled here (`_fill_holes`) when the frames the buffer
        # played while banked cover the concealment's history (they are in its ring),
        # and a frame's loss cannot be a new talk spurt (`plc.RESUME_AFTER_MAX_MS`).
        self._future_len = rate_hz * _FUTURE_MS // 1000  # as JitterBuffer._future_len
        self._history_len = int(rate_hz * HISTORY_MS / 1000)  # as Concealer's
        self._history_pops = -(-self._history_len // frame_samples)
        self._fills = frame_samples <= int(rate_hz * RESUME_AFTER_MAX_MS / 1000)
        self._samples: NDArray[np.float32] = np.zeros((0, self._capacity), np.float32)
        self._valid: NDArray[np.bool_] = np.zeros((0, self._capacity), np.bool_)
        # Each row's frame-long windows of the ring, for reading and writing whole frames
        # by (row, position) (a sixth of the cost of indexing single samples).
        self._windows = sliding_window_view(self._samples, frame_samples, axis=1, writeable=True)
        self._histograms: NDArray[np.float64] = np.zeros((0, 0))  # width: the first buffer's
        self._ints: NDArray[np.int64] = np.zeros((0, _INT_FIELDS), np.int64)
        self._floats: NDArray[np.float64] = np.zeros((0, _FLOAT_FIELDS))
        self._banked: NDArray[np.bool_] = np.zeros(0, np.bool_)
        self._members: list[weakref.ref[JitterBuffer] | None] = []  # by row
        self._free: list[int] = []
        self._push_rows, self._pop_rows = _RowsOf(), _RowsOf()

    def add(self, buffer: JitterBuffer) -> None:
        """Move `buffer`'s ring and histogram into a row of the bank; the row is the
        buffer's while it lives.

        The buffer must be at the bank's rate with no clock scaling (G.711, L16), its ring
        must hold its largest delay plus the frames its Concealer remembers, and its
        largest target must be the other buffers' (the histograms' width).
        """
        if buffer._bank is not None:
            raise ValueError("the buffer is in a bank already")
        if buffer.rate_hz != self.rate_hz or buffer._rescaled or (
            buffer._capacity != self._capacity
        ):
            raise ValueError(f"a bank at {self.rate_hz} Hz takes unscaled buffers at that rate "
                             f"with {self._capacity} samples of ring")
        if buffer._max_delay + (HISTORY_FRAMES + 1) * self.frame_samples > self._capacity:
            raise ValueError("the buffer's ring is too short for its maximum delay")
        bins = buffer._histogram.shape[0]
        if bins != self._histograms.shape[1]:
            if any(member is not None for member in self._members):
                raise ValueError("a bank's buffers share their largest target")
            self._histograms = np.zeros((len(self._members), bins))
        if not self._free:
            self._grow()
        row = self._free.pop()
        self._samples[row] = buffer._samples
        self._valid[row] = buffer._valid
        self._histograms[row] = buffer._histogram
        self._banked[row] = False
        buffer._samples, buffer._valid = self._samples[row], self._valid[row]
        buffer._histogram = self._histograms[row]
        buffer._bank, buffer._row = self, row
        self._members[row] = weakref.ref(buffer)
        weakref.finalize(buffer, self._vacate, row)

    def _vacate(self, row: int) -> None:
        self._banked[row] = False
        self._members[row] = None
        self._free.append(row)

    def _grow(self) -> None:
        """Double the rows; the live buffers' rings move with them."""
        old = len(self._members)
        rows = max(_BANK_FIRST_ROWS, 2 * old)
        self._samples, self._valid = _grown(self._samples, rows), _grown(self._valid, rows)
        self._windows = sliding_window_view(self._samples, self.frame_samples, axis=1,
                                            writeable=True)
        self._histograms = _grown(self._histograms, rows)
        self._ints, self._floats = _grown(self._ints, rows), _grown(self._floats, rows)
        self._banked = _grown(self._banked, rows)
        self._members.extend([None] * (rows - old))
        self._free.extend(range(rows - 1, old - 1, -1))  # lowest rows first
        for row, member in enumerate(self._members[:old]):
            buffer = member() if member is not None else None
            if buffer is not None:
                buffer._samples, buffer._valid = self._samples[row], self._valid[row]
                buffer._histogram = self._histograms[row]

    # -- handing state over ------------------------------------------------------------

    def _hold(self, buffer: JitterBuffer) -> None:
        """Bank a steady buffer: its steady-stream state moves into the bank's arrays."""
        row = buffer._row
        assert buffer._read_ts is not None
        self._ints[row] = (
            buffer._read_ts, buffer._highest_end, buffer._anchor, buffer._anchor_raw,
            buffer._complete_to, buffer._unflagged_from, buffer._delay, buffer._delay_now_min,
            buffer._delay_last_min, buffer._interval_end, buffer._target, buffer._min_target,
            buffer._max_delay, buffer._learned, 0, 0, 0, _NEVER,
        )
        self._floats[row] = (
            buffer._transit_now_min, buffer._transit_last_min, buffer._transit_window_end,
            buffer._interval_peak, buffer._spike, buffer._max_target,
        )
        self._banked[row] = True
        buffer._banked = True

    def release(self, buffer: JitterBuffer) -> None:
        """Give a banked buffer its state back, as if it had done the bank's work itself."""
        row = buffer._row
        (read, buffer._highest_end, buffer._anchor, buffer._anchor_raw, buffer._complete_to,
         buffer._unflagged_from, buffer._delay, buffer._delay_now_min, buffer._delay_last_min,
         buffer._interval_end, buffer._target, _, _, learned, pushed, popped, concealed,
         concealed_to) = self._ints[row].tolist()
        (buffer._transit_now_min, buffer._transit_last_min, buffer._transit_window_end,
         buffer._interval_peak, buffer._spike, _) = self._floats[row].tolist()
        buffer._read_ts = read
        buffer._learned = bool(learned)
        buffer._set_bands()
        buffer._packets += pushed
        if pushed:
            buffer._consecutive_late = 0
        buffer._concealed += concealed
        buffer.last_pop_concealed = read == concealed_to  # the last pop filled a hole
        self._replay(buffer, read, min(popped, HISTORY_FRAMES))
        self._banked[row] = False
        buffer._banked = False

    def _replay(self, buffer: JitterBuffer, read: int, frames: int) -> None:
        """Hand the buffer's Concealer the last `frames` frames it played while banked,
        oldest first, copied from its ring, where they still are: nothing is written more
        than the maximum delay ahead of the read position (`add`), and the frames
        `pop_many` returned could not be changed (read-only).

        A copy, not the frames returned: a frame of a steady pop is a row of that tick's
        array for the whole room, and a history holding it would keep all of it alive (at
        0.2 % loss, 500 members kept ~160 MB of such arrays)."""
        if frames:
            frame = self.frame_samples
            history = buffer._samples[buffer._span(read - frames * frame, frames * frame)]
            buffer._concealer.played_many(history.reshape(frames, frame).copy())

    # -- the steady stream, all buffers at once ----------------------------------------

    def _read(self, rows: NDArray[np.intp], start: NDArray[np.int64]) -> NDArray[np.float32]:
        """A frame from `start` in each row's ring."""
        offset = start % self._capacity
        wrapping = offset > self._capacity - self.frame_samples  # one in 50 frames
        if not wrapping.any():
            frames: NDArray[np.float32] = self._windows[rows, offset]
            return frames
        frames = np.empty((rows.shape[0], self.frame_samples), np.float32)
        whole = ~wrapping
        frames[whole] = self._windows[rows[whole], offset[whole]]
        frames[wrapping] = np.take(
            self._samples, self._flat(rows[wrapping], start[wrapping], self.frame_samples))
        return frames

    def _write(self, rows: NDArray[np.intp], start: NDArray[np.int64],
               frames: NDArray[np.float32]) -> None:
        """Write a frame (any length) at `start` into each row's ring (each row once)."""
        length = frames.shape[1]
        if length != self.frame_samples:
            self._samples.reshape(-1)[self._flat(rows, start, length)] = frames
            return
        offset = start % self._capacity
        wrapping = offset > self._capacity - length
        if not wrapping.any():
            self._windows[rows, offset] = frames
            return
        whole = ~wrapping
        self._windows[rows[whole], offset[whole]] = frames[whole]
        self._samples.reshape(-1)[
            self._flat(rows[wrapping], start[wrapping], self.frame_samples)] = frames[wrapping]

    def _flat(self, rows: NDArray[np.intp], start: NDArray[np.int64], count: int
              ) -> NDArray[np.int64]:
        """Indices into the flattened rings of `count` positions from `start` in each row."""
        capacity = self._capacity
        offset = start % capacity
        flat = (rows * capacity + offset)[:, None] + np.arange(count)
        wrapping = np.flatnonzero(offset > capacity - count)  # rarely any: one in 50 frames
        if wrapping.size:
            flat[wrapping] -= capacity * (offset[wrapping, None] + np.arange(count) >= capacity)
        return flat

    def push_many(
        self, buffers: list[JitterBuffer], timestamps: list[int],
        frames: NDArray[np.float32], arrivals: list[float],
    ) -> None:
        """`buffers[k].push(timestamps[k], frames[k], arrivals[k])` for every k, in order.

        Every buffer must be in this bank; one may appear more than once (its packets
        are placed in the order given). A buffer's second packet of a sweep (the one
        before came a little late, or a burst after a stall: on a jittery link, every
        tick for some members) is as steady as its first: the packets go in rounds, each
        buffer's n-th in the n-th, every round over the bank's arrays as the round before
        left them.
        """
        count = len(buffers)
        if not count:
            return
        rows = self._push_rows(buffers)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        if not np.any(ordered[1:] == ordered[:-1]):
            self._push_round(buffers, rows, timestamps, frames, arrivals)
            return
        # Each packet's round: its place among its buffer's packets, in the order given.
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        place = np.arange(count) - np.repeat(starts, np.diff(np.r_[starts, count]))
        rounds = np.empty(count, np.intp)
        rounds[order] = place
        for round_ in range(int(place.max()) + 1):
            which = np.flatnonzero(rounds == round_)
            picked = which.tolist()
            self._push_round([buffers[k] for k in picked], rows[which],
                             [timestamps[k] for k in picked], frames[which],
                             [arrivals[k] for k in picked])

    def _push_round(
        self, buffers: list[JitterBuffer], rows: NDArray[np.intp], timestamps: list[int],
        frames: NDArray[np.float32], arrivals: list[float],
    ) -> None:
        """`push_many` for packets of different buffers: the steady ones together, the
        others buffer by buffer."""
        length = frames.shape[1]
        fast = self._banked[rows]
        ints, floats = self._ints[rows], self._floats[rows]
        stamps = np.array(timestamps, np.int64)
        arrival = np.array(arrivals, np.float64)
        start = ints[:, _ANCHOR] + (
            (stamps - ints[:, _ANCHOR_RAW] + _HALF_RANGE) % _RANGE - _HALF_RANGE
        )
        end = start + length
        read = ints[:, _READ]
        transit = arrival * self.rate_hz - start
        now_min, last_min = floats[:, _TRANSIT_NOW_MIN], floats[:, _TRANSIT_LAST_MIN]
        relative = transit - np.minimum(last_min, now_min)
        within = relative <= floats[:, _MAX_TARGET]
        peak = floats[:, _INTERVAL_PEAK]
        peak = np.where(within & (relative > peak), relative, peak)
        rolls = start >= ints[:, _INTERVAL_END]
        fast &= (
            (start >= ints[:, _HIGHEST])  # follows on, or after a gap: no duplicate or overlap
            & (start >= read)  # not late
            & (end - read <= np.minimum(ints[:, _MAX_DELAY] + length, self._capacity))
            & (relative >= self._jump_ahead)  # no timestamp jump
        )
        steady = np.flatnonzero(fast)
        if steady.size:
            # All of them, most sweeps: the arrays as they are, not copies of every row.
            pick = slice(None) if steady.size == rows.size else steady
            self._push_steady(rows[pick], ints[pick], floats[pick], frames[pick],
                              stamps[pick], arrival[pick], start[pick], transit[pick],
                              relative[pick], peak[pick], rolls[pick],
                              (within & (relative > floats[:, _SPIKE]))[pick])
        for k in np.flatnonzero(~fast).tolist():
            buffers[k].push(timestamps[k], frames[k], arrivals[k])

    def _push_steady(
        self, rows: NDArray[np.intp], ints: NDArray[np.int64], floats: NDArray[np.float64],
        frames: NDArray[np.float32], stamps: NDArray[np.int64], arrival: NDArray[np.float64],
        start: NDArray[np.int64], transit: NDArray[np.float64],
        relative: NDArray[np.float64], peak: NDArray[np.float64], rolls: NDArray[np.bool_],
        spikes: NDArray[np.bool_],
    ) -> None:
        """`JitterBuffer.push` for packets that follow on or come after a gap, all checks
        passed: the ring write (`_write`), `_relative_delay` (a spike retargets:
        `_set_target`) and `_note_delay` (an interval's end updates the histogram: `_learn`).

        After a gap (a packet lost, or still on its way) the buffer stays banked: its pops
        run here up to the hole, and only the pop that meets the hole is its own."""
        if spikes.any():
            self._retarget(ints, floats, np.flatnonzero(spikes), relative)
        end = start + frames.shape[1]
        self._write(rows, start, frames)
        for k in np.flatnonzero(start > ints[:, _HIGHEST]).tolist():
            self._flag_after_gap(int(rows[k]), ints[k], int(start[k]), int(end[k]))
        complete = ints[:, _COMPLETE_TO]
        ints[:, _COMPLETE_TO] = np.where((start <= complete) & (complete < end), end, complete)
        ints[:, _HIGHEST] = end
        ints[:, _ANCHOR] = start
        ints[:, _ANCHOR_RAW] = stamps
        window_over = arrival >= floats[:, _TRANSIT_WINDOW_END]
        now_min = floats[:, _TRANSIT_NOW_MIN]
        floats[:, _TRANSIT_LAST_MIN] = np.where(window_over, now_min,
                                                floats[:, _TRANSIT_LAST_MIN])
        floats[:, _TRANSIT_NOW_MIN] = np.where(window_over, transit,
                                               np.minimum(now_min, transit))
        floats[:, _TRANSIT_WINDOW_END] = np.where(window_over, arrival + _TRANSIT_WINDOW_S,
                                                  floats[:, _TRANSIT_WINDOW_END])
        floats[:, _INTERVAL_PEAK] = peak
        learning = np.flatnonzero(rolls & (peak >= 0))
        if learning.size:
            self._learn(rows, ints, floats, learning)
        delay = start - ints[:, _READ] + np.maximum(relative, 0.0).astype(np.int64)
        delay_now_min = ints[:, _DELAY_NOW_MIN]
        ints[:, _INTERVAL_END] = np.where(rolls, start + self._interval, ints[:, _INTERVAL_END])
        ints[:, _DELAY_LAST_MIN] = np.where(rolls, delay_now_min, ints[:, _DELAY_LAST_MIN])
        ints[:, _DELAY_NOW_MIN] = np.where(rolls, delay, np.minimum(delay_now_min, delay))
        ints[:, _DELAY] = np.minimum(ints[:, _DELAY_LAST_MIN], ints[:, _DELAY_NOW_MIN])
        ints[:, _PUSHED] += 1
        self._ints[rows] = ints
        self._floats[rows] = floats

    def _flag_after_gap(self, row: int, ints: NDArray[np.int64], start: int, end: int) -> None:
        """`JitterBuffer._write`'s flags for a packet written after a gap: the audio before
        the gap, written without flags, gets them (`_settle`), then the packet's own; the
        positions of the gap keep theirs down: no audio there."""
        read, highest = int(ints[_READ]), int(ints[_HIGHEST])
        settled_from = max(read, int(ints[_UNFLAGGED_FROM]))
        valid = self._valid[row]
        for first, last in ((settled_from, highest), (start, end)):
            if first < last:
                valid[np.arange(first, last) % self._capacity] = True
        ints[_UNFLAGGED_FROM] = end  # the new highest end

    def _learn(self, rows: NDArray[np.intp], ints: NDArray[np.int64],
               floats: NDArray[np.float64], learning: NDArray[np.intp]) -> None:
        """`JitterBuffer._learn` for the rows `learning` (of `rows`), whose interval just
        ended with a peak: the peak into the histogram, the spike's decay, a new target."""
        histograms = self._histograms[rows[learning]]
        histograms *= _FORGET
        bins = histograms.shape[1]
        peak = floats[learning, _INTERVAL_PEAK]
        histograms[np.arange(learning.size),
                   np.minimum((peak / self._bin).astype(np.int64), bins - 1)] += 1.0 - _FORGET
        self._histograms[rows[learning]] = histograms
        tail = np.add.accumulate(histograms[:, ::-1], axis=1)
        # `searchsorted(..., "right")` on each row: how many of the (rising) sums are <= it.
        spilling = np.count_nonzero(tail <= ((1.0 - _QUANTILE) * tail[:, -1])[:, None], axis=1)
        percentile = (bins - spilling) * self._bin
        spike = np.maximum(0.0, floats[learning, _SPIKE] - self._spike_decay)
        floats[learning, _SPIKE] = spike
        self._set_targets(ints, floats, learning, np.maximum(percentile, spike))
        ints[learning, _LEARNED] = 1
        floats[learning, _INTERVAL_PEAK] = -1.0

    def _retarget(self, ints: NDArray[np.int64], floats: NDArray[np.float64],
                  spiking: NDArray[np.intp], relative: NDArray[np.float64]) -> None:
        """The spike and `JitterBuffer._set_target`'s target for the rows `spiking` (its
        bands are worked out from the target where needed)."""
        spike = relative[spiking]
        floats[spiking, _SPIKE] = spike
        self._set_targets(ints, floats, spiking, spike)

    def _set_targets(self, ints: NDArray[np.int64], floats: NDArray[np.float64],
                     which: NDArray[np.intp], relative: NDArray[np.float64]) -> None:
        """`JitterBuffer._set_target(relative)` for the rows `which` (a spike or the
        histogram has been seen there): the margin above, within the bounds."""
        ints[which, _TARGET] = np.minimum(
            np.maximum(relative.astype(np.int64) + self._margin, ints[which, _MIN_TARGET]),
            floats[which, _MAX_TARGET].astype(np.int64),
        )

    def pop_many(
        self, buffers: list[JitterBuffer], count: int
    ) -> tuple[NDArray[np.float32], list[bool]]:
        """`buffers[k].pop(count)` for every k: the frames as one read-only `(k, count)`
        array, whose rows the caller can work on together, and whether each holds audio.
        Every buffer must be in this bank, each once.

        The frames are read-only: a Concealer remembers the frames its buffer played, as
        the caller left them (`JitterBuffer.pop`'s frames may be changed in place, and the
        concealment follows), and a buffer leaving the bank is handed them from its ring
        (`_replay`), so the bank keeps no arrays of past ticks. A buffer that pops on its
        own (a loss, a stretch) has its frame copied into its row: a tick with a few of
        those is still one array, not hundreds of row views stacked again."""
        total = len(buffers)
        heard = [True] * total
        if not total:
            return np.zeros((0, count), np.float32), heard
        rows = self._pop_rows(buffers)
        fast = self._banked[rows]
        if count != self.frame_samples:
            fast[:] = False
        ints = self._ints[rows]
        read, highest, delay = ints[:, _READ], ints[:, _HIGHEST], ints[:, _DELAY]
        target = ints[:, _TARGET]
        fast &= (
            (read < highest)  # audio buffered
            & (highest - read <= ints[:, _MAX_DELAY] + count)  # no drift drop
            & (read + count <= ints[:, _COMPLETE_TO])  # no hole
            & (target - self._expand_offset <= delay)  # no stretch: inside the band
            & (delay <= target + self._compress_offset)
        )
        # Every row's frame read at once (a copy): those not steady are replaced below.
        frames = (self._read(rows, read) if count == self.frame_samples
                  else np.empty((total, count), np.float32))
        steady = np.flatnonzero(fast)
        if steady.size == total:
            self._popped_steady(rows, read, ints[:, _UNFLAGGED_FROM], count)
        else:
            if steady.size:
                self._popped_steady(rows[steady], read[steady], ints[steady, _UNFLAGGED_FROM],
                                    count)
            others = np.flatnonzero(~fast)
            filled = (self._fill_holes(buffers, others, rows[others], ints[others], frames,
                                       heard)
                      if count == self.frame_samples and self._fills else set())
            for k in others.tolist():
                if k in filled:
                    continue
                buffer = buffers[k]
                frames[k], heard[k] = buffer.pop(count)
                if count == self.frame_samples and buffer._bankable(count):
                    self._hold(buffer)
        frames.flags.writeable = False
        return frames, heard

    def _fill_holes(
        self, buffers: list[JitterBuffer], which: NDArray[np.intp], rows: NDArray[np.intp],
        ints: NDArray[np.int64], frames: NDArray[np.float32], heard: list[bool],
    ) -> set[int]:
        """`JitterBuffer.pop` for the banked buffers among `buffers[which]` (rows `rows`,
        state `ints`) whose next frame is lost and the audio after it buffered: their
        holes filled together (`plc.fill_holes`, what each Concealer would make), the
        fill written into the ring where it played (a later `_replay` hands it on as the
        history: a stretch right after it searches the pitch of the frame played last),
        the buffers left in the bank. Their frames go into `frames` and `heard`;
        returns the indices (into `buffers`) done.

        On a lossy link this is most of a tick's losses (one packet at a time); a buffer
        popping on its own costs ten times as much, and the pop after it as well."""
        frame, future = self.frame_samples, self._future_len
        read, highest = ints[:, _READ], ints[:, _HIGHEST]
        unflagged = ints[:, _UNFLAGGED_FROM]
        after = read + frame
        maybe = np.flatnonzero(
            self._banked[rows]
            & (read >= 0)  # before the timeline's start nothing was lost
            & (highest - read <= ints[:, _MAX_DELAY] + frame)  # no drift drop
            & (after > ints[:, _COMPLETE_TO])  # a hole in the frame
            # Positions from `_UNFLAGGED_FROM` on hold audio without their flags: the
            # frame lies below it, so its flags say where the hole is.
            & (after <= unflagged)
            & (after + future <= highest)
            & (ints[:, _POPPED] >= self._history_pops)  # its history is in the ring
        )
        if not maybe.size:
            return set()
        which, rows, read = which[maybe], rows[maybe], read[maybe]
        after, highest, unflagged = after[maybe], highest[maybe], unflagged[maybe]
        flags = self._valid.reshape(-1)
        # The whole frame lost, and audio at every position after it up to the highest end
        # (positions from `_UNFLAGGED_FROM` on hold audio whatever their flags say): at
        # least the future a fill needs, and no other hole known yet.
        width = int((highest - after).max())
        ahead = after[:, None] + np.arange(width)
        fills = (
            ~flags[self._flat(rows, read, frame)].any(axis=1)
            & (flags[self._flat(rows, after, width)] | (ahead >= unflagged[:, None])).all(axis=1)
            & np.array([buffers[k].conceal for k in which.tolist()], np.bool_)
        )
        if not fills.any():
            return set()
        if not fills.all():
            which, rows, read, after = which[fills], rows[fills], read[fills], after[fills]
            highest = highest[fills]
        history = self._history_len
        filled = fill_holes(np.take(self._samples, self._flat(rows, read - history, history)),
                            np.take(self._samples, self._flat(rows, after, future)),
                            frame, self.rate_hz)
        self._samples.reshape(-1)[self._flat(rows, read, frame)] = filled
        frames[which] = filled
        audible = np.any(filled, axis=1)
        state = self._ints
        state[rows, _READ] = after
        state[rows, _COMPLETE_TO] = highest  # no hole after this frame (above)
        state[rows, _POPPED] += 1
        state[rows, _CONCEALED] += audible
        state[rows, _CONCEALED_TO] = np.where(audible, after, state[rows, _CONCEALED_TO])
        done: list[int] = which.tolist()
        sounds: list[bool] = np.asarray(audible).tolist()
        for k, sound in zip(done, sounds, strict=True):
            heard[k] = sound
        return set(done)

    def _popped_steady(
        self, rows: NDArray[np.intp], read: NDArray[np.int64],
        unflagged_from: NDArray[np.int64], count: int,
    ) -> None:
        """The rest of `JitterBuffer.pop` for frames `_read` took where they were there
        and the delay inside its band: flags cleared, the read position moved on."""
        flagged = np.flatnonzero(read < unflagged_from)
        if flagged.size:
            self._valid.reshape(-1)[self._flat(rows[flagged], read[flagged], count)] = False
        self._ints[rows, _READ] = read + count
        self._ints[rows, _POPPED] += 1
