"""Acoustic echo: a cheap detector for every member, and a canceller for those that echo.

A member's echo is what we sent it (the reference: the member's mix at its own rate) coming
back in its microphone after the network round trip, its jitter buffer and its room. Nothing
here knows members, rooms or codecs: the detector works on per-frame powers, one state row
per stream (like dsp.dtmf), and the canceller is one object per stream fed one frame a call.

Why written here: speexdsp (the model for the canceller, J.-M. Valin's MDF) is C, and PyPI
has no maintained binding that fits: `aec-audio-processing` (and its fork) wrap WebRTC's APM
at 10 ms frames with a build of their own, one release each (2025), and the speex bindings
there are unmaintained. The maths is a handful of FFTs per frame, which numpy does well.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import fft, signal

SUPPORTED_RATES_HZ = (8000, 16000)
FRAME_MS = 20

# --- Detector --------------------------------------------------------------------------
# Log-power envelopes of the microphone and of the reference, one value per 20 ms frame,
# are correlated over the last 3 s at every lag up to 500 ms. Echo makes the microphone's
# envelope follow the reference's (near-end speech alone does not, and turn-taking makes it
# anti-correlated), so a high correlation at some lag means echo at that delay.
DETECTOR_WINDOW_FRAMES = 150  # 3 s
DETECTOR_MAX_LAG_FRAMES = 25  # 500 ms: network round trip plus jitter buffers
# One check per stream every 0.5 s, in the phase of those 25 frames its state was given
# (`echo_detector_state`): the caller chooses which streams are checked together. A check
# call costs 50-250 us of numpy overhead and 4-15 us a stream (this VM on its fast and
# slow days): many streams in a call, but not hundreds in one tick (2.9 ms at 200).
DETECTOR_CHECK_FRAMES = 25
# Envelope correlation that counts as echo. Far-end-only echo gives 0.9 and more; an
# echo-free line with both sides talking stays under 0.4 (tests/dsp/test_echo.py).
DETECTOR_MIN_CORRELATION = 0.6
DETECTOR_CONFIRM_CHECKS = 2  # echo is reported after 2 checks in a row find it (1 s) ...
DETECTOR_RELEASE_CHECKS = 20  # ... and forgotten after 20 checks in a row (10 s) do not
# Powers are floored here (-70 dBFS) so silence on both sides reads as equal, not -inf.
DETECTOR_FLOOR_DB = -70.0
# A check needs the far end to have talked: its envelope must vary this much (dB, std).
DETECTOR_MIN_REFERENCE_SPREAD_DB = 4.0

_RING = DETECTOR_WINDOW_FRAMES + DETECTOR_MAX_LAG_FRAMES
# Column j picks the frame-to-frame changes of the reference window at lag j (`_check`).
_WINDOW_BAND = np.array([
    [float(lag <= change < lag + DETECTOR_WINDOW_FRAMES - 1)
     for lag in range(DETECTOR_MAX_LAG_FRAMES + 1)]
    for change in range(_RING - 1)
])
_COUNT, _DELAY, _HITS, _MISSES, _PHASE = 0, 1, 2, 3, 4
_HEADER = 5
_MIC = slice(_HEADER, _HEADER + _RING)
_REFERENCE = slice(_HEADER + _RING, _HEADER + 2 * _RING)
DETECTOR_STATE_SIZE = _HEADER + 2 * _RING


def echo_detector_state(phase: int = 0) -> NDArray[np.float32]:
    """Return the detector state of a stream that starts now: no history, no echo.

    Its checks come every DETECTOR_CHECK_FRAMES frames, when its frame count plus `phase`
    is a multiple of that: streams that start together with different phases are checked
    in different frames, and a stream started k frames after another with a phase k
    higher is checked in the same ones. `(DETECTOR_STATE_SIZE,)` float32 (355 values);
    stack one row per stream.
    """
    state = np.full(DETECTOR_STATE_SIZE, DETECTOR_FLOOR_DB, dtype=np.float32)
    state[:_HEADER] = (0.0, -1.0, 0.0, 0.0, phase % DETECTOR_CHECK_FRAMES)
    return state


def detect_echo(
    mic_power: NDArray[np.floating[Any]],
    reference_power: NDArray[np.floating[Any]],
    states: NDArray[np.floating[Any]],
) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
    """Follow `(k,)` streams by one 20 ms frame and say which show echo, at what delay.

    `mic_power` is the mean square of each stream's microphone frame (what came back),
    `reference_power` that of the frame we sent it this tick, both in full-scale units
    (1.0 = int16 full scale), any rate. `states` is `(k, DETECTOR_STATE_SIZE)`: the rows the
    last call returned, or `echo_detector_state()`; the inputs are left alone.
    Returns each stream's echo delay in ms (a multiple of 20 ms), NaN where it shows no
    echo, and the new states.
    """
    states = np.array(states, dtype=np.float32)  # a copy: the caller's rows stay as they were
    return update_echo_detectors(mic_power, reference_power, states), states


def update_echo_detectors(
    mic_power: NDArray[np.floating[Any]],
    reference_power: NDArray[np.floating[Any]],
    states: NDArray[np.float32],
) -> NDArray[np.float64]:
    """`detect_echo` with the states updated where they are, for a caller that keeps them
    in one array from tick to tick: a bridge's rows are 1.4 kB a stream, and copying them
    all every tick is most of the detector's memory traffic, though a tick writes two
    values a row and reads the rows of the few streams checked. Returns the delays.
    """
    if states.ndim != 2 or states.shape[1] != DETECTOR_STATE_SIZE or (
        states.dtype != np.float32
    ):
        raise ValueError(f"expected (k, {DETECTOR_STATE_SIZE}) states of float32, "
                         f"got {states.shape} of {states.dtype}")
    count = states[:, _COUNT].astype(np.int64)
    slot = count % _RING
    rows = np.arange(states.shape[0])
    states[rows, _MIC.start + slot] = _log_power(mic_power)
    states[rows, _REFERENCE.start + slot] = _log_power(reference_power)
    count += 1
    states[:, _COUNT] = count
    phase = states[:, _PHASE].astype(np.int64)
    due = np.flatnonzero((count >= _RING) & ((count + phase) % DETECTOR_CHECK_FRAMES == 0))
    if due.size:
        _check(states, due, count[due] % _RING)
    delay = states[:, _DELAY].astype(np.float64) * FRAME_MS
    delay[states[:, _DELAY] < 0] = np.nan
    return delay


def _log_power(power: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """Return `power` in dBFS, floored at DETECTOR_FLOOR_DB."""
    floor = 10.0 ** (DETECTOR_FLOOR_DB / 10.0)
    level: NDArray[np.float32] = (
        10.0 * np.log10(np.maximum(np.asarray(power, dtype=np.float64), floor))
    ).astype(np.float32)
    return level


def _check(states: NDArray[np.float32], due: NDArray[np.intp], oldest: NDArray[np.int64]) -> None:
    """Correlate the envelopes of the `due` rows at every lag and update their verdicts.

    Runs for the rows whose phase comes up, a few in each call, so its cost is mostly
    numpy's per call: one gather per envelope and the header read once keep the calls few.
    """
    order = oldest[:, None] + np.arange(_RING)  # ring slots, oldest first
    order[order >= _RING] -= _RING  # (a modulo of int64 costs three times as much)
    rows = due[:, None]
    mic = states[rows, _MIC.start + order[:, _RING - DETECTOR_WINDOW_FRAMES :]]
    reference = states[rows, _REFERENCE.start + order]
    spread = reference[:, -DETECTOR_WINDOW_FRAMES:].std(axis=1)
    # Frame-to-frame changes of the envelopes, not the envelopes: a line and the room that
    # both start (or fall silent) inside the window make two steps that correlate at every
    # lag, and once made every new member look echoic. Echo follows each syllable.
    mic = np.diff(mic, axis=1)
    mic -= mic.mean(axis=1, keepdims=True)
    changes = np.diff(reference, axis=1)
    length = DETECTOR_WINDOW_FRAMES - 1
    # windows[:, j] is the reference delayed by (max lag - j) frames against `mic`. With
    # `mic` centred, each window's mean drops out of the products, and its centred energy
    # comes from the window sums of the changes and their squares (one product with a
    # band of ones): no (k, lags, window) array is made.
    windows = np.lib.stride_tricks.sliding_window_view(changes, length, axis=1)
    products = np.einsum("kw,kjw->kj", mic, windows)
    powers = np.empty((2, *changes.shape))
    powers[0] = changes
    np.square(powers[0], out=powers[1])
    window_sums = powers @ _WINDOW_BAND
    window_energy = window_sums[1] - window_sums[0] ** 2 / length
    mic_energy = np.einsum("kw,kw->k", mic, mic)[:, None]
    norms = np.sqrt(mic_energy * np.maximum(window_energy, 0.0))
    correlation = products / np.maximum(norms, 1e-9)
    best = np.argmax(correlation, axis=1)
    peak = correlation[np.arange(due.size), best]
    judged = spread >= DETECTOR_MIN_REFERENCE_SPREAD_DB  # a silent far end proves nothing
    found = judged & (peak >= DETECTOR_MIN_CORRELATION)
    missed = judged & ~found
    header = states[due, :_HEADER]
    hits = np.where(found, header[:, _HITS] + 1, np.where(missed, 0, header[:, _HITS]))
    misses = np.where(missed, header[:, _MISSES] + 1, np.where(found, 0, header[:, _MISSES]))
    delay = header[:, _DELAY]
    lag = (DETECTOR_MAX_LAG_FRAMES - best).astype(np.float32)
    delay = np.where(found & ((hits >= DETECTOR_CONFIRM_CHECKS) | (delay >= 0)), lag, delay)
    delay = np.where(misses >= DETECTOR_RELEASE_CHECKS, -1.0, delay)
    header[:, _HITS] = hits
    header[:, _MISSES] = misses
    header[:, _DELAY] = delay
    states[due, :_HEADER] = header


# --- Canceller -------------------------------------------------------------------------
# Internally samples are in int16 units (x 32768), so the small regularising constants
# below read as levels: 1 is one LSB.
_SCALE = 32768.0
# Bulk delay: GCC-PHAT of microphone and reference decimated to 2 kHz (speech's echo is
# strongest below 1 kHz; 0.5 ms resolution) over the last 4 s. The decimated history is
# kept up to date at each check (one filter call over the frames since the last one).
# Checked every 0.1 s until found (every 0.5 s once a whole window went by without), then
# every 2 s; a delay must be seen twice in a row, or once very clearly.
DELAY_WINDOW_S = 4.0
DELAY_SEARCH_PERIOD_S = 0.1
DELAY_SLOW_SEARCH_PERIOD_S = 0.5
DELAY_RECHECK_PERIOD_S = 2.0
DELAY_TOLERANCE_MS = 2.0  # closer than this to the current delay: no change
# Two estimates this close confirm each other (the earlier is taken): the first strong
# arrival of a room can move by a few ms between checks, and the margin covers that.
DELAY_CONFIRM_TOLERANCE_MS = 10.0
_DELAY_RATE_HZ = 2000
# Clarity (see estimate_delay) that counts as a delay when seen twice in a row, and that
# counts at once.
DELAY_MIN_CLARITY = 10.0
DELAY_SURE_CLARITY = 20.0
DELAY_DIRECT_PATH_SHARE = 0.3
DELAY_DIRECT_PATH_SEARCH_MS = 40.0
# The far end must have talked this long (20 ms frames above -50 dBFS) in the window.
DELAY_MIN_ACTIVE_S = 0.3
_ACTIVE_POWER = 10.0 ** (-50.0 / 10.0) * _SCALE**2
# The filter starts this much before the estimated delay, for paths whose first
# reflections come before their strongest one and for small shifts of the delay.
DELAY_MARGIN_MS = 12.0
# When a delay is taken, the filter first adapts over the history kept for the search (up
# to this long, this many passes), so it has learnt the echo heard before the delay was
# known instead of starting then. A one-off cost of a few ms per found delay.
PRETRAIN_S = 1.0
PRETRAIN_PASSES = 2
# Two-path switching (Valin, "On adjusting the learning rate in frequency domain echo
# cancellation with double-talk", IEEE TASLP 2007; as speexdsp mdf.c does it).
_VAR1_SMOOTH, _VAR2_SMOOTH = 0.36, 0.7225
_VAR1_UPDATE, _VAR2_UPDATE = 0.5, 0.25
_VAR_BACKTRACK = 4.0
_MIN_LEAK = 0.005
_INITIAL_STEP = 0.25  # NLMS step until the leak estimate is usable
_PRETRAIN_STEP = 0.5  # ... and while pre-training on the history
# Residual echo suppression: the least gain while only echo is heard, and while the near
# end talks (the suppressor backs off then, so the talker is not cut).
SUPPRESS_ECHO_DB = -40.0
SUPPRESS_DOUBLE_TALK_DB = -15.0
_OVERSUBTRACTION = 2.0
# Reverberation beyond the filter's tail: the residual estimate decays at most this much
# per frame (power), -2.2 dB per 20 ms: an RT60 of about 550 ms, an ordinary office's. With
# 0.4 (300 ms) the tail was under-estimated and ERLE at 2 s was 24.1 dB at 16 kHz with a
# 200 ms path; now 26.1, near-end loss in double talk 0.6-1.3 dB (0.5-1.1 before).
_RESIDUAL_DECAY = 0.6
# Near end active: the error has this much more power than the residual echo estimate.
_DOUBLE_TALK_RATIO = 4.0
_ERLE_SMOOTHING = 0.05
# Rows of the per-frame block FFT: the background filter's zero-padded error and echo
# estimate (MDF gradient, leak estimate), the foreground's Hann-windowed 2-frame error and
# echo blocks (suppressor powers), and its unwindowed error block (the suppressor's input).
_BACK_ERROR, _BACK_ECHO, _WINDOWED_ERROR, _WINDOWED_ECHO, _ERROR_BLOCK = range(5)


class EchoCanceller:
    """Cancel one stream's echo: bulk delay, two-path MDF filter, residual suppression.

    Call `process` once per frame, in order, with the microphone frame (after the jitter
    buffer, before VAD) and the frame sent to the stream on the same tick. The canceller
    keeps the reference history the echo delay needs. Until it has found the delay the
    microphone passes unchanged.

    Filter: partitioned-block frequency-domain adaptive filter (MDF, Soo & Pang, IEEE
    TASSP 38(2), 1990) with frame-sized blocks over `tail_ms`, a background filter that
    always adapts at a rate from the estimated residual-to-error ratio (Valin 2007), and a
    foreground filter that gives the output and copies the background only when it
    cancels better, so double talk cannot make the output diverge. As speexdsp does
    (AUMDF), the gradient constraint (an IFFT/FFT pair per partition) is applied to the
    newest partition and one other in turn each frame, not to all.
    """

    def __init__(
        self, rate_hz: int, frame_samples: int, *, tail_ms: int = 128, max_delay_ms: int = 500
    ) -> None:
        if rate_hz not in SUPPORTED_RATES_HZ:
            raise ValueError(f"echo cancelling runs at {SUPPORTED_RATES_HZ} Hz, not {rate_hz}")
        if frame_samples <= 0 or frame_samples % 2:
            raise ValueError(f"frame_samples must be positive and even, not {frame_samples}")
        if tail_ms <= 0 or max_delay_ms < 0:
            raise ValueError("tail_ms must be positive and max_delay_ms not negative")
        self.rate_hz = rate_hz
        self.frame_samples = n = frame_samples
        self._margin = round(DELAY_MARGIN_MS * rate_hz / 1000)
        self._max_delay = round(max_delay_ms * rate_hz / 1000)
        self._partitions = math.ceil((tail_ms * rate_hz / 1000 + self._margin) / n)
        # Full-rate history, written twice (at i and i + size) so that any window of it is
        # one slice: the delay search, the aligned reference and pre-training read it.
        window = round(DELAY_WINDOW_S * rate_hz)
        self._ring_size = n * math.ceil((window + self._max_delay + 2 * n) / n)
        self._rings = np.zeros((2, 2 * self._ring_size))  # microphone, reference
        self._written = 0  # samples written so far
        # The same history at 2 kHz for the delay search: a stateful anti-aliasing filter
        # (the same on both signals, so their cross-spectrum's phase is untouched).
        self._factor = rate_hz // _DELAY_RATE_HZ
        self._anti_alias = signal.ellip(6, 0.5, 50.0, 850.0, fs=rate_hz, output="sos")
        self._anti_alias_state = np.zeros((self._anti_alias.shape[0], 2, 2))
        self._low_window = round((DELAY_WINDOW_S * rate_hz + self._max_delay) / self._factor)
        self._low_ring = np.zeros((2, 2 * self._low_window))
        self._low_written = 0
        self._decimated = 0  # full-rate samples decimated so far
        self._frame_index = 0
        self._search_frames = round(DELAY_SEARCH_PERIOD_S * 1000 / FRAME_MS)
        self._slow_search_frames = round(DELAY_SLOW_SEARCH_PERIOD_S * 1000 / FRAME_MS)
        self._recheck_frames = round(DELAY_RECHECK_PERIOD_S * 1000 / FRAME_MS)
        self._candidate: int | None = None
        self._delay: int | None = None
        self._initial_step = _INITIAL_STEP
        self._lag = 0  # the reference's shift in front of the filter: delay less the margin
        self._block_window = signal.get_window("hann", 2 * n)
        self._fade_in = np.linspace(0.0, 1.0, n)
        # Folds a real cepstrum onto positive quefrencies (see _minimum_phase_response).
        self._fold = np.zeros(2 * n)
        self._fold[0] = self._fold[n] = 1.0
        self._fold[1:n] = 2.0
        self._reset_filter()

    def _reset_filter(self) -> None:
        """Forget the echo path: both filters, step control and suppression state."""
        m, n = self._partitions, self.frame_samples
        bins = n + 1
        self._spectra = np.zeros((m, bins), dtype=np.complex128)  # newest block first
        self._filters = np.zeros((2, m, bins), dtype=np.complex128)  # foreground, background
        self._power = np.zeros(bins)  # smoothed far-end power per bin
        self._blocks = np.zeros((5, 2 * n))  # see _BACK_ERROR ..
        self._error_block = np.zeros(2 * n)  # the foreground's last two error frames
        self._echo_block = np.zeros(2 * n)  # ... and echo estimates
        self._constrained = 0  # the partition constrained last, besides the newest
        self._error_average = np.zeros(bins)
        self._echo_average = np.zeros(bins)
        self._pey, self._pyy = 1.0, 1.0
        self._leak = 1.0
        self._davg1 = self._davg2 = self._dvar1 = self._dvar2 = 0.0
        self._adapted = False
        self._sum_adapt = 0.0
        self._residual = np.zeros(bins)
        self._double_talk = False
        self._mic_smoothed = self._out_smoothed = 0.0

    @property
    def delay_ms(self) -> float | None:
        """The bulk echo delay in use, or None while it is still unknown."""
        return None if self._delay is None else 1000.0 * self._delay / self.rate_hz

    @property
    def erle_db(self) -> float:
        """Echo return loss enhancement so far: microphone over output power, in dB.

        Smoothed over the frames where the far end talks and the near end does not.
        """
        if self._out_smoothed <= 0.0 or self._mic_smoothed <= 0.0:
            return 0.0
        return 10.0 * math.log10(self._mic_smoothed / self._out_smoothed)

    @property
    def double_talk(self) -> bool:
        """Whether the last frame held near-end speech along with the echo."""
        return self._double_talk

    def process(
        self, mic: NDArray[np.floating[Any]], reference: NDArray[np.floating[Any]]
    ) -> NDArray[np.float32]:
        """Return `mic` `(n,)` without the echo of `reference` `(n,)`, as `(n,)` float32."""
        n = self.frame_samples
        d = np.asarray(mic, dtype=np.float64) * _SCALE
        x = np.asarray(reference, dtype=np.float64) * _SCALE
        if d.shape != (n,) or x.shape != (n,):
            raise ValueError(f"expected ({n},) frames, got {d.shape} and {x.shape}")
        self._write(d, x)
        self._frame_index += 1
        if self._delay is not None:
            period = self._recheck_frames
        elif self._written <= self._ring_size:
            period = self._search_frames
        else:
            period = self._slow_search_frames
        if self._frame_index % period == 0:
            self._update_delay()
        if self._delay is None:
            return np.asarray(mic, dtype=np.float32).copy()
        out = self._cancel(d, self._written, suppress=True)
        return (out / _SCALE).astype(np.float32)

    # -- history and delay ---------------------------------------------------------------
    def _write(self, d: NDArray[np.float64], x: NDArray[np.float64]) -> None:
        start = self._written % self._ring_size
        frame = slice(start, start + d.size)
        copy = slice(start + self._ring_size, start + self._ring_size + d.size)
        self._rings[0, frame] = self._rings[0, copy] = d
        self._rings[1, frame] = self._rings[1, copy] = x
        self._written += d.size

    def _history(self, end: int, length: int) -> NDArray[np.float64]:
        """Return `(2, length)` microphone and reference samples up to absolute sample `end`."""
        start = (end - length) % self._ring_size
        history: NDArray[np.float64] = self._rings[:, start : start + length]
        return history

    def _decimate(self) -> NDArray[np.float64]:
        """Bring the 2 kHz history up to date; return its last window `(2, samples)`."""
        fresh = self._history(self._written, self._written - self._decimated)
        filtered, self._anti_alias_state = signal.sosfilt(
            self._anti_alias, fresh, axis=1, zi=self._anti_alias_state
        )
        low = filtered[:, :: self._factor]
        self._decimated = self._written
        size = self._low_window
        start = self._low_written % size
        first = min(size - start, low.shape[1])
        for offset, part in ((start, low[:, :first]), (0, low[:, first:])):
            self._low_ring[:, offset : offset + part.shape[1]] = part
            self._low_ring[:, offset + size : offset + size + part.shape[1]] = part
        self._low_written += low.shape[1]
        length = min(self._low_written, size)
        start = (self._low_written - length) % size
        window: NDArray[np.float64] = self._low_ring[:, start : start + length]
        return window

    def _update_delay(self) -> None:
        """Re-estimate the bulk delay; take a new one seen twice in a row, or once clearly."""
        low = self._decimate()
        found = _gcc_phat_delay(low[0], low[1], self._max_delay // self._factor)
        if found is None or found[1] < DELAY_MIN_CLARITY:
            self._candidate = None
            return
        estimate, clarity = found[0] * self._factor, found[1]
        tolerance = DELAY_TOLERANCE_MS * self.rate_hz / 1000
        if self._delay is not None and abs(estimate - self._delay) <= tolerance:
            self._candidate = None
            return
        candidate = self._candidate
        close = DELAY_CONFIRM_TOLERANCE_MS * self.rate_hz / 1000
        if candidate is not None and abs(estimate - candidate) <= close:
            self._take_delay(min(estimate, candidate))
        elif self._delay is None and clarity >= DELAY_SURE_CLARITY:
            self._take_delay(estimate)
        else:
            self._candidate = estimate

    def _take_delay(self, delay: int) -> None:
        """Use `delay` from now on: a new filter, first trained on the history kept."""
        n = self.frame_samples
        self._delay = delay
        self._lag = max(delay - self._margin, 0)
        self._candidate = None
        self._reset_filter()
        frames = min(round(PRETRAIN_S * self.rate_hz), self._written - n) // n
        self._initial_step = _PRETRAIN_STEP
        for _ in range(PRETRAIN_PASSES):
            for back in range(frames, 0, -1):
                end = self._written - back * n
                self._cancel(self._history(end, n)[0], end, suppress=False)
        self._initial_step = _INITIAL_STEP

    # -- adaptive filter and suppression ---------------------------------------------
    def _cancel(self, d: NDArray[np.float64], end: int, *, suppress: bool) -> NDArray[np.float64]:
        """Filter microphone frame `d` (ending at absolute sample `end`), adapt, suppress.

        Without `suppress` (pre-training) only the filters learn; the error is returned.
        """
        n = self.frame_samples
        x_block = self._history(end - self._lag, 2 * n)[1]  # previous and current frame
        aligned = x_block[n:]
        spectra = self._spectra
        spectra[1:] = spectra[:-1]
        spectra[0] = fft.rfft(x_block)
        x_power = np.square(spectra[0].real) + np.square(spectra[0].imag)
        self._power += (0.35 / self._partitions) * (x_power - self._power)

        echoes = fft.irfft(np.einsum("fmk,mk->fk", self._filters, spectra), axis=1)[:, n:]
        e_fore, e_back, y_fore, y_back = self._two_path(d, d - echoes[0], d - echoes[1], *echoes)

        blocks = self._blocks
        blocks[_BACK_ERROR, n:] = e_back
        blocks[_BACK_ECHO, n:] = y_back
        self._error_block[:n] = self._error_block[n:]
        self._error_block[n:] = e_fore
        self._echo_block[:n] = self._echo_block[n:]
        self._echo_block[n:] = y_fore
        block_rows = 5 if suppress else 2
        if suppress:
            np.multiply(self._error_block, self._block_window, out=blocks[_WINDOWED_ERROR])
            np.multiply(self._echo_block, self._block_window, out=blocks[_WINDOWED_ECHO])
            blocks[_ERROR_BLOCK] = self._error_block
        block_spectra = fft.rfft(blocks[:block_rows], axis=1)
        powers = np.square(block_spectra[:4].real) + np.square(block_spectra[:4].imag)
        self._adapt(block_spectra[_BACK_ERROR], powers[0], powers[1], e_back, y_back, aligned)
        # Keep each partition's response to its own n taps: the newest and one other (see
        # the class docstring). The suppressor's cepstrum shares the FFT calls.
        m = self._partitions
        self._constrained = self._constrained % (m - 1) + 1 if m > 1 else 0
        constrained = [0, self._constrained] if m > 1 else [0]
        inverse_rows = [self._filters[1, constrained]]
        if suppress:
            inverse_rows.append(np.log(self._suppression_gain(powers[2], powers[3]))[np.newaxis])
        taps = fft.irfft(np.concatenate(inverse_rows), axis=1)
        taps[: len(constrained), n:] = 0.0
        if suppress:
            taps[-1] *= self._fold  # the minimum-phase cepstrum (see _suppress)
        spectra_back = fft.rfft(taps, axis=1)
        self._filters[1, constrained] = spectra_back[: len(constrained)]
        if not suppress:
            return e_fore
        out = self._suppress(spectra_back[-1], block_spectra[_ERROR_BLOCK])
        if float(aligned @ aligned) > n * 1000.0 and not self._double_talk:
            a = _ERLE_SMOOTHING
            self._mic_smoothed = (1 - a) * self._mic_smoothed + a * float(d @ d)
            self._out_smoothed = (1 - a) * self._out_smoothed + a * float(out @ out)
        return out

    def _two_path(
        self,
        d: NDArray[np.float64],
        e_fore: NDArray[np.float64],
        e_back: NDArray[np.float64],
        y_fore: NDArray[np.float64],
        y_back: NDArray[np.float64],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Copy background to foreground when it cancels better, or back when it diverged.

        Returns the errors and echo estimates of both filters after the copy. The tests of
        the error powers' difference against its own fluctuation are Valin's (2007), with
        speexdsp's constants.
        """
        s_ff = float(e_fore @ e_fore)
        gap = s_ff - float(e_back @ e_back)
        difference = y_fore - y_back
        s_ff_bf = s_ff * float(difference @ difference)
        self._davg1 = _VAR1_SMOOTH * self._davg1 + (1 - _VAR1_SMOOTH) * gap
        self._davg2 = _VAR2_SMOOTH * self._davg2 + (1 - _VAR2_SMOOTH) * gap
        self._dvar1 = _VAR1_SMOOTH**2 * self._dvar1 + (1 - _VAR1_SMOOTH) ** 2 * s_ff_bf
        self._dvar2 = _VAR2_SMOOTH**2 * self._dvar2 + (1 - _VAR2_SMOOTH) ** 2 * s_ff_bf
        if (
            gap * abs(gap) > s_ff_bf
            or self._davg1 * abs(self._davg1) > _VAR1_UPDATE * self._dvar1
            or self._davg2 * abs(self._davg2) > _VAR2_UPDATE * self._dvar2
        ):
            self._filters[0] = self._filters[1]
            self._davg1 = self._davg2 = self._dvar1 = self._dvar2 = 0.0
            # Fade from the old foreground's output to the new one over the frame.
            e_fore = e_fore + self._fade_in * (e_back - e_fore)
            y_fore = d - e_fore
        elif -gap * abs(gap) > _VAR_BACKTRACK * s_ff_bf:
            self._filters[1] = self._filters[0]
            self._davg1 = self._davg2 = self._dvar1 = self._dvar2 = 0.0
            e_back, y_back = e_fore, y_fore
        return e_fore, e_back, y_fore, y_back

    def _adapt(
        self,
        error_spectrum: NDArray[np.complex128],
        error_power: NDArray[np.float64],
        echo_power: NDArray[np.float64],
        e_back: NDArray[np.float64],
        y_back: NDArray[np.float64],
        aligned: NDArray[np.float64],
    ) -> None:
        """Update the background filter at a rate set by the residual-to-error ratio.

        Valin (2007): the best step per bin is the residual echo's share of the error; the
        residual is estimated as `leak` times the echo estimate's power, `leak` from how
        the error's power follows the echo estimate's. Near-end speech raises the error
        but not its correlation with the echo estimate, so the step falls in double talk.
        """
        n, m = self.frame_samples, self._partitions
        s_ee = max(float(e_back @ e_back), 1.0)
        s_yy = float(y_back @ y_back)
        s_xx = float(aligned @ aligned)
        s_ey = float(e_back @ y_back)

        average = n / self.rate_hz
        error_deviation = error_power - self._error_average
        echo_deviation = echo_power - self._echo_average
        pyy = math.sqrt(float(echo_deviation @ echo_deviation))
        pey = float(error_deviation @ echo_deviation) / max(pyy, 1e-9)
        self._error_average += average * error_deviation
        self._echo_average += average * echo_deviation
        # Follow the correlation faster when the echo estimate dominates the error.
        alpha = min(2 * average * s_yy, 0.5 * average * s_ee) / s_ee
        self._pey = (1 - alpha) * self._pey + alpha * pey
        self._pyy = max((1 - alpha) * self._pyy + alpha * pyy, 1.0)
        self._pey = min(max(self._pey, _MIN_LEAK * self._pyy), self._pyy)
        self._leak = min(2.0 * self._pey / self._pyy, 1.0)

        if not self._adapted and self._sum_adapt > m and self._leak > 0.03:
            self._adapted = True
        regulariser = 10.0 * 2 * n  # -70 dBFS white far end, as spectral power
        if self._adapted:
            residual_ratio = (1e-4 * s_xx + 3.0 * self._leak * s_yy) / s_ee
            residual_ratio = max(residual_ratio, s_ey * s_ey / (1.0 + s_ee * s_yy))
            residual_ratio = min(residual_ratio, 0.5)
            error_reg = error_power + 1.0
            residual = np.minimum(self._leak * echo_power, 0.5 * error_reg)
            step = (0.7 * residual + 0.3 * residual_ratio * error_reg) / (
                error_reg * (self._power + regulariser)
            )
        else:
            initial = self._initial_step
            rate = min(initial * s_xx / s_ee, initial) if s_xx > n * 1000.0 else 0.0
            self._sum_adapt += rate
            step = rate / (self._power + regulariser)
        self._filters[1] += (
            self._proportions()[:, None] * np.conj(self._spectra) * (step * error_spectrum)
        )

    def _proportions(self) -> NDArray[np.float64]:
        """Return each partition's share of the step, from its share of the filter's energy.

        Proportionate MDF (as speexdsp's mdf_adjust_prop): the partitions that hold the echo
        path adapt faster, with a floor of a tenth of the largest; the shares sum to 0.99,
        so the whole filter's step is that of one NLMS step.
        """
        weights = self._filters[1].view(np.float64)  # real and imaginary parts side by side
        norms = np.sqrt(1.0 + np.einsum("mk,mk->m", weights, weights))
        norms += 0.1 * norms.max()
        proportions: NDArray[np.float64] = 0.99 * norms / norms.sum()
        return proportions

    def _suppression_gain(
        self, error_power: NDArray[np.float64], echo_power: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Return the gain per bin that attenuates what is left of the echo.

        It comes from the residual echo (leak x the echo estimate's power, decaying no
        faster than a 300 ms reverberation) against the error's power (both from
        Hann-windowed 2-frame blocks), and says whether the near end talks.
        """
        n = self.frame_samples
        residual = np.maximum(self._leak * echo_power, _RESIDUAL_DECAY * self._residual)
        self._residual = residual
        noise_floor = 2.0 * n  # one LSB of white noise, as spectral power
        self._double_talk = float(error_power.sum()) > (
            _DOUBLE_TALK_RATIO * float(residual.sum()) + noise_floor * n
        )
        least_db = SUPPRESS_DOUBLE_TALK_DB if self._double_talk else SUPPRESS_ECHO_DB
        gain = np.clip(
            1.0 - _OVERSUBTRACTION * residual / (error_power + noise_floor),
            10.0 ** (least_db / 20.0),
            1.0,
        )
        gain[1:-1] = (gain[:-2] + gain[1:-1] + gain[2:]) / 3.0  # a smoother response
        return gain

    def _suppress(
        self, log_spectrum: NDArray[np.complex128], error_spectrum: NDArray[np.complex128]
    ) -> NDArray[np.float64]:
        """Apply the suppression gain as a minimum-phase filter; return the output frame.

        `log_spectrum` is the FFT of the gain's folded real cepstrum: homomorphic method,
        the cepstrum of log|G| folded onto positive quefrencies (Oppenheim & Schafer,
        Discrete-Time Signal Processing, 3rd ed., 13.8.2), so exp of it is the
        minimum-phase response of magnitude G. A minimum-phase filter needs no look-ahead
        (no added latency). Its impulse response is taken as shorter than the 2n-sample
        block (smooth gains make it so), so applying it to the last two frames of the error
        (`error_spectrum`, unwindowed) is a linear filter over the newer frame: the output.
        """
        filtered: NDArray[np.float64] = fft.irfft(error_spectrum * np.exp(log_spectrum))
        return filtered[self.frame_samples :]


def estimate_delay(
    mic: NDArray[np.float64], reference: NDArray[np.float64], rate_hz: int, max_delay: int
) -> tuple[int, float] | None:
    """Return how many samples `mic` lags `reference` (0 .. `max_delay`) and how clearly.

    Both in int16 units (1 is one LSB), at `rate_hz`; they are decimated to 2 kHz and
    compared by GCC-PHAT (see _gcc_phat_delay). None when the far end said too little to
    look for its echo.
    """
    factor = rate_hz // _DELAY_RATE_HZ
    found = _gcc_phat_delay(
        signal.resample_poly(mic, 1, factor),
        signal.resample_poly(reference, 1, factor),
        max_delay // factor,
    )
    return None if found is None else (found[0] * factor, found[1])


def _gcc_phat_delay(
    mic: NDArray[np.float64], reference: NDArray[np.float64], max_lag: int
) -> tuple[int, float] | None:
    """Return how many 2 kHz samples `mic` lags `reference` (0 .. `max_lag`), how clearly.

    GCC-PHAT (Knapp & Carter, IEEE TASSP 24(4), 1976). Clarity is the peak over the
    correlation's robust spread across the searched lags (1.4826 x its median absolute
    value): echo-free speech stays under 7, echo gives 13 and more. None when the far end
    said too little to look for its echo.
    """
    frames = reference[: reference.size // 40 * 40].reshape(-1, 40)  # 20 ms frames
    active_s = np.count_nonzero(np.mean(np.square(frames), axis=1) > _ACTIVE_POWER) * FRAME_MS
    if active_s < DELAY_MIN_ACTIVE_S * 1000:
        return None
    size = fft.next_fast_len(2 * mic.size, real=True)
    cross = fft.rfft(mic, size) * np.conj(fft.rfft(reference, size))
    cross /= np.abs(cross) + 1e-9 * float(np.abs(cross).max() + 1e-30)
    correlation = fft.irfft(cross, size)[: max_lag + 1]
    best = int(np.argmax(correlation))
    spread = 1.4826 * float(np.median(np.abs(correlation)))
    clarity = float(correlation[best]) / spread if spread > 0.0 else 0.0
    # In a room the strongest arrival may be a reflection: take the earliest peak, shortly
    # before it, of at least a third of its height (the direct path) so the filter covers it.
    earliest = max(best - round(DELAY_DIRECT_PATH_SEARCH_MS * _DELAY_RATE_HZ / 1000), 0)
    strong = earliest + np.flatnonzero(
        correlation[earliest : best + 1] >= DELAY_DIRECT_PATH_SHARE * correlation[best]
    )
    first = int(strong[0])
    while first < best and correlation[first + 1] > correlation[first]:
        first += 1
    return first, clarity
