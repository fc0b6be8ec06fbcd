"""The send stream numbers packets, keeps the RTP clock running and marks talk spurts."""

import gc
import random

import pytest

from bridge.rtp.packet import RTP_HEADER, RtpPacket
from bridge.rtp.rtcp import SenderInfo
from bridge.rtp.sender import SendBank, SendStream
from bridge.rtp.stream import ReceiveStatus, ReceiveStream

RTP_HEADER_BYTES = RTP_HEADER.size


class HighestRandom(random.Random):
    """Draws the largest value of every width, to start the counters right before the wrap."""

    def getrandbits(self, k: int) -> int:
        return (1 << k) - 1


def test_initial_values_come_from_the_injected_random() -> None:
    first = SendStream(0, 8000, random.Random(5))
    second = SendStream(0, 8000, random.Random(5))
    other = SendStream(0, 8000, random.Random(6))
    assert first.packet(b"x", 160) == second.packet(b"x", 160)
    assert (first.ssrc, first.cname) == (second.ssrc, second.cname)
    assert first.ssrc != other.ssrc
    assert len(first.cname) == 16  # 96 random bits in base64 (RFC 7022 §4.2)


def test_packets_advance_sequence_and_timestamp_across_the_wrap() -> None:
    stream = SendStream(8, 8000, HighestRandom())
    packets = [RtpPacket.parse(stream.packet(bytes([i]) * 160, 160)) for i in range(3)]
    assert [p.sequence_number for p in packets] == [65535, 0, 1]
    assert [p.timestamp for p in packets] == [0xFFFFFFFF, 159, 319]
    assert {p.payload_type for p in packets} == {8}
    assert {p.ssrc for p in packets} == {stream.ssrc}
    assert [p.payload[0] for p in packets] == [0, 1, 2]


def test_marker_on_the_first_packet_and_after_a_gap() -> None:
    stream = SendStream(0, 8000, random.Random(1))
    first = RtpPacket.parse(stream.packet(bytes(160), 160))
    second = RtpPacket.parse(stream.packet(bytes(160), 160))
    stream.skip(160)
    stream.skip(160)
    after_gap = RtpPacket.parse(stream.packet(bytes(160), 160))
    forced = RtpPacket.parse(stream.packet(bytes(160), 160, marker=True))
    assert [p.marker for p in (first, second, after_gap, forced)] == [True, False, True, True]
    # Skipped frames move the clock, not the sequence number: the receiver sees no loss.
    assert after_gap.sequence_number == (second.sequence_number + 1) & 0xFFFF
    assert after_gap.timestamp == (second.timestamp + 3 * 160) & 0xFFFFFFFF


def test_sender_info_counts_payload_octets_and_reports_the_latest_frame() -> None:
    stream = SendStream(0, 8000, random.Random(2))
    sent = [RtpPacket.parse(stream.packet(bytes(160), 160)) for _ in range(4)]
    assert stream.sender_info(now_ntp=123) == SenderInfo(123, sent[-1].timestamp, 4, 640)
    stream.skip(160)
    assert stream.sender_info(now_ntp=124).rtp_timestamp == (sent[-1].timestamp + 160) & 0xFFFFFFFF


def test_sent_packets_pass_receive_validation_without_loss_or_jitter() -> None:
    sender = SendStream(0, 8000, random.Random(3))
    receiver = ReceiveStream(8000)
    statuses = []
    for i in range(100):
        if i % 10 == 9:
            sender.skip(160)  # a frame of silence not sent
            continue
        packet = RtpPacket.parse(sender.packet(bytes(160), 160))
        statuses.append(
            receiver.receive(
                packet.sequence_number, packet.timestamp, packet.ssrc, 160, now=0.02 * i
            )
        )
    assert statuses[0] is ReceiveStatus.PROBATION
    assert set(statuses[1:]) == {ReceiveStatus.ACCEPTED}
    stats = receiver.statistics()
    assert stats.cumulative_lost == 0
    assert stats.jitter_ts == pytest.approx(0.0, abs=1e-6)


def test_payload_type_must_fit_seven_bits() -> None:
    with pytest.raises(ValueError, match="payload type"):
        SendStream(128, 8000, random.Random(1))


@pytest.mark.parametrize("seed", range(4))
def test_a_bank_makes_the_packets_and_reports_the_streams_would(seed: int) -> None:
    """Twin streams, one in a bank: every packet, event packet, skip and sender report of a
    random schedule is the same, across the sequence number's and the clock's wraps."""
    rng = random.Random(seed)
    bank = SendBank()
    alone = [SendStream(8 if k % 3 else 0, 8000, HighestRandom()) for k in range(12)]
    banked = [SendStream(8 if k % 3 else 0, 8000, HighestRandom(), bank=bank)
              for k in range(12)]
    for tick in range(400):
        step = rng.choice([160, 160, 320])
        payload = bytes([tick % 256]) * step
        together = [k for k in range(12) if rng.random() < 0.8]
        data = bank.packets([banked[k] for k in together], payload, step)
        size = RTP_HEADER_BYTES + step
        assert len(data) == size * len(together)
        for index, k in enumerate(together):
            assert data[index * size : (index + 1) * size] == alone[k].packet(payload, step)
        for k in set(range(12)) - set(together):
            roll = rng.random()
            if roll < 0.3:
                alone[k].skip(step)
                banked[k].skip(step)
            elif roll < 0.5:
                starts = rng.random() < 0.5
                assert banked[k].event_packet(101, b"\x05\x0a\x00\xa0", step, starts=starts) == (
                    alone[k].event_packet(101, b"\x05\x0a\x00\xa0", step, starts=starts))
            elif roll < 0.7:
                assert banked[k].packet(payload, step, marker=roll < 0.55) == (
                    alone[k].packet(payload, step, marker=roll < 0.55))
            elif roll < 0.8:
                assert banked[k].we_sent == alone[k].we_sent
                banked[k].on_report_sent()
                alone[k].on_report_sent()
                assert banked[k].sender_info(tick) == alone[k].sender_info(tick)
    assert [(s.packet_count, s.octet_count) for s in banked] == [
        (s.packet_count, s.octet_count) for s in alone]


def test_a_bank_takes_only_its_own_streams_and_reuses_the_rows_of_streams_gone() -> None:
    bank, other = SendBank(), SendBank()
    stream = SendStream(0, 8000, random.Random(1), bank=bank)
    with pytest.raises(ValueError, match="in a bank already"):
        other.add(stream)
    with pytest.raises(ValueError, match="not in this bank"):
        other.packets([stream], bytes(160), 160)
    row = stream._row  # noqa: SLF001
    del stream
    gc.collect()
    assert SendStream(0, 8000, random.Random(2), bank=bank)._row == row  # noqa: SLF001
