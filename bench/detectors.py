"""Cost and bit-identity of the room-wide detectors: dsp.dtmf, dsp.vad, dsp.echo, dsp.agc.

Every 20 ms tick the room runs each of these once over all its audible lines, so their cost
per row decides how many members a core carries (issue #6). This script
(a) times each function at 50, 200 and 500 rows, in µs per row per call, on a room whose
    rows are mostly line noise near the -60 dBFS floor, with a few talkers and keypad tones
    and a tenth of the rows joining fresh each tick (best of a few runs of 50 ticks);
(b) runs the same ticks through the modules as they were before they were made faster, or
    last changed what they give (`git show <commit>:dsp/<name>.py` of REFERENCE_COMMITS,
    loaded as temporary modules; nothing in the repository is written) and asserts that
    every output and every state they leave is identical, bit for bit: random rows (any level,
    clipping, digital silence) and realistic ones (speech-like, DTMF, noise, echo), with
    rows joining fresh, over many ticks with the states carried.

    .venv/bin/python bench/detectors.py            # timing and identity, about a minute
    .venv/bin/python bench/detectors.py --smoke    # identity only, a few seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

import dsp.agc
import dsp.dtmf
import dsp.echo
import dsp.vad

Samples = NDArray[np.float32]
Powers = NDArray[np.float64]

REPOSITORY = Path(__file__).resolve().parent.parent
RATES_HZ = (8000, 16000)
FRAME_MS = 20
ROW_COUNTS = (50, 200, 500)
FLOOR_DBFS = dsp.vad.ENERGY_FLOOR_DBFS
MAX_TALKERS = 3


# --- Signals ---------------------------------------------------------------------------


def _speech_like(rng: np.random.Generator, seconds: float, rate_hz: int) -> Samples:
    """Voiced syllables: a glottal pulse train at a wandering pitch through two formants,
    under a 4 Hz syllable envelope with pauses; about -26 dBFS when active."""
    count = int(seconds * rate_hz)
    pitch_hz = rng.uniform(100, 220) * (1 + 0.1 * np.sin(np.arange(count) / rate_hz * 3.0))
    phase = np.cumsum(pitch_hz / rate_hz)
    pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    voiced = pulses + 0.05 * rng.standard_normal(count)
    for formant_hz, bandwidth_hz in ((rng.uniform(500, 800), 80), (rng.uniform(1100, 1900), 120)):
        radius = math.exp(-math.pi * bandwidth_hz / rate_hz)
        angle = 2 * math.pi * formant_hz / rate_hz
        voiced = lfilter([1.0], [1.0, -2 * radius * math.cos(angle), radius**2], voiced)
    syllables = np.maximum(np.sin(2 * np.pi * 4.0 * np.arange(count) / rate_hz), 0.0)
    pauses = np.repeat(rng.random(count // rate_hz + 1) < 0.3, rate_hz)[:count]
    pauses[:rate_hz] = False
    envelope = syllables * ~pauses
    active = voiced * envelope
    rms = np.sqrt(np.mean(np.square(active[envelope > 0.5])))
    return (active * (10 ** (rng.uniform(-36, -16) / 20) / rms)).astype(np.float32)


def _keypad(rng: np.random.Generator, seconds: float, rate_hz: int) -> Samples:
    """Key presses of 25-120 ms with 10-200 ms gaps, random digits, levels and twist."""
    count = int(seconds * rate_hz)
    out = np.zeros(count, dtype=np.float64)
    start = 0
    times = np.arange(count) / rate_hz
    while start < count:
        start += int(rng.uniform(0.01, 0.2) * rate_hz)
        length = int(rng.uniform(0.025, 0.12) * rate_hz)
        low, high = dsp.dtmf.DTMF_FREQUENCIES_HZ[rng.choice(list(dsp.dtmf.KEYPAD))]
        level = 10 ** (rng.uniform(-30, -3) / 20)
        twist = 10 ** (rng.uniform(-7, 7) / 20)
        span = slice(start, min(start + length, count))
        out[span] = level * (
            np.sin(2 * np.pi * low * times[span] + rng.uniform(0, 6.3))
            + twist * np.sin(2 * np.pi * high * times[span] + rng.uniform(0, 6.3))
        ) / (1 + twist)
        start += length
    return (out + 10 ** (-55 / 20) * rng.standard_normal(count)).astype(np.float32)


@dataclass
class Line:
    """One row of the simulated room: what it sends, looped, and whether it echoes."""

    clip: Samples
    echo_delay_frames: int  # 0: no echo


class Room:
    """A room of `k` lines at one rate: frames tick by tick, and lines that rejoin.

    `kind` "realistic": MAX_TALKERS speech-like lines, two keypad lines, a few silent and a
    few echoing lines, the rest noise around the -60 dBFS floor (about half above it).
    "random": every row, every tick, noise at any level from -100 to +6 dBFS (clipping),
    digital silence, a pure tone, or speech-like, in random proportions.
    """

    def __init__(self, k: int, rate_hz: int, kind: str, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.k, self.rate_hz, self.kind = k, rate_hz, kind
        self.samples = rate_hz * FRAME_MS // 1000
        self.tick = 0
        self.pool = [_speech_like(self.rng, 4.0, rate_hz) for _ in range(6)]
        self.keys = [_keypad(self.rng, 4.0, rate_hz) for _ in range(3)]
        self.lines = [self._line(row) for row in range(k)]
        self.sent_power = np.zeros((64, k))  # what each line was sent, by tick, a ring

    def _line(self, row: int) -> Line:
        rng = self.rng
        noise_level = 10 ** (rng.uniform(-63, -57) / 20)
        noise = (noise_level * rng.standard_normal(self.samples * 50)).astype(np.float32)
        if row < MAX_TALKERS:
            clip = self.pool[rng.integers(len(self.pool))] + noise.repeat(4)[: 4 * self.rate_hz]
        elif row < MAX_TALKERS + 2:
            clip = self.keys[rng.integers(len(self.keys))]
        elif row % 17 == 0:
            clip = np.zeros(self.samples, dtype=np.float32)
        else:
            clip = noise
        echoes = row % 11 == 5
        return Line(clip, int(rng.integers(1, 20)) if echoes else 0)

    def frames(self) -> tuple[Samples, NDArray[np.bool_], tuple[Powers, Powers]]:
        """Return this tick's `(k, n)` frames, which rows joined fresh, and the echo
        detector's (mic, reference) powers."""
        self.tick += 1
        fresh = self.rng.random(self.k) < 0.003
        if self.kind == "random":
            out = self._random_frames()
        else:
            out = np.empty((self.k, self.samples), dtype=np.float32)
            for row, line in enumerate(self.lines):
                start = (self.tick * self.samples) % (line.clip.size - self.samples + 1)
                out[row] = line.clip[start : start + self.samples]
        power = np.einsum("ij,ij->i", out, out).astype(np.float64) / self.samples
        return out, fresh, self._echo_powers(power)

    def _random_frames(self) -> Samples:
        rng, k, n = self.rng, self.k, self.samples
        levels = 10 ** (rng.uniform(-100, 6, size=(k, 1)) / 20)
        frames = (levels * rng.standard_normal((k, n))).clip(-1.0, 1.0).astype(np.float32)
        kind = rng.integers(0, 5, size=k)
        frames[kind == 0] = 0.0
        times = np.arange(n) / self.rate_hz + self.tick * n / self.rate_hz
        tones = np.flatnonzero(kind == 1)
        frames[tones] = (levels[tones] * np.sin(2 * np.pi * 1000 * times)).astype(np.float32)
        for row in np.flatnonzero(kind == 2).tolist():
            clip = self.pool[row % len(self.pool)]
            start = (self.tick * n) % (clip.size - n)
            frames[row] = clip[start : start + n]
        return frames

    def _echo_powers(self, mic_power: Powers) -> tuple[Powers, Powers]:
        """Return (mic, reference) powers: echoing lines hear their mix back, delayed."""
        talking = np.sin(self.tick / 9.0) > -0.2 if self.kind == "realistic" else True
        sent = self.rng.uniform(1e-4, 1e-2) * (self.rng.random(self.k) + 0.1) * talking
        slot = self.tick % self.sent_power.shape[0]
        self.sent_power[slot] = sent
        mic = mic_power.copy()
        for row, line in enumerate(self.lines):
            if line.echo_delay_frames:
                back = self.sent_power[(slot - line.echo_delay_frames) % self.sent_power.shape[0]]
                mic[row] += 0.1 * back[row]
        if self.kind == "random":
            sent[self.rng.random(self.k) < 0.2] = 0.0
        return mic, sent


