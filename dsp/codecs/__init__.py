"""Codec registry: RTP/AVP encoding names to codecs.

`get_codec` gives the stateless G.711 FrameCodecs: one shared instance per name serves
every member. `new_encoder`/`new_decoder` give a fresh StreamEncoder or StreamDecoder per
RTP stream for every codec, G.711 included; G.722 and Opus keep state between frames.
Names are case-insensitive (RFC 4855 §3), so SDP's "opus" finds "OPUS".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from dsp.codecs.base import EncoderSettings, FrameCodec, StreamDecoder, StreamEncoder
from dsp.codecs.g711 import G711StreamDecoder, G711StreamEncoder, PcmaCodec, PcmuCodec
from dsp.codecs.g722 import (
    G722_CLOCK_RATE_HZ,
    G722_SAMPLE_RATE_HZ,
    G722StreamDecoder,
    G722StreamEncoder,
)
from dsp.codecs.opus import (
    OPUS_CLOCK_RATE_HZ,
    OPUS_SAMPLE_RATE_HZ,
    OpusStreamDecoder,
    OpusStreamEncoder,
)

_CODECS: dict[str, FrameCodec] = {codec.name: codec for codec in (PcmuCodec(), PcmaCodec())}

SUPPORTED_CODECS: tuple[str, ...] = tuple(_CODECS)


class CodecRates(NamedTuple):
    """A codec's audio rate and its RTP timestamp rate (they differ for G.722 and Opus)."""

    sample_rate_hz: int
    clock_rate_hz: int


@dataclass(frozen=True, slots=True)
class _StreamCodec:
    """How to build one codec's per-stream encoder and decoder, and its rates."""

    rates: CodecRates
    new_encoder: Callable[[EncoderSettings], StreamEncoder]
    new_decoder: Callable[[], StreamDecoder]


def _g711_stream_codec(codec: FrameCodec) -> _StreamCodec:
    """Return the stream adapters around one shared G.711 FrameCodec."""
    return _StreamCodec(
        CodecRates(codec.sample_rate_hz, codec.clock_rate_hz),
        partial(G711StreamEncoder, codec),
        partial(G711StreamDecoder, codec),
    )


_STREAM_CODECS: dict[str, _StreamCodec] = {
    "PCMU": _g711_stream_codec(_CODECS["PCMU"]),
    "PCMA": _g711_stream_codec(_CODECS["PCMA"]),
    "G722": _StreamCodec(
        CodecRates(G722_SAMPLE_RATE_HZ, G722_CLOCK_RATE_HZ), G722StreamEncoder, G722StreamDecoder
    ),
    "OPUS": _StreamCodec(
        CodecRates(OPUS_SAMPLE_RATE_HZ, OPUS_CLOCK_RATE_HZ), OpusStreamEncoder, OpusStreamDecoder
    ),
}

STREAM_CODECS: tuple[str, ...] = tuple(_STREAM_CODECS)


def get_codec(name: str) -> FrameCodec:
    """Return the codec for an encoding name; names are case-insensitive (RFC 4855 §3)."""
    try:
        return _CODECS[name.upper()]
    except KeyError:
        raise ValueError(f"no codec named {name!r}") from None


def new_encoder(name: str, settings: EncoderSettings) -> StreamEncoder:
    """Return a fresh encoder for one outgoing stream of codec `name`."""
    return _stream_codec(name).new_encoder(settings)


def new_decoder(name: str) -> StreamDecoder:
    """Return a fresh decoder for one incoming stream of codec `name`."""
    return _stream_codec(name).new_decoder()


def codec_rates(name: str) -> CodecRates:
    """Return the audio and RTP clock rates of codec `name`, without building a codec."""
    return _stream_codec(name).rates


def _stream_codec(name: str) -> _StreamCodec:
    """Look a stream codec up by case-insensitive encoding name."""
    try:
        return _STREAM_CODECS[name.upper()]
    except KeyError:
        raise ValueError(f"no codec named {name!r}") from None
