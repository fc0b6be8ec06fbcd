"""The timeline playout buffer: order, loss, duplicates, wrap-around, jumps and drift."""

import numpy as np

from dsp.jitter import JitterBuffer

FRAME = 160


def frame(value: float, size: int = FRAME) -> np.ndarray:
    return np.full(size, value, dtype=np.float32)


def test_silence_until_the_first_packet() -> None:
    buffer = JitterBuffer(8000)
    samples, has_audio = buffer.pop(FRAME)
    assert not has_audio and not samples.any()


def test_prefill_delays_playout_by_40_ms() -> None:
    buffer = JitterBuffer(8000, prefill_ms=40)
    buffer.push(1000, frame(0.5))
    assert buffer.pop(FRAME)[1] is False
    assert buffer.pop(FRAME)[1] is False
    samples, has_audio = buffer.pop(FRAME)
    assert has_audio and np.all(samples == 0.5)


def test_reordered_packets_play_in_timestamp_order() -> None:
    buffer = JitterBuffer(8000, prefill_ms=40)
    buffer.push(0, frame(1.0))
    buffer.push(2 * FRAME, frame(3.0))
    buffer.push(FRAME, frame(2.0))
    buffer.pop(FRAME), buffer.pop(FRAME)
    assert [buffer.pop(FRAME)[0][0] for _ in range(3)] == [1.0, 2.0, 3.0]


def test_lost_packet_reads_as_silence_without_audio_flag() -> None:
    buffer = JitterBuffer(8000, prefill_ms=40)
    buffer.push(0, frame(1.0))
    buffer.push(2 * FRAME, frame(3.0))
    buffer.pop(FRAME), buffer.pop(FRAME)
    assert buffer.pop(FRAME)[1] is True
    samples, has_audio = buffer.pop(FRAME)
    assert not has_audio and not samples.any()
    assert buffer.pop(FRAME)[0][0] == 3.0


def test_duplicate_packet_is_harmless() -> None:
    buffer = JitterBuffer(8000, prefill_ms=20)
    buffer.push(0, frame(1.0))
    buffer.push(0, frame(1.0))
    buffer.pop(FRAME)
    assert buffer.pop(FRAME)[0][0] == 1.0
    assert buffer.pop(FRAME)[1] is False


def test_any_packet_duration_lines_up_on_the_timeline() -> None:
    buffer = JitterBuffer(8000, prefill_ms=0)
    buffer.push(0, frame(1.0, 240))  # 30 ms packets
    buffer.push(240, frame(2.0, 240))
    first, second, third = (buffer.pop(FRAME)[0] for _ in range(3))
    assert np.all(first == 1.0)
    assert np.all(second[:80] == 1.0) and np.all(second[80:] == 2.0)
    assert np.all(third == 2.0)


def test_timestamps_wrap_around_32_bits() -> None:
    buffer = JitterBuffer(8000, prefill_ms=0)
    start = 2**32 - FRAME
    buffer.push(start, frame(1.0))
    buffer.push(0, frame(2.0))  # wrapped
    assert buffer.pop(FRAME)[0][0] == 1.0
    assert buffer.pop(FRAME)[0][0] == 2.0


def test_late_packet_is_dropped_and_counted() -> None:
    buffer = JitterBuffer(8000, prefill_ms=0)
    buffer.push(FRAME, frame(2.0))
    buffer.pop(FRAME)
    buffer.push(0, frame(1.0))
    assert buffer.statistics().late == 1


def test_timestamp_jump_forward_starts_a_new_timeline() -> None:
    buffer = JitterBuffer(8000, prefill_ms=0)
    buffer.push(0, frame(1.0))
    buffer.pop(FRAME)
    buffer.push(8000 * 60, frame(2.0))  # a minute ahead: a restarted sender clock
    assert buffer.pop(FRAME)[0][0] == 2.0
    assert buffer.statistics().resyncs == 1


