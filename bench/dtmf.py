"""In-band DTMF detection (dsp.dtmf): detection over the Q.24 grid, limits, talk-off, cost.

Prints four tables:
1. detection rate over all 16 digits at -25 .. -3 dBm0 and -6 .. +6 dB twist (40 ms tones,
   white noise at -50 dBm0, a random start in the frame), at 8 kHz, after G.711 μ-law,
   and at 16 kHz; a cell is the share of presses reported exactly once;
2. where the limits fall: duration, frequency offset, twist and level swept across them;
3. false digits over espeak-ng speech (English, Indonesian and others, many voice
   variants and pitches) and over synthetic chords, per minute, at 8 and 16 kHz;
4. µs per call of detect_dtmf for k = 1, 50, 500 streams, on speech-like noise (no
   candidate) and on rows that are all in a press, best of 5.

    .venv/bin/python bench/dtmf.py            # everything, about a minute
    .venv/bin/python bench/dtmf.py --smoke    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import itertools
import timeit
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
from numpy.typing import NDArray
from quality_report import Section
from speech import speak

from dsp.codecs import get_codec
from dsp.dtmf import DBM0_PEAK_DBFS, KEYPAD, detect_dtmf, dtmf_state
from dsp.resample import resample
from dsp.tones import DTMF_FREQUENCIES_HZ

Samples = NDArray[np.float32]

NARROW_HZ = 8000
WIDE_HZ = 16000
FRAME_MS = 20
LEVELS_DBM0 = (-25, -22, -19, -16, -13, -10, -7, -5, -3)
TWISTS_DB = (-6, -3, 0, 3, 6)  # high group minus low group
NOISE_DBM0 = -50.0
ROW_MS = 240

ENGLISH = (
    "The quarterly coordination meeting will start in five minutes. Please keep your "
    "microphone muted unless you are speaking, and press star six to unmute yourself. We have "
    "three items on the agenda today: the flood response in the northern districts, the "
    "vaccination schedule for next month, and the budget for emergency supplies."
)
INDONESIAN = (
    "Rapat koordinasi triwulan akan dimulai dalam lima menit. Mohon matikan mikrofon Anda "
    "kecuali sedang berbicara, dan tekan bintang enam untuk menyalakannya kembali. Ada tiga "
    "agenda hari ini: penanganan banjir di kabupaten utara, jadwal vaksinasi bulan depan, dan "
    "anggaran perlengkapan darurat."
)
LANGUAGES = {
    "en-us": ENGLISH,
    "en-gb": ENGLISH,
    "en-029": ENGLISH,
    "id": INDONESIAN,
    "ms": INDONESIAN,
    "vi": INDONESIAN,
    "de": ENGLISH,
    "fr-fr": ENGLISH,
    "es": ENGLISH,
    "nl": ENGLISH,
}
VARIANTS = ("", "+f1", "+f2", "+f3", "+f4", "+m1", "+m3", "+m7", "+croak", "+klatt", "+klatt3")
PITCHES = (None, 10, 50, 90)  # espeak-ng -p; None: the voice's own
# espeak-ng's default speed, untrimmed, at its own level (near full scale): talk-off is
# measured on speech as loud as a phone could send it.
ESPEAK_WPM = 175


def sine_amplitude(level_dbm0: float) -> float:
    """Peak of a sine at `level_dbm0`."""
    return float(10 ** ((level_dbm0 + DBM0_PEAK_DBFS) / 20))


def key_tone(
    digit: str,
    rng: np.random.Generator,
    rate_hz: int,
    level_dbm0: float,
    twist_db: float,
    duration_ms: float,
    scale: tuple[float, float] = (1.0, 1.0),
) -> Samples:
    """Return `digit`'s hard-edged tone pair, the stronger tone at `level_dbm0`."""
    low_hz, high_hz = DTMF_FREQUENCIES_HZ[digit]
    t = np.arange(round(duration_ms * rate_hz / 1000)) / rate_hz
    phases = rng.uniform(0, 2 * np.pi, 2)
    low = sine_amplitude(level_dbm0 - max(twist_db, 0.0))
    high = sine_amplitude(level_dbm0 + min(twist_db, 0.0))
    pair = low * np.sin(2 * np.pi * low_hz * scale[0] * t + phases[0]) + high * np.sin(
        2 * np.pi * high_hz * scale[1] * t + phases[1]
    )
    return np.asarray(pair, dtype=np.float32)


