"""Codec registry: RTP/AVP encoding names to stateless FrameCodec instances.

Codecs hold no per-call state, so one shared instance per name serves every member.
"""

from __future__ import annotations

from dsp.codecs.base import FrameCodec
from dsp.codecs.g711 import PcmaCodec, PcmuCodec

_CODECS: dict[str, FrameCodec] = {codec.name: codec for codec in (PcmuCodec(), PcmaCodec())}

SUPPORTED_CODECS: tuple[str, ...] = tuple(_CODECS)


def get_codec(name: str) -> FrameCodec:
    """Return the codec for an encoding name; names are case-insensitive (RFC 4855 §3)."""
    try:
        return _CODECS[name.upper()]
    except KeyError:
        raise ValueError(f"no codec named {name!r}") from None
