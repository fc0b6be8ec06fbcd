"""ITU-T G.711 μ-law (PCMU) and A-law (PCMA), as numpy table lookups.

The tables are built once at import from the G.711 segment/step rules, vectorized over
all 65536 int16 inputs and all 256 codes; encoding a frame is then one rounding step
and one fancy-index. 16-bit input is reduced to G.711's 14-bit (μ-law) or 13-bit
(A-law) uniform PCM by an arithmetic shift, as Sun's g711.c and CPython's audioop do
(bit-exact with both). The ITU-T G.191 STL reduces negative μ-law input by one's
complement instead, which moves some negative decision points by one 16-bit LSB;
decoded values are the same in all three.

The G.711 stream adapters at the end let a single stream use the StreamEncoder and
StreamDecoder interface that G.722 and Opus need; a room still encodes all its G.711
members in one FrameCodec call.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from dsp.codecs.base import (
    EncoderSettings,
    FrameCodec,
    StreamDecoder,
    StreamEncoder,
    to_pcm16,
)

# Every int16 value, indexed by its bit pattern read as uint16, so a lookup needs no offset.
_LINEAR16 = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)
_CODES = np.arange(256, dtype=np.int32)
_FLOAT_SCALE = np.float32(32768.0)
_DECODE_BLOCK_BYTES = 4096  # payload bytes per lookup in `decode_many`: 32 kB of indices

# μ-law works on 14-bit magnitudes offset by a bias of 33, so that segment k spans
# biased values [2**(k+5), 2**(k+6)) and each segment has 16 steps (G.711 Table 2).
_ULAW_BIAS = 33
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
# A-law 13-bit magnitudes: segments 0 and 1 both have a step of 2, then it doubles
# with each segment (G.711 Table 1).
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
# A-law sends the code word with its even bits inverted (G.711 Table 1).
_ALAW_EVEN_BITS = 0x55


def _build_ulaw_encode_table() -> NDArray[np.uint8]:
    """Return the μ-law code of every int16 value, `(65536,)` uint8 by uint16 bit pattern."""
    linear14 = _LINEAR16 >> 2
    negative = linear14 < 0
    # Magnitudes at or above the top decision value (8159) all take the top code.
    biased = np.minimum(np.abs(linear14) + _ULAW_BIAS, 0x1FFF)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, biased).astype(np.int32)
    step = (biased >> (segment + 1)) & 0x0F
    # μ-law sends the code word with every bit inverted (G.711 Table 2).
    code: NDArray[np.uint8] = (
        ~((negative.astype(np.int32) << 7) | (segment << 4) | step) & 0xFF
    ).astype(np.uint8)
    return code


def _build_ulaw_decode_table() -> NDArray[np.float32]:
    """Return the decoded value of every μ-law code, `(256,)` float32."""
    inverted = ~_CODES & 0xFF
    segment = (inverted >> 4) & 0x07
    step = inverted & 0x0F
    # Reconstruct at the middle of the step, in 14-bit units (decoded 0 .. 8031).
    magnitude14 = ((2 * step + _ULAW_BIAS) << segment) - _ULAW_BIAS
    linear16 = np.where(inverted & 0x80, -magnitude14, magnitude14) << 2
    return linear16.astype(np.float32) / _FLOAT_SCALE


def _build_alaw_encode_table() -> NDArray[np.uint8]:
    """Return the A-law code of every int16 value, `(65536,)` uint8 by uint16 bit pattern."""
    linear13 = _LINEAR16 >> 3
    positive = linear13 >= 0
    # Negative values use the one's complement, so the quantizer is symmetric about -1/2.
    magnitude = np.where(positive, linear13, ~linear13)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude).astype(np.int32)
    step = (magnitude >> np.maximum(segment, 1)) & 0x0F
    code = (positive.astype(np.int32) << 7) | (segment << 4) | step
    return (code ^ _ALAW_EVEN_BITS).astype(np.uint8)


def _build_alaw_decode_table() -> NDArray[np.float32]:
    """Return the decoded value of every A-law code, `(256,)` float32."""
    value = _CODES ^ _ALAW_EVEN_BITS
    segment = (value >> 4) & 0x07
    step = value & 0x0F
    # Middle of the step, in 13-bit units (decoded 1 .. 4032).
    magnitude13 = np.where(
        segment == 0, 2 * step + 1, (2 * step + 33) << np.maximum(segment - 1, 0)
    )
    linear16 = np.where(value & 0x80, magnitude13, -magnitude13) << 3
    return linear16.astype(np.float32) / _FLOAT_SCALE


_ULAW_ENCODE = _build_ulaw_encode_table()
_ULAW_DECODE = _build_ulaw_decode_table()
_ALAW_ENCODE = _build_alaw_encode_table()
_ALAW_DECODE = _build_alaw_decode_table()
for _table in (_ULAW_ENCODE, _ULAW_DECODE, _ALAW_ENCODE, _ALAW_DECODE):
    _table.flags.writeable = False


def encode_ulaw(samples: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Encode float32 samples in [-1, 1) to μ-law codes; any shape, same shape out."""
    return _ULAW_ENCODE[to_pcm16(samples).view(np.uint16)]


