"""Echo cancelling (dsp.echo) against libspeexdsp's canceller on a speakerphone echo path.

The far end is English speech (espeak-ng, bench/speech.py), the near end Indonesian in
another voice. The echo path: the loudspeaker soft-clips (tanh), a synthetic room (a direct
path then exponentially decaying noise, RT60 250 ms, cut at 250 ms) brings the echo back at
-10 dB against the reference, after a bulk delay of 100, 200 or 300 ms, with white noise at
-60 dBFS. First 8 s of far end only (ERLE at 0.5 .. 8 s), then 6 s of double talk (near-end
loss). At 8 kHz (G.711) and 16 kHz. speexdsp runs through ctypes (Debian libspeexdsp1) with
its residual echo suppressor (speex_preprocess), given the bulk delay as our canceller found
it, and also with a filter long enough to cover the delay itself.

    .venv/bin/python bench/quality_echo.py            # all delays, about a minute
    .venv/bin/python bench/quality_echo.py --smoke    # one delay, a few seconds, for CI
"""

from __future__ import annotations

import argparse
import ctypes
import math
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray
from quality_report import Section
from scipy import signal
from speech import ENGLISH, INDONESIAN, sentences_clip, set_active_level

from dsp.echo import (
    DELAY_MARGIN_MS,
    PRETRAIN_PASSES,
    PRETRAIN_S,
    EchoCanceller,
    detect_echo,
    echo_detector_state,
)

Samples = NDArray[np.float64]
RATES_HZ = (8000, 16000)
DELAYS_MS = (100, 200, 300)
FAR_ONLY_S = 8.0
DOUBLE_TALK_S = 6.0
ERLE_AT_S = (0.5, 1.0, 2.0, 4.0, 8.0)
ERLE_WINDOW_S = 0.5
FAR_LEVEL_DBFS = -20.0
NEAR_LEVEL_DBFS = -26.0
ECHO_DB = -10.0
NOISE_DBFS = -60.0
ECHO_FRAME_DBFS = -45.0
RT60_S = 0.25
ROOM_LENGTH_S = 0.25
TAIL_MS = 128
LIBSPEEXDSP = "/usr/lib/x86_64-linux-gnu/libspeexdsp.so.1"
# speex_echo.h / speex_preprocess.h request numbers.
SPEEX_ECHO_SET_SAMPLING_RATE = 24
SPEEX_PREPROCESS_SET_ECHO_STATE = 24

Canceller = Callable[[Samples, Samples], Samples]  # (mic, reference) -> output, whole clips


@dataclass(frozen=True, slots=True)
class Scene:
    """One echo scenario's signals at one rate: what we send, what comes back, its parts."""

    rate_hz: int
    delay_ms: int
    reference: Samples
    mic: Samples
    near: Samples  # the near-end component of `mic`


