"""The adaptive timeline playout buffer: order, loss, duplicates, wrap-around, jumps, drift,
jitter-driven delay, concealment and clock skew."""

import numpy as np
import pytest

from dsp.jitter import JitterBuffer

FRAME = 160
RATE = 8000
TICK_S = 0.02


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


def test_lost_packet_reads_as_silence_when_concealment_is_off() -> None:
    buffer = JitterBuffer(8000, prefill_ms=40, conceal=False)
    buffer.push(0, frame(1.0))
    buffer.push(2 * FRAME, frame(3.0))
    buffer.pop(FRAME), buffer.pop(FRAME)
    assert buffer.pop(FRAME)[1] is True
    samples, has_audio = buffer.pop(FRAME)
    assert not has_audio and not samples.any()
    assert buffer.pop(FRAME)[0][0] == 3.0


def test_duplicate_packet_is_dropped_and_counted() -> None:
    buffer = JitterBuffer(8000, prefill_ms=20, conceal=False)
    buffer.push(0, frame(1.0))
    buffer.push(0, frame(1.0))
    buffer.pop(FRAME)
    assert buffer.pop(FRAME)[0][0] == 1.0
    assert buffer.pop(FRAME)[1] is False
    assert buffer.statistics().duplicates == 1


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


# -- concealment ----------------------------------------------------------------------------


def voice(seconds: float, rate_hz: int = RATE) -> np.ndarray:
    """A voiced-like test signal: 150 Hz with two harmonics (a non-integer period at 8 kHz)."""
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    wave = 0.2 * np.sin(2 * np.pi * 150 * t) + 0.08 * np.sin(2 * np.pi * 300 * t + 0.5)
    return (wave + 0.04 * np.sin(2 * np.pi * 450 * t + 1.0)).astype(np.float32)


def play(buffer: JitterBuffer, audio: np.ndarray, lost: set[int], frames: int) -> np.ndarray:
    out = []
    for index in range(frames):
        if index not in lost and (index + 1) * FRAME <= len(audio):
            buffer.push(index * FRAME, audio[index * FRAME : (index + 1) * FRAME])
        out.append(buffer.pop(FRAME)[0])
    return np.concatenate(out)


def test_a_lost_frame_is_concealed_without_clicks() -> None:
    audio = voice(1.0)
    buffer = JitterBuffer(RATE, prefill_ms=40)
    heard = play(buffer, audio, {20}, 45)
    clean_step = float(np.max(np.abs(np.diff(audio))))
    assert float(np.max(np.abs(np.diff(heard)))) <= 1.5 * clean_step
    lost = heard[22 * FRAME : 23 * FRAME]  # frame 20, after the 40 ms prefill
    assert np.sqrt(np.mean(lost**2)) > 0.5 * np.sqrt(np.mean(audio**2))
    assert buffer.statistics().concealed_frames == 1


