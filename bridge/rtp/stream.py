"""The receiving side of one member's RTP stream: validation and reception statistics.

RFC 3550 A.1 (sequence validation), A.3 (loss), A.8 (interarrival jitter), plus duplicate
detection and SSRC changes. It takes header fields as primitives and returns a verdict;
it neither buffers nor decodes payloads (that is `dsp.jitter`'s job) and never reads a
clock: every arrival comes with `now` in seconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bridge.rtp.rows import RowPool
from bridge.rtp.rtcp import ReportBlock, ntp_middle32
from bridge.rtp.seqnum import UINT16_MOD, uint32_diff

MIN_SEQUENTIAL = 2  # packets in sequence before the first source is trusted (A.1)
MAX_DROPOUT = 3000  # the largest forward jump taken as loss rather than a restart (A.1)
MAX_MISORDER = 100  # how far behind a packet may be and still count as late, not stale (A.1)
DUPLICATE_WINDOW = 128  # sequence numbers remembered for duplicate detection (> MAX_MISORDER)
_WINDOW_MASK = (1 << DUPLICATE_WINDOW) - 1
_LOST_MIN, _LOST_MAX = -(1 << 23), (1 << 23) - 1  # the RR field is 24-bit signed (A.3)


class ReceiveStatus(enum.Enum):
    """Verdict on one packet; the caller decides what to play.

    | status               | when                                              | counted |
    |----------------------|---------------------------------------------------|---------|
    | PROBATION            | first source, fewer than MIN_SEQUENTIAL in a row  | yes     |
    | ACCEPTED             | ahead by < MAX_DROPOUT, or late by < MAX_MISORDER | yes     |
    | NEW_SOURCE           | SSRC differs from the current one: state reset    | yes     |
    | RESTARTED            | second packet in sequence after a large jump      | yes     |
    | DUPLICATE            | the highest, or a late one, already seen          | no      |
    | BAD_SEQUENCE         | jump ahead by >= MAX_DROPOUT (maybe a restart)    | no      |
    | OUT_OF_ORDER_TOO_OLD | behind by >= MAX_MISORDER (stale, maybe restart)  | no      |
    """

    ACCEPTED = enum.auto()
    PROBATION = enum.auto()
    DUPLICATE = enum.auto()
    OUT_OF_ORDER_TOO_OLD = enum.auto()
    BAD_SEQUENCE = enum.auto()
    RESTARTED = enum.auto()
    NEW_SOURCE = enum.auto()


@dataclass(frozen=True, slots=True)
class ReceiveStatistics:
    """A snapshot of one stream's reception.

    `packets_received`, `octets_received` (payload octets), `ssrc_changes` and `duplicates`
    count over the stream's whole life; loss, jitter and the extended highest sequence
    number describe the current source since its sequence base (A.1 `init_seq`), as the
    RR does. `fraction_lost_last` is the value sent in the latest report block (1/256).
    """

    ssrc: int | None
    packets_received: int
    octets_received: int
    cumulative_lost: int
    fraction_lost_last: int
    jitter_ts: float
    jitter_ms: float
    extended_highest_seq: int
    ssrc_changes: int
    duplicates: int
    last_arrival: float | None


class ReceiveStream:
    """Validation and statistics for the packets one member sends us.

    In a `ReceiveBank` (`bank`), the packets that follow on can be checked and counted
    together with other members' (`ReceiveBank.accept_many`); the verdicts and figures
    are the same.
    """

    # Slots, the bank's first: every tick reads these objects in loops over hundreds of
    # members, and a slot lies in the object, not in a values array of its own (one
    # cache line fewer per object and pass once the tick's memory has gone cold).
    __slots__ = ("_row", "_banked", "_bank", "clock_rate_hz", "_ssrc", "_probation", "_max_seq",
                 "_cycles", "_base_seq", "_bad_seq", "_received", "_expected_prior",
                 "_received_prior", "_seen", "_jitter_ts", "_last_arrival_ts", "_last_timestamp",
                 "_packets_received", "_octets_received", "_ssrc_changes", "_duplicates",
                 "_last_arrival", "_fraction_lost_last", "_lsr", "_last_sr_at", "__weakref__")

    def __init__(self, clock_rate_hz: int, *, bank: ReceiveBank | None = None) -> None:
        self.clock_rate_hz = clock_rate_hz
        self._ssrc: int | None = None
        self._probation = 0
        self._max_seq = 0
        self._cycles = 0  # wrap-arounds times 2**16 (A.1)
        self._base_seq = 0
        self._bad_seq: int | None = None
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._seen = 0  # bit k: max_seq - k arrived
        self._jitter_ts = 0.0
        self._last_arrival_ts: float | None = None
        self._last_timestamp = 0
        self._packets_received = 0
        self._octets_received = 0
        self._ssrc_changes = 0
        self._duplicates = 0
        self._last_arrival: float | None = None
        self._fraction_lost_last = 0
        self._lsr = 0
        self._last_sr_at: float | None = None
        self._bank: ReceiveBank | None = None
        self._row = -1
        self._banked = False  # the bank holds the sequence position, counters and jitter
        if bank is not None:
            bank.add(self)

    def receive(
        self, sequence_number: int, timestamp: int, ssrc: int, payload_size: int, now: float
    ) -> ReceiveStatus:
        """Validate one packet's header fields and update the statistics (RFC 3550 A.1)."""
        if self._banked:
            self._take_back()
        seq = sequence_number
        # The packet after the highest from the trusted source, as nearly every packet is,
        # comes first: this runs for every member 50 times a second.
        if ssrc == self._ssrc and not self._probation and seq == (self._max_seq + 1) & 0xFFFF:
            self._advance(seq, 1)
            status = ReceiveStatus.ACCEPTED
        elif ssrc != self._ssrc:
            if self._ssrc is None:
                status = ReceiveStatus.PROBATION
                self._probation = MIN_SEQUENTIAL - 1
            else:
                # A phone may change SSRC mid-call (Asterisk after a re-INVITE or transfer):
                # a new source, but no probation, so no speech is lost to it.
                status = ReceiveStatus.NEW_SOURCE
                self._probation = 0
                self._ssrc_changes += 1
                self._jitter_ts = 0.0
                self._fraction_lost_last = 0
                self._last_sr_at = None
            self._ssrc = ssrc
            self._init_seq(seq)
            self._last_arrival_ts = None
        elif self._probation:
            if seq == self._max_seq:
                self._duplicates += 1
                return ReceiveStatus.DUPLICATE
            if seq == (self._max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self._advance(seq, 1)
            else:
                self._probation = MIN_SEQUENTIAL - 1
                self._init_seq(seq)
            status = ReceiveStatus.PROBATION if self._probation else ReceiveStatus.ACCEPTED
        else:
            delta = (seq - self._max_seq) & 0xFFFF
            if delta == 0:
                self._duplicates += 1
                return ReceiveStatus.DUPLICATE
            if delta < MAX_DROPOUT:
                self._advance(seq, delta)
                status = ReceiveStatus.ACCEPTED
            elif delta <= UINT16_MOD - MAX_MISORDER:
                if seq != self._bad_seq:
                    self._bad_seq = (seq + 1) & 0xFFFF
                    if delta < UINT16_MOD // 2:
                        return ReceiveStatus.BAD_SEQUENCE
                    return ReceiveStatus.OUT_OF_ORDER_TOO_OLD
                # A.1: two sequential packets after a jump: the sender restarted.
                self._init_seq(seq)
                self._last_arrival_ts = None
                status = ReceiveStatus.RESTARTED
            else:
                behind = UINT16_MOD - delta
                if self._seen >> behind & 1:
                    self._duplicates += 1
                    return ReceiveStatus.DUPLICATE
                self._seen |= 1 << behind
                status = ReceiveStatus.ACCEPTED
        self._received += 1
        self._packets_received += 1
        self._octets_received += payload_size
        self._last_arrival = now
        # Interarrival jitter (RFC 3550 A.8, §6.4.1): D = (R_j - R_i) - (S_j - S_i) in
        # timestamp units, between consecutive arrivals (not sequence order), wrap-safe.
        arrival_ts = now * self.clock_rate_hz
        if self._last_arrival_ts is not None:
            transit_change = (arrival_ts - self._last_arrival_ts) - uint32_diff(
                timestamp, self._last_timestamp
            )
            self._jitter_ts += (abs(transit_change) - self._jitter_ts) / 16
        self._last_arrival_ts = arrival_ts
        self._last_timestamp = timestamp
        if self._bank is not None:
            self._bank.hold(self)
        return status

    def _take_back(self) -> None:
        assert self._bank is not None
        self._bank.release(self)

    def _catch_up(self) -> None:
        """Bring the bank's counts into the stream and leave it banked: a report or a look
        at the statistics changes nothing of the packets to come, so its next packet need
        not go the slow way (~10 us each; every member reports every few seconds)."""
        assert self._bank is not None
        self._bank.release(self)
        self._bank.hold(self)

    def _init_seq(self, seq: int) -> None:
        """Make `seq` the base of a fresh sequence (A.1 `init_seq`)."""
        self._base_seq = seq
        self._max_seq = seq
        self._cycles = 0
        self._bad_seq = None
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._seen = 1

    def _advance(self, seq: int, delta: int) -> None:
        if seq < self._max_seq:
            self._cycles += UINT16_MOD
        self._max_seq = seq
        self._seen = (self._seen << delta | 1) & _WINDOW_MASK

    def _extended_max(self) -> int:
        return self._cycles + self._max_seq

    def _cumulative_lost(self) -> int:
        """Return expected minus received, clamped to the RR's 24-bit signed field (A.3)."""
        expected = self._extended_max() - self._base_seq + 1
        return min(max(expected - self._received, _LOST_MIN), _LOST_MAX)

    def statistics(self) -> ReceiveStatistics:
        """Return a snapshot of the statistics; it changes nothing."""
        if self._banked:
            self._catch_up()
        return ReceiveStatistics(
            ssrc=self._ssrc,
            packets_received=self._packets_received,
            octets_received=self._octets_received,
            cumulative_lost=self._cumulative_lost() if self._ssrc is not None else 0,
            fraction_lost_last=self._fraction_lost_last,
            jitter_ts=self._jitter_ts,
            jitter_ms=self._jitter_ts * 1000 / self.clock_rate_hz,
            extended_highest_seq=self._extended_max(),
            ssrc_changes=self._ssrc_changes,
            duplicates=self._duplicates,
            last_arrival=self._last_arrival,
        )

    def on_sender_report(self, ntp_timestamp: int, now: float) -> None:
        """Remember the peer's latest SR for the LSR and DLSR fields (RFC 3550 §6.4.1)."""
        self._lsr = ntp_middle32(ntp_timestamp)
        self._last_sr_at = now

    def report_block(self, now: float) -> ReportBlock | None:
        """Return the report block for an RR/SR sent at `now`, None before any packet.

        Starts a new reporting interval: the fraction lost covers the packets since the
        previous call (RFC 3550 A.3).
        """
        if self._banked:
            self._catch_up()
        if self._ssrc is None:
            return None
        expected = self._extended_max() - self._base_seq + 1
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            self._fraction_lost_last = 0
        else:
            self._fraction_lost_last = min((lost_interval << 8) // expected_interval, 255)
        if self._last_sr_at is None:
            lsr = dlsr = 0
        else:
            lsr = self._lsr
            dlsr = min(max(int((now - self._last_sr_at) * 65536), 0), 0xFFFFFFFF)
        return ReportBlock(
            ssrc=self._ssrc,
            fraction_lost=self._fraction_lost_last,
            cumulative_lost=self._cumulative_lost(),
            extended_highest_seq=self._extended_max() & 0xFFFFFFFF,
            jitter_ts=int(self._jitter_ts),
            lsr=lsr,
            dlsr=dlsr,
        )


# The bank's state columns: integers, then floats. `_ADVANCE`: how far the highest sequence
# number moved since the stream was banked; `_RECEIVED`: the packets counted meanwhile (fewer
# after a gap); `_SEEN_LOW`, `_SEEN_HIGH`: `ReceiveStream._seen`, its two 64-bit words
# (stored as int64, shifted as uint64).
_SSRC, _NEXT_SEQ, _ADVANCE, _RECEIVED, _OCTETS, _LAST_TIMESTAMP, _SEEN_LOW, _SEEN_HIGH = range(8)
_INT_FIELDS = 8
_JITTER, _LAST_ARRIVAL_TS, _LAST_ARRIVAL, _CLOCK_RATE = range(4)
# The furthest ahead of the highest a packet the bank counts may be: the duplicate window
# (DUPLICATE_WINDOW bits, at most two 64-bit words in the bank) moves by less than a word
# at once.
BANK_MAX_AHEAD = 63
_WORD_MASK = (1 << 64) - 1
_SIGN_BIT = 1 << 63


def _as_int64(word: int) -> int:
    """A 64-bit word as the int64 with the same bits."""
    return word - (word & _SIGN_BIT) * 2


class ReceiveBank:
    """The receive state of many streams, for checking and counting a sweep's packets at once.

    Nearly every packet a phone sends is the next one from the source already trusted;
    `ReceiveStream.receive` spends ~2.5 us of Python on one, 50 times a second for every
    member. A stream whose last packet was counted and which is past probation is
    "banked": its sequence position, counters, duplicate window and jitter live in the
    bank's arrays, and `accept_many` checks and counts the packets that follow on (or
    come after a gap of up to BANK_MAX_AHEAD - 1: on a lossy uplink, every few seconds
    for every member) for all banked streams in a few array operations. A packet
    late, duplicate or out of line first takes the stream's state back
    (`release`); its next counted packet banks it again. Statistics and reports bring the
    bank's counts into the stream and leave it banked (`release`, then `hold`). Verdicts
    and figures are the same as packet by packet (tests/bridge/rtp/test_receive_bank.py).
    """

    def __init__(self) -> None:
        self._ints: NDArray[np.int64] = np.zeros((0, _INT_FIELDS), np.int64)
        self._floats: NDArray[np.float64] = np.zeros((0, 4))
        self._banked: NDArray[np.bool_] = np.zeros(0, np.bool_)
        self._rows = RowPool(self._grow, self._vacate)

    def add(self, stream: ReceiveStream) -> None:
        """Give `stream` a row of the bank, for as long as it lives."""
        if stream._bank is not None:
            raise ValueError("the stream is in a bank already")
        stream._bank, stream._row = self, self._rows.take(stream)

    def _vacate(self, row: int) -> None:
        self._banked[row] = False

    def _grow(self, rows: int) -> None:
        old = self._banked.shape[0]
        ints, floats = np.zeros((rows, _INT_FIELDS), np.int64), np.zeros((rows, 4))
        ints[:old], floats[:old] = self._ints, self._floats
        banked = np.zeros(rows, np.bool_)
        banked[:old] = self._banked
        self._ints, self._floats, self._banked = ints, floats, banked

    def hold(self, stream: ReceiveStream) -> None:
        """Bank `stream` if its next in-order packet can be counted here: its source is
        trusted and it has an arrival to measure jitter from."""
        if stream._ssrc is None or stream._probation or stream._last_arrival_ts is None:
            return
        row = stream._row
        seen = stream._seen
        self._ints[row] = (stream._ssrc, (stream._max_seq + 1) & 0xFFFF, 0, 0, 0,
                           stream._last_timestamp, _as_int64(seen & _WORD_MASK),
                           _as_int64(seen >> 64))
        self._floats[row] = (stream._jitter_ts, stream._last_arrival_ts,
                             stream._last_arrival, stream.clock_rate_hz)
        self._banked[row] = True
        stream._banked = True

    def release(self, stream: ReceiveStream) -> None:
        """Give a banked stream its state back, as if it had counted the packets itself."""
        row = stream._row
        _, _, advance, received, octets, last_timestamp, low, high = self._ints[row].tolist()
        jitter, last_arrival_ts, last_arrival, _ = self._floats[row].tolist()
        self._banked[row] = False
        stream._banked = False
        if not received:
            return
        # `_advance` for each packet: a cycle for each pass through 0.
        advanced = stream._max_seq + advance
        stream._cycles += advanced >> 16 << 16
        stream._max_seq = advanced & 0xFFFF
        stream._seen = ((high & _WORD_MASK) << 64 | low & _WORD_MASK) & _WINDOW_MASK
        stream._received += received
        stream._packets_received += received
        stream._octets_received += octets
        stream._last_timestamp = last_timestamp
        stream._jitter_ts = jitter
        stream._last_arrival_ts = last_arrival_ts
        stream._last_arrival = last_arrival

    def accept_many(
        self, streams: list[ReceiveStream], sequence_numbers: NDArray[np.int64],
        timestamps: NDArray[np.int64], ssrcs: NDArray[np.int64],
        payload_sizes: NDArray[np.int64], arrivals: NDArray[np.float64],
        eligible: NDArray[np.bool_],
    ) -> NDArray[np.bool_]:
        """Count the packets from their stream's trusted source that are ahead of its
        highest by 1 to BANK_MAX_AHEAD (the next, or the next after a gap), as
        `streams[k].receive(...)` would (each ACCEPTED), and say which they were; the
        others are left alone, for `receive`. Only packets where `eligible` is set are
        looked at. Each stream appears at most once, in this bank or in none (those are
        left alone)."""
        rows = np.fromiter((stream._row for stream in streams), np.intp, len(streams))
        ints, floats = self._ints[rows], self._floats[rows]
        gap = (sequence_numbers - ints[:, _NEXT_SEQ]) & 0xFFFF  # packets missing before it
        accepted: NDArray[np.bool_] = (
            eligible & (rows >= 0) & self._banked[rows] & (ssrcs == ints[:, _SSRC])
            & (gap < BANK_MAX_AHEAD))
        taken = np.flatnonzero(accepted)
        if not taken.size:
            return accepted
        rows, ints, floats, gap = rows[taken], ints[taken], floats[taken], gap[taken]
        # `_advance`'s duplicate window, a word at a time.
        shift = (gap + 1).astype(np.uint64)
        words = ints.view(np.uint64)
        low, high = words[:, _SEEN_LOW], words[:, _SEEN_HIGH]
        words[:, _SEEN_HIGH] = high << shift | low >> (np.uint64(64) - shift)
        words[:, _SEEN_LOW] = low << shift | np.uint64(1)
        stamps, arrival = timestamps[taken], arrivals[taken]
        # The interarrival jitter of `receive` (RFC 3550 A.8), in the same float steps.
        arrival_ts = arrival * floats[:, _CLOCK_RATE]
        stamp_change = ((stamps - ints[:, _LAST_TIMESTAMP] + 2**31) & 0xFFFFFFFF) - 2**31
        transit_change = (arrival_ts - floats[:, _LAST_ARRIVAL_TS]) - stamp_change
        jitter = floats[:, _JITTER]
        floats[:, _JITTER] = jitter + (np.abs(transit_change) - jitter) / 16
        floats[:, _LAST_ARRIVAL_TS] = arrival_ts
        floats[:, _LAST_ARRIVAL] = arrival
        ints[:, _NEXT_SEQ] = (sequence_numbers[taken] + 1) & 0xFFFF
        ints[:, _ADVANCE] += gap + 1
        ints[:, _RECEIVED] += 1
        ints[:, _OCTETS] += payload_sizes[taken]
        ints[:, _LAST_TIMESTAMP] = stamps
        self._ints[rows], self._floats[rows] = ints, floats
        return accepted