def test_timestamps_frozen_during_hold_recover_after_a_few_packets() -> None:
    buffer = JitterBuffer(8000, prefill_ms=0)
    buffer.push(0, frame(1.0))
    for _ in range(50):  # one second passes; the sender resumes where it stopped
        buffer.pop(FRAME)
    for i in range(12):
        buffer.push(FRAME * (1 + i), frame(5.0))
    assert buffer.statistics().resyncs == 1
    assert buffer.pop(FRAME)[0][0] == 5.0


def test_fast_sender_clock_does_not_grow_delay_without_bound() -> None:
    buffer = JitterBuffer(8000, prefill_ms=40, max_delay_ms=200)
    timestamp = 0
    for _ in range(3000):  # 60 s with the sender 1 % fast: 10 % more audio than read
        for _ in range(11 if timestamp % (FRAME * 10 * 11) == 0 else 1):
            buffer.push(timestamp, frame(0.1))
            timestamp += FRAME
        buffer.pop(FRAME)
    assert buffer.buffered_ms <= 200 + 20
    assert buffer.statistics().drift_drops > 0


def test_rtp_clock_other_than_the_sample_rate_is_converted() -> None:
    """Opus counts 48 kHz whatever it is decoded at: 960 ticks per 20 ms, 320 samples."""
    buffer = JitterBuffer(16000, clock_rate_hz=48000, prefill_ms=20)
    wide = 320
    buffer.push(2**32 - 960, frame(1.0, wide))  # wraps on the next packet
    buffer.push(0, frame(2.0, wide))
    buffer.push(960, frame(3.0, wide))
    buffer.pop(wide)
    assert [buffer.pop(wide)[0][0] for _ in range(3)] == [1.0, 2.0, 3.0]


def test_gap_before_counts_only_audio_never_received_and_not_yet_played() -> None:
    buffer = JitterBuffer(16000, clock_rate_hz=8000, prefill_ms=40)  # G.722's clock
    assert buffer.gap_before(0) == 0  # nothing yet: the first packet follows nothing
    buffer.push(0, frame(1.0, 320))
    assert buffer.gap_before(160) == 0  # the next packet follows on
    assert buffer.gap_before(320) == 320  # one 20 ms packet is missing before this one
    assert buffer.gap_before(0) == 0  # a duplicate or late packet leaves no gap


def test_push_before_places_recovered_audio_right_before_a_packet() -> None:
    buffer = JitterBuffer(16000, clock_rate_hz=48000, prefill_ms=20)
    buffer.push(0, frame(1.0, 320))
    buffer.push_before(1920, frame(2.0, 320))  # FEC of the packet at 960
    buffer.push(1920, frame(3.0, 320))
    buffer.pop(320)
    heard = [buffer.pop(320) for _ in range(3)]
    assert [(samples[0], has_audio) for samples, has_audio in heard] == [
        (1.0, True), (2.0, True), (3.0, True)
    ]


def test_a_drift_drop_clears_what_it_skips_so_no_stale_audio_plays_a_lap_later() -> None:
    buffer = JitterBuffer(8000, prefill_ms=40, max_delay_ms=200, capacity_ms=1000)
    timestamp = 0
    for _ in range(20):  # a burst of 400 ms: more than max_delay, so the reader jumps
        buffer.push(timestamp, frame(0.5))
        timestamp += FRAME
    buffer.pop(FRAME)
    assert buffer.statistics().drift_drops == 1
    for _ in range(60):  # a second and a bit of steady stream, read in step
        buffer.push(timestamp, frame(0.25))
        timestamp += FRAME
        buffer.pop(FRAME)
    timestamp += FRAME  # one packet lost, landing where the skipped burst once lay
    buffer.push(timestamp, frame(0.25))
    played = [buffer.pop(FRAME) for _ in range(4)]
    assert not any(np.any(samples == 0.5) for samples, _ in played)
