"""Talker detection and selection: hangover keeps word endings, noise stays out, slots stick."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from bench.speech import set_active_level, speak
from dsp.vad import (
    HANGOVER_FRAMES,
    SWAP_FRAMES,
    SWAP_MARGIN_DB,
    TalkerState,
    age_silent,
    choose_talkers,
    detect_voice,
    select_talkers,
)

RATE_HZ = 8000
FRAME = 160


def frames_of(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    padded = np.concatenate([samples, np.zeros(-len(samples) % FRAME, np.float32)])
    return padded.reshape(-1, FRAME)


def run(frames: NDArray[np.float32], state: TalkerState, rate_hz: int = RATE_HZ) -> list[bool]:
    return [bool(detect_voice(frame[np.newaxis], [state], rate_hz)[0]) for frame in frames]


def noise(seconds: float, dbfs: float, seed: int, rate_hz: int = RATE_HZ) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(int(seconds * rate_hz)) * 10 ** (dbfs / 20)
    return samples.astype(np.float32)


class ForbiddenVad:
    """A webrtcvad stand-in that fails the test if it is asked anything."""

    def is_speech(self, buf: bytes, sample_rate: int) -> bool:
        raise AssertionError("webrtcvad was called for a frame below the energy gate")


@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_word_is_voiced_to_its_end_and_hangover_follows(rate_hz: int) -> None:
    frame = rate_hz // 50
    word = set_active_level(speak("closed", rate_hz=rate_hz), -26.0, rate_hz)
    samples = np.concatenate([np.zeros(frame * 5, np.float32), word])
    samples = np.concatenate([samples, np.zeros(-len(samples) % frame + 40 * frame, np.float32)])
    voiced = run(samples.reshape(-1, frame), TalkerState(), rate_hz)
    word_frames = range(5, 5 + len(word) // frame)
    first = voiced.index(True)
    assert first <= 5 + 3  # onset within a few frames of the word's start
    # From the onset to the word's last (trimmed at -45 dB of its peak) sample, nothing is cut.
    assert all(voiced[first: word_frames.stop + 1])
    end = word_frames.stop  # the frame holding the word's end; silence follows
    assert voiced[end + 1]  # the hangover runs on into the silence
    assert not any(voiced[end + HANGOVER_FRAMES + 1:])  # and then stops


def test_steady_noise_is_not_speech() -> None:
    state = TalkerState()
    assert not any(run(frames_of(noise(5.0, -45.0, seed=1)), state))


def test_louder_noise_is_not_speech_once_the_floor_follows() -> None:
    state = TalkerState()
    run(frames_of(noise(3.0, -60.0, seed=2)), state)
    voiced = run(frames_of(noise(6.0, -40.0, seed=3)), state)
    assert not any(voiced[150:])  # the floor tracks the new noise within 3 s


def test_quiet_lines_never_reach_webrtcvad() -> None:
    states = [TalkerState(vad=ForbiddenVad()) for _ in range(3)]  # type: ignore[arg-type]
    frames = np.stack([
        np.zeros(FRAME, np.float32),
        noise(0.02, -65.0, seed=4),
        noise(0.02, -75.0, seed=5),
    ])
    for _ in range(10):
        assert not detect_voice(frames, states, RATE_HZ).any()


def test_silent_line_hangover_runs_out() -> None:
    state = TalkerState(speech=True, voiced=True, hangover_frames=HANGOVER_FRAMES)
    held = []
    for _ in range(HANGOVER_FRAMES + 3):
        age_silent([state])
        held.append(state.voiced)
    assert held == [True] * HANGOVER_FRAMES + [False] * 3
    assert not state.speech


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="expected"):
        detect_voice(np.zeros((2, FRAME), np.float32), [TalkerState()], RATE_HZ)
    with pytest.raises(ValueError, match="3 rows"):
        detect_voice(np.zeros((5, FRAME), np.float32), [TalkerState()], RATE_HZ,
                     rows=np.array([0, 2, 4]))
    with pytest.raises(ValueError, match="energies"):
        detect_voice(np.zeros((5, FRAME), np.float32), [TalkerState()], RATE_HZ,
                     rows=np.array([4]), energies=np.zeros(2))


def test_rows_judged_where_they_lie_as_their_copy() -> None:
    """Rows of a bigger array, with or without their energies, judged as the same frames
    copied out: the same flags and the same states, speech, noise and silence alike."""
    word = frames_of(set_active_level(speak("closed", rate_hz=RATE_HZ), -26.0, RATE_HZ))
    ticks = word.shape[0] + 30
    lines = [np.concatenate([word, np.zeros((ticks - word.shape[0], FRAME), np.float32)]),
             frames_of(noise(ticks * 0.02, -45.0, seed=6)),
             np.zeros((ticks, FRAME), np.float32),
             frames_of(noise(ticks * 0.02, -30.0, seed=7))]
    rows = np.array([3, 0, 2], np.intp)  # judged: lines 3, 0 and 2, not 1
    copied, in_place, summed = ([TalkerState() for _ in rows] for _ in range(3))
    word_voiced = 0
    for tick in range(ticks):
        frames = np.stack([line[tick] for line in lines])
        energies = np.einsum("ij,ij->i", frames[rows], frames[rows], dtype=np.float64)
        expected = detect_voice(frames[rows], copied, RATE_HZ)
        word_voiced += int(expected[1])
        assert (detect_voice(frames, in_place, RATE_HZ, rows=rows) == expected).all()
        assert (detect_voice(frames, summed, RATE_HZ, rows=rows, energies=energies)
                == expected).all()
    for states in (in_place, summed):
        assert [(s.level_dbfs, s.noise_floor_dbfs, s.hangover_frames, s.voiced)
                for s in states] == [(s.level_dbfs, s.noise_floor_dbfs, s.hangover_frames,
                                      s.voiced) for s in copied]
    assert word_voiced >= word.shape[0] // 2  # the word went through webrtcvad, and was heard


def select(
    levels: list[float], voiced: list[bool], was: list[bool], challenge: list[int], k: int = 3
) -> tuple[list[bool], list[int]]:
    selected, counts = select_talkers(
        np.array(levels), np.array(voiced), np.array(was), np.array(challenge), k
    )
    return selected.tolist(), counts.tolist()


def test_loudest_voiced_take_free_slots_at_once() -> None:
    selected, _ = select(
        [-30, -20, -25, -10, -40], [True, True, True, False, True], [False] * 5, [0] * 5, k=3
    )
    assert selected == [True, True, True, False, False]


def test_a_talker_keeps_its_slot_against_a_slightly_louder_newcomer() -> None:
    was = [True, True, True, False]
    levels = [-20.0, -22.0, -24.0, -24.0 + SWAP_MARGIN_DB - 0.5]
    challenge = [0] * 4
    for _ in range(3 * SWAP_FRAMES):
        selected, challenge = select(levels, [True] * 4, was, challenge)
        assert selected == was


def test_a_clearly_louder_newcomer_takes_the_quietest_slot_after_a_few_frames() -> None:
    was = [True, True, True, False]
    levels = [-20.0, -22.0, -24.0, -24.0 + SWAP_MARGIN_DB + 1.0]
    challenge = [0] * 4
    for _ in range(SWAP_FRAMES - 1):
        selected, challenge = select(levels, [True] * 4, was, challenge)
        assert selected == was
    assert challenge[3] == SWAP_FRAMES - 1
    selected, challenge = select(levels, [True] * 4, was, challenge)
    assert selected == [True, True, False, True] and challenge == [0] * 4


def test_a_challenge_must_be_unbroken() -> None:
    was = [True, False]
    challenge = [0, 0]
    loud, soft = [-30.0, -20.0], [-30.0, -29.0]
    for levels in [loud] * (SWAP_FRAMES - 1) + [soft] + [loud] * (SWAP_FRAMES - 1):
        selected, challenge = select(levels, [True, True], was, challenge, k=1)
        assert selected == was


def test_a_talker_that_falls_silent_frees_its_slot() -> None:
    selected, _ = select([-20, -30, -25], [False, True, True], [True, True, False], [0, 0, 0], k=2)
    assert selected == [False, True, True]


def test_lowering_the_limit_keeps_the_loudest() -> None:
    selected, _ = select([-20, -30, -25], [True] * 3, [True] * 3, [0] * 3, k=1)
    assert selected == [True, False, False]


def test_choose_talkers_reads_and_writes_states() -> None:
    states = [TalkerState(voiced=True, level_dbfs=-30.0 + k) for k in range(5)]
    states[0].gain_db = 20.0  # quiet phone, loud after its AGC
    selected = choose_talkers(states, max_talkers=2)
    assert selected.tolist() == [True, False, False, False, True]
    assert [s.selected for s in states] == selected.tolist()
