"""Sample-rate conversion of whole clips (prompts, recordings), not of live frames.

Polyphase resampling (scipy.signal.resample_poly) by the reduced ratio to_hz/from_hz,
with a Kaiser-window FIR designed here for 80 dB of stopband rejection starting at the
lower of the two Nyquist rates, so nothing above it can alias into the band.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import signal

STOPBAND_ATTENUATION_DB = 80.0
# The passband ends at 90 % of the lower Nyquist rate: at 8 kHz it stays flat to 3.6 kHz,
# above the 3.4 kHz telephone band, and the filter stays a few hundred taps long.
_PASSBAND_FRACTION = 0.9


@lru_cache(maxsize=16)
def _antialiasing_filter(up: int, down: int) -> NDArray[np.float64]:
    """Return the low-pass FIR for upsampling by `up` then decimating by `down`.

    Frequencies are relative to the Nyquist rate of the upsampled signal; the
    transition band is [0.9, 1.0] x the lower of the two Nyquist rates.
    """
    stopband = 1.0 / max(up, down)
    width = stopband * (1.0 - _PASSBAND_FRACTION)
    taps, beta = signal.kaiserord(STOPBAND_ATTENUATION_DB, width)
    taps |= 1  # odd length: integer group delay, which resample_poly compensates exactly
    cutoff = stopband - width / 2  # firwin's cutoff is the -6 dB point, mid-transition
    coefficients: NDArray[np.float64] = signal.firwin(taps, cutoff, window=("kaiser", beta))
    coefficients.flags.writeable = False
    return coefficients


def resample(samples: NDArray[np.floating[Any]], from_hz: int, to_hz: int) -> NDArray[np.float32]:
    """Resample a `(n,)` clip from `from_hz` to `to_hz`; `(round(n * to_hz / from_hz),)` float32.

    The output is time-aligned with the input (the filter delay is removed) and the
    passband gain is 1.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a (samples,) clip, got shape {x.shape}")
    if from_hz <= 0 or to_hz <= 0:
        raise ValueError(f"sample rates must be positive, got {from_hz} and {to_hz} Hz")
    if from_hz == to_hz:
        return x.astype(np.float32)
    common = gcd(from_hz, to_hz)
    up, down = to_hz // common, from_hz // common
    resampled = signal.resample_poly(x, up, down, window=_antialiasing_filter(up, down))
    return np.asarray(resampled, dtype=np.float32)
