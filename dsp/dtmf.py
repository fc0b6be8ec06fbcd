"""In-band DTMF detection (ITU-T Q.23 tones, Q.24 limits) for many streams at once.

For lines that send keypad digits as tones instead of RFC 4733 events. Each call takes one
`(k, n)` frame and one state row per stream, like dsp.resample, and says which digits were
confirmed and which rows carry a press now (so the room can keep them out of the mix).
Nothing here knows members, rooms or the keypad logic the digits feed.

How: every 5 ms (a hop) a 20 ms Hann-windowed DFT at the 8 DTMF frequencies (what a
Goertzel filter computes, done as matrix products for all streams and hops; scipy has no
Goertzel, and its FFT-based transforms give equally spaced bins, not these 8) gives each
tone's power and, from the phase its bin turned since the previous hop, its frequency. A
hop is *clean* for a digit when its row and column tones pass the level, twist,
frequency, relative-peak and purity checks below. A press starts at a clean hop, goes on
while both its tones stay within 4.1 dB of their level in its clean hops (the window's
centre is then at least 1.25 ms inside the tone), and is confirmed, its digit reported
once, after 7 such hops in a row of which 4 are clean. So a tone counts from about 35 ms
(Q.24: 40 ms must count, under 23 ms must not), and is reported within 50 ms of its onset.

Measured (tests/dsp/test_dtmf.py, bench/dtmf.py): every press reported exactly once over
16 digits x -25 .. -3 dBm0 x -6 .. +6 dB twist x 40, 50 and 100 ms, starting anywhere
in a frame: 2160 of 2160 at 8 and at 16 kHz, with and without white noise at -50 dBm0,
and 720 of 720 40 ms presses through G.711 μ-law and A-law. Limits (random starts):
tones of 39 ms and more always count, of 32 ms and less almost never (1 %), 30 ms never;
frequency offsets of 2 % count, 3 % never; twist of 7.5 dB counts, 8.5 dB never; tones
count down to -37 dBm0. False digits: 0 in 37.5 minutes of espeak-ng speech (120 voices
in 10 languages, at espeak-ng's own level, near full scale) at each rate, with not one
20 ms frame of it flagged, and 0 in 2 minutes of chords with harmonics. Cost of one
20 ms call, best of 5 on a shared 2-core machine (runs varied up to 2x), with no
candidate / every row in a press: 8 kHz, k = 1: 90 / 590 µs; k = 50: 200 / 850 µs;
k = 500: 1500 / 3900 µs (3.0 µs per idle stream). 16 kHz: 75 / 610, 240 / 870 and
1800 / 4200 µs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.signal import get_window

from dsp.tones import DTMF_FREQUENCIES_HZ

# Levels: ITU-T G.711 puts the theoretical maximum load of both laws (a sine peaking at
# full scale, 1.0 here) at +3.14 dBm0, so a 0 dBm0 sine peaks 3.14 dB under full scale:
# at 10**(-3.14 / 20) = 0.697, mean power 0.243 (-6.15 dBFS RMS as dsp.level reads it).
DBM0_PEAK_DBFS = -3.14

# Keypad layout (Q.23): rows are the low group, columns the high group.
_ROWS_HZ = tuple(sorted({low for low, _ in DTMF_FREQUENCIES_HZ.values()}))
_COLUMNS_HZ = tuple(sorted({high for _, high in DTMF_FREQUENCIES_HZ.values()}))
_TONES_HZ = np.array(_ROWS_HZ + _COLUMNS_HZ)
_GROUP_SIZE = 4
KEYPAD = "".join(
    next(key for key, pair in DTMF_FREQUENCIES_HZ.items() if pair == (row, column))
    for row in _ROWS_HZ
    for column in _COLUMNS_HZ
)  # "123A456B789C*0#D": digit index = 4 * row + column
_TONES_OF_DIGIT = np.stack(  # (16, 2): each digit's row tone and column tone, 0 .. 7
    (
        np.repeat(np.arange(_GROUP_SIZE), _GROUP_SIZE),
        _GROUP_SIZE + np.tile(np.arange(_GROUP_SIZE), _GROUP_SIZE),
    ),
    axis=1,
)

HOP_MS = 5
WINDOW_MS = 20  # 4 hops: Hann main lobe ±100 Hz, neighbours 73 Hz apart leak -14 dB
# A clean hop: each tone at least this strong, 7 dB under the weakest tone that must count
# (-25 dBm0 with 6 dB of twist puts the weaker tone at -31 dBm0).
MIN_TONE_LEVEL_DBM0 = -38.0
# Twist, either way. AT&T/Bellcore-style receivers (spandsp, Asterisk) take the low group
# up to 8 dB above the high group ("normal") but the high group only 4 dB above ("reverse").
# We take 8 dB both ways: the bridge must hear ±6 dB either way, and the measured twist
# (after the frequency correction below) is off by up to 0.7 dB at ±1.5 %, so 8 dB
# leaves margin above 6 dB and still rejects 10 dB. Speech seldom comes this close to
# two pure tones anyway; the purity check, not twist, is what rejects it.
MAX_TWIST_DB = 8.0
# Frequency: Q.24 asks to operate within ±1.5 % and not to operate beyond ±3.5 %; we cut
# in the middle. The phase turned over one hop measures the offset unambiguously to ±100 Hz.
FREQUENCY_TOLERANCE = 0.025
# The other tones of each group must be this much weaker than the chosen one (the closest
# case, a 697 Hz tone 1.5 % high, leaves the 770 Hz bin 8.6 dB under its own, measured).
RELATIVE_PEAK_DB = 6.0
# A frame whose mean power is under this cannot start a press: the weakest tone pair that
# counts (both tones at MIN_TONE_LEVEL_DBM0) is -41 dBFS, and Q.24's weakest that must
# count (-25 dBm0 and 6 dB of twist) -30 dBFS. A tone starting inside such a frame has at
# most 0.2 ms of it there (2.6 ms at the limit), so a stream whose detector starts afresh
# with the next frame loses nothing of it; line noise lies below it. Such a frame still
# needs analysing after one that was analysed: the hops that confirm a press reach up
# to 15 ms past its tone's end (a 40 ms tone ending on a frame's edge confirms in the
# silent frame after it).
QUIET_FRAME_DBFS = -50.0
# Share of the window's power that the two tones must hold (after correcting their bins for
# the measured offset): key tones hold 0.93 or more even at ±1.5 %, through G.711 and in
# noise, while the most tone-like espeak-ng hops that pass every other check hold at most
# 0.74, and two notes with 8 harmonics at 1/h (most instruments) 0.65.
MIN_PURITY = 0.86
# Hops around the clean ones still belong to the press if both tones keep this share of
# the window's power (a window half over silence keeps half its purity)...
MIN_EDGE_PURITY = 0.3
# ... and this much of their amplitude in the press's clean hops: a Hann window whose
# centre is 1.25 ms inside a tone sees 0.623 of its amplitude (-4.1 dB). The hops that
# hold are those whose centres lie in the tone less 1.25 ms at each end; on the 5 ms hop
# grid that span holds 7 hops whenever the tone lasts 37.5 ms or more, and never when it
# lasts under 32.5 ms, wherever it starts.
EDGE_AMPLITUDE = 0.623
CONFIRM_HOPS = 7
# Of the press's hops, this many must be clean (a 40 ms tone gives at least 4 windows that
# lie wholly inside it): one clean hop with ramps around it is not a key press.
MIN_CLEAN_HOPS = 4
# A confirmed press ends after this many hops without its tones (15-20 ms): Q.24 asks to
# bridge interruptions up to 10 ms (2-3 hops), and a 40 ms pause always ends it (8-9).
END_HOPS = 4

SUPPORTED_RATES_HZ = (8000, 16000)

_TONES = len(_TONES_HZ)
_PAST_HOPS = CONFIRM_HOPS - 1  # kept between calls, so a press can count back to its start
# Per kept hop: the 8 tone powers, the window's power and the clean digit (-1: none).
_HOP_FIELDS = _TONES + 2
_WINDOW_POWER = _TONES
_CLEAN_DIGIT = _TONES + 1
# The press under way: digit (-1: none), confirmed (0/1), hops missed since its tones were
# last held, and the powers of its low and high tone in its clean hops (the reference).
_PRESS_FIELDS = 5
_NO_DIGIT = -1


@lru_cache(maxsize=len(SUPPORTED_RATES_HZ))
def _analysis(rate_hz: int) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float64]]:
    """Return the rate's DFT basis and window-power weights, per hop, and the Hann response.

    A window is 4 hops; its DFT is the sum of each hop's samples times that hop's slice of
    the window, so the tables hold the 4 slices side by side and one matrix product with
    the hops of a whole frame serves the 4 windows that each hop is part of.
    Basis `(hop, 4 * 16)`: per slice, Hann-weighted cosines then sines of the 8 tones,
    scaled so that a sine of amplitude A at a tone gives cos² + sin² = A² / 2, its power.
    Weights `(hop, 4)`: per slice, Hann² normalised to sum 1 over the window, so that
    `x² @ weights` summed over the slices is the window's power.
    Response `(2, 101)`: offsets from a bin's centre in bins (0 .. 1), and the power
    response of the window there (1 .. 0.25), to undo the loss of off-centre tones.
    """
    window, hop = _window_samples(rate_hz), _hop_samples(rate_hz)
    slices = window // hop
    hann = get_window("hann", window).astype(np.float64)  # periodic Hann
    phase = 2.0 * np.pi * np.outer(np.arange(window), _TONES_HZ) / rate_hz
    basis = (np.sqrt(2.0) / hann.sum()) * np.concatenate(
        (hann[:, None] * np.cos(phase), hann[:, None] * np.sin(phase)), axis=1
    )
    weights = np.square(hann) / np.sum(np.square(hann))
    offsets_bins = np.linspace(0.0, 1.0, 101)
    turns = np.exp(2j * np.pi * np.outer(offsets_bins, np.arange(window)) / window)
    response = np.square(np.abs(turns @ hann) / hann.sum())
    basis_slices = np.ascontiguousarray(
        basis.reshape(slices, hop, 2 * _TONES).transpose(1, 0, 2).reshape(hop, -1),
        dtype=np.float32,
    )
    weight_slices = np.ascontiguousarray(weights.reshape(slices, hop).T, dtype=np.float32)
    response_table = np.stack((offsets_bins, response))
    for table in (basis_slices, weight_slices, response_table):
        table.flags.writeable = False
    return basis_slices, weight_slices, response_table


def _window_samples(rate_hz: int) -> int:
    """Return the analysis window length in samples at `rate_hz`."""
    return rate_hz * WINDOW_MS // 1000


def _hop_samples(rate_hz: int) -> int:
    """Return the hop length in samples at `rate_hz`."""
    return rate_hz * HOP_MS // 1000


def _check_rate(rate_hz: int) -> None:
    """Raise ValueError unless `rate_hz` is one the detector is built for."""
    if rate_hz not in SUPPORTED_RATES_HZ:
        raise ValueError(f"DTMF detection runs at {SUPPORTED_RATES_HZ} Hz, not {rate_hz}")


def dtmf_state(rate_hz: int) -> NDArray[np.float32]:
    """Return the state of a stream at `rate_hz` that starts now: silence, no press.

    `(s,)` float32: the last 20 ms of samples, the last 6 hops' analysis and the press
    (s = 225 at 8 kHz, 385 at 16 kHz); stack one row per stream.
    """
    return _fresh_state(rate_hz).copy()


def dtmf_states(rate_hz: int, count: int) -> NDArray[np.float32]:
    """Return `(count, s)` rows of `dtmf_state(rate_hz)`: streams that all start now.

    One copy for all of them: a fortieth of the cost of stacking `count` single states.
    """
    return np.tile(_fresh_state(rate_hz), (count, 1))


@lru_cache(maxsize=len(SUPPORTED_RATES_HZ))
def _fresh_state(rate_hz: int) -> NDArray[np.float32]:
    """Return the read-only fresh state that `dtmf_state` hands out copies of."""
    _check_rate(rate_hz)
    history = _window_samples(rate_hz)
    past = np.zeros((_PAST_HOPS, _HOP_FIELDS), dtype=np.float32)
    past[:, _CLEAN_DIGIT] = _NO_DIGIT
    press = np.array([_NO_DIGIT, 0, 0, 0, 0], dtype=np.float32)
    state = np.concatenate((np.zeros(history, dtype=np.float32), past.ravel(), press))
    state.flags.writeable = False
    return state


def detect_dtmf(
    frames: NDArray[np.floating[Any]], states: NDArray[np.floating[Any]], rate_hz: int
) -> tuple[list[str | None], NDArray[np.float32], NDArray[np.bool_]]:
    """Detect DTMF digits in `(k, n)` frames at `rate_hz`, one row per stream.

    `n` is a whole number of 5 ms hops (160 or 320 samples for 20 ms). `states` is
    `(k, s)`: the rows returned by the previous call, or `dtmf_state(rate_hz)` for a new
    stream; the inputs are left alone. Returns, per row, the digits confirmed during this
    frame in order, or None (a 20 ms frame holds one at most: confirmations of back-to-back
    presses come 30 ms or more apart); the new states; and `(k,)` bool, True where a press
    was under way during this frame. A press is seen from its first clean window, about
    20 ms into the tone, so that much of it is not flagged.
    """
    _check_rate(rate_hz)
    frames = np.asarray(frames, dtype=np.float32)
    states = np.asarray(states, dtype=np.float32)
    hop = _hop_samples(rate_hz)
    if frames.ndim != 2 or frames.shape[1] == 0 or frames.shape[1] % hop:
        raise ValueError(
            f"expected (streams, a multiple of {hop} samples) frames, got shape {frames.shape}"
        )
    history = _window_samples(rate_hz)
    past_end = history + _PAST_HOPS * _HOP_FIELDS
    expected = (frames.shape[0], past_end + _PRESS_FIELDS)
    if states.shape != expected:
        raise ValueError(f"expected states of shape {expected}, got {states.shape}")
    streams, hop_count = frames.shape[0], frames.shape[1] // hop

    samples = np.concatenate((states[:, :history], frames), axis=1)
    # One window more than the frame's hops: the one ending where the last call stopped,
    # whose phases the first new hop is measured against.
    projections, window_power = _analyse(samples, rate_hz)
    # This frame's hops as the state keeps them (see _HOP_FIELDS), written in place.
    new_hops = np.empty((streams, hop_count, _HOP_FIELDS), dtype=np.float32)
    squares = np.square(projections[:, 1:])
    powers = np.add(squares[:, :, :_TONES], squares[:, :, _TONES:], out=new_hops[:, :, :_TONES])
    new_hops[:, :, _WINDOW_POWER] = window_power[:, 1:]
    clean = _clean_digits(powers, window_power[:, 1:], projections, rate_hz)
    new_hops[:, :, _CLEAN_DIGIT] = clean

    new_states = np.empty(states.shape, dtype=np.float32)  # C order: `kept` is a view
    new_states[:, :history] = samples[:, samples.shape[1] - history :]
    past = states[:, history:past_end].reshape(streams, _PAST_HOPS, _HOP_FIELDS)
    kept = new_states[:, history:past_end].reshape(streams, _PAST_HOPS, _HOP_FIELDS)
    kept_old = max(_PAST_HOPS - hop_count, 0)  # of the hops kept, those from past calls
    kept[:, :kept_old] = past[:, hop_count:]
    kept[:, kept_old:] = new_hops[:, hop_count - (_PAST_HOPS - kept_old) :]
    press = new_states[:, past_end:]
    press[:] = states[:, past_end:]

    digits: list[str | None] = [None] * streams
    tone_mask = np.zeros(streams, dtype=np.bool_)
    # Most streams carry no candidate at all: only the others are followed hop by hop.
    busy = np.flatnonzero((clean >= 0).any(axis=1) | (press[:, 0] >= 0))
    if busy.size:
        hops = np.concatenate((past[busy], new_hops[busy]), axis=1)
        press[busy], tone_mask[busy], confirmed = _follow_presses(press[busy], hops)
        for row, keys in zip(busy.tolist(), confirmed, strict=True):
            digits[row] = keys or None
    return digits, new_states, tone_mask


def _analyse(
    samples: NDArray[np.float32], rate_hz: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Return the DFT at the 8 tones and the power of every 20 ms window ending on a hop.

    `samples` is `(k, m)`, m a multiple of the hop; windows end every hop from sample
    20 ms on. Out: `(k, w, 16)` float32, each window's projections on the cosines then the
    sines of the 8 tones (the DFT is cosines - 1j sines), scaled so cos² + sin² is a sine's
    power at the tone, and `(k, w)` float32 window power. Two matrix products over the hops
    (see `_analysis`), then 4 shifted sums: measured 8x faster at k = 500 than gathering
    the overlapping windows into one array (3 MB of fresh memory a call) for the products.
    Both stay one small product per stream (numpy's stacked matmul): one product over all
    streams' hops rounds differently (OpenBLAS picks another kernel), so detection would
    change, and is spread over threads, which measured 10x slower on a busy machine.
    """
    basis, weights, _ = _analysis(rate_hz)
    hop, slices = weights.shape
    streams = samples.shape[0]
    hop_count = samples.shape[1] // hop
    count = hop_count - slices + 1
    hops = samples.reshape(streams, hop_count, hop)
    parts = (hops @ basis).reshape(streams, hop_count, slices, 2 * _TONES)
    power_parts = np.square(hops) @ weights
    projections = parts[:, :count, 0] + parts[:, 1 : 1 + count, 1]
    window_power = power_parts[:, :count, 0] + power_parts[:, 1 : 1 + count, 1]
    for part in range(2, slices):
        projections += parts[:, part : part + count, part]
        window_power += power_parts[:, part : part + count, part]
    return projections, window_power


