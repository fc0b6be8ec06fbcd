"""Frame timing shared by every media path: one frame per 20 ms tick.

It knows rates and durations only; nothing here knows codecs, RTP or rooms.
"""

from __future__ import annotations

FRAME_MS = 20


def frame_samples(rate_hz: int, ms: int = FRAME_MS) -> int:
    """Return how many samples `ms` milliseconds hold at `rate_hz` (an exact count).

    A rate whose frame is not a whole number of samples is refused rather than rounded,
    because rounding would drift the media clock by a fraction of a sample every tick.
    """
    if rate_hz <= 0 or ms <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate_hz} Hz, {ms} ms")
    if (rate_hz * ms) % 1000:
        raise ValueError(f"{ms} ms at {rate_hz} Hz is not a whole number of samples")
    return rate_hz * ms // 1000