def rows_of(clips: Sequence[Samples], rng: np.random.Generator, rate_hz: int) -> Samples:
    """One row per clip, starting at a random sample of the third 20 ms frame."""
    frame = rate_hz * FRAME_MS // 1000
    rows = np.zeros((len(clips), rate_hz * ROW_MS // 1000), dtype=np.float32)
    for row, clip in zip(rows, clips, strict=True):
        start = 2 * frame + int(rng.integers(0, frame))
        row[start : start + len(clip)] = clip
    return rows


def detect(rows: Samples, rate_hz: int) -> tuple[list[list[str]], int]:
    """Stream rows through the detector in 20 ms frames: each row's digits, frames flagged."""
    size = rate_hz * FRAME_MS // 1000
    states = np.tile(dtmf_state(rate_hz), (rows.shape[0], 1))
    found: list[list[str]] = [[] for _ in range(rows.shape[0])]
    flagged = 0
    for start in range(0, rows.shape[1] - size + 1, size):
        digits, states, mask = detect_dtmf(rows[:, start : start + size], states, rate_hz)
        flagged += int(mask.sum())
        for row, digit in enumerate(digits):
            if digit is not None:
                found[row].append(digit)
    return found, flagged


def white_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> Samples:
    return rng.normal(0, sine_amplitude(NOISE_DBM0) / np.sqrt(2), shape).astype(np.float32)


def grid_table(rng: np.random.Generator, repeats: int) -> dict[str, tuple[float, int]]:
    """Table 1: detection per level and twist, for 40 ms tones; returns, per path, the
    share of presses reported exactly once (%) and how many there were."""
    overall: dict[str, tuple[float, int]] = {}
    g711 = get_codec("PCMU")
    paths: dict[str, tuple[int, Callable[[Samples], Samples]]] = {
        "8 kHz": (NARROW_HZ, lambda rows: rows),
        "8 kHz, G.711 μ-law": (NARROW_HZ, lambda rows: g711.decode_many(g711.encode(rows))),
        "16 kHz": (WIDE_HZ, lambda rows: rows),
    }
    for name, (rate_hz, path) in paths.items():
        cases = list(itertools.product(KEYPAD, LEVELS_DBM0, TWISTS_DB, range(repeats)))
        clips = [key_tone(d, rng, rate_hz, lv, tw, 40) for d, lv, tw, _ in cases]
        rows = rows_of(clips, rng, rate_hz)
        rows = path(rows + white_noise(rng, rows.shape))
        hits = np.array(
            [
                found == [case[0]]
                for found, case in zip(detect(rows, rate_hz)[0], cases, strict=True)
            ]
        ).reshape(len(KEYPAD), len(LEVELS_DBM0), len(TWISTS_DB), repeats)
        print(f"\n40 ms presses, {name}, noise {NOISE_DBM0:g} dBm0: % reported exactly once")
        print("level dBm0 \\ twist dB " + "".join(f"{t:>7}" for t in TWISTS_DB))
        for index, level in enumerate(LEVELS_DBM0):
            cells = hits[:, index].mean(axis=(0, 2)) * 100
            print(f"{level:>21} " + "".join(f"{cell:>7.1f}" for cell in cells))
        print(f"overall: {hits.mean() * 100:.2f} % of {hits.size} presses")
        overall[name] = (float(hits.mean() * 100), int(hits.size))
    return overall


def limits_table(rng: np.random.Generator, repeats: int) -> None:
    """Table 2: the detection rate across each limit (8 kHz, -10 dBm0 unless swept)."""

    def rate(make: Callable[[str, float], Samples], value: float) -> float:
        digits = [KEYPAD[i % len(KEYPAD)] for i in range(len(KEYPAD) * repeats)]
        clips = [make(digit, value) for digit in digits]
        found, _ = detect(rows_of(clips, rng, NARROW_HZ), NARROW_HZ)
        return float(np.mean([f == [d] for f, d in zip(found, digits, strict=True)]) * 100)

    def sign() -> float:
        return float(rng.choice([-1.0, 1.0]))

    sweeps: dict[str, tuple[Sequence[float], Callable[[str, float], Samples]]] = {
        "duration ms": (
            (23, 30, 32, 34, 35, 36, 38, 40),
            lambda d, value: key_tone(d, rng, NARROW_HZ, -10, 0, value),
        ),
        "both tones off by %": (
            (1.5, 2.0, 2.5, 3.0, 3.5),
            lambda d, value: key_tone(
                d, rng, NARROW_HZ, -10, 0, 60, (1 + sign() * value / 100, 1 + sign() * value / 100)
            ),
        ),
        "twist dB (either way)": (
            (6, 7, 7.5, 8.5, 9, 10),
            lambda d, value: key_tone(d, rng, NARROW_HZ, -5, sign() * value, 60),
        ),
        "level dBm0 (both)": (
            (-31, -35, -37, -38, -39, -41),
            lambda d, value: key_tone(d, rng, NARROW_HZ, value, 0, 60),
        ),
    }
    print("\nLimits: % of presses reported once (16 digits, random start)")
    for name, (values, make) in sweeps.items():
        cells = [f"{value:g}: {rate(make, value):.0f}" for value in values]
        print(f"{name:>22}  " + "  ".join(cells))


def chords(rng: np.random.Generator, seconds: int, rate_hz: int) -> Samples:
    """Struck chords of 2-4 notes with 8 harmonics each (1/h to 1/h² amplitudes)."""
    out = np.zeros(seconds * rate_hz, dtype=np.float32)
    position = 0
    while position < len(out):
        length = int(rng.uniform(0.1, 0.6) * rate_hz)
        notes = int(rng.integers(48, 80)) + np.array([0, 4, 7, 11][: int(rng.integers(2, 5))])
        rolloff = rng.uniform(1.0, 2.0)
        t = np.arange(length) / rate_hz
        chord = np.zeros(length)
        for note in notes:
            f0 = 440.0 * 2 ** ((note - 69) / 12)
            for h in range(1, 9):
                if h * f0 < 0.45 * rate_hz:
                    chord += np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi)) / h**rolloff
        chord *= np.minimum(1.0, t / 0.01) * np.exp(-t * rng.uniform(0.5, 4.0))
        chord *= 10 ** (rng.uniform(-30, -6) / 20) / np.max(np.abs(chord))
        end = min(len(out), position + length)
        out[position:end] += chord[: end - position].astype(np.float32)
        position += int(length * rng.uniform(0.5, 1.0))
    return out


