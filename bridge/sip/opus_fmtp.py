"""Opus format parameters (RFC 7587 §6.1): the a=fmtp line of an opus/48000/2 payload type.

This module reads a peer's fmtp into typed values with the RFC's defaults and prints ours.
It knows nothing of SDP lines (`sdp`), of choosing codecs (`offer_answer`) or of the
encoder that obeys the values. Every Opus parameter is a hint, so reading never fails:
unknown parameters are ignored, an unreadable value leaves the default, and a value out of
its range is clamped into it, or ignored where the RFC says so (maxaveragebitrate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "DEFAULT_MAX_PLAYBACK_RATE_HZ",
    "MAX_AVERAGE_BITRATE_BPS",
    "MIN_AVERAGE_BITRATE_BPS",
    "OpusParameters",
]

_T = TypeVar("_T")

# RFC 7587 §6.1: maxplaybackrate and sprop-maxcapturerate "can take any value between 8000
# and 48000"; 48000 means no limit and is the default of both.
MIN_PLAYBACK_RATE_HZ = 8000
DEFAULT_MAX_PLAYBACK_RATE_HZ = 48000
# RFC 7587 §6.1: maxaveragebitrate values "outside the range 6000 to 510000 SHOULD be
# ignored" (RFC 6716 §2.1.1: Opus runs from 6 to 510 kbit/s).
MIN_AVERAGE_BITRATE_BPS = 6000
MAX_AVERAGE_BITRATE_BPS = 510_000
# RFC 7587 §6.1: packet durations go from one 2.5 ms frame, rounded up to 3, to 120 ms.
_MIN_PTIME_MS = 3
_MAX_PTIME_MS = 120
# Nine digits hold every meaningful value and keep int() cheap on hostile input.
_MAX_DIGITS = 9


def _number(text: str) -> int | None:
    """Read a parameter value as a decimal integer; anything else counts as absent."""
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def _clamped(value: int | None, low: int, high: int) -> int | None:
    return None if value is None else min(max(value, low), high)


def _flag(text: str) -> bool | None:
    """Read a 0/1 parameter (stereo, cbr, useinbandfec, ...); other values count as absent."""
    return {"0": False, "1": True}.get(text)


def _duration_ms(text: str) -> int | None:
    """Read ptime, minptime or maxptime: 0 is nonsense, more than 120 ms means 120."""
    value = _number(text)
    return None if not value else _clamped(value, _MIN_PTIME_MS, _MAX_PTIME_MS)


def _rate_hz(text: str) -> int | None:
    return _clamped(_number(text), MIN_PLAYBACK_RATE_HZ, DEFAULT_MAX_PLAYBACK_RATE_HZ)


def _average_bitrate_bps(text: str) -> int | None:
    value = _number(text)
    if value is None or not MIN_AVERAGE_BITRATE_BPS <= value <= MAX_AVERAGE_BITRATE_BPS:
        return None
    return value


@dataclass(frozen=True, slots=True)
class OpusParameters:
    """One side's Opus fmtp: what its decoder prefers to receive and what it will likely send.

    The receive-side values (maxplaybackrate, maxptime, ptime, minptime,
    maxaveragebitrate, stereo, cbr, useinbandfec, usedtx) bind the OTHER side's encoder;
    the sprop- values describe this side's own sending (RFC 7587 §6.1).
    """

    max_playback_rate_hz: int = DEFAULT_MAX_PLAYBACK_RATE_HZ
    sprop_max_capture_rate_hz: int = DEFAULT_MAX_PLAYBACK_RATE_HZ
    max_ptime_ms: int | None = None  # absent: 120 ms, Opus's longest packet
    ptime_ms: int | None = None
    min_ptime_ms: int | None = None
    max_average_bitrate_bps: int | None = None  # absent: up to what the mode needs (§3.1.1)
    stereo: bool = False
    sprop_stereo: bool = False
    cbr: bool = False
    use_inband_fec: bool = False
    use_dtx: bool = False

    @classmethod
    def parse(cls, fmtp: str | None) -> OpusParameters:
        """Read an fmtp value such as `maxplaybackrate=16000; useinbandfec=1` (RFC 7587 §7).

        Names are case-insensitive (RFC 4855 §3); the first of two equal names wins.
        """
        values: dict[str, str] = {}
        for pair in (fmtp or "").split(";"):
            name, equals, value = pair.partition("=")
            if equals:
                values.setdefault(name.strip().lower(), value.strip())
        defaults = cls()

        def read(name: str, reader: Callable[[str], _T | None], default: _T) -> _T:
            value = reader(values[name]) if name in values else None
            return default if value is None else value

        return cls(
            max_playback_rate_hz=read("maxplaybackrate", _rate_hz, defaults.max_playback_rate_hz),
            sprop_max_capture_rate_hz=read(
                "sprop-maxcapturerate", _rate_hz, defaults.sprop_max_capture_rate_hz
            ),
            max_ptime_ms=read("maxptime", _duration_ms, defaults.max_ptime_ms),
            ptime_ms=read("ptime", _duration_ms, defaults.ptime_ms),
            min_ptime_ms=read("minptime", _duration_ms, defaults.min_ptime_ms),
            max_average_bitrate_bps=read(
                "maxaveragebitrate", _average_bitrate_bps, defaults.max_average_bitrate_bps
            ),
            stereo=read("stereo", _flag, defaults.stereo),
            sprop_stereo=read("sprop-stereo", _flag, defaults.sprop_stereo),
            cbr=read("cbr", _flag, defaults.cbr),
            use_inband_fec=read("useinbandfec", _flag, defaults.use_inband_fec),
            use_dtx=read("usedtx", _flag, defaults.use_dtx),
        )

    def __str__(self) -> str:
        """Print as an fmtp value, in the order of RFC 7587 §6.1.

        Optional numbers print only when set; useinbandfec, usedtx and stereo always print,
        since they are what a far-end encoder acts on; sprop-stereo and cbr only when 1.
        """
        pairs = [
            ("maxplaybackrate", self.max_playback_rate_hz),
            ("sprop-maxcapturerate", self.sprop_max_capture_rate_hz),
            ("maxptime", self.max_ptime_ms),
            ("ptime", self.ptime_ms),
            ("minptime", self.min_ptime_ms),
            ("maxaveragebitrate", self.max_average_bitrate_bps),
            ("useinbandfec", int(self.use_inband_fec)),
            ("usedtx", int(self.use_dtx)),
            ("stereo", int(self.stereo)),
            ("sprop-stereo", 1 if self.sprop_stereo else None),
            ("cbr", 1 if self.cbr else None),
        ]
        return ";".join(f"{name}={value}" for name, value in pairs if value is not None)