# --- The committed modules ---------------------------------------------------------------

# Per module, the last commit that changed what it gives: dtmf and echo as before they were
# made faster (issue #6); vad and agc as of their last change in behaviour (webrtcvad mode 2,
# the AGC's hysteresis). The committed agc is given the committed vad.
REFERENCE_COMMITS = {
    "vad": "b98e89de4dba997988fc3c621018baf8ee9dcb4d",
    "agc": "b98e89de4dba997988fc3c621018baf8ee9dcb4d",
    "dtmf": "87f623eb521eaf230d4b1d333fdc74d395f65f2d",
    "echo": "87f623eb521eaf230d4b1d333fdc74d395f65f2d",
}


def committed_modules() -> dict[str, types.ModuleType]:
    """Load dsp.{vad,agc,dtmf,echo} as of REFERENCE_COMMITS into modules of their own.

    The committed agc is given the committed vad. Raises CalledProcessError without git.
    """
    loaded: dict[str, types.ModuleType] = {}
    for name, commit in REFERENCE_COMMITS.items():
        source = subprocess.run(
            ["git", "-C", str(REPOSITORY), "show", f"{commit}:dsp/{name}.py"],
            check=True, capture_output=True, text=True,
        ).stdout
        module_name = f"committed_dsp_{name}"
        source = source.replace("from dsp.vad import", "from committed_dsp_vad import")
        module = types.ModuleType(module_name)
        module.__file__ = f"{commit}:dsp/{name}.py"
        sys.modules[module_name] = module  # dataclasses look their module up
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        loaded[name] = module
    return loaded


