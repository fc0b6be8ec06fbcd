"""In-band DTMF detection: Q.24 limits, every digit once, no digits from speech or music.

Tones are made here as two hard-edged sines (a keypad's own tones start and stop at once;
ramps would shorten the measured duration) at random phases, placed at a random sample in
a frame. Levels are per tone in dBm0 (0 dBm0: a sine peaking at -3.14 dBFS, as in
dsp.dtmf); a level L with twist t puts the stronger tone at L and the other at L - |t|,
so the weakest tone of the grid is at -31 dBm0 and the loudest pair never clips. Twist is
the high group's level minus the low group's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from bench.speech import speak
from dsp.codecs import get_codec
from dsp.dtmf import (
    DBM0_PEAK_DBFS,
    KEYPAD,
    QUIET_FRAME_DBFS,
    detect_dtmf,
    dtmf_state,
    dtmf_states,
)
from dsp.resample import resample
from dsp.tones import DTMF_FREQUENCIES_HZ, dtmf

Samples = NDArray[np.float32]

NARROW_HZ = 8000
WIDE_HZ = 16000
FRAME_MS = 20
GRID_LEVELS_DBM0 = (-25, -22, -19, -16, -13, -10, -7, -5, -3)
GRID_TWISTS_DB = (-6, -3, 0, 3, 6)
GRID_DURATIONS_MS = (40, 50, 100)
NOISE_DBM0 = -50.0
LEAD_MS = 40  # whole frames of silence before the frame a tone starts in
ROW_MS = 240


def frame_samples(rate_hz: int) -> int:
    return rate_hz * FRAME_MS // 1000


def sine_power(level_dbm0: float) -> float:
    """Mean power of a sine at `level_dbm0`."""
    return 10 ** ((level_dbm0 + DBM0_PEAK_DBFS) / 10) / 2


def key_tone(
    digit: str,
    rng: np.random.Generator,
    rate_hz: int = NARROW_HZ,
    *,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
    duration_ms: float = 60.0,
    scale: tuple[float, float] = (1.0, 1.0),
) -> Samples:
    """Return `digit`'s tone pair, hard-edged, at random phases; `scale` moves each tone."""
    low_hz, high_hz = DTMF_FREQUENCIES_HZ[digit]
    low_dbm0 = level_dbm0 - max(twist_db, 0.0)
    high_dbm0 = level_dbm0 + min(twist_db, 0.0)
    t = np.arange(round(duration_ms * rate_hz / 1000)) / rate_hz
    phases = rng.uniform(0.0, 2 * np.pi, 2)
    pair = np.sqrt(2 * sine_power(low_dbm0)) * np.sin(
        2 * np.pi * low_hz * scale[0] * t + phases[0]
    ) + np.sqrt(2 * sine_power(high_dbm0)) * np.sin(2 * np.pi * high_hz * scale[1] * t + phases[1])
    return np.asarray(pair, dtype=np.float32)


def white_noise(rng: np.random.Generator, shape: tuple[int, ...], level_dbm0: float) -> Samples:
    return rng.normal(0.0, np.sqrt(sine_power(level_dbm0)), shape).astype(np.float32)


