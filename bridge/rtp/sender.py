"""The sending side of one RTP stream: our SSRC, sequence numbers, RTP clock and SR counts.

It turns encoded payloads into RTP datagrams and keeps what an RTCP sender report needs.
It never decides when to send (the media clock does) nor what (the room's mix does).
A `SendBank` stamps one payload for many streams at once (a room's listeners).
"""

from __future__ import annotations

import base64
import random
import weakref

import numpy as np
from numpy.typing import NDArray

from bridge.rtp.packet import RTP_HEADER, RTP_VERSION
from bridge.rtp.rtcp import SenderInfo


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
        *,
        bank: SendBank | None = None,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError("RTP payload type must be in 0..127")
        self.payload_type = payload_type
        self.clock_rate_hz = clock_rate_hz
        self.ssrc = rng.getrandbits(32)
        self.cname = cname if cname is not None else _random_cname(rng)
        self._packet_count = 0
        self._octet_count = 0
        self._sequence_number = rng.getrandbits(16)
        self._timestamp = rng.getrandbits(32)
        self._latest_timestamp = self._timestamp  # of the latest frame sent or skipped
        self._event_timestamp = self._timestamp  # of the RFC 4733 event being sent
        self._talkspurt_starts = True
        self._packet_count_at_reports = (0, 0)  # at the report before last, at the last
        # In a bank, the state above lives in its row while the stream is "banked"
        # (`SendBank.packets` sent its last packet); any other use takes it back first.
        self._bank: SendBank | None = None
        self._row = -1
        self._banked = False
        if bank is not None:
            bank.add(self)

    @property
    def packet_count(self) -> int:
        """Packets sent, for the sender report (RFC 3550 §6.4.1)."""
        if self._banked:
            self._take_back()
        return self._packet_count

    @property
    def octet_count(self) -> int:
        """Payload octets sent, for the sender report (RFC 3550 §6.4.1)."""
        if self._banked:
            self._take_back()
        return self._octet_count

    def _take_back(self) -> None:
        assert self._bank is not None
        self._bank.release(self)

    def packet(self, payload: bytes, timestamp_step: int, marker: bool = False) -> bytes:
        """Return the next RTP packet carrying `payload`, then advance the clock by its length.

        `timestamp_step` is the payload's duration in RTP timestamp units. The marker bit is
        set on the first packet of a talk spurt (after `skip` or at the start, RFC 3551 §4.1).
        """
        if self._banked:
            self._take_back()
        marker = marker or self._talkspurt_starts
        data = (
            RTP_HEADER.pack(
                RTP_VERSION << 6,
                (0x80 if marker else 0) | self.payload_type,
                self._sequence_number,
                self._timestamp,
                self.ssrc,
            )
            + payload
        )
        self._latest_timestamp = self._timestamp
        self._sequence_number = (self._sequence_number + 1) & 0xFFFF
        self._timestamp = (self._timestamp + timestamp_step) & 0xFFFFFFFF
        self._talkspurt_starts = False
        self._packet_count += 1
        self._octet_count += len(payload)
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
        if self._banked:
            self._take_back()
        if starts:
            self._event_timestamp = self._timestamp
        data = (
            RTP_HEADER.pack(
                RTP_VERSION << 6,
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
        self._packet_count += 1
        self._octet_count += len(payload)
        return data

    def skip(self, timestamp_step: int) -> None:
        """Let a frame's worth of RTP clock pass without sending (silence, hold).

        The timestamp keeps pace with real time so the peer's jitter estimate stays sane
        (RFC 3550 §5.1); the sequence number does not move, so no loss is reported.
        """
        if self._banked:
            self._take_back()
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
        if self._banked:
            self._take_back()
        return SenderInfo(
            now_ntp,
            self._latest_timestamp,
            self._packet_count & 0xFFFFFFFF,
            self._octet_count & 0xFFFFFFFF,
        )


# A bank row: sequence number, timestamp, latest timestamp, packets, octets, SSRC, first
# octet after the version octet (marker and payload type).
_SEQUENCE, _TIMESTAMP, _LATEST, _PACKETS, _OCTETS, _SSRC, _MARKER_PT = range(7)
_FIELDS = 7
_BANK_FIRST_ROWS = 64
_HEADER = np.dtype([("version", "u1"), ("marker_pt", "u1"), ("sequence", ">u2"),
                    ("timestamp", ">u4"), ("ssrc", ">u4")])  # RTP_HEADER as an array row


class SendBank:
    """The sending state of many streams, to stamp one payload for all of them at once.

    A room's listeners get the same payload every tick; `SendStream.packet` spends ~1 us
    of Python on each. A stream that `packets` sent is "banked": its sequence number,
    clock and counts live in the bank's rows, and the next `packets` call stamps the
    headers of all its streams in a few array operations. Any other use of the stream
    (its own packet, a skip, an event, a report) first takes its state back. The
    datagrams and reports are the same as packet by packet (tests/bridge/rtp/test_sender.py).
    """

    def __init__(self) -> None:
        self._ints: NDArray[np.int64] = np.zeros((0, _FIELDS), np.int64)
        self._free: list[int] = []

    def add(self, stream: SendStream) -> None:
        """Give `stream` a row of the bank, for as long as it lives."""
        if stream._bank is not None:
            raise ValueError("the stream is in a bank already")
        if not self._free:
            old = self._ints.shape[0]
            rows = max(_BANK_FIRST_ROWS, 2 * old)
            self._ints = np.concatenate((self._ints, np.zeros((rows - old, _FIELDS), np.int64)))
            self._free.extend(range(rows - 1, old - 1, -1))  # lowest rows first
        stream._bank, stream._row = self, self._free.pop()
        weakref.finalize(stream, self._free.append, stream._row)

    def release(self, stream: SendStream) -> None:
        """Give a banked stream its state back, as if it had sent the packets itself."""
        sequence, timestamp, latest, packets, octets, _, marker_pt = (
            self._ints[stream._row].tolist())
        stream._sequence_number, stream._timestamp = sequence, timestamp
        stream._latest_timestamp = latest
        stream._packet_count, stream._octet_count = packets, octets
        stream._talkspurt_starts = bool(marker_pt & 0x80)
        stream._banked = False

    def _hold(self, stream: SendStream) -> None:
        self._ints[stream._row] = (
            stream._sequence_number, stream._timestamp, stream._latest_timestamp,
            stream._packet_count, stream._octet_count, stream.ssrc,
            (0x80 if stream._talkspurt_starts else 0) | stream.payload_type,
        )
        stream._banked = True

    def packets(self, streams: list[SendStream], payload: bytes, timestamp_step: int
                ) -> list[bytes]:
        """`streams[k].packet(payload, timestamp_step)` for every k, in one go: the RTP
        datagrams, in order. Each stream must be in this bank, and in the list once."""
        if not streams:
            return []
        rows = []
        for stream in streams:
            if not stream._banked:
                self._hold(stream)
            rows.append(stream._row)
        state = self._ints[rows]
        headers = np.empty(len(rows), _HEADER)
        headers["version"] = RTP_VERSION << 6
        headers["marker_pt"] = state[:, _MARKER_PT]
        headers["sequence"] = state[:, _SEQUENCE]
        headers["timestamp"] = state[:, _TIMESTAMP]
        headers["ssrc"] = state[:, _SSRC]
        size = _HEADER.itemsize + len(payload)
        datagrams = np.empty((len(rows), size), np.uint8)
        datagrams[:, : _HEADER.itemsize] = headers.view(np.uint8).reshape(len(rows), -1)
        datagrams[:, _HEADER.itemsize :] = np.frombuffer(payload, np.uint8)
        state[:, _LATEST] = state[:, _TIMESTAMP]
        state[:, _SEQUENCE] = (state[:, _SEQUENCE] + 1) & 0xFFFF
        state[:, _TIMESTAMP] = (state[:, _TIMESTAMP] + timestamp_step) & 0xFFFFFFFF
        state[:, _PACKETS] += 1
        state[:, _OCTETS] += len(payload)
        state[:, _MARKER_PT] &= 0x7F  # the talk spurt has started
        self._ints[rows] = state
        joined = datagrams.tobytes()
        return [joined[start : start + size] for start in range(0, len(joined), size)]


def _random_cname(rng: random.Random) -> str:
    """Return a short-term persistent CNAME: 96 random bits in base64 (RFC 7022 §4.2)."""
    return base64.b64encode(rng.getrandbits(96).to_bytes(12, "big")).decode("ascii")
