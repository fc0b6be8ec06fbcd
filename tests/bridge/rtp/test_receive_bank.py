"""ReceiveBank: streams counted together give the verdicts and figures of one by one."""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass

import numpy as np
import pytest

from bridge.rtp.stream import DUPLICATE_WINDOW, ReceiveBank, ReceiveStatus, ReceiveStream

STREAMS = 7
SWEEPS = 600


@dataclass
class Sender:
    """A phone's RTP stream with the faults a real link and real phones bring."""

    rng: random.Random
    seq: int
    ts: int
    ssrc: int
    clock_s: float = 0.0

    def sweep(self) -> list[tuple[int, int, int, int, float]]:
        """The packets (sequence number, timestamp, SSRC, size, arrival) of one 20 ms."""
        roll = self.rng.random()
        self.clock_s += 0.02
        if roll < 0.04:  # lost
            self._step()
            return []
        if roll < 0.05:  # the sender restarts its numbering, or changes source
            self.seq = self.rng.randrange(65536)
            self.ts = self.rng.randrange(2**32)
            if self.rng.random() < 0.5:
                self.ssrc = self.rng.randrange(2**32)
        packets = [self._packet()]
        if roll < 0.08:  # duplicated
            packets.append(packets[0])
        elif roll < 0.11:  # two at once, maybe swapped
            self._step()
            packets.append(self._packet())
            if self.rng.random() < 0.5:
                packets.reverse()
        elif roll < 0.12:  # a stale one from long ago
            packets.append(((self.seq - 500) & 0xFFFF, self.ts, self.ssrc, 160, self.clock_s))
        elif roll < 0.14:  # one from a second ago, again (or for the first time, if lost)
            back = self.rng.randrange(2, 80)
            packets.append(((self.seq - back) & 0xFFFF, (self.ts - 160 * back) & 0xFFFFFFFF,
                            self.ssrc, 160, self.clock_s))
        self._step()
        return packets

    def _packet(self) -> tuple[int, int, int, int, float]:
        jitter = self.rng.random() * 0.03
        size = 160 if self.rng.random() < 0.97 else self.rng.choice([0, 80, 320])
        return self.seq, self.ts, self.ssrc, size, self.clock_s + jitter

    def _step(self) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 160) & 0xFFFFFFFF


@pytest.mark.parametrize("seed", range(6))
def test_streams_counted_together_match_streams_counted_alone(seed: int) -> None:
    rng = random.Random(seed)
    bank = ReceiveBank()
    senders = [
        Sender(random.Random(seed * 100 + k), rng.choice([65500, rng.randrange(65536)]),
               rng.choice([2**32 - 5000, rng.randrange(2**32)]), rng.randrange(2**32))
        for k in range(STREAMS)
    ]
    alone = [ReceiveStream(8000) for _ in senders]
    together = [ReceiveStream(8000, bank=bank) for _ in senders]
    taken = 0
    for tick in range(SWEEPS):
        sweeps = [sender.sweep() for sender in senders]
        firsts = [k for k, packets in enumerate(sweeps) if packets]
        fields = np.array([sweeps[k][0] for k in firsts], np.float64).reshape(-1, 5)
        accepted = bank.accept_many(
            [together[k] for k in firsts], fields[:, 0].astype(np.int64),
            fields[:, 1].astype(np.int64), fields[:, 2].astype(np.int64),
            fields[:, 3].astype(np.int64), fields[:, 4],
            np.array([rng.random() < 0.9 for _ in firsts], np.bool_),
        )
        taken += int(accepted.sum())
        for k, packets in enumerate(sweeps):
            for n, packet in enumerate(packets):
                expected = alone[k].receive(*packet)
                if n == 0 and k in firsts and accepted[firsts.index(k)]:
                    assert expected is ReceiveStatus.ACCEPTED
                else:
                    assert together[k].receive(*packet) is expected
        if tick % 37 == 0:  # a report now and then takes a stream out of the bank
            k = rng.randrange(STREAMS)
            now = senders[k].clock_s
            assert together[k].report_block(now) == alone[k].report_block(now)
        if tick % 53 == 0:
            k = rng.randrange(STREAMS)
            assert together[k].statistics() == alone[k].statistics()
    assert [s.statistics() for s in together] == [s.statistics() for s in alone]
    assert taken > SWEEPS * STREAMS // 2  # most packets were counted together


