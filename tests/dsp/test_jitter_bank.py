"""A JitterBank plays what its buffers would play on their own, to the bit.

Many random streams (bench/jitter_equivalence.py's: bursty loss, jitter and stalls,
reordering, duplicates, timestamp jumps, clock skew, FEC rebuilds, odd pop lengths, report
drains, callers that scale frames in place) go through one bank, pushed and popped together
tick by tick, and the same streams through separate buffers; every frame and, now and then,
everything each buffer says must match. Reading a buffer's state takes it out of the bank,
so it is read only every so often: between reads the bank's own paths do the work.
"""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from bench.jitter_equivalence import observed, packets, random_scenario, steps
from dsp.jitter import JitterBank, JitterBuffer

RATE_HZ = 8000
FRAME = 160
STREAMS = 12
SECONDS = 20.0


def _streams(seed: int) -> list[tuple[Any, Iterator[tuple[str, tuple[Any, ...]]], int]]:
    """(scenario, its steps, prefill) per stream, all at 8 kHz on an 8 kHz clock."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(STREAMS):
        scenario = dataclasses.replace(
            random_scenario(rng), rate_hz=RATE_HZ, clock_rate_hz=RATE_HZ, pop_samples=FRAME)
        stream = packets(scenario, rng, SECONDS)
        out.append((scenario, steps(scenario, stream), int(rng.choice([0, 20, 40, 60]))))
    return out


def _next_tick(
    calls: Iterator[tuple[str, tuple[Any, ...]]],
) -> list[tuple[str, tuple[Any, ...]]] | None:
    """One stream's calls up to and including its pop; None when the stream is over."""
    tick = []
    for call, arguments in calls:
        tick.append((call, arguments))
        if call == "pop":
            return tick
    return None


@pytest.mark.parametrize("seed", range(6))
def test_bank_plays_what_separate_buffers_play(seed: int) -> None:
    streams = _streams(seed)
    bank = JitterBank(RATE_HZ, FRAME)
    alone, banked = [], []
    for scenario, _, prefill in streams:
        settings = dict(conceal=scenario.conceal, prefill_ms=prefill)
        alone.append(JitterBuffer(RATE_HZ, **settings))
        banked.append(JitterBuffer(RATE_HZ, **settings))
        bank.add(banked[-1])
    rng = np.random.default_rng(seed + 100)
    live = list(range(STREAMS))
    ended: set[int] = set()  # streams whose buffers both failed alike
    steady_pops = 0
    tick = 0
    while live:
        ticks = {k: _next_tick(streams[k][1]) for k in live}
        live = [k for k in live if ticks[k] is not None]
        pushes: list[tuple[int, int, np.ndarray, float]] = []
        together: list[int] = []  # popped through the bank this tick
        for k in live:
            calls = ticks[k]
            assert calls is not None
            for call, arguments in calls:
                if call == "push":
                    timestamp, samples, arrival = arguments
                    alone[k].push(timestamp, samples.copy(), arrival)
                    if arrival is None:  # the bank's callers always know the arrival
                        _flush(bank, banked, pushes)
                        banked[k].push(timestamp, samples.copy(), arrival)
                    else:
                        pushes.append((k, timestamp, samples, arrival))
                elif call == "fec":
                    _flush(bank, banked, pushes)
                    timestamp, audio, granule = arguments
                    gap = alone[k].gap_before(timestamp)
                    assert banked[k].gap_before(timestamp) == gap
                    gap = min(gap, audio.shape[0])
                    gap -= gap % granule
                    if gap:
                        alone[k].push_before(timestamp, audio[-gap:].copy())
                        banked[k].push_before(timestamp, audio[-gap:].copy())
                elif call == "pop":
                    count, mutate = arguments
                    if count == FRAME:
                        together.append(k)
                    else:  # an odd length: on its own
                        _flush(bank, banked, pushes)
                        try:
                            expected = alone[k].pop(count)
                        except AssertionError:  # plc.expand on a frame of a sample or two
                            with pytest.raises(AssertionError):
                                banked[k].pop(count)
                            ended.add(k)
                            break
                        _check_frame(expected, banked[k].pop(count), mutate)
                else:  # a drain: pop what is buffered, 20 ms at a time
                    _flush(bank, banked, pushes)
                    for _ in range(50):
                        if alone[k].buffered_ms < 20:
                            break
                        _check_frame(alone[k].pop(FRAME), banked[k].pop(FRAME), False)
        _flush(bank, banked, pushes)
        live = [k for k in live if k not in ended]
        together = [k for k in together if k not in ended]
        steady_pops += int(np.count_nonzero(bank._banked[[banked[k]._row for k in together]]))
        frames, heard = bank.pop_many([banked[k] for k in together], FRAME)
        for k, frame, audio in zip(together, frames, heard, strict=True):
            mutate = dict(ticks[k])["pop"][1]  # type: ignore[arg-type]
            _check_frame(alone[k].pop(FRAME), (frame, audio), mutate)
        if rng.random() < 0.03:
            for k in live:
                assert observed(alone[k]) == observed(banked[k]), (seed, k, tick)
                _check_histogram(alone[k], banked[k])
        tick += 1
    for k in set(range(STREAMS)) - ended:
        assert observed(alone[k]) == observed(banked[k]), (seed, k, "end")
        _check_histogram(alone[k], banked[k])
    # These streams are harsh (loss, stalls, jumps, odd pops, no arrival times), and each
    # state check takes every buffer out of the bank: 10-30 % of pops stay on its path.
    assert steady_pops > 500


