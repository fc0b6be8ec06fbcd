"""N-1 mixing for a room: one sum of the talkers, and each talker hears it without itself.

Works on a whole room at once: `(members, samples)` float32 in, the shared mix and one
row per talker out. It knows nothing of codecs, VAD or who is muted; the caller says who
talks. Non-talkers all hear the same `total`, so they can share one encode per codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Below the knee (-6 dBFS) the limiter is the identity, so ordinary speech levels pass
# untouched and N-1 mixes stay exact; only sums of several loud talkers are shaped.
LIMITER_KNEE = 0.5
# The limiter's ceiling is int16 full scale, 32767/32768: a limited sample scaled by 32768
# stays within ±32767 under any rounding, so no converter can wrap it to -32768.
LIMITER_CEILING = np.float32(32767 / 32768)


@dataclass(frozen=True, slots=True)
class MixResult:
    """The mixes of one tick: what non-talkers hear, and what each talker hears."""

    total: NDArray[np.float32]  # (n,) limited sum of all talkers: what every non-talker hears
    talkers: NDArray[np.intp]  # (t,) indices (rows of the input) of members that are talkers
    minus: NDArray[np.float32]  # (t, n) limited total − own, one row per talker


def mix_minus(frames: NDArray[np.float32], talking: NDArray[np.bool_]) -> MixResult:
    """Return the room mix and the N-1 mix of every talker.

    `frames` is `(m, n)` float32, one frame per member (1.0 = int16 full scale);
    `talking` is `(m,)` bool. Frames of non-talkers are ignored. The talkers' sum is
    taken once in float64, and `sum − own` is exact there for any int16-derived
    input (multiples of 2**-15), so a talker's own voice never comes back to it, not
    even as a rounding residue. Limiting happens after the subtraction.
    """
    frames = np.asarray(frames, dtype=np.float32)
    talking = np.asarray(talking, dtype=np.bool_)
    if frames.ndim != 2 or talking.shape != frames.shape[:1]:
        raise ValueError(
            f"expected (members, samples) frames and (members,) flags, "
            f"got {frames.shape} and {talking.shape}"
        )
    talkers = np.flatnonzero(talking)
    own = frames[talkers].astype(np.float64)  # (t, n)
    raw_total = own.sum(axis=0)  # (n,)
    return MixResult(
        total=limit(raw_total),
        talkers=talkers,
        minus=limit(raw_total - own),
    )


def limit(mix: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """Soft-limit a mix into (-1, 1): any shape in, float32 of the same shape out.

    Memoryless: y = x for |x| <= knee, and above it
    y = sign(x) * (knee + (1 - knee) * tanh((|x| - knee) / (1 - knee))),
    which meets the line with the same value and slope at the knee and approaches 1.0,
    held at 32767/32768 at most; the sign is always kept, so an overload never wraps.

    Trade-off: a per-sample curve adds some harmonic distortion to peaks above -6 dBFS,
    where a look-ahead limiter would lower the gain smoothly instead. It is chosen here
    because it has no state, so every member who hears the same mix can share one
    limited signal and one encode. TODO(#7): stateful look-ahead limiting with the AGC.
    """
    x = np.asarray(mix, dtype=np.float64)
    magnitude = np.abs(x)
    if magnitude.max(initial=0.0) <= LIMITER_KNEE:  # most ticks: nothing to shape
        return x.astype(np.float32)  # what the curve gives there, to the bit
    span = 1.0 - LIMITER_KNEE
    compressed = LIMITER_KNEE + span * np.tanh((magnitude - LIMITER_KNEE) / span)
    shaped = np.where(magnitude <= LIMITER_KNEE, magnitude, compressed)
    # tanh rounds to exactly 1.0 for large inputs; the ceiling also catches that.
    limited = np.minimum(shaped.astype(np.float32), LIMITER_CEILING)
    return np.copysign(limited, x).astype(np.float32)
