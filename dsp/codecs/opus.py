"""Opus (RFC 6716): one libopus encoder per outgoing stream, one decoder per incoming one.

Binding: opuslib-next, the maintained fork of opuslib. It is ctypes over the system libopus
(Debian's libopus0, 1.3.1 here), so nothing is compiled at install, and it reaches every
CTL used here (bitrate, in-band FEC, expected loss, DTX, max bandwidth, complexity, signal,
application). Audio goes through libopus's float API (opus_encode_float/opus_decode_float),
so float32 frames need no int16 round trip; decoding writes straight into numpy buffers.

The API rate is the room's 16 kHz, mono; the RTP clock is 48 kHz whatever the audio
bandwidth (RFC 7587 §4.1). Nothing here knows RTP headers or SDP.
"""

from __future__ import annotations

import ctypes

import numpy as np
import opuslib_next
import opuslib_next.api.decoder
import opuslib_next.api.encoder
import opuslib_next.api.info
from numpy.typing import NDArray

from dsp.codecs.base import EncoderSettings, StreamDecoder, StreamEncoder

OPUS_SAMPLE_RATE_HZ = 16_000
OPUS_CLOCK_RATE_HZ = 48_000  # RFC 7587 §4.1
# Frame durations libopus 1.3.1 encodes that are whole milliseconds (2.5 and 5 ms are not).
OPUS_FRAME_DURATIONS_MS = (10, 20, 40, 60, 80, 100, 120)
# A packet holds at most 120 ms of audio (RFC 6716 §3.2.5).
_MAX_PACKET_SAMPLES = OPUS_SAMPLE_RATE_HZ * 120 // 1000
# Lost audio must be asked for in whole 2.5 ms steps (opus.h, opus_decode: frame_size).
_LOSS_STEP_SAMPLES = OPUS_SAMPLE_RATE_HZ * 5 // 2000
# opus.h recommends 4000 bytes for the encoder's output buffer.
_MAX_PAYLOAD_BYTES = 4000
# libopus 1.3.1 at 16 kHz: SILK treats every complexity from 8 up alike, and 8 against 6
# adds 0.10-0.13 to PESQ-WB through the bridge (two Opus encodes in tandem; measured by
# bench/bandwidth.py at 40 ms, 16-22 kbit/s) for ~650 µs a 40 ms frame instead of ~400.
# Listeners hearing the same mix share one encoder, so the cost is per group, not per member.
OPUS_COMPLEXITY = 8
# libopus marks a DTX frame by a payload of at most 2 bytes: the TOC, and a frame count for
# multi-frame packets, with no audio (WebRTC's opus_interface.cc relies on the same rule).
_DTX_MAX_PAYLOAD_BYTES = 2
# Opus audio bandwidths (RFC 6716 §2, Table 1): highest audio frequency, libopus constant.
_BANDWIDTHS: tuple[tuple[int, int], ...] = (
    (4000, opuslib_next.BANDWIDTH_NARROWBAND),
    (6000, opuslib_next.BANDWIDTH_MEDIUMBAND),
    (8000, opuslib_next.BANDWIDTH_WIDEBAND),
    (12000, opuslib_next.BANDWIDTH_SUPERWIDEBAND),
    (20000, opuslib_next.BANDWIDTH_FULLBAND),
)
# Decoded audio stays in [-1, 1) like every decoder's; libopus's float output may overshoot.
_FULL_SCALE = np.float32(32767 / 32768)

# opus_packet_parse(data, len, *out_toc, *frames[48], size[48], *payload_offset): exported by
# libopus but not wrapped by opuslib-next; a private prototype leaves the binding's own alone.
_packet_parse = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_int32,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_void_p),
    ctypes.POINTER(ctypes.c_int16),
    ctypes.c_void_p,
)(("opus_packet_parse", opuslib_next.api.libopus))
_MAX_FRAMES_PER_PACKET = 48  # RFC 6716 §3.2.5


class OpusPayloadError(ValueError):
    """A payload libopus cannot decode: malformed framing (RFC 6716 §3.4) or empty."""


def opus_bandwidth(max_audio_bandwidth_hz: int) -> int:
    """Return the widest libopus bandwidth whose audio stays within `max_audio_bandwidth_hz`.

    Narrowband (4 kHz) is the floor: Opus has nothing narrower. The limit is usually half
    the far end's maxplaybackrate (RFC 7587 §6.1).
    """
    fitting = [constant for top_hz, constant in _BANDWIDTHS if top_hz <= max_audio_bandwidth_hz]
    return fitting[-1] if fitting else _BANDWIDTHS[0][1]


