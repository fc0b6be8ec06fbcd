"""Signal levels in dBFS and gains in dB, for float32 audio where 1.0 is int16 full scale.

Both levels are relative to full scale (1.0): a full-scale square wave reads 0 dBFS RMS
and a full-scale sine -3.01 dBFS RMS (peak 0 dBFS). Silence reads -inf.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray


def rms_dbfs(samples: NDArray[np.floating[Any]]) -> float:
    """Return the RMS level of `samples` (any shape, all samples together) in dBFS."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return -math.inf
    mean_square = float(np.mean(np.square(x)))
    return 10.0 * math.log10(mean_square) if mean_square > 0.0 else -math.inf


def peak_dbfs(samples: NDArray[np.floating[Any]]) -> float:
    """Return the largest absolute sample of `samples` (any shape) in dBFS."""
    x = np.asarray(samples, dtype=np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0.0 else -math.inf


def gain_db(samples: NDArray[np.floating[Any]], db: float) -> NDArray[np.float32]:
    """Return `samples` (any shape) scaled by `db` decibels, as float32; no limiting."""
    scaled: NDArray[np.float32] = (
        np.asarray(samples, dtype=np.float64) * math.pow(10.0, db / 20.0)
    ).astype(np.float32)
    return scaled