def heard_around_a_loss(packet: int, lost: int, prefill_ms: int = 60) -> tuple[
        np.ndarray, np.ndarray]:
    """Send `voice` in packets of `packet` samples, one lost, popping 20 ms per tick; return
    what was heard and sent, lined up."""
    audio = voice(1.0)
    buffer = JitterBuffer(RATE, prefill_ms=prefill_ms)
    heard = []
    for tick in range(45):
        for index in range(len(audio) // packet):
            if index * packet < (tick + 1) * FRAME <= (index + 1) * packet and index != lost:
                buffer.push(index * packet, audio[index * packet : (index + 1) * packet])
        heard.append(buffer.pop(FRAME)[0])
    return np.concatenate(heard)[RATE * prefill_ms // 1000 :], audio


def test_a_lost_frame_is_concealed_toward_the_audio_buffered_after_it() -> None:
    heard, audio = heard_around_a_loss(FRAME, 20)
    lost = slice(20 * FRAME, 21 * FRAME)
    error = heard[lost] - audio[lost]
    # Forward only: 0.013 of the frame's energy; both sides: 0.0051 (0.0012 while the
    # forward repeat held full level for 10 ms rather than 5, which cost PESQ on speech).
    assert float(error @ error) < 0.006 * float(audio[lost] @ audio[lost])


def test_a_lost_packet_that_ends_mid_frame_joins_the_audio_after_it_without_a_click() -> None:
    heard, audio = heard_around_a_loss(240, 12)  # 30 ms packets: the hole ends mid-frame
    clean_step = float(np.max(np.abs(np.diff(audio))))
    assert float(np.max(np.abs(np.diff(heard[: 40 * FRAME])))) <= 1.1 * clean_step
    lost = slice(12 * 240, 13 * 240)
    error = heard[lost] - audio[lost]
    assert float(error @ error) < 0.025 * float(audio[lost] @ audio[lost])  # forward: 0.042


def test_pop_says_when_it_concealed() -> None:
    buffer = JitterBuffer(RATE, prefill_ms=0)
    audio = voice(0.2)
    flags = []
    for index in range(6):
        if index != 3:
            buffer.push(index * FRAME, audio[index * FRAME : (index + 1) * FRAME])
        _, has_audio = buffer.pop(FRAME)
        flags.append((has_audio, buffer.last_pop_concealed))
    assert flags[3] == (True, True)
    assert flags[4] == (True, False)


def test_a_long_gap_fades_to_silence_by_60_ms() -> None:
    audio = voice(1.0)
    buffer = JitterBuffer(RATE, prefill_ms=0)
    heard = play(buffer, audio, set(range(20, 40)), 30)
    gap = heard[20 * FRAME :]
    level = np.abs(gap).reshape(-1, RATE // 100).max(axis=1)  # per 10 ms
    assert level[0] > 0.2  # the first 10 ms at full level
    assert np.all(np.diff(level[:6]) <= 1e-6)  # then falling
    assert not gap[6 * RATE // 100 :].any()  # silent from 60 ms on
    assert buffer.pop(FRAME)[1] is False


def test_audio_that_resumes_is_faded_in_over_the_concealment() -> None:
    audio = voice(1.0)
    buffer = JitterBuffer(RATE, prefill_ms=40)
    heard = play(buffer, audio, {20, 21}, 45)
    clean_step = float(np.max(np.abs(np.diff(audio))))
    assert float(np.max(np.abs(np.diff(heard)))) <= 1.5 * clean_step


def test_concealment_off_keeps_holes_silent() -> None:
    audio = voice(1.0)
    buffer = JitterBuffer(RATE, prefill_ms=0, conceal=False)
    heard = play(buffer, audio, {10}, 12)
    assert not heard[10 * FRAME : 11 * FRAME].any()


# -- adaptive delay -------------------------------------------------------------------------


def stream(
    buffer: JitterBuffer, delays_s: np.ndarray, audio: np.ndarray | None = None,
    skew: float = 0.0, first: int = 0,
) -> list[float]:
    """Send one 20 ms packet per tick with the given network delays, pop every tick;
    return the buffered audio (ms) after each pop. `skew`: the sender's clock runs that
    much fast (positive) or slow."""
    arrivals = (first + np.arange(len(delays_s))) * TICK_S + delays_s
    order = np.argsort(arrivals, kind="stable")
    buffered = []
    sent = 0
    ticks = len(delays_s)
    step = FRAME * (1 + skew)
    for tick in range(first, first + ticks):
        now = tick * TICK_S
        while sent < len(order) and arrivals[order[sent]] <= now:
            index = int(order[sent])
            samples = frame(0.1) if audio is None else audio[
                (index * FRAME) % (len(audio) - FRAME) :][:FRAME]
            timestamp = int(round((first + index) * step)) % 2**32
            buffer.push(timestamp, samples, arrival_s=float(arrivals[index]))
            sent += 1
        buffer.pop(FRAME)
        buffered.append(buffer.buffered_ms)
    return buffered


def test_steady_link_settles_at_the_minimum_delay() -> None:
    buffer = JitterBuffer(RATE)
    stream(buffer, np.full(500, 0.03))
    assert buffer.target_ms == pytest.approx(20.0)
    assert buffer.delay_ms <= 20.0 + 20.0


def test_a_jitter_spike_raises_the_target_at_once() -> None:
    buffer = JitterBuffer(RATE)
    delays = np.full(300, 0.03)
    delays[250] = 0.03 + 0.12  # one packet 120 ms late
    stream(buffer, delays)
    assert buffer.target_ms >= 120.0


def test_the_target_follows_jitter_and_comes_down_slowly_when_it_calms() -> None:
    rng = np.random.default_rng(7)
    buffer = JitterBuffer(RATE)
    stream(buffer, 0.06 + rng.uniform(-0.04, 0.04, 1500))  # 30 s of 60 ± 40 ms
    jittery = buffer.target_ms
    assert 70.0 <= jittery <= 120.0
    stream(buffer, np.full(250, 0.02), first=1500)  # 5 s calm
    assert buffer.target_ms >= 0.6 * jittery  # not at once
    stream(buffer, np.full(6000, 0.02), first=1750)  # two minutes calm
    assert buffer.target_ms <= 30.0
    assert buffer.delay_ms <= buffer.target_ms + 20.0


def test_delay_grows_by_stretching_speech_not_by_dropping_it() -> None:
    rng = np.random.default_rng(3)
    buffer = JitterBuffer(RATE)
    stream(buffer, 0.06 + rng.uniform(-0.04, 0.04, 500), audio=voice(2.0))
    stats = buffer.statistics()
    assert stats.stretched_frames > 0
    assert stats.late <= 10  # of 500


def test_near_the_target_pauses_are_stretched_and_speech_is_not() -> None:
    rng = np.random.default_rng(3)
    talk, pause = voice(0.6), np.zeros(int(0.4 * RATE), np.float32)
    audio = np.tile(np.concatenate([talk, pause]), 20)
    count = len(audio) // FRAME
    arrivals = np.arange(count) * TICK_S + 0.06 + rng.uniform(-0.04, 0.04, count)
    order = np.argsort(arrivals, kind="stable")
    buffer = JitterBuffer(RATE)
    sent = 0
    stretched_speech = stretched_pauses = 0
    for tick in range(count):
        while sent < count and arrivals[order[sent]] <= tick * TICK_S:
            index = int(order[sent])
            buffer.push(index * FRAME, audio[index * FRAME : (index + 1) * FRAME],
                        arrival_s=float(arrivals[index]))
            sent += 1
        before = buffer.statistics().stretched_frames
        samples, _ = buffer.pop(FRAME)
        if buffer.statistics().stretched_frames > before and tick >= 50:  # after 1 s
            if float(samples @ samples) > 0.01**2 * FRAME:
                stretched_speech += 1
            else:
                stretched_pauses += 1
    assert stretched_speech == 0  # 2 when speech was stretched anywhere below the target
    assert buffer.delay_ms >= 0.75 * buffer.target_ms


@pytest.mark.parametrize("skew", [0.005, -0.005])
def test_clock_skew_for_ten_minutes_neither_overflows_nor_underruns(skew: float) -> None:
    rng = np.random.default_rng(11)
    buffer = JitterBuffer(RATE)
    ticks = 10 * 60 * 50
    buffered = stream(buffer, 0.04 + rng.uniform(-0.01, 0.01, ticks), skew=skew)
    stats = buffer.statistics()
    assert stats.drift_drops == 0
    assert max(buffered[500:]) <= 120.0
    assert stats.late + stats.underrun_frames <= ticks // 100
    assert stats.resyncs == 0


def test_a_timestamp_jump_ahead_with_on_time_arrival_resyncs_at_once() -> None:
    buffer = JitterBuffer(RATE)
    for tick in range(50):
        buffer.push(tick * FRAME, frame(1.0), arrival_s=tick * TICK_S)
        buffer.pop(FRAME)
    buffer.push(50 * FRAME + RATE // 2, frame(2.0), arrival_s=50 * TICK_S)  # 500 ms jump
    assert buffer.statistics().resyncs == 1
    heard = [buffer.pop(FRAME)[0][0] for _ in range(5)]
    assert 2.0 in heard


def test_opus_clock_with_arrival_times() -> None:
    """48 kHz RTP clock, 16 kHz samples: 960 ticks and 320 samples per 20 ms."""
    buffer = JitterBuffer(16000, clock_rate_hz=48000)
    rng = np.random.default_rng(5)
    arrivals = np.arange(500) * TICK_S + 0.05 + rng.uniform(-0.03, 0.03, 500)
    order = np.argsort(arrivals)
    sent = 0
    for tick in range(500):
        while sent < 500 and arrivals[order[sent]] <= tick * TICK_S:
            index = int(order[sent])
            buffer.push((2**32 - 960 * 100 + index * 960) % 2**32, frame(0.1, 320),
                        arrival_s=float(arrivals[index]))
            sent += 1
        buffer.pop(320)
    assert 40.0 <= buffer.target_ms <= 100.0
    assert buffer.statistics().resyncs == 0


def voiced(index: int) -> np.ndarray:
    """Frame `index` of a 173 Hz tone: no two neighbouring frames alike."""
    t = np.arange(FRAME) + index * FRAME
    return (0.3 * np.sin(2 * np.pi * 173 * t / RATE)).astype(np.float32)


def test_a_packet_late_after_the_buffer_ran_dry_plays_once_it_comes() -> None:
    buffer = JitterBuffer(RATE, prefill_ms=40)
    for index in range(50):
        buffer.push(index * FRAME, voiced(index), index * TICK_S)
        buffer.pop(FRAME)
    for _ in range(3):  # a stall: the buffer runs dry, concealment plays and the read holds
        buffer.pop(FRAME)
    assert buffer.last_pop_concealed
    for index in range(50, 56):
        buffer.push(index * FRAME, voiced(index), 1.12)
    samples, _ = buffer.pop(FRAME)
    # Packet 50 itself, past the fade from the concealment: nothing of it was skipped.
    assert np.array_equal(samples[80:], voiced(50)[80:])


def test_a_duplicate_of_a_packet_waiting_behind_others_is_dropped() -> None:
    buffer = JitterBuffer(RATE, prefill_ms=60)
    for index in range(4):
        buffer.push(index * FRAME, frame(float(index + 1)))
    buffer.push(FRAME, frame(9.0))  # packet 1 again, not yet played
    assert buffer.statistics().duplicates == 1
    for _ in range(3):
        buffer.pop(FRAME)
    assert [buffer.pop(FRAME)[0][0] for _ in range(4)] == [1.0, 2.0, 3.0, 4.0]


def test_a_hole_filled_late_between_in_order_packets_plays_in_place() -> None:
    buffer = JitterBuffer(RATE, prefill_ms=60, conceal=False)
    for index in (0, 2, 3):
        buffer.push(index * FRAME, frame(float(index + 1)))
    buffer.pop(FRAME)
    buffer.push(FRAME, frame(2.0))  # the reordered packet, before it is due
    buffer.push(4 * FRAME, frame(5.0))
    buffer.pop(FRAME), buffer.pop(FRAME)
    assert [buffer.pop(FRAME)[0][0] for _ in range(5)] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert buffer.statistics().underrun_frames == 0
