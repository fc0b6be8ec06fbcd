"""The sending side of one RTP stream: our SSRC, sequence numbers, RTP clock and SR counts.

It turns encoded payloads into RTP datagrams and keeps what an RTCP sender report needs.
It never decides when to send (the media clock does) nor what (the room's mix does).
`SendBank` makes one payload's packets for many streams at once (a big room's listeners).
"""

from __future__ import annotations

import base64
import random

import numpy as np
from numpy.typing import NDArray

from bridge.rtp.packet import RTP_HEADER, RTP_VERSION
from bridge.rtp.rows import RowPool
from bridge.rtp.rtcp import SenderInfo

_FIRST_BYTE = RTP_VERSION << 6  # no padding, extension or CSRCs


class SendStream:
    """Sequence numbers and timestamps of one outgoing stream (RFC 3550 §5.1, RFC 3551 §4.1).

    The initial sequence number, timestamp and SSRC are random (RFC 3550 §5.1); the CNAME,
    unless given, is a random per-session name (RFC 7022 §4.2). In a `SendBank` (`bank`),
    a payload's packets can be made together with other members' (`SendBank.packets`);
    the bytes are the same.
    """

    # Slots, the bank's first: every tick reads these objects in loops over hundreds of
    # members, and a slot lies in the object, not in a values array of its own (one
    # cache line fewer per object and pass once the tick's memory has gone cold).
    __slots__ = ("_row", "_banked", "_bank", "payload_type", "clock_rate_hz", "ssrc", "cname",
                 "_packet_count", "_octet_count", "_sequence_number", "_timestamp",
                 "_latest_timestamp", "_event_timestamp", "_talkspurt_starts",
                 "_packet_count_at_reports", "__weakref__")

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
        self._bank: SendBank | None = None
        self._row = -1
        self._banked = False  # the bank holds the sequence number, clock and counts
        if bank is not None:
            bank.add(self)

    @property
    def packet_count(self) -> int:
        if self._banked:
            self._take_back()
        return self._packet_count

    @property
    def octet_count(self) -> int:
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
        # Written for speed (one call per member and tick): each attribute read once.
        if self._banked:
            self._take_back()
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


# Columns of `SendBank._state`: what `SendStream.packet` reads and moves on.
_SEQUENCE_NUMBER, _TIMESTAMP, _LATEST_TIMESTAMP, _TALKSPURT_STARTS, _PACKETS, _OCTETS = range(6)


class SendBank:
    """The sending state of many streams, for one payload's packets to all of them at once.

    In a big room nearly every member hears the room mix and gets the same payload each
    tick; only the RTP header differs. `SendStream.packet` spends ~0.3 us of Python on
    one (two to three times that when the tick starts on a cold cache, as the media clock's
    ticks do), 50 times a second for every member. `packets` writes the headers of all of
    them in a few array operations. A stream that sent from the bank is "banked": its
    sequence number, clock and counts live in the bank's rows until any other use of the
    stream takes them back. The bytes are the same as packet by packet
    (tests/bridge/rtp/test_sender.py).
    """

    def __init__(self) -> None:
        self._state: NDArray[np.int64] = np.zeros((0, 6), np.int64)
        # Each row's header bytes that never change: version, payload type, SSRC.
        self._headers: NDArray[np.uint8] = np.zeros((0, RTP_HEADER.size), np.uint8)
        self._rows = RowPool(self._grow)

    def add(self, stream: SendStream) -> None:
        """Give `stream` a row of the bank, for as long as it lives."""
        if stream._bank is not None:
            raise ValueError("the stream is in a bank already")
        row = self._rows.take(stream)
        stream._bank, stream._row = self, row
        self._headers[row] = np.frombuffer(
            RTP_HEADER.pack(_FIRST_BYTE, stream.payload_type, 0, 0, stream.ssrc), np.uint8)

    def _grow(self, rows: int) -> None:
        old = self._state.shape[0]
        state, headers = np.zeros((rows, 6), np.int64), np.zeros((rows, RTP_HEADER.size), np.uint8)
        state[:old], headers[:old] = self._state, self._headers
        self._state, self._headers = state, headers

    def release(self, stream: SendStream) -> None:
        """Give a banked stream its state back, as if it had made the packets itself."""
        (stream._sequence_number, stream._timestamp, stream._latest_timestamp, starts,
         stream._packet_count, stream._octet_count) = self._state[stream._row].tolist()
        stream._talkspurt_starts = bool(starts)
        stream._banked = False

    def packets(self, streams: list[SendStream], payload: bytes, timestamp_step: int) -> bytes:
        """`streams[k].packet(payload, timestamp_step)` for every k, as one run of bytes:
        packet k is the k-th slice of `len(payload) + 12` bytes. The streams are this
        bank's, each at most once."""
        count = len(streams)
        if not all([stream._banked for stream in streams]):
            for stream in streams:
                if not stream._banked:
                    self._hold(stream)
        rows = np.fromiter([stream._row for stream in streams], np.intp, count)
        state = self._state[rows]
        sequence_numbers, timestamps = state[:, _SEQUENCE_NUMBER], state[:, _TIMESTAMP]
        out = np.empty((count, RTP_HEADER.size + len(payload)), np.uint8)
        out[:, : RTP_HEADER.size] = self._headers[rows]
        out[:, 1] |= (state[:, _TALKSPURT_STARTS] << 7).astype(np.uint8)  # the marker bit
        out[:, 2:4] = sequence_numbers.astype(">u2").view(np.uint8).reshape(count, 2)
        out[:, 4:8] = timestamps.astype(">u4").view(np.uint8).reshape(count, 4)
        out[:, RTP_HEADER.size :] = np.frombuffer(payload, np.uint8)
        state[:, _LATEST_TIMESTAMP] = timestamps
        state[:, _SEQUENCE_NUMBER] = (sequence_numbers + 1) & 0xFFFF
        state[:, _TIMESTAMP] = (timestamps + timestamp_step) & 0xFFFFFFFF
        state[:, _TALKSPURT_STARTS] = 0
        state[:, _PACKETS] += 1
        state[:, _OCTETS] += len(payload)
        self._state[rows] = state
        return out.tobytes()

    def _hold(self, stream: SendStream) -> None:
        if stream._bank is not self:
            raise ValueError("the stream is not in this bank")
        self._state[stream._row] = (
            stream._sequence_number, stream._timestamp, stream._latest_timestamp,
            stream._talkspurt_starts, stream._packet_count, stream._octet_count)
        stream._banked = True


def _random_cname(rng: random.Random) -> str:
    """Return a short-term persistent CNAME: 96 random bits in base64 (RFC 7022 §4.2)."""
    return base64.b64encode(rng.getrandbits(96).to_bytes(12, "big")).decode("ascii")