def room_response(rate_hz: int, seed: int = 7) -> Samples:
    """Return a speakerphone room: a direct path then decaying noise (RT60_S), unit energy."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(ROOM_LENGTH_S * rate_hz)) / rate_hz
    response = rng.standard_normal(t.size) * 10.0 ** (-3.0 * t / RT60_S) * 0.3
    response[: round(0.002 * rate_hz)] = 0.0  # reflections start 2 ms after the direct path
    response[0] = 1.0
    normalised: Samples = response / np.sqrt(np.sum(response**2))
    return normalised


@cache
def scene(rate_hz: int, delay_ms: int) -> Scene:
    """Build the far-end-only then double-talk scenario at `rate_hz` with `delay_ms`."""
    total = round((FAR_ONLY_S + DOUBLE_TALK_S) * rate_hz)
    far = set_active_level(sentences_clip("en-us", ENGLISH, rate_hz), FAR_LEVEL_DBFS, rate_hz)
    near_clip = set_active_level(
        sentences_clip("id+f3", INDONESIAN, rate_hz), NEAR_LEVEL_DBFS, rate_hz
    )
    reference = np.resize(far.astype(np.float64), total)
    speaker = np.tanh(1.5 * reference) / 1.5  # mild loudspeaker clipping
    echo = signal.lfilter(room_response(rate_hz), 1.0, speaker)
    echo *= math.sqrt(np.mean(reference**2) / np.mean(echo**2)) * 10.0 ** (ECHO_DB / 20.0)
    delay = round(delay_ms * rate_hz / 1000)
    echo = np.concatenate((np.zeros(delay), echo))[:total]
    start = round(FAR_ONLY_S * rate_hz)
    near = np.zeros(total)
    near_part = np.resize(near_clip.astype(np.float64), total - start)
    near[start:] = near_part
    noise = np.random.default_rng(1).standard_normal(total) * 10.0 ** (NOISE_DBFS / 20.0)
    return Scene(rate_hz, delay_ms, reference, echo + near + noise, near)


def run_ours(scene_: Scene) -> tuple[Samples, float | None]:
    """Run dsp.echo over the scene frame by frame; return the output and the delay found."""
    frame = scene_.rate_hz // 50
    canceller = EchoCanceller(scene_.rate_hz, frame, tail_ms=TAIL_MS)
    out = np.zeros_like(scene_.mic)
    mic = scene_.mic.astype(np.float32)
    reference = scene_.reference.astype(np.float32)
    for start in range(0, mic.size - frame + 1, frame):
        window = slice(start, start + frame)
        out[window] = canceller.process(mic[window], reference[window])
    return out, canceller.delay_ms


class SpeexEcho:
    """libspeexdsp's echo canceller and residual echo suppressor, through ctypes."""

    def __init__(self, rate_hz: int, frame: int, filter_samples: int) -> None:
        lib = _speexdsp()
        self._lib = lib
        self.frame = frame
        self._echo = lib.speex_echo_state_init(frame, filter_samples)
        rate = ctypes.c_int(rate_hz)
        lib.speex_echo_ctl(self._echo, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._preprocess = lib.speex_preprocess_state_init(frame, rate_hz)
        lib.speex_preprocess_ctl(self._preprocess, SPEEX_PREPROCESS_SET_ECHO_STATE, self._echo)
        self._out = (ctypes.c_int16 * frame)()

    def process(self, mic: NDArray[np.int16], reference: NDArray[np.int16]) -> NDArray[np.int16]:
        """Cancel one frame (int16): echo canceller, then the preprocessor's suppression."""
        self._lib.speex_echo_cancellation(
            self._echo, mic.ctypes.data, reference.ctypes.data, self._out
        )
        self._lib.speex_preprocess_run(self._preprocess, self._out)
        return np.ctypeslib.as_array(self._out).astype(np.int16)

    def close(self) -> None:
        self._lib.speex_preprocess_state_destroy(self._preprocess)
        self._lib.speex_echo_state_destroy(self._echo)


@cache
def _speexdsp() -> ctypes.CDLL:
    lib = ctypes.CDLL(LIBSPEEXDSP)
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    lib.speex_echo_state_init.restype = pointer
    lib.speex_echo_state_init.argtypes = (integer, integer)
    lib.speex_echo_ctl.argtypes = (pointer, integer, pointer)
    lib.speex_echo_cancellation.argtypes = (pointer, pointer, pointer, pointer)
    lib.speex_echo_state_destroy.argtypes = (pointer,)
    lib.speex_preprocess_state_init.restype = pointer
    lib.speex_preprocess_state_init.argtypes = (integer, integer)
    lib.speex_preprocess_ctl.argtypes = (pointer, integer, pointer)
    lib.speex_preprocess_run.argtypes = (pointer, pointer)
    lib.speex_preprocess_state_destroy.argtypes = (pointer,)
    return lib


def run_speex(scene_: Scene, reference_delay_ms: float, filter_ms: float) -> Samples:
    """Run speexdsp over the scene, its reference delayed by `reference_delay_ms`."""
    rate, frame = scene_.rate_hz, scene_.rate_hz // 50
    shift = round(reference_delay_ms * rate / 1000)
    reference = np.concatenate((np.zeros(shift), scene_.reference))[: scene_.reference.size]
    speex = SpeexEcho(rate, frame, round(filter_ms * rate / 1000))
    mic16, reference16 = _int16(scene_.mic), _int16(reference)
    out = np.zeros_like(scene_.mic)
    for start in range(0, mic16.size - frame + 1, frame):
        window = slice(start, start + frame)
        out[window] = speex.process(mic16[window], reference16[window]) / 32768.0
    speex.close()
    return out


def _int16(x: Samples) -> NDArray[np.int16]:
    return np.ascontiguousarray(np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16))