def carries_fec(payload: bytes) -> bool:
    """Return whether an Opus packet carries in-band FEC (SILK LBRR) for the packet before it.

    libopus 1.5 answers this with opus_packet_has_lbrr, which 1.3.1 lacks; this mirrors it.
    SILK writes one VAD flag per 20 ms frame and then the LBRR flag, per channel, as the
    first range-coded bits, which are the top bits of the first frame's first byte
    (RFC 6716 §4.2.3). CELT-only packets (TOC configs 16-31, §3.1) have no SILK layer.
    Raises OpusPayloadError if the packet's framing is malformed.
    """
    offset, size = _first_frame(payload)
    if payload[0] >> 3 >= 16 or size == 0:
        return False
    samples_48k = opuslib_next.api.decoder.packet_get_samples_per_frame(payload, 48_000)
    silk_frames = max(1, samples_48k // 960)  # 40 and 60 ms SILK frames hold 2 and 3
    first = payload[offset]
    lbrr = (first >> (7 - silk_frames)) & 1
    if payload[0] & 0x04:  # stereo: the side channel's flags follow the mid channel's
        lbrr |= (first >> (6 - 2 * silk_frames)) & 1
    return bool(lbrr)


def _first_frame(payload: bytes) -> tuple[int, int]:
    """Return the offset and size in bytes of a packet's first frame (RFC 6716 §3.2)."""
    if not payload:
        raise OpusPayloadError("empty Opus payload")
    data = ctypes.create_string_buffer(payload, len(payload))
    frames = (ctypes.c_void_p * _MAX_FRAMES_PER_PACKET)()
    sizes = (ctypes.c_int16 * _MAX_FRAMES_PER_PACKET)()
    count = _packet_parse(data, len(payload), None, frames, sizes, None)
    if count < 0:
        raise OpusPayloadError(f"invalid Opus packet: {_strerror(count)}")
    first = frames[0]
    if first is None:
        raise OpusPayloadError("Opus packet has no frames")
    return first - ctypes.addressof(data), sizes[0]


def _strerror(code: int) -> str:
    """Return libopus's text for an error code, e.g. "corrupted stream"."""
    message: bytes = opuslib_next.api.info.strerror(code)
    return message.decode("ascii", errors="replace")


class OpusStreamEncoder(StreamEncoder):
    """One outgoing Opus stream: 16 kHz mono float32 frames in, Opus packets out."""

    name = "OPUS"
    sample_rate_hz = OPUS_SAMPLE_RATE_HZ
    clock_rate_hz = OPUS_CLOCK_RATE_HZ

    def __init__(self, settings: EncoderSettings) -> None:
        # VOIP favours intelligibility and keeps speech in SILK, the layer that carries FEC.
        self._encoder = opuslib_next.Encoder(OPUS_SAMPLE_RATE_HZ, 1, opuslib_next.APPLICATION_VOIP)
        self._encoder.signal = opuslib_next.SIGNAL_VOICE
        self._encoder.complexity = OPUS_COMPLEXITY
        self._frame_samples = 0
        self.configure(settings)

    def configure(self, settings: EncoderSettings) -> None:
        """Apply bitrate, FEC, expected loss, DTX, bandwidth and ptime from the next frame on."""
        if settings.ptime_ms not in OPUS_FRAME_DURATIONS_MS:
            raise ValueError(
                f"Opus cannot send {settings.ptime_ms} ms packets; "
                f"choose one of {OPUS_FRAME_DURATIONS_MS}"
            )
        if not 0 <= settings.expected_loss_percent <= 100:
            raise ValueError(f"expected loss must be 0-100 %, got {settings.expected_loss_percent}")
        if settings.bitrate_bps <= 0:
            raise ValueError(f"bitrate must be positive, got {settings.bitrate_bps} bit/s")
        # libopus clamps the bitrate to 500 .. 300000 bit/s per channel itself.
        self._encoder.bitrate = settings.bitrate_bps
        self._encoder.inband_fec = int(settings.fec)
        self._encoder.packet_loss_perc = settings.expected_loss_percent
        self._encoder.dtx = int(settings.dtx)
        self._encoder.max_bandwidth = opus_bandwidth(settings.max_audio_bandwidth_hz)
        self._frame_samples = OPUS_SAMPLE_RATE_HZ * settings.ptime_ms // 1000

    def encode(self, frame: NDArray[np.float32]) -> bytes | None:
        """Encode one `(ptime samples,)` float32 frame; None when DTX has nothing to send.

        In DTX the silent stretches are not sent at all: the far end sees the timestamp
        jump without a gap in sequence numbers, so it knows nothing was lost, and its Opus
        decoder fills the time with comfort noise (RFC 7587 §3.1.3).
        """
        samples = np.ascontiguousarray(frame, dtype=np.float32)
        if samples.shape != (self._frame_samples,):
            raise ValueError(
                f"expected a ({self._frame_samples},) frame, got shape {samples.shape}"
            )
        payload: bytes = opuslib_next.api.encoder.encode_float(
            self._encoder.encoder_state, samples.tobytes(), self._frame_samples, _MAX_PAYLOAD_BYTES
        )
        return payload if len(payload) > _DTX_MAX_PAYLOAD_BYTES else None


class OpusStreamDecoder(StreamDecoder):
    """One incoming Opus stream: packets of any duration in, 16 kHz mono float32 out.

    Stereo packets are mixed down to mono by libopus: stereo is signalled in-band
    (RFC 7587 §3.4), and a receiver that asked for mono must still accept it (§6.1).
    """

    name = "OPUS"
    sample_rate_hz = OPUS_SAMPLE_RATE_HZ
    clock_rate_hz = OPUS_CLOCK_RATE_HZ
    conceals = True

    def __init__(self) -> None:
        self._decoder = opuslib_next.Decoder(OPUS_SAMPLE_RATE_HZ, 1)

    def decode(self, payload: bytes) -> NDArray[np.float32]:
        """Decode one packet (2.5 to 120 ms) into `(samples,)` float32.

        Raises OpusPayloadError for an empty or malformed packet. A packet is at least
        one byte (RFC 6716 §3.4, R1); libopus would take an empty one for a loss.
        """
        if not payload:
            raise OpusPayloadError("empty Opus payload")
        return self._decode(payload, _MAX_PACKET_SAMPLES, fec=False)

    def recover(self, next_payload: bytes, samples: int) -> NDArray[np.float32] | None:
        """Rebuild the `samples` lost before `next_payload` from its in-band FEC (RFC 7587 §3.3).

        None when the packet carries no FEC or `samples` is shorter than its frames, since
        libopus would only conceal then; call `conceal` instead. When more than one packet
        was lost, libopus conceals the older part and fills the last frame from the FEC.
        `next_payload` is then decoded as usual.
        """
        _check_loss(samples)
        if not carries_fec(next_payload):
            return None
        frame_samples = opuslib_next.api.decoder.packet_get_samples_per_frame(
            next_payload, OPUS_SAMPLE_RATE_HZ
        )
        if samples < frame_samples:
            return None
        return self._decode(next_payload, samples, fec=True)

    def conceal(self, samples: int) -> NDArray[np.float32]:
        """Return libopus's packet loss concealment for `samples` lost (comfort noise in DTX)."""
        _check_loss(samples)
        return self._decode(None, samples, fec=False)

    def _decode(self, payload: bytes | None, samples: int, *, fec: bool) -> NDArray[np.float32]:
        """Run opus_decode_float into a fresh `(samples,)` buffer; None payload means lost."""
        pcm = np.empty(samples, dtype=np.float32)
        decoded = opuslib_next.api.decoder.libopus_decode_float(
            self._decoder.decoder_state,
            payload,
            len(payload) if payload is not None else 0,
            pcm.ctypes.data_as(opuslib_next.api.c_float_pointer),
            samples,
            int(fec),
        )
        if decoded < 0:
            raise OpusPayloadError(f"invalid Opus packet: {_strerror(decoded)}")
        return np.clip(pcm[:decoded], -1.0, _FULL_SCALE)


def _check_loss(samples: int) -> None:
    """Reject a loss libopus cannot fill: it must be a positive multiple of 2.5 ms."""
    if samples <= 0 or samples % _LOSS_STEP_SAMPLES:
        raise ValueError(
            f"lost audio must be a positive multiple of 2.5 ms ({_LOSS_STEP_SAMPLES} samples), "
            f"got {samples}"
        )