def talk_off_table(rng: np.random.Generator, smoke: bool) -> dict[str, tuple[int, float]]:
    """Table 3: false digits per minute over speech and chords; returns, per source and
    rate, the false digits and the minutes searched."""
    false_digits: dict[str, tuple[int, float]] = {}
    voices = (
        [("en-us", None), ("id", None)]
        if smoke
        else [
            (language + variant, pitch)
            for language in LANGUAGES
            for variant in rng.choice(VARIANTS, 3, replace=False)
            for pitch in PITCHES
        ]
    )
    wide = np.concatenate(
        [
            speak(LANGUAGES[voice.split("+")[0]], voice, WIDE_HZ, speed_wpm=ESPEAK_WPM,
                  pitch=pitch, trim_db=None)
            for voice, pitch in voices
        ]
    )
    sources = {
        f"speech ({len(voices)} voices)": {WIDE_HZ: wide, NARROW_HZ: resample(wide, WIDE_HZ, 8000)},
        "chords": {rate: chords(rng, 10 if smoke else 120, rate) for rate in (NARROW_HZ, WIDE_HZ)},
    }
    print("\nFalse digits")
    for name, clips in sources.items():
        for rate_hz, clip in clips.items():
            size = 10 * rate_hz
            rows = clip[: len(clip) // size * size].reshape(-1, size)
            minutes = rows.size / rate_hz / 60
            found, flagged = detect(rows, rate_hz)
            false = sum(len(digits) for digits in found)
            print(
                f"{name:>20} at {rate_hz // 1000:>2} kHz: {false} in {minutes:.1f} min "
                f"({false / minutes:.2f} per minute), {flagged} of {rows.size // (rate_hz // 50)} "
                "frames flagged"
            )
            false_digits[f"{name} at {rate_hz // 1000} kHz"] = (false, minutes)
    return false_digits


def cost_table(rng: np.random.Generator, repeats: int) -> float:
    """Table 4: µs per detect_dtmf call, per frame of 20 ms; returns µs per stream at
    8 kHz with 500 streams and no tone (the common case in a room)."""
    common = 0.0
    print("\nCost: µs per call (per stream), best of 5")
    print(f"{'rate':>6} {'k':>5} {'no candidate':>22} {'all in a press':>22}")
    for rate_hz in (NARROW_HZ, WIDE_HZ):
        size = rate_hz * FRAME_MS // 1000
        for streams in (1, 50, 500):
            cells = []
            states = np.tile(dtmf_state(rate_hz), (streams, 1))
            noise = rng.normal(0, 0.05, (streams, size)).astype(np.float32)
            tone = key_tone("5", rng, rate_hz, -10, 0, 2 * FRAME_MS)[size:]
            for frames in (noise, np.tile(tone, (streams, 1))):
                warm = states
                for _ in range(3):
                    _, warm, _ = detect_dtmf(frames, warm, rate_hz)
                calls = max(1, repeats // streams)
                best = min(
                    timeit.repeat(
                        partial(detect_dtmf, frames, warm, rate_hz),
                        number=calls,
                        repeat=5,
                    )
                )
                micros = best / calls * 1e6
                cells.append(f"{micros:>9.0f} ({micros / streams:>6.1f})")
                if (rate_hz, streams, frames is noise) == (NARROW_HZ, 500, True):
                    common = micros / streams
            print(f"{rate_hz:>6} {streams:>5} {cells[0]:>22} {cells[1]:>22}")
    return common


def measure(smoke: bool) -> list[Section]:
    """Run every table; return the headline figures as one section for bench/quality.py."""
    rng = np.random.default_rng(2024)
    detected = grid_table(rng, repeats=1 if smoke else 8)
    limits_table(rng, repeats=1 if smoke else 10)
    false_digits = talk_off_table(rng, smoke)
    cost = cost_table(rng, repeats=20 if smoke else 2000)
    rows = [(f"40 ms presses, {name}", f"{share:.2f} % of {count}")
            for name, (share, count) in detected.items()]
    rows += [(f"false digits, {name}", f"{false} in {minutes:.1f} min")
             for name, (false, minutes) in false_digits.items()]
    return [Section(
        title="In-band DTMF: detection and talk-off",
        headers=("what", "result"),
        rows=tuple(rows),
        notes=("All 16 digits at -25 ... -3 dBm0 with ±6 dB twist, 40 ms tones, -50 dBm0 noise "
               "(target 100 %); false digits over espeak-ng speech and synthetic chords (target "
               "0). Full tables: `.venv/bin/python bench/dtmf.py`.",),
        stage_costs_us={"in-band DTMF detector (8 kHz, no tone)": cost},
    )]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a short run for CI")
    measure(parser.parse_args().smoke)


if __name__ == "__main__":
    main()
