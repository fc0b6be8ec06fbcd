"""Cost of the streaming 8 <-> 16 kHz resamplers per 20 ms tick, for k streams at once.

Times dsp.resample's upsample_8k_to_16k ((k, 160) in) and downsample_16k_to_8k ((k, 320)
in), which use np.einsum over sliding windows of [history | frame], against the other way
the issue suggested: one scipy.signal.lfilter per polyphase branch along axis 1 with `zi`.
Both give the same samples (checked here before timing). Prints µs per call, best of 5.

    .venv/bin/python bench/resample.py            # k = 1, 3, 50, 500
    .venv/bin/python bench/resample.py --smoke    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from dsp.resample import (
    design_2x_lowpass,
    downsample_16k_to_8k,
    downsampler_state,
    upsample_8k_to_16k,
    upsampler_state,
)

NARROW_FRAME = 160
WIDE_FRAME = 320
Array = NDArray[np.float32]
Resampler = Callable[[Array, Array], tuple[Array, Array]]


class LfilterUpsampler:
    """8 -> 16 kHz as two lfilter calls (even and odd taps at gain 2) on the 8 kHz frame."""

    def __init__(self) -> None:
        doubled = (2.0 * design_2x_lowpass()).astype(np.float32)
        self.even, self.odd = doubled[0::2], doubled[1::2]
        self.state_samples = len(self.even) - 1 + len(self.odd) - 1

    def __call__(self, frames: Array, states: Array) -> tuple[Array, Array]:
        split = len(self.even) - 1
        y_even, z_even = signal.lfilter(self.even, [1.0], frames, axis=1, zi=states[:, :split])
        y_odd, z_odd = signal.lfilter(self.odd, [1.0], frames, axis=1, zi=states[:, split:])
        out = np.stack((y_even, y_odd), axis=2).reshape(len(frames), -1)
        return out, np.concatenate((z_even, z_odd), axis=1)


class LfilterDownsampler:
    """16 -> 8 kHz as two lfilter calls: even taps on even samples, odd taps (one sample
    later) on odd samples, summed."""

    def __init__(self) -> None:
        taps = design_2x_lowpass().astype(np.float32)
        self.even = taps[0::2]
        self.odd = np.concatenate((np.zeros(1, np.float32), taps[1::2]))
        self.state_samples = len(self.even) - 1 + len(self.odd) - 1

    def __call__(self, frames: Array, states: Array) -> tuple[Array, Array]:
        split = len(self.even) - 1
        y_even, z_even = signal.lfilter(
            self.even, [1.0], frames[:, 0::2], axis=1, zi=states[:, :split]
        )
        y_odd, z_odd = signal.lfilter(
            self.odd, [1.0], frames[:, 1::2], axis=1, zi=states[:, split:]
        )
        return y_even + y_odd, np.concatenate((z_even, z_odd), axis=1)


def check_same_output(ours: Resampler, ours_state: Array, other: Resampler,
                      other_state_samples: int, frame: int) -> None:
    """Stream 10 frames of 3 streams through both and insist on the same samples."""
    clips = np.random.default_rng(1).uniform(-1, 1, (3, 10 * frame)).astype(np.float32)
    ours_states = np.stack([ours_state] * 3)
    other_states = np.zeros((3, other_state_samples), np.float32)
    for start in range(0, clips.shape[1], frame):
        chunk = clips[:, start : start + frame]
        ours_out, ours_states = ours(chunk, ours_states)
        other_out, other_states = other(chunk, other_states)
        np.testing.assert_allclose(ours_out, other_out, rtol=0, atol=1e-5)


def time_call_us(process: Resampler, state_samples: int, streams: int, frame: int,
                 budget_s: float) -> float:
    """Return the best µs per call of `process` on (streams, frame) float32."""
    frames = np.random.default_rng(2).uniform(-1, 1, (streams, frame)).astype(np.float32)
    states = np.zeros((streams, state_samples), np.float32)
    once = min(timeit.repeat(lambda: process(frames, states), number=1, repeat=3))
    number = max(1, int(budget_s / 5 / max(once, 1e-7)))
    best = min(timeit.repeat(lambda: process(frames, states), number=number, repeat=5))
    return 1e6 * best / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args()
    sizes = [1, 3] if args.smoke else [1, 3, 50, 500]
    budget_s = 0.05 if args.smoke else 0.5
    up_alternative, down_alternative = LfilterUpsampler(), LfilterDownsampler()
    check_same_output(upsample_8k_to_16k, upsampler_state(), up_alternative,
                      up_alternative.state_samples, NARROW_FRAME)
    check_same_output(downsample_16k_to_8k, downsampler_state(), down_alternative,
                      down_alternative.state_samples, WIDE_FRAME)
    rows: list[tuple[str, Resampler, int, int]] = [
        ("up 8->16, einsum", upsample_8k_to_16k, len(upsampler_state()), NARROW_FRAME),
        ("up 8->16, lfilter", up_alternative, up_alternative.state_samples, NARROW_FRAME),
        ("down 16->8, einsum", downsample_16k_to_8k, len(downsampler_state()), WIDE_FRAME),
        ("down 16->8, lfilter", down_alternative, down_alternative.state_samples, WIDE_FRAME),
    ]
    print(f"{len(design_2x_lowpass())} taps; µs per call (per stream), 20 ms frames")
    print(f"{'':<22}" + "".join(f"{f'k = {k}':>20}" for k in sizes))
    for name, process, state_samples, frame in rows:
        cells = []
        for streams in sizes:
            us = time_call_us(process, state_samples, streams, frame, budget_s)
            cells.append(f"{us:>9.0f} ({us / streams:>6.1f})")
        print(f"{name:<22}" + "".join(f"{cell:>20}" for cell in cells))


if __name__ == "__main__":
    main()