def _check_histogram(alone: JitterBuffer, banked: JitterBuffer) -> None:
    """The jitter histograms, which the bank updates in place: the same to the bit (the
    target they give can hide a difference for a long time)."""
    np.testing.assert_array_equal(alone._histogram, banked._histogram)  # noqa: SLF001


def _flush(bank: JitterBank, banked: list[JitterBuffer],
           pushes: list[tuple[int, int, np.ndarray, float]]) -> None:
    """Push what is waiting, grouped by packet length as a sweep's decoder gives it."""
    lengths = sorted({samples.shape[0] for _, _, samples, _ in pushes})
    for length in lengths:
        same = [p for p in pushes if p[2].shape[0] == length]
        bank.push_many([banked[k] for k, _, _, _ in same], [t for _, t, _, _ in same],
                       np.stack([s for _, _, s, _ in same]), [a for _, _, _, a in same])
    pushes.clear()


def _check_frame(expected: tuple[np.ndarray, bool], got: tuple[np.ndarray, bool],
                 mutate: bool) -> None:
    assert got[1] == expected[1]
    assert got[0].dtype == expected[0].dtype
    np.testing.assert_array_equal(got[0], expected[0])
    if not mutate:
        return
    if not got[0].flags.writeable:
        # A steady pop's frame (a row of the bank's array) refuses changes; the caller
        # works on a copy, and the history the concealment reads is the frame as popped.
        with pytest.raises(ValueError, match="read-only"):
            got[0][:] *= np.float32(0.5)
        return
    # A frame the buffer popped on its own path: a caller working in place is followed
    # by the concealment, as with a buffer alone.
    expected[0][:] *= np.float32(0.5)
    got[0][:] *= np.float32(0.5)


def test_rows_are_reused_and_rings_move_when_the_bank_grows() -> None:
    bank = JitterBank(RATE_HZ, FRAME)
    buffers = [JitterBuffer(RATE_HZ) for _ in range(3)]
    for buffer in buffers:
        bank.add(buffer)
    frame = np.full(FRAME, 0.25, np.float32)
    for k, buffer in enumerate(buffers):
        buffer.push(1000 * k, frame * (k + 1), 0.0)
    more = [JitterBuffer(RATE_HZ) for _ in range(200)]  # past the first allocation
    for buffer in more:
        bank.add(buffer)
    for k, buffer in enumerate(buffers):  # what was pushed before the move is still there
        for _ in range(10):
            out, audio = buffer.pop(FRAME)
            if audio:
                break
        assert audio and np.all(out == np.float32(0.25 * (k + 1)))
    row = more[5]._row
    del more
    gc.collect()
    reused = JitterBuffer(RATE_HZ)
    bank.add(reused)
    assert reused._row <= row  # a freed row is taken before the bank grows again