def decode_ulaw(codes: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Decode μ-law codes to float32 samples in [-1, 1); any shape, same shape out."""
    return _ULAW_DECODE[np.asarray(codes, dtype=np.uint8)]


def encode_alaw(samples: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Encode float32 samples in [-1, 1) to A-law codes; any shape, same shape out."""
    return _ALAW_ENCODE[to_pcm16(samples).view(np.uint16)]


def decode_alaw(codes: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Decode A-law codes to float32 samples in [-1, 1); any shape, same shape out."""
    return _ALAW_DECODE[np.asarray(codes, dtype=np.uint8)]


class _G711Codec(FrameCodec):
    """G.711 at 8 kHz, one byte per sample (RFC 3551 §4.5.14), for many members at once."""

    sample_rate_hz = 8000
    clock_rate_hz = 8000
    _encode_table: ClassVar[NDArray[np.uint8]]
    _decode_table: ClassVar[NDArray[np.float32]]

    def encode(self, frames: NDArray[np.float32]) -> NDArray[np.uint8]:
        """Encode `(k, n)` float32 frames into `(k, n)` uint8 payloads."""
        if np.ndim(frames) != 2:
            raise ValueError(f"expected (members, samples) frames, got shape {np.shape(frames)}")
        # `take` rather than fancy indexing: the same lookup at half the cost here.
        return self._encode_table.take(to_pcm16(frames).view(np.uint16))

    def decode(self, payload: bytes) -> NDArray[np.float32]:
        """Decode one payload into `(len(payload),)` float32."""
        return self._decode_table.take(np.frombuffer(payload, dtype=np.uint8))

    def decode_many(self, payloads: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Decode `(k, bytes)` uint8 payloads into `(k, bytes)` float32.

        A lookup first turns its indices into machine words, eight times the payloads'
        size (1.3 kB for a member's packet). Taken a block of rows at a time, those words
        are a small buffer used over and over, not fresh memory the size of a sweep: a
        big room's tick then touches 640 kB less memory at 500 members.
        """
        if np.ndim(payloads) != 2:
            raise ValueError(f"expected (members, bytes) payloads, got shape {np.shape(payloads)}")
        payloads = np.asarray(payloads, dtype=np.uint8)
        decoded = np.empty(payloads.shape, np.float32)
        block = max(1, _DECODE_BLOCK_BYTES // max(1, payloads.shape[1]))
        for start in range(0, payloads.shape[0], block):
            # mode="clip": every byte is a valid index, and "raise" would buffer `out`.
            self._decode_table.take(payloads[start : start + block],
                                    out=decoded[start : start + block], mode="clip")
        return decoded

    def samples_in(self, payload_size: int) -> int:
        """Return `payload_size`: G.711 carries one sample per byte."""
        if payload_size < 0:
            raise ValueError(f"payload size cannot be negative: {payload_size}")
        return payload_size


class PcmuCodec(_G711Codec):
    """G.711 μ-law, RTP/AVP static payload type 0 (RFC 3551 §6)."""

    name = "PCMU"
    _encode_table = _ULAW_ENCODE
    _decode_table = _ULAW_DECODE


class PcmaCodec(_G711Codec):
    """G.711 A-law, RTP/AVP static payload type 8 (RFC 3551 §6)."""

    name = "PCMA"
    _encode_table = _ALAW_ENCODE
    _decode_table = _ALAW_DECODE


class G711StreamEncoder(StreamEncoder):
    """One stream's G.711 encoder: a one-row call of a shared, stateless G.711 FrameCodec."""

    def __init__(self, codec: FrameCodec, settings: EncoderSettings) -> None:
        self.name = codec.name
        self.sample_rate_hz = codec.sample_rate_hz
        self.clock_rate_hz = codec.clock_rate_hz
        self._codec = codec
        self._frame_samples = 0
        self.configure(settings)

    def configure(self, settings: EncoderSettings) -> None:
        """Take the packet duration from `settings.ptime_ms`; G.711 uses nothing else."""
        if settings.ptime_ms <= 0:
            raise ValueError(f"ptime must be positive, got {settings.ptime_ms} ms")
        self._frame_samples = self.sample_rate_hz * settings.ptime_ms // 1000

    def encode(self, frame: NDArray[np.float32]) -> bytes:
        """Encode one `(ptime samples,)` float32 frame into as many bytes."""
        if np.shape(frame) != (self._frame_samples,):
            raise ValueError(
                f"expected a ({self._frame_samples},) frame, got shape {np.shape(frame)}"
            )
        return self._codec.encode(np.reshape(frame, (1, -1))).tobytes()


class G711StreamDecoder(StreamDecoder):
    """One stream's G.711 decoder over a shared FrameCodec; G.711 has no FEC or PLC."""

    def __init__(self, codec: FrameCodec) -> None:
        self.name = codec.name
        self.sample_rate_hz = codec.sample_rate_hz
        self.clock_rate_hz = codec.clock_rate_hz
        self._codec = codec

    def decode(self, payload: bytes) -> NDArray[np.float32]:
        """Decode one payload into `(len(payload),)` float32."""
        return self._codec.decode(payload)
