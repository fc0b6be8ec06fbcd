"""The interface every frame codec offers to the conference layer.

A FrameCodec holds no per-call state, so one instance serves every member using that
codec and encodes many members' frames in one call: `(k, n)` float32 in, `(k, bytes)`
uint8 out. It knows nothing of RTP headers, timestamps or jitter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from numpy.typing import NDArray


class FrameCodec(ABC):
    """A stateless-per-frame codec usable for many members at once."""

    name: str  # RTP/AVP encoding name, upper case, e.g. "PCMU" (RFC 3551 §6)
    sample_rate_hz: int  # rate of the audio it encodes and decodes
    clock_rate_hz: int  # RTP timestamp rate; differs from the audio rate for G.722

    @abstractmethod
    def encode(self, frames: NDArray[np.float32]) -> NDArray[np.uint8]:
        """Encode `(k, n)` float32 frames in [-1, 1) into `(k, bytes_per_frame)` uint8 payloads."""

    @abstractmethod
    def decode(self, payload: bytes) -> NDArray[np.float32]:
        """Decode one payload into `(samples,)` float32 in [-1, 1)."""

    @abstractmethod
    def decode_many(self, payloads: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Decode `(k, bytes)` uint8 payloads of equal size into `(k, samples)` float32."""

    @abstractmethod
    def samples_in(self, payload_size: int) -> int:
        """Return how many samples a payload of `payload_size` bytes holds."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}/{self.clock_rate_hz}>"


def to_pcm16(samples: NDArray[np.float32]) -> NDArray[np.int16]:
    """Scale float32 audio (1.0 = 32768) to int16, rounding half to even and clipping.

    Any shape in, the same shape out. Clipping rather than wrapping keeps an overdriven
    sample at full scale with its sign, which is what a listener expects to hear.
    """
    scaled = np.rint(np.asarray(samples, dtype=np.float32) * np.float32(32768.0))
    pcm: NDArray[np.int16] = np.clip(scaled, -32768.0, 32767.0).astype(np.int16)
    return pcm


def from_pcm16(pcm: NDArray[np.int16]) -> NDArray[np.float32]:
    """Scale int16 samples to float32 in [-1, 1) (exact: every int16 is a float32)."""
    return np.asarray(pcm, dtype=np.int16).astype(np.float32) / np.float32(32768.0)