def test_refuses_buffers_it_cannot_hold() -> None:
    bank = JitterBank(RATE_HZ, FRAME)
    with pytest.raises(ValueError):
        bank.add(JitterBuffer(16000))
    with pytest.raises(ValueError):
        bank.add(JitterBuffer(RATE_HZ, clock_rate_hz=48000))
    buffer = JitterBuffer(RATE_HZ)
    bank.add(buffer)
    with pytest.raises(ValueError):
        bank.add(buffer)


def test_a_buffer_that_leaves_the_bank_keeps_no_frames_of_the_others_alive() -> None:
    """A pop returns one array for the whole bank; the history a buffer takes out
    of the bank is copied from its ring, not rows of those arrays: else every lost packet
    would keep up to 16 ticks of the whole room's frames alive (memory growing with loss).
    The bank itself keeps none of them either."""
    bank = JitterBank(RATE_HZ, FRAME)
    buffers = [JitterBuffer(RATE_HZ) for _ in range(40)]
    for buffer in buffers:
        bank.add(buffer)
    voice = (0.3 * np.sin(np.arange(FRAME) * 2 * np.pi / 50)).astype(np.float32)
    returned: list[weakref.ref[np.ndarray]] = []
    for tick in range(60):
        sending = [b for k, b in enumerate(buffers) if not (k == 0 and tick == 30)]
        bank.push_many(sending, [tick * FRAME] * len(sending),
                       np.tile(voice, (len(sending), 1)), [tick * 0.02] * len(sending))
        frames, heard = bank.pop_many(buffers, FRAME)
        assert all(heard) or tick < 5  # after the prefill, sound all along
        assert frames.shape == (len(buffers), FRAME) and not frames.flags.writeable
        returned.append(weakref.ref(frames))
        del frames
    gc.collect()
    # Nothing holds a pop's array once the caller lets it go.
    assert [ref for ref in returned if ref() is not None] == []
    # (Read last: the read takes the buffer out of the bank and renews its history.)
    assert buffers[0].statistics().concealed_frames  # it left the bank, and came back