def erle_at(scene_: Scene, out: Samples, at_s: float) -> float:
    """ERLE (dB) over the ERLE_WINDOW_S before `at_s`: microphone over output power.

    Only 20 ms frames whose microphone is ECHO_FRAME_DBFS or louder count, so that the
    noise floor between words (and a denoiser's work on it) does not.
    """
    frame = scene_.rate_hz // 50
    end = round(at_s * scene_.rate_hz) // frame
    start = end - round(ERLE_WINDOW_S * scene_.rate_hz) // frame
    mic = scene_.mic[start * frame : end * frame].reshape(-1, frame)
    output = out[start * frame : end * frame].reshape(-1, frame)
    loud = np.mean(mic**2, axis=1) >= 10.0 ** (ECHO_FRAME_DBFS / 10.0)
    if not loud.any():
        return math.nan
    mic_energy = float(np.sum(mic[loud] ** 2))
    return 10.0 * math.log10(mic_energy / max(float(np.sum(output[loud] ** 2)), 1e-20))


def near_end_loss_db(scene_: Scene, out: Samples) -> float:
    """Near-end loss (dB) in double talk, by projecting the output onto the near end.

    The output is a near-end part plus what is left of the echo, which is uncorrelated with
    the near end; the least-squares gain of the near end in the output (the best over
    lags of 0 .. 25 ms: speex_preprocess delays its output by a frame) is how much of it got
    through, measured per 1 s block and averaged as power.
    """
    rate = scene_.rate_hz
    start = round((FAR_ONLY_S + 0.5) * rate)
    block = rate
    gains = []
    for first in range(start, out.size - block + 1, block):
        near = scene_.near[first : first + block]
        if float(near @ near) < block * 10.0 ** (-50.0 / 10.0):
            continue
        best = 0.0
        for lag in range(round(0.025 * rate) + 1):
            shifted = out[first + lag : first + lag + block]
            best = max(best, float(shifted @ near) / float(near @ near))
        gains.append(best**2)
    return -10.0 * math.log10(max(float(np.mean(gains)), 1e-12))


def canceller_cost_us(rate_hz: int) -> float:
    """µs per 20 ms frame of a converged EchoCanceller (best of 5)."""
    scene_ = scene(rate_hz, 200)
    frame = rate_hz // 50
    canceller = EchoCanceller(rate_hz, frame, tail_ms=TAIL_MS)
    mic = scene_.mic.astype(np.float32)
    reference = scene_.reference.astype(np.float32)
    frames = round(4.0 * rate_hz) // frame
    for index in range(frames):
        window = slice(index * frame, (index + 1) * frame)
        canceller.process(mic[window], reference[window])
    window = slice(frames * frame, (frames + 1) * frame)
    number = 200
    seconds = min(
        timeit.repeat(
            lambda: canceller.process(mic[window], reference[window]), number=number, repeat=5
        )
    )
    return 1e6 * seconds / number


def speex_cost_us(rate_hz: int) -> float:
    """µs per 20 ms frame of speexdsp's canceller and suppressor through ctypes (best of 5)."""
    frame = rate_hz // 50
    speex = SpeexEcho(rate_hz, frame, round((TAIL_MS + DELAY_MARGIN_MS) * rate_hz / 1000))
    scene_ = scene(rate_hz, 200)
    mic16, reference16 = _int16(scene_.mic[:frame]), _int16(scene_.reference[:frame])
    number = 500
    seconds = min(timeit.repeat(lambda: speex.process(mic16, reference16), number=number, repeat=5))
    speex.close()
    return 1e6 * seconds / number


def detector_cost_us(members: int = 500) -> float:
    """µs per member per frame of detect_echo over `members` rows (best of 5)."""
    rng = np.random.default_rng(3)
    states = np.stack([echo_detector_state() for _ in range(members)])
    # Stagger the rows as members joining at different ticks do.
    states[:, 0] = rng.integers(1000, 2000, members)
    mic, reference = rng.random(members) * 1e-3, rng.random(members) * 1e-3

    def step() -> None:
        nonlocal states
        _, states = detect_echo(mic, reference, states)

    number = 200
    return 1e6 * min(timeit.repeat(step, number=number, repeat=5)) / number / members