def _clean_digits(
    powers: NDArray[np.float32],
    window_power: NDArray[np.float32],
    projections: NDArray[np.float32],
    rate_hz: int,
) -> NDArray[np.intp]:
    """Return, per stream and hop, the digit whose tones pass every check, or -1.

    `powers` and `window_power` are `(k, h, 8)` and `(k, h)`; `projections` is
    `(k, h + 1, 16)` (see `_analyse`), starting one hop earlier. The strongest tone of
    each group is measured: its frequency is the phase its bin turned over the hop (a sine
    at f + d turns 2 pi (f + d) hop), and its power is corrected for the Hann response at
    d, so that level, twist and purity read the tone rather than the bin.
    """
    _, _, response = _analysis(rate_hz)
    streams, count = window_power.shape
    # (k, h, 2): the strongest tone of each group, rows then columns. Pairwise maxima of
    # strided views: numpy's max over a 4-long axis costs 6x more.
    strongest = np.maximum(powers[:, :, 0::_GROUP_SIZE], powers[:, :, 1::_GROUP_SIZE])
    for tone in range(2, _GROUP_SIZE):
        np.maximum(strongest, powers[:, :, tone::_GROUP_SIZE], out=strongest)
    strongest = strongest.reshape(-1, 2)
    # The correction below gives back at most 1 / response[1, -1]; hops whose level or
    # purity fail even with that much back (nearly all of them in speech) go no further.
    most = strongest / response[1, -1]
    min_power = 10.0 ** ((MIN_TONE_LEVEL_DBM0 + DBM0_PEAK_DBFS) / 10) / 2
    window_power = window_power.reshape(-1)
    hop_index = np.flatnonzero(
        (most[:, 0] >= min_power)
        & (most[:, 1] >= min_power)
        & (most[:, 0] + most[:, 1] >= MIN_PURITY * window_power)
    )
    clean = np.full(streams * count, _NO_DIGIT, dtype=np.intp)
    if hop_index.size == 0:
        return clean.reshape(streams, count)
    groups = powers.reshape(-1, _TONES)[hop_index].reshape(-1, 2, _GROUP_SIZE)  # (c, 2, 4)
    window_power = window_power[hop_index]
    measured = strongest[hop_index]
    both = groups.argmax(axis=2) + np.array([0, _GROUP_SIZE])  # (c, 2): which tones, 0 .. 7

    flat_index = (hop_index // count) * (count + 1) + hop_index % count  # in `projections`
    flat_projections = projections.reshape(-1, 2 * _TONES)
    before = _dft_at(flat_projections, flat_index, both)
    now = _dft_at(flat_projections, flat_index + 1, both)
    tones_hz = _TONES_HZ[both]
    hop_s = HOP_MS / 1000
    turn = np.angle(now * np.conj(before) * np.exp(-2j * np.pi * tones_hz * hop_s))
    offset_hz = np.abs(turn) / (2.0 * np.pi * hop_s)
    corrected = measured / np.interp(offset_hz * WINDOW_MS / 1000, response[0], response[1])
    low, high = corrected[:, 0], corrected[:, 1]
    max_twist = 10.0 ** (MAX_TWIST_DB / 10)
    # Every other tone of each group under the chosen one by RELATIVE_PEAK_DB: only the
    # chosen one itself (the ratio is under 1) exceeds that fraction of it.
    near = 10.0 ** (-RELATIVE_PEAK_DB / 10) * measured
    alone = ((groups > near[:, :, None]).sum(axis=2) == 1).all(axis=1)
    is_clean = (
        (np.minimum(low, high) >= min_power)
        & (high <= max_twist * low)
        & (low <= max_twist * high)
        & np.all(offset_hz <= FREQUENCY_TOLERANCE * tones_hz, axis=1)
        & alone
        & (low + high >= MIN_PURITY * window_power)
    )
    digit = _GROUP_SIZE * both[:, 0] + (both[:, 1] - _GROUP_SIZE)
    clean[hop_index] = np.where(is_clean, digit, _NO_DIGIT)
    return clean.reshape(streams, count)


def _dft_at(
    projections: NDArray[np.float32], windows: NDArray[np.intp], tones: NDArray[np.intp]
) -> NDArray[np.complex64]:
    """Return the DFT `(c, 2)` complex64 of flat `(w, 16)` projections at `windows[i]`,
    tones `tones[i]`: cosine - 1j sine."""
    dft = np.empty(tones.shape, dtype=np.complex64)
    dft.real = projections[windows[:, None], tones]
    dft.imag = -projections[windows[:, None], tones + _TONES]
    return dft


def _follow_presses(
    press: NDArray[np.float32], hops: NDArray[np.float32]
) -> tuple[NDArray[np.float32], NDArray[np.bool_], list[str]]:
    """Run the press logic over this frame's hops, for the `b` streams that need it.

    `press` is `(b, 5)` (see `_PRESS_FIELDS`); `hops` is `(b, h, 10)`: the kept hops, then
    this frame's. Returns the new press rows, whether a press was under way during the
    frame, and the digits confirmed per stream. One Python step per hop (4 per 20 ms),
    vectorised over the streams: what a hop means depends on the press so far.
    """
    streams = press.shape[0]
    digit = press[:, 0].astype(np.intp)
    confirmed = press[:, 1] > 0
    missed = press[:, 2].astype(np.intp)
    reference = press[:, 3:5]
    clean = hops[:, :, _CLEAN_DIGIT].astype(np.intp)
    under_way = np.zeros(streams, dtype=np.bool_)
    keys = [""] * streams
    stream_index = np.arange(streams)[:, None, None]
    span_index = np.arange(CONFIRM_HOPS)[None, :, None]
    edge_power = EDGE_AMPLITUDE**2
    for now in range(_PAST_HOPS, hops.shape[1]):
        span = slice(now - _PAST_HOPS, now + 1)  # the CONFIRM_HOPS hops ending now
        clean_now = clean[:, now]
        starts = (clean_now >= 0) & (clean_now != digit)  # a first press, or a new key
        candidate = np.where(starts, clean_now, digit)
        pressed = candidate >= 0
        is_clean = pressed & (clean_now == candidate)
        tones = _TONES_OF_DIGIT[candidate][:, None, :]
        span_powers = hops[:, span][stream_index, span_index, tones]  # (b, 7, 2)
        reference = np.where(starts[:, None], span_powers[:, -1], reference)
        reference = np.where(
            is_clean[:, None], np.maximum(reference, span_powers[:, -1]), reference
        )
        held = (
            (span_powers[:, :, 0] >= edge_power * reference[:, :1])
            & (span_powers[:, :, 1] >= edge_power * reference[:, 1:])
            & (span_powers.sum(axis=2) >= MIN_EDGE_PURITY * hops[:, span, _WINDOW_POWER])
        )
        held_now = pressed & (held[:, -1] | is_clean)
        missed = np.where(held_now, 0, missed + 1)
        # An unconfirmed press must be unbroken; a confirmed one bridges short dropouts.
        keep = held_now | (confirmed & ~starts & pressed & (missed < END_HOPS))
        confirmed &= keep & ~starts
        confirm = (
            held_now
            & ~confirmed
            & np.all(held[:, :-1], axis=1)
            & (np.sum(clean[:, span] == candidate[:, None], axis=1) >= MIN_CLEAN_HOPS)
        )
        for stream in np.flatnonzero(confirm).tolist():
            keys[stream] += KEYPAD[candidate[stream]]
        confirmed |= confirm
        digit = np.where(keep, candidate, _NO_DIGIT)
        missed = np.where(keep, missed, 0)
        reference = np.where(keep[:, None], reference, 0.0)
        under_way |= keep
    new_press = np.column_stack((digit, confirmed, missed, reference)).astype(np.float32)
    return new_press, under_way, keys