def test_two_packets_of_a_buffer_in_one_sweep_stay_in_the_bank(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A phone whose packet misses one sweep and comes with the next one (its clock
    against the bridge's, or jitter: a few members of a big room every tick) is steady
    all the same: both packets go in with the bank's arrays, none through the buffer's
    own push, and it plays what a buffer on its own plays."""
    bank = JitterBank(RATE_HZ, FRAME)
    banked = [JitterBuffer(RATE_HZ) for _ in range(10)]
    alone = [JitterBuffer(RATE_HZ) for _ in range(10)]
    for buffer in banked:
        bank.add(buffer)
    late = {3, 7}  # their packet of every odd tick comes with the next one
    own_pushes = 0
    push = JitterBuffer.push

    def counted(self: JitterBuffer, *args: Any) -> None:
        nonlocal own_pushes
        if self in banked:
            own_pushes += 1
        push(self, *args)

    monkeypatch.setattr(JitterBuffer, "push", counted)
    rng = np.random.default_rng(5)
    for tick in range(300):
        sent = []  # (buffer, timestamp), in arrival order
        for k in range(10):
            if k not in late:
                sent.append((k, tick))
            elif tick % 2 == 0:
                sent.extend([(k, tick - 1), (k, tick)] if tick else [(k, tick)])
        voice = rng.uniform(-0.3, 0.3, (len(sent), FRAME)).astype(np.float32)
        for (k, stamp), samples in zip(sent, voice, strict=True):
            alone[k].push(stamp * FRAME, samples.copy(), tick * 0.02)
        if tick == 200:
            own_pushes = 0
        bank.push_many([banked[k] for k, _ in sent], [stamp * FRAME for _, stamp in sent],
                       voice, [tick * 0.02] * len(sent))
        frames, heard = bank.pop_many(banked, FRAME)
        for k in range(10):
            _check_frame(alone[k].pop(FRAME), (frames[k], heard[k]), False)
    assert own_pushes == 0
    assert bank._banked[[buffer._row for buffer in banked]].all()
    for k in range(10):
        assert observed(alone[k]) == observed(banked[k])


def test_one_lost_packet_at_a_time_is_filled_in_the_bank_as_each_buffer_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lossy uplink loses a packet now and then on every line (2 % of 500 lines is ten
    a tick). A frame that is a hole, with the audio after it buffered, is filled in the
    bank for all those lines at once: the same samples, `heard` and counters as each
    buffer's own Concealer, the buffer still banked (the tick after it is steady too).
    Lines of speech, of line noise, silent lines, a lost onset, two losses in a row (its
    own path), a loss just after joining the bank (history not yet in the ring: its own
    path) and a buffer that does not conceal all go through the same bank."""
    bank = JitterBank(RATE_HZ, FRAME)
    lines = 40
    # Lines 4 and 5 of every 8 start deep (a hole after next is known when one is
    # filled); 6 and 7 are on a jittery link.
    prefill = [120 if k % 8 in (4, 5) else 40 for k in range(lines)]
    alone = [JitterBuffer(RATE_HZ, prefill_ms=prefill[k]) for k in range(lines)]
    banked = [JitterBuffer(RATE_HZ, prefill_ms=prefill[k]) for k in range(lines)]
    alone[7].conceal = banked[7].conceal = False
    for buffer in banked:
        bank.add(buffer)
    rng = np.random.default_rng(11)
    t = np.arange(FRAME * 600)
    audio = []
    for k in range(lines):
        kind = k % 4
        if kind == 0:  # a voice: a pitch that wanders, in words
            pitch = 40 + 60 * rng.random() + 10 * np.sin(t / 900.0)
            signal = 0.3 * np.sin(2 * np.pi * np.cumsum(1 / pitch)) * (np.sin(t / 1500.0) > -0.3)
        elif kind == 1:  # line noise at -60 dBFS
            signal = 1e-3 * rng.standard_normal(t.size)
        elif kind == 2:  # silence, then a voice from the middle on (a lost onset)
            signal = np.where(t >= FRAME * 300, 0.2 * np.sin(2 * np.pi * t / 57.0), 0.0)
        else:
            signal = rng.uniform(-0.5, 0.5, t.size)
        audio.append(signal.astype(np.float32))
    lost = rng.random((600, lines)) < 0.05
    lost[300, 2] = True  # the onset's first packet
    lost[100:102, 5] = True  # two in a row
    for k in (0, 1, 3, 4, 5, 6, 7):  # two a frame apart: the first on its own path
        lost[[30, 32, 200, 202, 400, 402], k] = True
    filled = 0
    fill = JitterBank._fill_holes

    def counted(self: JitterBank, *args: Any) -> set[int]:
        nonlocal filled
        done = fill(self, *args)
        filled += len(done)
        return done

    monkeypatch.setattr(JitterBank, "_fill_holes", counted)
    for tick in range(600):
        sent = [k for k in range(lines) if not lost[tick, k]]
        frames_in = np.array([audio[k][tick * FRAME : (tick + 1) * FRAME] for k in sent])
        arrival = tick * 0.02 + np.where(np.array(sent) % 8 >= 6, 0.04, 0.001) * rng.random(
            len(sent))
        for row, k in enumerate(sent):
            alone[k].push(tick * FRAME, frames_in[row].copy(), float(arrival[row]))
        bank.push_many([banked[k] for k in sent], [tick * FRAME] * len(sent), frames_in,
                       arrival.tolist())
        frames, heard = bank.pop_many(banked, FRAME)
        for k in range(lines):
            _check_frame(alone[k].pop(FRAME), (frames[k], heard[k]), False)
        if tick % 97 == 0:
            for k in range(lines):
                assert observed(alone[k]) == observed(banked[k]), (tick, k)
    # Most filled in the bank; the rest (the audio after the hole not yet 35 ms deep,
    # two in a row, just banked, no concealment) on the buffer's own path.
    assert 0.25 * int(lost.sum()) < filled < int(lost.sum())
    for k in range(lines):
        assert observed(alone[k]) == observed(banked[k]), k
        assert alone[k].statistics().concealed_frames > 0 or k == 7


def test_a_stretch_right_after_a_filled_hole_hears_the_fill(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fill is written into the ring where it played: a buffer that leaves the bank just
    after (a late packet's spike raises the target, the next frame is stretched) hands
    its Concealer the fill as history, and the stretch searches the pitch of what was
    heard. Voices at 5 % loss, 2 % of packets 60-180 ms late; every frame as alone."""
    rng = np.random.default_rng(1)
    lines, ticks = 40, 800
    t = np.arange(FRAME * ticks)
    audio = []
    for k in range(lines):
        pitch = 40 + 60 * rng.random() + 10 * np.sin(t / 900.0)
        words = np.sin(t / 1500.0 + k) > -0.6
        audio.append((0.3 * np.sin(2 * np.pi * np.cumsum(1 / pitch)) * words).astype(np.float32))
    alone = [JitterBuffer(RATE_HZ, prefill_ms=60) for _ in range(lines)]
    banked = [JitterBuffer(RATE_HZ, prefill_ms=60) for _ in range(lines)]
    bank = JitterBank(RATE_HZ, FRAME)
    for buffer in banked:
        bank.add(buffer)
    lost = rng.random((ticks, lines)) < 0.05
    late_by = np.where(rng.random((ticks, lines)) < 0.02, rng.integers(3, 10, (ticks, lines)), 0)
    filled_last: set[int] = set()  # buffers (by id) whose pop the bank filled this tick
    filled_before: set[int] = set()  # ... and the tick before
    stretched_after_fill = 0
    fill, stretch = JitterBank._fill_holes, JitterBuffer._stretch

    def filling(self: JitterBank, buffers: list[JitterBuffer], *args: Any) -> set[int]:
        done = fill(self, buffers, *args)
        filled_last.update(id(buffers[k]) for k in done)
        return done

    def stretching(self: JitterBuffer, count: int) -> Any:
        nonlocal stretched_after_fill
        stretched_after_fill += id(self) in filled_before
        return stretch(self, count)

    monkeypatch.setattr(JitterBank, "_fill_holes", filling)
    monkeypatch.setattr(JitterBuffer, "_stretch", stretching)
    due: dict[int, list[tuple[int, int]]] = {}  # tick -> (line, packet) arriving then
    for tick in range(ticks):
        for k in np.flatnonzero(~lost[tick]).tolist():
            due.setdefault(tick + int(late_by[tick, k]), []).append((k, tick))
        arriving = due.pop(tick, [])
        for k, packet in arriving:
            alone[k].push(packet * FRAME, audio[k][packet * FRAME : (packet + 1) * FRAME].copy(),
                          tick * 0.02)
        if arriving:
            bank.push_many(
                [banked[k] for k, _ in arriving], [packet * FRAME for _, packet in arriving],
                np.array([audio[k][p * FRAME : (p + 1) * FRAME] for k, p in arriving]),
                [tick * 0.02] * len(arriving))
        filled_before = set(filled_last)
        filled_last.clear()
        frames, heard = bank.pop_many(banked, FRAME)
        for k in range(lines):
            _check_frame(alone[k].pop(FRAME), (frames[k], heard[k]), False)
    assert stretched_after_fill > 0
    for k in range(lines):
        assert observed(alone[k]) == observed(banked[k]), k
