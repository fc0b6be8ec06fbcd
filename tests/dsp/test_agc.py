"""AGC: speech converges to the target level, silence and noise leave the gain alone, no zipper."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from bench.speech import active_level_dbfs, sentences_clip, set_active_level
from dsp.agc import (
    DEADBAND_DB,
    MAX_GAIN_DB,
    MIN_GAIN_DB,
    RISE_DB_PER_FRAME,
    SETTLE_DB,
    SPEECH_FRAME_BIAS_DB,
    TARGET_LEVEL_DBFS,
    apply_agc,
    level_talkers,
)
from dsp.level import rms_dbfs
from dsp.mixer import LIMITER_CEILING, limit
from dsp.vad import TalkerState, detect_voice

RATE_HZ = 8000
FRAME = 160


def steady_speech(seconds: float, dbfs: float, seed: int) -> NDArray[np.float32]:
    """`(frames, 160)` noise with a 4 Hz syllable-like envelope, at `dbfs` RMS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    samples = rng.standard_normal(t.size) * (1.2 + np.sin(2 * np.pi * 4 * t))
    samples *= 10 ** (dbfs / 20) / np.sqrt(np.mean(samples**2))
    return samples.astype(np.float32).reshape(-1, FRAME)


def run_agc(
    frames: NDArray[np.float32], speech: bool
) -> tuple[NDArray[np.float32], list[float]]:
    gains, levels, counts = np.zeros(1), np.full(1, np.nan), np.zeros(1, np.int_)
    levelling = np.zeros(1, np.bool_)
    out, history = [], []
    for frame in frames:
        result = apply_agc(frame[np.newaxis], gains, levels, counts, np.array([speech]),
                           levelling)
        gains, levels, counts = result.gains_db, result.speech_levels_dbfs, result.speech_frames
        levelling = result.levelling
        out.append(result.frames[0])
        history.append(float(gains[0]))
    return np.stack(out), history


def test_quiet_and_loud_speech_converge_to_the_target() -> None:
    for dbfs in (-40.0, -10.0):
        out, gains = run_agc(steady_speech(6.0, dbfs, seed=1), speech=True)
        # Within the settling band of the target, plus the speech-frame bias, plus the level
        # estimate's wander (0.5 dB on this noise).
        bound = SETTLE_DB + SPEECH_FRAME_BIAS_DB + 0.5
        assert abs(rms_dbfs(out[-100:]) - TARGET_LEVEL_DBFS) < bound, dbfs
        assert abs(gains[-1] - gains[-50]) < 0.5  # settled


@pytest.mark.parametrize("off_db", [-2.0, 2.0])
def test_a_talker_near_the_target_keeps_unity_gain(off_db: float) -> None:
    """Within the deadband the samples pass untouched (no second G.711 quantisation); the
    first estimates wander by 0.5 dB here, so 2 dB off stays inside 3."""
    level = TARGET_LEVEL_DBFS + SPEECH_FRAME_BIAS_DB + off_db
    frames = steady_speech(6.0, level, seed=9)
    out, gains = run_agc(frames, speech=True)
    assert set(gains) == {0.0}
    np.testing.assert_array_equal(out, frames)


def test_a_talker_beyond_the_deadband_is_brought_within_the_settling_band() -> None:
    """Hysteresis: moving starts beyond DEADBAND_DB and goes on to within SETTLE_DB."""
    level = TARGET_LEVEL_DBFS + SPEECH_FRAME_BIAS_DB + DEADBAND_DB + 1.0
    out, gains = run_agc(steady_speech(6.0, level, seed=10), speech=True)
    wanted = -(DEADBAND_DB + 1.0)
    assert abs(gains[-1] - wanted) <= SETTLE_DB + 0.3  # the level estimate wanders a little
    assert gains[-1] < wanted + DEADBAND_DB - 1.0  # it did not stop at the deadband's edge
    assert abs(gains[-1] - gains[-50]) < 0.5


def test_espeak_speech_through_vad_and_agc_lands_within_3_db() -> None:
    clip = sentences_clip("en-us", ("The river rose forty centimetres.",) * 3, RATE_HZ)
    for dbfs in (-40.0, -10.0):
        sent = set_active_level(clip, dbfs, RATE_HZ)
        frames = sent[: len(sent) // FRAME * FRAME].reshape(-1, FRAME)
        state = TalkerState()
        out = []
        for frame in frames:
            detect_voice(frame[np.newaxis], [state], RATE_HZ)
            out.append(level_talkers(frame[np.newaxis], [state])[0])
        heard = np.concatenate(out)[2 * RATE_HZ:]
        assert abs(active_level_dbfs(heard, RATE_HZ) - TARGET_LEVEL_DBFS) < 3.0, dbfs


def test_silence_and_noise_do_not_move_the_gain() -> None:
    frames = steady_speech(2.0, -45.0, seed=2)
    out, gains = run_agc(frames, speech=False)
    assert gains == [0.0] * len(frames)
    np.testing.assert_array_equal(out, frames)
    state = TalkerState(gain_db=6.0)
    noise = (np.random.default_rng(3).standard_normal((250, FRAME)) * 10 ** (-45 / 20)).astype(
        np.float32
    )
    for frame in noise:
        detect_voice(frame[np.newaxis], [state], RATE_HZ)
        level_talkers(frame[np.newaxis], [state])
    assert state.gain_db == 6.0


def test_gain_ramps_without_steps() -> None:
    frames = np.full((200, FRAME), 10 ** (-45 / 20), dtype=np.float32)
    out, gains = run_agc(frames, speech=True)
    envelope = (out / frames).reshape(-1).astype(np.float64)
    assert gains[-1] > 10.0  # it did move a lot
    biggest_step_db = np.max(np.abs(np.diff(20 * np.log10(envelope))))
    # A linear ramp in amplitude spreads the frame's step nearly evenly, across frame edges too.
    assert biggest_step_db <= 1.1 * RISE_DB_PER_FRAME / FRAME


def test_gain_stays_in_its_range() -> None:
    _, quiet = run_agc(steady_speech(12.0, -70.0, seed=4), speech=True)
    _, loud = run_agc(steady_speech(6.0, 0.0, seed=5), speech=True)
    assert MAX_GAIN_DB - DEADBAND_DB <= quiet[-1] <= MAX_GAIN_DB
    assert MIN_GAIN_DB <= loud[-1] <= MIN_GAIN_DB + DEADBAND_DB
    assert max(quiet) <= MAX_GAIN_DB and min(loud) >= MIN_GAIN_DB


def test_limiter_keeps_loud_agc_talkers_below_full_scale() -> None:
    talkers = [run_agc(steady_speech(4.0, -3.0, seed=s), speech=True)[0] for s in (6, 7, 8)]
    total = limit(np.sum(talkers, axis=0, dtype=np.float64))
    assert np.max(np.abs(total)) <= LIMITER_CEILING < 1.0
