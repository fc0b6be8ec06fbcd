"""The sending side of one RTP stream: our SSRC, sequence numbers, RTP clock and SR counts.

It turns encoded payloads into RTP datagrams and keeps what an RTCP sender report needs.
It never decides when to send (the media clock does) nor what (the room's mix does).
"""

from __future__ import annotations

import base64
import random

from bridge.rtp.packet import RTP_HEADER, RTP_VERSION
from bridge.rtp.rtcp import SenderInfo

_FIRST_BYTE = RTP_VERSION << 6  # no padding, extension or CSRCs


class SendStream:
    """Sequence numbers and timestamps of one outgoing stream (RFC 3550 §5.1, RFC 3551 §4.1).

    The initial sequence number, timestamp and SSRC are random (RFC 3550 §5.1); the CNAME,
    unless given, is a random per-session name (RFC 7022 §4.2).
    """

    def __init__(
        self,
        payload_type: int,
        clock_rate_hz: int,
        rng: random.Random,
        cname: str | None = None,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError("RTP payload type must be in 0..127")
        self.payload_type = payload_type
        self.clock_rate_hz = clock_rate_hz
        self.ssrc = rng.getrandbits(32)
        self.cname = cname if cname is not None else _random_cname(rng)
        self.packet_count = 0
        self.octet_count = 0
        self._sequence_number = rng.getrandbits(16)
        self._timestamp = rng.getrandbits(32)
        self._latest_timestamp = self._timestamp  # of the latest frame sent or skipped
        self._event_timestamp = self._timestamp  # of the RFC 4733 event being sent
        self._talkspurt_starts = True
        self._packet_count_at_reports = (0, 0)  # at the report before last, at the last

    def packet(self, payload: bytes, timestamp_step: int, marker: bool = False) -> bytes:
        """Return the next RTP packet carrying `payload`, then advance the clock by its length.

        `timestamp_step` is the payload's duration in RTP timestamp units. The marker bit is
        set on the first packet of a talk spurt (after `skip` or at the start, RFC 3551 §4.1).
        """
        # Written for speed (one call per member and tick): each attribute read once.
        timestamp = self._timestamp
        second_byte = self.payload_type
        if marker or self._talkspurt_starts:
            second_byte |= 0x80
            self._talkspurt_starts = False
        data = RTP_HEADER.pack(
            _FIRST_BYTE, second_byte, self._sequence_number, timestamp, self.ssrc
        ) + payload
        self._latest_timestamp = timestamp
        self._sequence_number = (self._sequence_number + 1) & 0xFFFF
        self._timestamp = (timestamp + timestamp_step) & 0xFFFFFFFF
        self.packet_count += 1
        self.octet_count += len(payload)
        return data

    def event_packet(
        self, payload_type: int, payload: bytes, timestamp_step: int, *, starts: bool
    ) -> bytes:
        """Return an RFC 4733 event packet in place of this frame's audio.

        Every packet of one event carries the timestamp of its first (`starts`, which also
        sets the marker bit: §2.5.1.2); the stream's clock and sequence numbers move on as
        for audio, so the audio after the event starts a new talk spurt at real time.
        """
        if not 0 <= payload_type <= 127:
            raise ValueError("RTP payload type must be in 0..127")
        if starts:
            self._event_timestamp = self._timestamp
        data = (
            RTP_HEADER.pack(
                _FIRST_BYTE,
                (0x80 if starts else 0) | payload_type,
                self._sequence_number,
                self._event_timestamp,
                self.ssrc,
            )
            + payload
        )
        self._latest_timestamp = self._timestamp
        self._sequence_number = (self._sequence_number + 1) & 0xFFFF
        self._timestamp = (self._timestamp + timestamp_step) & 0xFFFFFFFF
        self._talkspurt_starts = True
        self.packet_count += 1
        self.octet_count += len(payload)
        return data

    def skip(self, timestamp_step: int) -> None:
        """Let a frame's worth of RTP clock pass without sending (silence, hold).

        The timestamp keeps pace with real time so the peer's jitter estimate stays sane
        (RFC 3550 §5.1); the sequence number does not move, so no loss is reported.
        """
        self._latest_timestamp = self._timestamp
        self._timestamp = (self._timestamp + timestamp_step) & 0xFFFFFFFF
        self._talkspurt_starts = True

    @property
    def we_sent(self) -> bool:
        """Return whether we sent media since the report before last (RFC 3550 §6.4, A.7)."""
        return self.packet_count != self._packet_count_at_reports[0]

    def on_report_sent(self) -> None:
        """Note that an RTCP report went out, for `we_sent`."""
        self._packet_count_at_reports = (self._packet_count_at_reports[1], self.packet_count)

    def sender_info(self, now_ntp: int) -> SenderInfo:
        """Return the SR sender info (RFC 3550 §6.4.1) for a report sent at `now_ntp`.

        The RTP timestamp is that of the latest frame sent or skipped: the media clock made
        it at the current tick, which is when reports are built.
        """
        return SenderInfo(
            now_ntp,
            self._latest_timestamp,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )


def _random_cname(rng: random.Random) -> str:
    """Return a short-term persistent CNAME: 96 random bits in base64 (RFC 7022 §4.2)."""
    return base64.b64encode(rng.getrandbits(96).to_bytes(12, "big")).decode("ascii")
