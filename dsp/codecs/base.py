"""The interfaces codecs offer to the conference layer.

A FrameCodec (G.711) holds no per-call state, so one instance serves every member using
that codec and encodes many members' frames in one call: `(k, n)` float32 in,
`(k, bytes)` uint8 out. Codecs with state between frames (G.722's ADPCM predictors,
Opus) have one StreamEncoder per outgoing stream and one StreamDecoder per incoming one.
None of them knows RTP headers, timestamps or jitter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """What the link and the far end allow an encoder; only Opus uses more than ptime.

    The bridge changes these during a call (bitrate down and loss up when the link gets
    worse); `StreamEncoder.configure` applies them between frames.
    """

    ptime_ms: int = 20  # 20, 40 or 60: one packet per this many ms
    bitrate_bps: int = 16_000  # Opus target bitrate
    fec: bool = True  # Opus in-band FEC (LBRR) in what we send
    expected_loss_percent: int = 0  # Opus: how much redundancy the encoder spends
    dtx: bool = False  # Opus discontinuous transmission: send next to nothing in silence
    max_audio_bandwidth_hz: int = 8000  # Opus: 4000 narrowband .. 8000 wideband (maxplaybackrate/2)


class StreamEncoder(ABC):
    """One outgoing RTP stream's encoder, for codecs that keep state between frames.

    A frame goes in at `sample_rate_hz` and `settings.ptime_ms` long; a payload comes out,
    or None when the codec has nothing worth sending (Opus DTX in silence).
    """

    name: str
    sample_rate_hz: int
    clock_rate_hz: int

    @abstractmethod
    def configure(self, settings: EncoderSettings) -> None:
        """Apply new settings from the next frame on."""

    @abstractmethod
    def encode(self, frame: NDArray[np.float32]) -> bytes | None:
        """Encode one `(samples,)` float32 frame of exactly one packet's duration."""


class StreamDecoder(ABC):
    """One incoming RTP stream's decoder, fed in timestamp order where the network allows."""

    name: str
    sample_rate_hz: int
    clock_rate_hz: int
    conceals = False  # whether `conceal` gives the codec's own loss concealment

    @abstractmethod
    def decode(self, payload: bytes) -> NDArray[np.float32]:
        """Decode one payload into `(samples,)` float32 at `sample_rate_hz`."""

    def recover(self, next_payload: bytes, samples: int) -> NDArray[np.float32] | None:
        """Rebuild the `samples` lost just before `next_payload` from its redundancy
        (Opus in-band FEC), or None when the codec carries none. Call before `decode`."""
        return None

    def conceal(self, samples: int) -> NDArray[np.float32] | None:
        """Return the codec's own concealment for `samples` lost, or None if it has none."""
        return None


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
