"""Receive-side validation (RFC 3550 A.1), loss (A.3), jitter (A.8) and SSRC changes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.rtp.rtcp import ReportBlock, ntp_from_unix, ntp_middle32
from bridge.rtp.stream import ReceiveStatus, ReceiveStream

ACCEPTED = ReceiveStatus.ACCEPTED
PROBATION = ReceiveStatus.PROBATION
DUPLICATE = ReceiveStatus.DUPLICATE
SSRC = 0x5EED


def feed(stream: ReceiveStream, seqs: list[int], ssrc: int = SSRC) -> list[ReceiveStatus]:
    """Deliver packets 20 ms apart whose timestamps follow their sequence numbers."""
    return [stream.receive(seq, seq * 160, ssrc, 160, now=0.02 * seq) for seq in seqs]


def test_first_source_is_on_probation_for_one_packet() -> None:
    stream = ReceiveStream(8000)
    assert feed(stream, [1000, 1001, 1002]) == [PROBATION, ACCEPTED, ACCEPTED]
    stats = stream.statistics()
    assert stats.ssrc == SSRC
    assert stats.packets_received == 3
    assert stats.octets_received == 480
    assert stats.cumulative_lost == 0
    assert stats.extended_highest_seq == 1002


def test_probation_restarts_when_packets_are_not_in_sequence() -> None:
    stream = ReceiveStream(8000)
    assert feed(stream, [10, 20, 21, 22]) == [PROBATION, PROBATION, ACCEPTED, ACCEPTED]
    assert stream.statistics().cumulative_lost == 0  # the sequence base moved to 20


def test_sequence_wraps_from_65535_to_0() -> None:
    stream = ReceiveStream(8000)
    assert feed(stream, [65534, 65535, 0, 1]) == [PROBATION, ACCEPTED, ACCEPTED, ACCEPTED]
    stats = stream.statistics()
    assert stats.extended_highest_seq == 65536 + 1
    assert stats.cumulative_lost == 0


def test_wrap_during_probation_counts_a_cycle() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [65535, 0])
    assert stream.statistics().extended_highest_seq == 65536


def test_late_packet_within_misorder_is_accepted_once() -> None:
    stream = ReceiveStream(8000)
    assert feed(stream, [1, 2, 4, 3, 3]) == [PROBATION, ACCEPTED, ACCEPTED, ACCEPTED, DUPLICATE]
    stats = stream.statistics()
    assert stats.cumulative_lost == 0
    assert stats.duplicates == 1
    assert stats.packets_received == 4


def test_duplicate_of_the_highest_packet() -> None:
    stream = ReceiveStream(8000)
    assert feed(stream, [7, 7, 8, 8]) == [PROBATION, DUPLICATE, ACCEPTED, DUPLICATE]
    assert stream.statistics().duplicates == 2


def test_duplicate_detected_across_the_wrap() -> None:
    stream = ReceiveStream(8000)
    assert feed(stream, [65534, 65535, 1, 0, 0, 65535]) == [
        PROBATION, ACCEPTED, ACCEPTED, ACCEPTED, DUPLICATE, DUPLICATE,
    ]


def test_misorder_limit_separates_late_from_stale() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [1, 2, 200])
    assert stream.receive(101, 0, SSRC, 160, now=5.0) is ACCEPTED  # 99 behind
    assert stream.receive(100, 0, SSRC, 160, now=5.0) is ReceiveStatus.OUT_OF_ORDER_TOO_OLD
    assert stream.statistics().packets_received == 4


def test_large_jump_then_restart() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [1, 2, 3, 4, 5])
    assert feed(stream, [10000, 10001, 10002]) == [
        ReceiveStatus.BAD_SEQUENCE, ReceiveStatus.RESTARTED, ACCEPTED,
    ]
    stats = stream.statistics()
    assert stats.extended_highest_seq == 10002
    assert stats.cumulative_lost == 0  # A.1 re-syncs: the sender restarted
    assert stats.packets_received == 7  # the first packet after the jump is not counted


def test_single_stray_packet_does_not_restart() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [1, 2, 3])
    assert feed(stream, [20000, 4, 5]) == [ReceiveStatus.BAD_SEQUENCE, ACCEPTED, ACCEPTED]
    assert stream.statistics().extended_highest_seq == 5


def test_restart_to_lower_numbers() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [30000, 30001])
    assert feed(stream, [5, 6]) == [ReceiveStatus.OUT_OF_ORDER_TOO_OLD, ReceiveStatus.RESTARTED]
    assert stream.statistics().extended_highest_seq == 6


def test_ssrc_change_is_a_new_source_without_probation() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [1, 2, 3])
    assert feed(stream, [40000, 40001], ssrc=0xB0B) == [ReceiveStatus.NEW_SOURCE, ACCEPTED]
    stats = stream.statistics()
    assert stats.ssrc == 0xB0B
    assert stats.ssrc_changes == 1
    assert stats.packets_received == 5
    assert stats.extended_highest_seq == 40001
    assert stats.cumulative_lost == 0
    assert stream.receive(4, 0, SSRC, 160, now=9.0) is ReceiveStatus.NEW_SOURCE
    assert stream.statistics().ssrc_changes == 2


def test_loss_and_fraction_lost_per_report_interval() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [1, 2, 3, 6, 7, 8, 9, 10])  # 4 and 5 lost
    assert stream.statistics().cumulative_lost == 2
    block = stream.report_block(now=1.0)
    assert block is not None
    assert (block.cumulative_lost, block.fraction_lost) == (2, 2 * 256 // 10)
    assert stream.statistics().fraction_lost_last == 51
    feed(stream, [11, 12, 13, 14])
    block = stream.report_block(now=2.0)
    assert block is not None
    assert (block.cumulative_lost, block.fraction_lost) == (2, 0)
    assert block.extended_highest_seq == 14


def test_late_packet_from_before_the_base_makes_loss_negative() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [10, 11, 9])
    assert stream.statistics().cumulative_lost == -1  # A.3: allowed, the field is signed
    block = stream.report_block(now=1.0)
    assert block is not None and block.fraction_lost == 0


def test_cumulative_loss_is_clamped_to_24_bits() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [0, 1])
    seq = 1
    for i in range(2900):  # jumps just under MAX_DROPOUT lose 2998 packets each
        seq = (seq + 2999) & 0xFFFF
        assert stream.receive(seq, 160 * i, SSRC, 160, now=0.02 * i) is ACCEPTED
    assert stream.statistics().cumulative_lost == 0x7FFFFF
    block = stream.report_block(now=60.0)
    assert block is not None
    assert ReportBlock.parse(bytes(block)) == block
    assert block.fraction_lost == 255


def test_jitter_for_a_constructed_arrival_pattern() -> None:
    """Arrivals at 0, 20, 50, 60, 80 ms of packets sent 20 ms apart (RFC 3550 A.8).

    D = 0, 80, 80, 0 timestamp units, so J = 0 -> 5 -> 5 + 75/16 -> (5 + 75/16) * 15/16.
    """
    stream = ReceiveStream(8000)
    for i, arrival_ms in enumerate([0, 20, 50, 60, 80]):
        stream.receive(100 + i, 5000 + 160 * i, SSRC, 160, now=arrival_ms / 1000)
    expected_ts = (5 + 75 / 16) * 15 / 16
    stats = stream.statistics()
    assert stats.jitter_ts == pytest.approx(expected_ts, abs=1e-9)
    assert stats.jitter_ms == pytest.approx(expected_ts / 8, abs=1e-9)
    block = stream.report_block(now=1.0)
    assert block is not None and block.jitter_ts == 9


def test_jitter_stays_zero_across_the_timestamp_wrap() -> None:
    stream = ReceiveStream(8000)
    for i in range(6):
        timestamp = (0xFFFFFFFF - 320 + 160 * i) & 0xFFFFFFFF
        stream.receive(i, timestamp, SSRC, 160, now=i * 0.02)
    assert stream.statistics().jitter_ts == pytest.approx(0.0, abs=1e-9)


def test_duplicates_do_not_disturb_jitter() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [1, 2, 3])
    stream.receive(3, 3 * 160, SSRC, 160, now=0.5)
    assert stream.statistics().jitter_ts == pytest.approx(0.0, abs=1e-9)


def test_new_source_resets_jitter() -> None:
    stream = ReceiveStream(8000)
    for i, arrival_ms in enumerate([0, 20, 90]):
        stream.receive(i, 160 * i, SSRC, 160, now=arrival_ms / 1000)
    assert stream.statistics().jitter_ts > 0
    stream.receive(9, 777, 0xB0B, 160, now=1.0)
    assert stream.statistics().jitter_ts == 0.0


def test_report_block_needs_a_packet() -> None:
    stream = ReceiveStream(8000)
    assert stream.report_block(now=1.0) is None
    stats = stream.statistics()
    assert (stats.ssrc, stats.packets_received, stats.last_arrival) == (None, 0, None)


def test_lsr_and_dlsr_follow_the_last_sender_report() -> None:
    stream = ReceiveStream(8000)
    feed(stream, [1, 2])
    block = stream.report_block(now=10.0)
    assert block is not None and (block.lsr, block.dlsr) == (0, 0)
    ntp = ntp_from_unix(1_700_000_000.25)
    stream.on_sender_report(ntp, now=10.0)
    block = stream.report_block(now=12.5)
    assert block is not None
    assert block.lsr == ntp_middle32(ntp)
    assert block.dlsr == 5 * 65536 // 2
    stream.receive(500, 0, 0xB0B, 160, now=13.0)  # the SR was about the old source
    block = stream.report_block(now=14.0)
    assert block is not None and (block.lsr, block.dlsr) == (0, 0)


def test_last_arrival_is_the_latest_counted_packet() -> None:
    stream = ReceiveStream(8000)
    stream.receive(1, 0, SSRC, 160, now=3.0)
    stream.receive(1, 0, SSRC, 160, now=4.0)  # a duplicate
    assert stream.statistics().last_arrival == 3.0


COUNTED = {
    ReceiveStatus.ACCEPTED,
    ReceiveStatus.PROBATION,
    ReceiveStatus.RESTARTED,
    ReceiveStatus.NEW_SOURCE,
}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 1, 1, 2, 0, -1, -3, -150, 5000, 40000]),
            st.sampled_from([SSRC, SSRC, SSRC, 0xB0B]),
        ),
        max_size=60,
    )
)
def test_counters_agree_with_the_verdicts(steps: list[tuple[int, int]]) -> None:
    stream = ReceiveStream(8000)
    seq = 65530
    verdicts = []
    for i, (step, ssrc) in enumerate(steps):
        seq = (seq + step) & 0xFFFF
        verdicts.append(stream.receive(seq, 160 * i, ssrc, 160, now=0.02 * i))
    stats = stream.statistics()
    assert stats.packets_received == sum(v in COUNTED for v in verdicts)
    assert stats.duplicates == verdicts.count(DUPLICATE)
    assert stats.ssrc_changes == verdicts.count(ReceiveStatus.NEW_SOURCE)
    block = stream.report_block(now=10.0)
    if verdicts:
        assert block is not None
        assert 0 <= block.fraction_lost <= 255
        assert ReportBlock.parse(bytes(block)) == block