def test_a_stream_that_dies_gives_its_row_back() -> None:
    bank = ReceiveBank()
    first = ReceiveStream(8000, bank=bank)
    row = first._row  # noqa: SLF001
    del first
    gc.collect()
    assert ReceiveStream(8000, bank=bank)._row == row  # noqa: SLF001


def test_a_stream_joins_one_bank_only() -> None:
    stream = ReceiveStream(8000, bank=ReceiveBank())
    with pytest.raises(ValueError, match="in a bank already"):
        ReceiveBank().add(stream)


def test_a_stream_in_no_bank_is_left_alone() -> None:
    bank = ReceiveBank()
    streams = [ReceiveStream(8000, bank=bank) for _ in range(64)]  # every row of the bank
    for k, stream in enumerate(streams):
        for seq in (10, 11):  # past probation: banked
            stream.receive(seq, seq * 160, k, 160, seq * 0.02)
    alone = ReceiveStream(8000)
    accepted = bank.accept_many(
        [alone], np.array([12]), np.array([12 * 160]), np.array([63]), np.array([160]),
        np.array([0.24]), np.array([True]))  # the next packet of the bank's last row
    assert not accepted.any()
    assert alone.statistics().packets_received == 0


def test_a_report_or_a_look_at_the_statistics_leaves_the_stream_banked() -> None:
    """Every member reports every few seconds: its next packet is still counted with the
    others', and counted once."""
    bank = ReceiveBank()
    stream = ReceiveStream(8000, bank=bank)
    for seq in (10, 11, 12):
        stream.receive(seq, seq * 160, 7, 160, seq * 0.02)

    def next_packet(seq: int) -> bool:
        return bool(bank.accept_many(
            [stream], np.array([seq]), np.array([seq * 160]), np.array([7]), np.array([160]),
            np.array([seq * 0.02]), np.array([True]))[0])

    assert next_packet(13)
    block = stream.report_block(0.3)
    assert block is not None and block.extended_highest_seq == 13
    assert next_packet(14)
    assert stream.statistics().packets_received == 5
    assert next_packet(15)
    assert stream.statistics().packets_received == 6


def test_a_packet_after_a_gap_is_counted_in_the_bank_and_the_late_one_once() -> None:
    """On a lossy uplink every member's stream has a gap every few seconds: the packet
    after it stays on the bank's path, and the duplicate window still knows what came."""
    assert DUPLICATE_WINDOW <= 128  # the bank keeps it in two 64-bit words
    bank = ReceiveBank()
    stream = ReceiveStream(8000, bank=bank)
    for seq in (10, 11):
        stream.receive(seq, seq * 160, 7, 160, seq * 0.02)

    def in_bank(seq: int) -> bool:
        return bool(bank.accept_many(
            [stream], np.array([seq]), np.array([seq * 160]), np.array([7]), np.array([160]),
            np.array([seq * 0.02]), np.array([True]))[0])

    assert in_bank(14)  # 12 and 13 lost
    assert in_bank(14 + 63)  # 62 lost: as far ahead as the bank counts
    assert not in_bank(77 + 64)  # 63 lost: packet by packet
    assert stream.receive(13, 13 * 160, 7, 160, 1.6) is ReceiveStatus.ACCEPTED  # late
    assert stream.receive(13, 13 * 160, 7, 160, 1.6) is ReceiveStatus.DUPLICATE
    assert stream.receive(14, 14 * 160, 7, 160, 1.6) is ReceiveStatus.DUPLICATE
    statistics = stream.statistics()
    assert statistics.packets_received == 5
    assert statistics.extended_highest_seq == 77
    assert statistics.cumulative_lost == 68 - 5