def measure(smoke: bool) -> list[Section]:
    """Run the scenarios (one delay in smoke mode) and return the comparison table."""
    delays = (200,) if smoke else DELAYS_MS
    rows = []
    for rate in RATES_HZ:
        for delay_ms in delays:
            scene_ = scene(rate, delay_ms)
            ours, found_ms = run_ours(scene_)
            compensated = max((found_ms or 0.0) - DELAY_MARGIN_MS, 0.0)
            runs = [(f"dsp.echo (found {found_ms} ms)", ours)]
            runs.append(
                (
                    f"speexdsp, delayed {compensated:.0f} ms",
                    run_speex(scene_, compensated, TAIL_MS + DELAY_MARGIN_MS),
                )
            )
            runs.append(
                (
                    f"speexdsp, {delay_ms + TAIL_MS} ms filter",
                    run_speex(scene_, 0.0, delay_ms + TAIL_MS),
                )
            )
            for name, out in runs:
                erles = [f"{erle_at(scene_, out, at):.1f}" for at in ERLE_AT_S]
                loss = near_end_loss_db(scene_, out)
                rows.append((f"{rate // 1000} kHz", f"{delay_ms}", name, *erles, f"{loss:.1f}"))
    cost_8k, cost_16k = canceller_cost_us(8000), canceller_cost_us(16000)
    speex_8k, speex_16k = speex_cost_us(8000), speex_cost_us(16000)
    detector = detector_cost_us()
    notes = (
        f"Far end: English at {FAR_LEVEL_DBFS:.0f} dBFS active level; near end: Indonesian "
        f"(another voice) at {NEAR_LEVEL_DBFS:.0f} dBFS from {FAR_ONLY_S:.0f} s on. Echo "
        f"path: tanh soft clipping, a room of RT60 {RT60_S * 1000:.0f} ms cut at "
        f"{ROOM_LENGTH_S * 1000:.0f} ms, echo at {ECHO_DB:.0f} dB against the reference, "
        f"noise at {NOISE_DBFS:.0f} dBFS.",
        f"ERLE at t: microphone over output power over the {ERLE_WINDOW_S} s before t "
        f"(far end only), over the 20 ms frames at {ECHO_FRAME_DBFS:.0f} dBFS or louder. "
        "Target: 25 dB by 2 s.",
        "Near-end loss: the least-squares gain of the near end in the output (best lag of "
        "0-25 ms: speexdsp's suppressor delays by a frame, dsp.echo by none), per 1 s "
        "block of double talk, averaged as power. The residual echo is "
        "uncorrelated with the near end, so it does not bias the gain. Target: 3 dB or less.",
        f"dsp.echo: {TAIL_MS} ms tail, bulk delay searched over 0-500 ms every 0.1 s, "
        "passes the microphone unchanged until it finds the delay, then trains its filter "
        f"on the last {PRETRAIN_S:g} s of history ({PRETRAIN_PASSES} passes) before going "
        "on. speexdsp: filter "
        f"{TAIL_MS + DELAY_MARGIN_MS:.0f} ms on a reference delayed by what dsp.echo found "
        f"less {DELAY_MARGIN_MS:.0f} ms (its margin), known from the start; or a filter "
        "covering delay and tail on the raw reference; both with speex_preprocess "
        "(its default denoiser on) for residual echo.",
        f"Cost per member per 20 ms frame: dsp.echo canceller {cost_8k:.0f} µs at 8 kHz, "
        f"{cost_16k:.0f} µs at 16 kHz (converged, two-path); speexdsp with its suppressor "
        f"{speex_8k:.0f} / {speex_16k:.0f} µs; echo detector {detector:.2f} µs per member "
        "(500 rows in one call).",
    )
    return [
        Section(
            title="Echo cancelling: ERLE over time and near-end loss in double talk",
            headers=(
                "rate",
                "delay ms",
                "canceller",
                *(f"ERLE {at:g} s dB" for at in ERLE_AT_S),
                "near-end loss dB",
            ),
            rows=tuple(rows),
            notes=notes,
            stage_costs_us={"echo detector": detector, "echo canceller": cost_16k},
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one delay, for CI")
    arguments = parser.parse_args()
    for section in measure(arguments.smoke):
        print(section.markdown())


if __name__ == "__main__":
    main()
