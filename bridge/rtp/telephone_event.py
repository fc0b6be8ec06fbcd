"""RFC 4733 telephone events (DTMF over RTP): the payload format, digit detection and
digit sending.

`TelephoneEventReceiver` turns the stream of event packets (several per key press, plus
retransmitted end packets) into exactly one `DigitStarted` and at most one `DigitEnded`
per key press. It sees payloads only; sequence validation is `stream`'s job, and in-band
DTMF detection is `dsp.dtmf`'s. `DigitSender` plays a dial string (a meeting ID and
passcode for a video meeting's SIP gateway) as the event reports of one packet per frame.
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
EVENT_CODES: dict[str, int] = {char: code for code, char in EVENT_CHARACTERS.items() if char != "X"}
DIAL_PAUSE = ","  # in a dial string: wait PAUSE_FRAMES frames, as phones' "," pauses
# A key press of 100 ms and 100 ms between presses: twice the 40 ms every DTMF receiver
# must take (Q.24), the spacing Asterisk's SendDTMF uses by default.
TONE_MS = 100
GAP_MS = 100
PAUSE_MS = 1000
TONE_FRAMES, GAP_FRAMES, PAUSE_FRAMES = 5, 5, 50  # at 20 ms frames
END_REPEATS = 3  # §2.5.1.4: the final packet of an event is sent three times
DEFAULT_VOLUME = 10  # -10 dBm0, a typical phone's level (§2.3.4)


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


@dataclass(frozen=True, slots=True)
class EventFrame:
    """What to send in one frame instead of audio: one event report.

    `starts` marks the first packet of an event: it carries the marker bit, and its
    timestamp becomes the timestamp of every packet of the event (§2.5.1.2).
    """

    report: TelephoneEvent
    starts: bool


class DigitSender:
    """Plays a dial string as RFC 4733 events, one report per frame (§2.5.1).

    Each digit is sent for TONE_MS (in whole frames) with a growing duration, then its end
    report END_REPEATS times, then GAP_MS of audio before the next; a "," is a pause of
    PAUSE_MS. `next_frame` says, frame by frame, whether to send an event
    report (and which) or the audio as usual (None).
    """

    def __init__(
        self, digits: str, frame_ts: int, *, frame_ms: int = 20, volume: int = DEFAULT_VOLUME
    ) -> None:
        """`frame_ts` is one frame's length in RTP timestamp units (160 for PCMU at 20 ms),
        `frame_ms` in milliseconds: tones, gaps and pauses keep their length in time."""
        unknown = sorted({c for c in digits if c not in EVENT_CODES and c != DIAL_PAUSE})
        if unknown:
            raise ValueError(f"not a dial string: {''.join(unknown)!r} cannot be sent")
        if frame_ms <= 0:
            raise ValueError(f"frame length {frame_ms} ms is not a length")
        tone, gap, pause = (-(-length // frame_ms) for length in (TONE_MS, GAP_MS, PAUSE_MS))
        if frame_ts <= 0 or frame_ts * tone > 0xFFFF:
            raise ValueError(f"frame length {frame_ts} does not fit an event's duration field")
        self._frames: deque[EventFrame | None] = deque()
        for char in digits:
            if char == DIAL_PAUSE:
                self._frames.extend([None] * pause)
                continue
            code = EVENT_CODES[char]
            for index in range(tone):
                report = TelephoneEvent(code, False, volume, (index + 1) * frame_ts)
                self._frames.append(EventFrame(report, starts=index == 0))
            final = TelephoneEvent(code, True, volume, tone * frame_ts)
            self._frames.extend([EventFrame(final, starts=False)] * END_REPEATS)
            self._frames.extend([None] * gap)

    @property
    def done(self) -> bool:
        return not self._frames

    def next_frame(self) -> EventFrame | None:
        """The event report to send this frame, or None: send audio (a gap, or done)."""
        return self._frames.popleft() if self._frames else None
