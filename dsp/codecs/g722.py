"""ITU-T G.722 at 64 kbit/s: 16 kHz audio, one ADPCM state per stream (RFC 3551 §4.5.2).

Binding: sippy's G722 extension over libg722, Steve Underwood's bit-exact G.722 that passes
the ITU test vectors. It is maintained, runs at C speed and takes int16 numpy arrays
directly, so a 20 ms frame is one call each way. Its encoder and decoder predict from
past samples, so each stream keeps its own instance and frames go through in order.

G.722 has no loss concealment or redundancy of its own; the caller's PLC fills gaps.
"""

from __future__ import annotations

import G722
import numpy as np
from numpy.typing import NDArray

from dsp.codecs.base import EncoderSettings, StreamDecoder, StreamEncoder, from_pcm16, to_pcm16

G722_SAMPLE_RATE_HZ = 16_000
# RFC 3551 §4.5.2: the RTP clock runs at 8000 Hz although G.722 samples at 16 kHz, an
# error in RFC 1890 kept for backward compatibility. Timestamps step by half the samples.
G722_CLOCK_RATE_HZ = 8_000
# Mode 1 (64 kbit/s): 8 bits for every two input samples, 160 bytes per 20 ms.
G722_BITRATE_BPS = 64_000


class G722StreamEncoder(StreamEncoder):
    """One outgoing G.722 stream: 16 kHz float32 frames in, one byte per two samples out."""

    name = "G722"
    sample_rate_hz = G722_SAMPLE_RATE_HZ
    clock_rate_hz = G722_CLOCK_RATE_HZ

    def __init__(self, settings: EncoderSettings) -> None:
        self._codec = G722.G722(G722_SAMPLE_RATE_HZ, G722_BITRATE_BPS)
        self._frame_samples = 0
        self.configure(settings)

    def configure(self, settings: EncoderSettings) -> None:
        """Take the packet duration from `settings.ptime_ms`; G.722 uses nothing else."""
        if settings.ptime_ms <= 0:
            raise ValueError(f"ptime must be positive, got {settings.ptime_ms} ms")
        self._frame_samples = G722_SAMPLE_RATE_HZ * settings.ptime_ms // 1000

    def encode(self, frame: NDArray[np.float32]) -> bytes:
        """Encode one `(ptime samples,)` float32 frame into `samples / 2` bytes."""
        if np.shape(frame) != (self._frame_samples,):
            raise ValueError(
                f"expected a ({self._frame_samples},) frame, got shape {np.shape(frame)}"
            )
        payload: bytes = self._codec.encode(to_pcm16(frame))
        return payload


class G722StreamDecoder(StreamDecoder):
    """One incoming G.722 stream: any number of bytes in, twice as many 16 kHz samples out.

    Every byte is a valid G.722 code pair, so no payload is malformed.
    """

    name = "G722"
    sample_rate_hz = G722_SAMPLE_RATE_HZ
    clock_rate_hz = G722_CLOCK_RATE_HZ

    def __init__(self) -> None:
        self._codec = G722.G722(G722_SAMPLE_RATE_HZ, G722_BITRATE_BPS)

    def decode(self, payload: bytes) -> NDArray[np.float32]:
        """Decode one payload into `(2 * len(payload),)` float32."""
        # The extension returns array('h') (or numpy with G722-numpy); both expose a buffer.
        pcm = np.frombuffer(self._codec.decode(bytes(payload)), dtype=np.int16)
        return from_pcm16(pcm)