def place(
    clips: Sequence[Samples], rng: np.random.Generator, rate_hz: int, row_ms: int = ROW_MS
) -> tuple[Samples, NDArray[np.intp]]:
    """Return one row per clip, each starting at a random sample of the frame that follows
    LEAD_MS of silence, and the start sample of each."""
    rows = np.zeros((len(clips), rate_hz * row_ms // 1000), dtype=np.float32)
    lead = rate_hz * LEAD_MS // 1000
    starts = lead + rng.integers(0, frame_samples(rate_hz), len(clips))
    for row, clip, start in zip(rows, clips, starts, strict=True):
        row[start : start + len(clip)] = clip
    return rows, starts


@dataclass(frozen=True, slots=True)
class Detection:
    """What the detector said about each row, frame by frame."""

    digits: list[list[str]]  # per row, in order
    frames: list[list[int]]  # per row, the frame index each digit was reported in
    masks: NDArray[np.bool_]  # (rows, frames)
    states: NDArray[np.float32]  # (rows, s) after the last frame


def detect_rows(rows: Samples, rate_hz: int, frame_ms: int = FRAME_MS) -> Detection:
    """Stream `(k, m)` rows through the detector in `frame_ms` frames, all rows at once."""
    size = rate_hz * frame_ms // 1000
    states = np.tile(dtmf_state(rate_hz), (rows.shape[0], 1))
    digits: list[list[str]] = [[] for _ in range(rows.shape[0])]
    frames: list[list[int]] = [[] for _ in range(rows.shape[0])]
    masks = []
    for index in range(rows.shape[1] // size):
        found, states, mask = detect_dtmf(
            rows[:, index * size : (index + 1) * size], states, rate_hz
        )
        masks.append(mask)
        for row, digit in enumerate(found):
            if digit is not None:
                digits[row].append(digit)
                frames[row].append(index)
    return Detection(digits, frames, np.stack(masks, axis=1), states)


def once_each(detection: Detection, expected: Sequence[str]) -> float:
    """Return the share of rows that gave exactly their expected digit, once."""
    hits = [found == [want] for found, want in zip(detection.digits, expected, strict=True)]
    return float(np.mean(hits))


def grid(
    rng: np.random.Generator, rate_hz: int, durations_ms: Sequence[int] = GRID_DURATIONS_MS
) -> tuple[Samples, list[str], NDArray[np.intp]]:
    """The whole grid: every digit, level, twist and duration; rows, digits, tone starts."""
    cases = list(itertools.product(KEYPAD, GRID_LEVELS_DBM0, GRID_TWISTS_DB, durations_ms))
    clips = [
        key_tone(d, rng, rate_hz, level_dbm0=level, twist_db=twist, duration_ms=duration)
        for d, level, twist, duration in cases
    ]
    rows, starts = place(clips, rng, rate_hz)
    return rows, [case[0] for case in cases], starts


# The grid: 16 digits x 9 levels (-25 .. -3 dBm0) x 5 twists (-6 .. +6 dB) x 3 durations.


@pytest.mark.parametrize("rate_hz", [NARROW_HZ, WIDE_HZ])
@pytest.mark.parametrize("noisy", [False, True], ids=["clean", "noise-50dBm0"])
def test_every_digit_is_detected_once_over_levels_twists_and_durations(
    rate_hz: int, noisy: bool
) -> None:
    rng = np.random.default_rng(rate_hz + noisy)
    rows, expected, starts = grid(rng, rate_hz)
    if noisy:
        rows += white_noise(rng, rows.shape, NOISE_DBM0)
    detection = detect_rows(rows, rate_hz)
    assert once_each(detection, expected) == 1.0  # measured: 2160 of 2160 rows
    # Reported within 50 ms of the onset: at the 7th hop whose window holds the tones.
    latest_frame = (starts + rate_hz * 50 // 1000) // frame_samples(rate_hz)
    assert all(found[0] <= last for found, last in zip(detection.frames, latest_frame, strict=True))


def detect_rows_gated(rows: Samples, rate_hz: int) -> list[list[str]]:
    """Stream rows through the detector as a room does: a frame under QUIET_FRAME_DBFS is
    analysed only after one that was, and the detector starts afresh after it."""
    size = frame_samples(rate_hz)
    gate = 10 ** (QUIET_FRAME_DBFS / 10)
    states = dtmf_states(rate_hz, rows.shape[0])
    fresh = np.ones(rows.shape[0], dtype=np.bool_)
    digits: list[list[str]] = [[] for _ in range(rows.shape[0])]
    for index in range(rows.shape[1] // size):
        frames = rows[:, index * size : (index + 1) * size]
        faint = np.mean(np.square(frames), axis=1) < gate
        states[fresh] = dtmf_state(rate_hz)
        run = np.flatnonzero(~(faint & fresh))
        if run.size == 0:
            continue
        found, states[run], _ = detect_dtmf(frames[run], states[run], rate_hz)
        fresh[run] = faint[run]
        for row, digit in zip(run.tolist(), found, strict=True):
            if digit is not None:
                digits[row].append(digit)
    return digits


@pytest.mark.parametrize("rate_hz", [NARROW_HZ, WIDE_HZ])
def test_skipping_faint_frames_on_idle_detectors_loses_no_digit(rate_hz: int) -> None:
    """The grid in noise under the gate (-50 dBm0), and 40 ms presses at every start
    sample of a frame followed by silence: skipped as a room skips them, the same digits."""
    rng = np.random.default_rng(rate_hz + 3)
    rows, expected, _ = grid(rng, rate_hz)
    rows += white_noise(rng, rows.shape, NOISE_DBM0)
    assert detect_rows_gated(rows, rate_hz) == [[digit] for digit in expected]
    size = frame_samples(rate_hz)
    edges = np.zeros((size, 8 * size), dtype=np.float32)
    for offset in range(size):
        edges[offset, 2 * size + offset :][: rate_hz * 40 // 1000] = key_tone(
            KEYPAD[offset % 16], rng, rate_hz, level_dbm0=-25, twist_db=6, duration_ms=40
        )
    assert detect_rows_gated(edges, rate_hz) == [[KEYPAD[k % 16]] for k in range(size)]


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_g711_round_trip_does_not_hurt_detection(codec: str) -> None:
    rng = np.random.default_rng(7)
    rows, expected, _ = grid(rng, NARROW_HZ, durations_ms=(40,))
    rows += white_noise(rng, rows.shape, NOISE_DBM0)
    g711 = get_codec(codec)
    decoded = g711.decode_many(g711.encode(rows))
    assert once_each(detect_rows(decoded, NARROW_HZ), expected) == 1.0


@pytest.mark.parametrize("rate_hz", [NARROW_HZ, WIDE_HZ])
def test_frequencies_off_by_1_5_percent_are_detected(rate_hz: int) -> None:
    rng = np.random.default_rng(11)
    scales = [(low, high) for low in (0.985, 1.015) for high in (0.985, 1.015)]
    cases = list(itertools.product(KEYPAD, (-25, -10, -3), (-6, 6), scales))
    clips = [
        key_tone(d, rng, rate_hz, level_dbm0=level, twist_db=twist, duration_ms=40, scale=scale)
        for d, level, twist, scale in cases
    ]
    rows, _ = place(clips, rng, rate_hz)
    assert once_each(detect_rows(rows, rate_hz), [case[0] for case in cases]) == 1.0


@pytest.mark.parametrize("rate_hz", [NARROW_HZ, WIDE_HZ])
def test_frequencies_off_by_3_5_percent_are_rejected(rate_hz: int) -> None:
    """Either tone alone off by 3.5 %, up or down, or both: no digit."""
    rng = np.random.default_rng(13)
    scales = [(0.965, 1.0), (1.035, 1.0), (1.0, 0.965), (1.0, 1.035), (1.035, 0.965)]
    clips = [
        key_tone(d, rng, rate_hz, level_dbm0=level, duration_ms=100, scale=scale)
        for d, level, scale in itertools.product(KEYPAD, (-25, -10, -3), scales)
    ]
    rows, _ = place(clips, rng, rate_hz)
    assert not any(detect_rows(rows, rate_hz).digits)


@pytest.mark.parametrize("duration_ms", [20, 23, 30])
def test_tones_of_30_ms_or_less_are_rejected(duration_ms: int) -> None:
    """Q.24: under 23 ms must not count, 40 ms must; the boundary here is 35 ± 3 ms."""
    rng = np.random.default_rng(duration_ms)
    cases = list(itertools.product(KEYPAD, (-25, -10, -3), (-6, 0, 6), range(4)))
    clips = [
        key_tone(d, rng, level_dbm0=level, twist_db=twist, duration_ms=duration_ms)
        for d, level, twist, _ in cases
    ]
    rows, _ = place(clips, rng, NARROW_HZ)
    rows += white_noise(rng, rows.shape, NOISE_DBM0)
    assert not any(detect_rows(rows, NARROW_HZ).digits)


@pytest.mark.parametrize("twist_db", [-10.0, 10.0])
def test_twist_beyond_8_db_is_rejected(twist_db: float) -> None:
    rng = np.random.default_rng(17)
    clips = [key_tone(d, rng, level_dbm0=-5, twist_db=twist_db, duration_ms=100) for d in KEYPAD]
    rows, _ = place(clips, rng, NARROW_HZ)
    assert not any(detect_rows(rows, NARROW_HZ).digits)


def test_tones_under_the_level_floor_are_ignored() -> None:
    rng = np.random.default_rng(19)
    clips = [key_tone(d, rng, level_dbm0=-42, duration_ms=100) for d in KEYPAD]
    rows, _ = place(clips, rng, NARROW_HZ)
    assert not any(detect_rows(rows, NARROW_HZ).digits)


def test_same_digit_twice_with_a_40_ms_pause_counts_twice() -> None:
    rng = np.random.default_rng(23)
    pause = np.zeros(NARROW_HZ * 40 // 1000, dtype=np.float32)
    clips = [
        np.concatenate((key_tone(d, rng, duration_ms=40), pause, key_tone(d, rng, duration_ms=40)))
        for d in KEYPAD
    ]
    rows, _ = place(clips, rng, NARROW_HZ)
    assert detect_rows(rows, NARROW_HZ).digits == [[d, d] for d in KEYPAD]


def test_an_interruption_of_10_ms_does_not_split_a_press() -> None:
    """Q.24: a break of up to 10 ms within a tone is bridged."""
    rng = np.random.default_rng(29)
    clips = []
    for digit in KEYPAD:
        clip = key_tone(digit, rng, duration_ms=150)
        clip[NARROW_HZ * 70 // 1000 : NARROW_HZ * 80 // 1000] = 0.0
        clips.append(clip)
    rows, _ = place(clips, rng, NARROW_HZ)
    assert detect_rows(rows, NARROW_HZ).digits == [[d] for d in KEYPAD]


def test_a_new_key_without_a_pause_is_a_new_press() -> None:
    rng = np.random.default_rng(31)
    pairs = ["12", "15", "*#", "AD", "90", "58"]
    clips = [np.concatenate([key_tone(d, rng, duration_ms=50) for d in pair]) for pair in pairs]
    rows, _ = place(clips, rng, NARROW_HZ)
    assert detect_rows(rows, NARROW_HZ).digits == [list(pair) for pair in pairs]


def test_a_long_press_counts_once_and_is_masked_while_it_lasts() -> None:
    rng = np.random.default_rng(37)
    rows, starts = place([key_tone("5", rng, duration_ms=1000)], rng, NARROW_HZ, row_ms=1400)
    detection = detect_rows(rows, NARROW_HZ)
    assert detection.digits == [["5"]]
    first_frame = int(starts[0]) // frame_samples(NARROW_HZ)
    end_frame = (int(starts[0]) + NARROW_HZ) // frame_samples(NARROW_HZ)
    mask = detection.masks[0]
    assert not mask[:first_frame].any()
    assert mask[first_frame + 2 : end_frame + 1].all()  # from 20-40 ms into the tone
    assert not mask[end_frame + 2 :].any()


@pytest.mark.parametrize("rate_hz", [NARROW_HZ, WIDE_HZ])
def test_a_40_ms_press_counts_once_wherever_it_falls_in_a_frame(rate_hz: int) -> None:
    """One row per start sample, across a whole 20 ms frame."""
    rng = np.random.default_rng(41)
    size = frame_samples(rate_hz)
    rows = np.zeros((size, 8 * size), dtype=np.float32)
    for offset in range(size):
        rows[offset, 2 * size + offset :][: rate_hz * 40 // 1000] = key_tone(
            KEYPAD[offset % 16], rng, rate_hz, level_dbm0=-25, twist_db=6, duration_ms=40
        )
    detection = detect_rows(rows, rate_hz)
    assert detection.digits == [[KEYPAD[offset % 16]] for offset in range(size)]


@pytest.mark.parametrize("frame_ms", [5, 10, 40])
def test_frame_size_does_not_change_the_result(frame_ms: int) -> None:
    """The detector works per 5 ms hop, so any whole number of hops per call agrees."""
    rng = np.random.default_rng(43)
    rows, _, _ = grid(rng, NARROW_HZ, durations_ms=(40,))
    rows = rows[::7]
    reference = detect_rows(rows, NARROW_HZ)
    other = detect_rows(rows, NARROW_HZ, frame_ms)
    assert other.digits == reference.digits
    np.testing.assert_allclose(other.states, reference.states, rtol=1e-4, atol=1e-7)


def test_rows_are_independent() -> None:
    """A stream gives the same digits, mask and state alone as stacked with others."""
    rng = np.random.default_rng(47)
    size = NARROW_HZ * ROW_MS // 1000
    mixed = np.stack(
        [
            place([key_tone("7", rng, duration_ms=50)], rng, NARROW_HZ)[0][0],
            white_noise(rng, (size,), -20.0),
            place([key_tone("#", rng, level_dbm0=-20, twist_db=-5)], rng, NARROW_HZ)[0][0],
            np.zeros(size, dtype=np.float32),
        ]
    )
    together = detect_rows(mixed, NARROW_HZ)
    assert together.digits == [["7"], [], ["#"], []]
    for row in range(len(mixed)):
        alone = detect_rows(mixed[row : row + 1], NARROW_HZ)
        assert alone.digits == together.digits[row : row + 1]
        np.testing.assert_array_equal(alone.masks[0], together.masks[row])
        np.testing.assert_allclose(alone.states[0], together.states[row], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("rate_hz", [NARROW_HZ, WIDE_HZ])
def test_the_bridges_own_ramped_tones_are_detected(rate_hz: int) -> None:
    """dsp.tones.dtmf softens each end over 5 ms; at 60 ms that still counts, once."""
    rng = np.random.default_rng(53)
    rows, _ = place([dtmf(d, 60, rate_hz) for d in KEYPAD], rng, rate_hz)
    assert detect_rows(rows, rate_hz).digits == [[d] for d in KEYPAD]


# Speech and music: nothing may come out.

ENGLISH = (
    "The quarterly coordination meeting will start in five minutes. Please keep your "
    "microphone muted unless you are speaking, and press star six to unmute yourself. We have "
    "three items on the agenda today: the flood response in the northern districts, the "
    "vaccination schedule for next month, and the budget for emergency supplies. Could the "
    "health office begin with a short summary? Thank you, that was very clear. Are there any "
    "questions from the field teams?"
)
INDONESIAN = (
    "Rapat koordinasi triwulan akan dimulai dalam lima menit. Mohon matikan mikrofon Anda "
    "kecuali sedang berbicara, dan tekan bintang enam untuk menyalakannya kembali. Ada tiga "
    "agenda hari ini: penanganan banjir di kabupaten utara, jadwal vaksinasi bulan depan, dan "
    "anggaran perlengkapan darurat. Silakan dinas kesehatan menyampaikan ringkasan singkat. "
    "Terima kasih, sangat jelas. Apakah ada pertanyaan dari tim lapangan?"
)
# espeak-ng's default speed; clips stay untrimmed, at espeak-ng's own level (near full scale).
ESPEAK_WPM = 175
# (voice, pitch 0-99 or None for the voice's own, text): male and female variants, high
# and low pitches (a high voice spaces its harmonics widely, the hardest case for talk-off).
VOICES = (
    ("en-us", None, ENGLISH),
    ("en-gb", None, ENGLISH),
    ("id", None, INDONESIAN),
    ("ms", None, INDONESIAN),
    ("en-us+f3", 80, ENGLISH),
    ("id+f2", 90, INDONESIAN),
    ("en-gb-scotland+m3", 20, ENGLISH),
    ("vi", 70, INDONESIAN),
    ("en-us+klatt", None, ENGLISH),
)


@dataclass(frozen=True, slots=True)
class Speech:
    """All the voices, end to end: `(samples,)` float32 at 16 and at 8 kHz."""

    wide: Samples
    narrow: Samples


@pytest.fixture(scope="session")
def speech() -> Speech:
    """About 4 minutes of speech in 9 voices (espeak-ng takes about a second for it)."""
    wide = np.concatenate([
        speak(text, voice, WIDE_HZ, speed_wpm=ESPEAK_WPM, pitch=pitch, trim_db=None)
        for voice, pitch, text in VOICES
    ])
    return Speech(wide, resample(wide, WIDE_HZ, NARROW_HZ))


def as_rows(clip: Samples, rate_hz: int, row_s: int = 10) -> Samples:
    """Cut `clip` into rows of `row_s` seconds (the tail dropped), to run them side by side."""
    size = rate_hz * row_s
    return clip[: len(clip) // size * size].reshape(-1, size)


@pytest.mark.parametrize("rate_hz", [NARROW_HZ, WIDE_HZ])
def test_speech_gives_no_digits(speech: Speech, rate_hz: int) -> None:
    clip = speech.narrow if rate_hz == NARROW_HZ else speech.wide
    rows = as_rows(clip, rate_hz)
    assert rows.size >= 2 * 60 * rate_hz
    detection = detect_rows(rows, rate_hz)
    assert not any(detection.digits)
    assert not detection.masks.any()  # measured: no frame of speech is even held back


def music(rng: np.random.Generator, seconds: int, rate_hz: int, rolloff: float) -> Samples:
    """Chords of 2-4 equal-tempered notes (C3 .. G#5 roots) with 8 harmonics at 1/h**rolloff,
    struck and decaying, overlapping, at -30 .. -6 dBFS peak."""
    out = np.zeros(seconds * rate_hz, dtype=np.float32)
    position = 0
    while position < len(out):
        length = int(rng.uniform(0.1, 0.6) * rate_hz)
        root = int(rng.integers(48, 80))  # MIDI note numbers
        intervals = [0, int(rng.choice([3, 4])), 7, int(rng.choice([10, 11, 12]))]
        notes = root + np.array(intervals[: int(rng.integers(2, 5))])
        t = np.arange(length) / rate_hz
        chord = np.zeros(length)
        for note in notes:
            f0 = 440.0 * 2 ** ((note - 69) / 12)
            for h in range(1, 9):
                if h * f0 < 0.45 * rate_hz:
                    chord += np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi)) / h**rolloff
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-t * rng.uniform(0.5, 4.0))
        chord *= envelope * 10 ** (rng.uniform(-30, -6) / 20) / np.max(np.abs(chord))
        end = min(len(out), position + length)
        out[position:end] += chord[: end - position].astype(np.float32)
        position += int(length * rng.uniform(0.5, 1.0))
    return out


@pytest.mark.parametrize("rate_hz", [NARROW_HZ, WIDE_HZ])
@pytest.mark.parametrize("rolloff", [1.0, 2.0], ids=["bright", "mellow"])
def test_music_gives_no_digits(rate_hz: int, rolloff: float) -> None:
    rng = np.random.default_rng(59)
    rows = as_rows(music(rng, 60, rate_hz, rolloff), rate_hz)
    assert not any(detect_rows(rows, rate_hz).digits)


# Interface.


def test_state_is_a_flat_float32_row_per_rate() -> None:
    assert dtmf_state(NARROW_HZ).shape == (225,)
    assert dtmf_state(WIDE_HZ).shape == (385,)
    assert dtmf_state(NARROW_HZ).dtype == np.float32


def test_states_for_many_streams_are_fresh_states_stacked() -> None:
    for rate_hz in (NARROW_HZ, WIDE_HZ):
        many = dtmf_states(rate_hz, 3)
        np.testing.assert_array_equal(many, np.stack([dtmf_state(rate_hz)] * 3))
        assert many.dtype == np.float32 and many.flags.writeable
        assert dtmf_states(rate_hz, 0).shape == (0, many.shape[1])
    with pytest.raises(ValueError, match="8000, 16000"):
        dtmf_states(44100, 2)


def test_fresh_states_are_copies_the_caller_may_change() -> None:
    state, rows = dtmf_state(NARROW_HZ), dtmf_states(NARROW_HZ, 2)
    state[:] = 1.0
    rows[:] = 2.0
    np.testing.assert_array_equal(dtmf_state(NARROW_HZ), dtmf_states(NARROW_HZ, 1)[0])
    assert dtmf_state(NARROW_HZ)[0] == 0.0


def test_inputs_are_left_alone() -> None:
    rng = np.random.default_rng(61)
    frames = key_tone("3", rng, duration_ms=20)[None, :]
    states = dtmf_state(NARROW_HZ)[None, :]
    frames_before, states_before = frames.copy(), states.copy()
    detect_dtmf(frames, states, NARROW_HZ)
    np.testing.assert_array_equal(frames, frames_before)
    np.testing.assert_array_equal(states, states_before)


def test_bad_calls_raise_value_error() -> None:
    frame = np.zeros((1, 160), dtype=np.float32)
    state = dtmf_state(NARROW_HZ)[None, :]
    with pytest.raises(ValueError, match="8000, 16000"):
        dtmf_state(44100)
    with pytest.raises(ValueError, match="multiple of 40 samples"):
        detect_dtmf(frame[:, :150], state, NARROW_HZ)
    with pytest.raises(ValueError, match="multiple of 40 samples"):
        detect_dtmf(frame[0], state, NARROW_HZ)
    with pytest.raises(ValueError, match="states of shape"):
        detect_dtmf(frame, dtmf_state(WIDE_HZ)[None, :], NARROW_HZ)


def test_an_empty_room_is_fine() -> None:
    digits, states, mask = detect_dtmf(
        np.zeros((0, 160), dtype=np.float32), np.zeros((0, 225), dtype=np.float32), NARROW_HZ
    )
    assert digits == [] and states.shape == (0, 225) and mask.shape == (0,)
