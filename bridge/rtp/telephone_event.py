"""RFC 4733 telephone events (DTMF over RTP): the payload format and digit detection.

`TelephoneEventReceiver` turns the stream of event packets (several per key press, plus
retransmitted end packets) into exactly one `DigitStarted` and at most one `DigitEnded`
per key press. It sees payloads only; sequence validation is `stream`'s job, and in-band
DTMF detection is `dsp.dtmf`'s.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from bridge.rtp.seqnum import uint32_diff

_EVENT = struct.Struct("!BBH")  # event, E/R/volume, duration
RECENT_EVENTS = 8  # earlier events whose late packets are recognised as such

# RFC 4733 §3.2: the DTMF events. Flash is "X", as Asterisk reports it.
EVENT_CHARACTERS: dict[int, str] = {
    **{code: str(code) for code in range(10)},
    10: "*",
    11: "#",
    12: "A",
    13: "B",
    14: "C",
    15: "D",
    16: "X",
}


class TelephoneEventParseError(ValueError):
    """A payload that is not a telephone event."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One event report (RFC 4733 §2.3); `duration` is in RTP timestamp units.

    The reserved R bit is ignored on parse and sent as zero (§2.3.3).
    """

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        """Parse the first event report of a payload."""
        if len(data) < _EVENT.size:
            raise TelephoneEventParseError("telephone event payload is shorter than 4 bytes")
        event, flags, duration = _EVENT.unpack_from(data)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        if not 0 <= self.volume <= 63:
            raise ValueError("telephone event volume must be in 0..63")
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


@dataclass(frozen=True, slots=True)
class DigitStarted:
    """A key press began; `timestamp` (RTP) identifies it for de-duplication."""

    digit: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class DigitEnded:
    """A key press ended after `duration_ts` RTP timestamp units."""

    digit: str
    duration_ts: int
    timestamp: int


class TelephoneEventReceiver:
    """One digit per event, where an event is identified by its RTP timestamp (§2.5.1.3).

    Packets of the events before the current one are late retransmissions and ignored, as
    is any packet whose timestamp is older (serial-number order) unless its marker bit says
    a new event starts (§2.5.1.3): a sender whose timestamps jumped backwards (a new SSRC
    after a transfer) still gets its digits through. If an event's first packets were lost
    and an end packet arrives first, the digit is started then, and ended by the next end
    packet (§2.5.1.4 sends it three times). Only the first report of a payload is read.
    """

    def __init__(self) -> None:
        self._current: tuple[int, int] | None = None  # (RTP timestamp, event code)
        self._earlier: deque[tuple[int, int]] = deque(maxlen=RECENT_EVENTS)
        self._ended = False
        self._end_pending = False

    def receive(
        self, payload: bytes, rtp_timestamp: int, marker: bool
    ) -> DigitStarted | DigitEnded | None:
        """Return what one telephone-event packet tells about key presses, if anything."""
        try:
            report = TelephoneEvent.parse(payload)
        except TelephoneEventParseError:
            return None
        digit = EVENT_CHARACTERS.get(report.event)
        if digit is None:
            return None  # tones and signals other than DTMF mean nothing to a keypad
        identity = (rtp_timestamp, report.event)
        if identity != self._current:
            if identity in self._earlier:
                return None
            if (
                self._current is not None
                and not marker
                and uint32_diff(rtp_timestamp, self._current[0]) < 0
            ):
                return None
            if self._current is not None:
                self._earlier.append(self._current)
            self._current = identity
            self._ended = self._end_pending = report.end
            return DigitStarted(digit, rtp_timestamp)
        if not report.end or (self._ended and not self._end_pending):
            return None
        self._ended, self._end_pending = True, False
        return DigitEnded(digit, report.duration, rtp_timestamp)