# --- One tick of the room, as bridge/conference/media.py gather_rooms runs them --------


class Detectors:
    """The detectors' states for a room, driven through one set of modules."""

    def __init__(self, modules: dict[str, Any], k: int, rate_hz: int) -> None:
        self.m = modules
        self.fresh_dtmf_rows = 0  # states made by dtmf_state(s), for timing
        self.rate_hz = rate_hz
        self.dtmf: list[NDArray[np.float32] | None] = [None] * k
        self.talkers = [modules["vad"].TalkerState() for _ in range(k)]
        self.echo = np.stack([modules["echo"].echo_detector_state() for _ in range(k)])
        # Half the rows start with a random history, so checks run from the first ticks,
        # and every third of those hears its reference back 1-24 frames later. A state is
        # a header (the frame count first), then the microphone's ring, then the reference's.
        ring, header = _echo_layout(modules["echo"])
        rng = np.random.default_rng(k)
        started = self.echo[: k // 2]
        started[:, 0] = rng.integers(0, 400, size=started.shape[0])
        started[:, header:] = rng.uniform(-70, -10, size=started[:, header:].shape)
        for row in range(0, started.shape[0], 3):
            reference = started[row, header + ring :]
            started[row, header : header + ring] = np.roll(reference, rng.integers(1, 25)) - 10.0

    def fresh_dtmf(self, count: int) -> list[NDArray[np.float32]]:
        maker = getattr(self.m["dtmf"], "dtmf_states", None)
        if maker is not None:
            return list(maker(self.rate_hz, count))
        return [self.m["dtmf"].dtmf_state(self.rate_hz) for _ in range(count)]

    def tick(
        self, frames: Samples, fresh: NDArray[np.bool_], echo_powers: tuple[Powers, Powers],
        tick: int, *, gated: bool,
        timings: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """Run one tick; return every output. `gated`: only audible rows reach the
        detectors, as in the bridge; otherwise every row reaches each (for timing)."""
        vad, agc, dtmf, echo = self.m["vad"], self.m["agc"], self.m["dtmf"], self.m["echo"]
        clock = _Clock(timings)
        k = frames.shape[0]
        for row in np.flatnonzero(fresh).tolist():
            self.dtmf[row] = None
            self.talkers[row] = vad.TalkerState()
            self.echo[row] = echo.echo_detector_state()
        energy = np.einsum("ij,ij->i", frames, frames)
        below_floor = energy <= 10 ** (FLOOR_DBFS / 10) * frames.shape[1]
        audible = ~below_floor if gated else np.ones(k, bool)
        quiet_rows = np.flatnonzero(~audible).tolist()
        rows = np.flatnonzero(audible).tolist()
        out: dict[str, Any] = {}

        # As the bridge does, a row under the floor starts afresh when next heard; ungated,
        # a row that dips under it starts afresh at once.
        for row in np.flatnonzero(below_floor).tolist():
            self.dtmf[row] = None
        with clock("dtmf_state"):
            missing = [row for row in rows if self.dtmf[row] is None]
            self.fresh_dtmf_rows += len(missing)
            for row, state in zip(missing, self.fresh_dtmf(len(missing)), strict=True):
                self.dtmf[row] = state
        candidates = rows
        if rows:
            states = np.stack([self.dtmf[row] for row in rows])
            with clock("detect_dtmf"):
                digits, states, tones = dtmf.detect_dtmf(frames[rows], states, self.rate_hz)
            for index, row in enumerate(rows):
                self.dtmf[row] = states[index]
            out["dtmf"] = (digits, states, tones)
            if gated:
                candidates = [row for row, tone in zip(rows, tones.tolist(), strict=True)
                              if not tone]

        quiet = [self.talkers[row] for row in quiet_rows if self.talkers[row].voiced
                 or self.talkers[row].selected]
        below = [self.talkers[row] for row in quiet_rows
                 if energy[row] > 0 and self.talkers[row].noise_floor_dbfs > FLOOR_DBFS]
        if not gated:
            quiet = below = list(self.talkers)
        with clock("age_silent"):
            vad.age_silent(quiet)
        with clock("note_quiet_frames"):
            vad.note_quiet_frames(below)
        if candidates:
            talkers = [self.talkers[row] for row in candidates]
            classify = tick % 7 != 0
            with clock("detect_voice"):
                out["voiced"] = vad.detect_voice(
                    frames[candidates], talkers, self.rate_hz, classify=classify
                )
        contenders = [s for s in self.talkers if s.voiced or s.selected] if gated else self.talkers
        with clock("choose_talkers"):
            out["chosen"] = vad.choose_talkers(contenders, MAX_TALKERS)
        levelled = [row for row in candidates if self.talkers[row].voiced or not gated]
        if levelled:
            with clock("level_talkers"):
                out["levelled"] = agc.level_talkers(
                    frames[levelled], [self.talkers[row] for row in levelled]
                )

        with clock("detect_echo"):
            out["echo"], self.echo = echo.detect_echo(*echo_powers, self.echo)
        out["talkers"] = [_fields(state) for state in self.talkers]
        out["dtmf_states"] = list(self.dtmf)
        # The count, delay and check tallies, and the rings: what every version keeps. Newer
        # states also hold a check phase after the tallies, 0 for every row here: the
        # older versions' checks come in phase 0.
        _, header = _echo_layout(echo)
        out["echo_states"] = np.concatenate([self.echo[:, :4], self.echo[:, header:]], axis=1)
        return out


def _echo_layout(echo: types.ModuleType) -> tuple[int, int]:
    """(ring length, header length) of this version's echo detector state."""
    ring = echo.DETECTOR_WINDOW_FRAMES + echo.DETECTOR_MAX_LAG_FRAMES
    return ring, echo.DETECTOR_STATE_SIZE - 2 * ring


class _Clock:
    """Adds the time spent in each `with clock(name)` block to `timings[name]`."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.name = ""
        self.start = 0.0

    def __call__(self, name: str) -> _Clock:
        self.name = name
        return self

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        if self.timings is not None:
            elapsed = time.perf_counter() - self.start
            self.timings[self.name] = self.timings.get(self.name, 0.0) + elapsed


def _fields(state: Any) -> tuple[Any, ...]:
    """A TalkerState's fields but the webrtcvad object, as (type, value) pairs."""
    return tuple(
        (type(getattr(state, f.name)), getattr(state, f.name))
        for f in dataclasses.fields(state) if f.name != "vad"
    )


# --- Identity -----------------------------------------------------------------------------


def assert_same(a: Any, b: Any, where: str) -> None:
    """Assert `a` and `b` are identical: arrays by dtype, shape and bits, NaN equal to NaN."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape}"
        equal_nan = a.dtype.kind in "fc"
        assert np.array_equal(a, b, equal_nan=equal_nan), f"{where}: values differ"
        return
    if isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{index}]")
        return
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {a.keys()} != {b.keys()}"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
        return
    if isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), f"{where}: {a!r} != {b!r}"
        return
    assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def check_identity(
    ticks: int,
    row_counts: tuple[int, ...] = (1, 7, 60),
    rates_hz: tuple[int, ...] = RATES_HZ,
    kinds: tuple[str, ...] = ("realistic", "random"),
    seed: int = 1,
) -> dict[str, int]:
    """Run rooms through the committed and the current modules; assert identical results.

    Returns what the compared ticks held, so a caller can tell the check was not vacuous:
    ticks, digits reported, rows in a key press, voiced rows, rows showing echo, and AGC
    gain changes.
    """
    committed = committed_modules()
    current = {"vad": dsp.vad, "agc": dsp.agc, "dtmf": dsp.dtmf, "echo": dsp.echo}
    seen = dict.fromkeys(("ticks", "digits", "tones", "voiced", "echo", "gain_changes"), 0)
    for rate_hz in rates_hz:
        for kind in kinds:
            for k in row_counts:
                for gated in (True, False):
                    room = Room(k, rate_hz, kind, seed + k)
                    old = Detectors(committed, k, rate_hz)
                    new = Detectors(current, k, rate_hz)
                    gains = np.zeros(k)
                    for tick in range(ticks):
                        frames, fresh, powers = room.frames()
                        expected = old.tick(frames, fresh, powers, room.tick, gated=gated)
                        got = new.tick(frames, fresh, powers, room.tick, gated=gated)
                        assert_same(expected, got, f"{rate_hz} Hz {kind} k={k} tick {tick}")
                        _tally(seen, got, gains)
    return seen


def _tally(seen: dict[str, int], outputs: dict[str, Any], gains: NDArray[np.float64]) -> None:
    """Add one tick's events to `seen`; `gains` holds each row's AGC gain from the last."""
    seen["ticks"] += 1
    if "dtmf" in outputs:
        digits, _, tones = outputs["dtmf"]
        seen["digits"] += sum(found is not None for found in digits)
        seen["tones"] += int(tones.sum())
    seen["voiced"] += int(outputs.get("voiced", np.zeros(0)).sum())
    seen["echo"] += int(np.count_nonzero(~np.isnan(outputs["echo"])))
    names = [f.name for f in dataclasses.fields(dsp.vad.TalkerState) if f.name != "vad"]
    gain_index = names.index("gain_db")  # as `_fields` lists them
    now = np.array([fields[gain_index][1] for fields in outputs["talkers"]])
    seen["gain_changes"] += int(np.count_nonzero(now != gains))
    gains[:] = now


# --- Timing -------------------------------------------------------------------------------


def time_detectors(
    modules: dict[str, Any], k: int, rate_hz: int, ticks: int = 50, runs: int = 3
) -> dict[str, float]:
    """Return µs per row per call of each function, every row given to each (best of runs)."""
    room = Room(k, rate_hz, "realistic", seed=k)
    detectors = Detectors(modules, k, rate_hz)
    for _ in range(200):  # fill the echo history so checks run
        frames, fresh, powers = room.frames()
        detectors.tick(frames, fresh, powers, room.tick, gated=False)
    best: dict[str, float] = {}
    for _ in range(runs):
        timings: dict[str, float] = {}
        fresh_before = detectors.fresh_dtmf_rows
        for _ in range(ticks):
            frames, fresh, powers = room.frames()
            detectors.tick(frames, fresh, powers, room.tick, gated=False, timings=timings)
        for name, total in timings.items():
            fresh_rows = detectors.fresh_dtmf_rows - fresh_before
            rows = fresh_rows if name == "dtmf_state" else k * ticks
            best[name] = min(best.get(name, math.inf), total / rows * 1e6)
    return best


def _table(results: dict[str, dict[str, dict[int, float]]], rate_hz: int) -> Iterator[str]:
    yield f"µs per row per call at {rate_hz} Hz, committed -> current (dtmf_state: per fresh row)"
    yield f"{'function':<20}" + "".join(f"{k:>18}" for k in ROW_COUNTS)
    for name, by_rows in results["current"].items():
        cells = (f"{results['committed'][name][k]:.2f} -> {by_rows[k]:.2f}" for k in ROW_COUNTS)
        yield f"{name:<20}" + "".join(f"{cell:>18}" for cell in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="identity only, few ticks")
    parser.add_argument("--rate", type=int, default=8000, choices=RATES_HZ)
    args = parser.parse_args()
    seen = check_identity(60 if args.smoke else 400)
    commits = ", ".join(f"{name} {commit[:7]}" for name, commit in REFERENCE_COMMITS.items())
    print(f"identity with {commits}: {seen['ticks']} ticks identical, holding "
          + ", ".join(
        f"{count} {name}" for name, count in seen.items() if name != "ticks"
    ))
    if args.smoke:
        return
    sets = {
        "committed": committed_modules(),
        "current": {"vad": dsp.vad, "agc": dsp.agc, "dtmf": dsp.dtmf, "echo": dsp.echo},
    }
    results: dict[str, dict[str, dict[int, float]]] = {label: {} for label in sets}
    for k in ROW_COUNTS:
        for _ in range(2):  # alternate, so a busy spell on the machine hits both
            for label, modules in sets.items():
                for name, us in time_detectors(modules, k, args.rate).items():
                    by_rows = results[label].setdefault(name, {})
                    by_rows[k] = min(by_rows.get(k, math.inf), us)
    print("\n".join(_table(results, args.rate)))


if __name__ == "__main__":
    main()
