"""Automatic gain control per member: every talker heard near one speech level.

Each member's active speech level is estimated on the frames its VAD calls speech only, so
silence and line noise never pump the gain; the gain moves towards TARGET_LEVEL_DBFS at a
bounded rate, within MIN_GAIN_DB..MAX_GAIN_DB, and ramps sample by sample across each frame
so a gain change is never a step (zipper noise). Rows are processed together with numpy.
It knows frames and per-member state only; `dsp.mixer.limit` still guards the sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.vad import TalkerState, frame_levels_dbfs

# Target active speech level (ITU-T P.56 sense) of every talker after AGC: -26 dBFS is
# P.56's nominal speech level. Speech peaks sit 15-20 dB above it, so a lone talker stays
# under the mix limiter's -6 dBFS knee, and three at once (+4.8 dB) only touch it.
TARGET_LEVEL_DBFS = -26.0
# Quiet handsets get up to +24 dB (speech at -50 dBFS becomes audible); shouting is cut by
# up to 18 dB. Beyond these the line is broken, not quiet or loud.
MIN_GAIN_DB = -18.0
MAX_GAIN_DB = 24.0
# How fast the gain may move, per 20 ms speech frame: 25 dB/s either way, so a
# shout is tamed within a word or two while a quiet talker rises over a sentence.
RISE_DB_PER_FRAME = 0.5
FALL_DB_PER_FRAME = 0.5
# Hysteresis: a talker within DEADBAND_DB of the target keeps its gain; once further off,
# the gain moves until it is within SETTLE_DB, then holds again. Every gain movement is heard
# (PESQ of a talker sent at the target level fell 3.69 -> 3.49 with the gain following the
# level estimate's wander), and a few dB between talkers is not; and a narrowband talker at
# unity gain reaches narrowband listeners sample for sample, while any other gain means a
# second G.711 quantisation (a talker at the target whose first second read 2.4 dB loud was
# cut 0.5 dB for good and lost 0.10-0.16 PESQ). Three dB is what bench/quality_talkers.py
# allows a levelled talker.
DEADBAND_DB = 3.0
SETTLE_DB = 1.0
# The gain holds until this many speech frames (0.5 s) have been heard: the first syllables'
# level is a poor guess of a talker's, and a gain that swings on them is heard.
MIN_SPEECH_FRAMES = 25
# The speech level is the mean power of speech frames: a plain average over the first
# frames (a fair estimate at once), then an exponential one over about 2 s of speech.
LEVEL_AVERAGE_FRAMES = 100
# The mean power of VAD speech frames reads about 1 dB above the P.56 active level of the
# same speech (bench/quality_talkers.py measured 0.7-1.8 dB at -40..-10 dBFS): the quiet
# edges of words that P.56 counts as active are hangover frames here, which do not count.
SPEECH_FRAME_BIAS_DB = 1.0


@dataclass(frozen=True, slots=True)
class AgcResult:
    """Frames after AGC, and each row's state for the next frame."""

    frames: NDArray[np.float32]  # (k, n) float32
    gains_db: NDArray[np.float64]  # (k,) gain reached at the end of the frame
    levelling: NDArray[np.bool_]  # (k,) the gain is on its way to within SETTLE_DB
    speech_levels_dbfs: NDArray[np.float64]  # (k,) NaN while no speech was heard
    speech_frames: NDArray[np.int_]  # (k,) speech frames seen, for the level average


def apply_agc(
    frames: NDArray[np.float32],
    gains_db: NDArray[np.float64],
    speech_levels_dbfs: NDArray[np.float64],
    speech_frames: NDArray[np.int_],
    speech: NDArray[np.bool_],
    levelling: NDArray[np.bool_],
) -> AgcResult:
    """Level `(k, n)` float32 frames (any rate) towards TARGET_LEVEL_DBFS; return the state.

    Rows flagged `speech` (the VAD's decision, without hangover) update their speech level
    and move their gain; the others keep all three. `levelling` rows move until within
    SETTLE_DB, the others start only beyond DEADBAND_DB. The gain ramps linearly, in
    amplitude, from the old value at the first sample to the new one at the last.
    """
    frames = np.asarray(frames, dtype=np.float32)
    gains = np.asarray(gains_db, dtype=np.float64)
    counts = np.asarray(speech_frames)
    speech = np.asarray(speech, dtype=np.bool_)
    power = 10.0 ** (frame_levels_dbfs(frames) / 10.0)
    known = ~np.isnan(speech_levels_dbfs)
    old_power = np.where(known, 10.0 ** (np.nan_to_num(speech_levels_dbfs) / 10.0), power)
    weight = 1.0 / np.minimum(counts + 1, LEVEL_AVERAGE_FRAMES)
    new_power = old_power + weight * (power - old_power)
    levels = np.where(speech, 10.0 * np.log10(new_power), speech_levels_dbfs)
    counts = np.where(speech, counts + 1, counts)
    wanted = np.clip(
        TARGET_LEVEL_DBFS + SPEECH_FRAME_BIAS_DB - np.nan_to_num(levels), MIN_GAIN_DB, MAX_GAIN_DB
    )
    error = wanted - gains
    adapting = speech & (counts >= MIN_SPEECH_FRAMES)
    moving = adapting & (np.abs(error) > np.where(levelling, SETTLE_DB, DEADBAND_DB))
    step = np.clip(error, -FALL_DB_PER_FRAME, RISE_DB_PER_FRAME)
    new_gains = np.where(moving, gains + step, gains)
    # Still on the way after this step? Rows that did not adapt keep their flag.
    levelling = np.where(adapting, moving & (np.abs(error - step) > SETTLE_DB), levelling)
    start = 10.0 ** (gains / 20.0)
    end = 10.0 ** (new_gains / 20.0)
    # Most rows keep their gain: their envelope is `start` throughout (start + 0 * ramp),
    # one float32 factor per row. Only the others pay for a (k, n) float64 ramp.
    levelled = frames * start.astype(np.float32)[:, None]
    ramping = np.flatnonzero(end - start != 0.0)
    if ramping.size:
        samples = frames.shape[1]
        ramp = np.arange(1, samples + 1, dtype=np.float64) / samples  # reaches `end` at the last
        rise = (end - start)[ramping, None]
        envelope = (start[ramping, None] + rise * ramp).astype(np.float32)
        levelled[ramping] = frames[ramping] * envelope
    return AgcResult(levelled, new_gains, levelling, levels, counts)


def level_talkers(
    frames: NDArray[np.float32], states: Sequence[TalkerState]
) -> NDArray[np.float32]:
    """Run `apply_agc` on `(k, n)` frames of one rate, reading and writing `states[i]`.

    Uses each state's `speech` flag from this tick's `dsp.vad.detect_voice`.
    """
    count = len(states)
    speech = np.fromiter((s.speech for s in states), np.bool_, count)
    result = apply_agc(
        frames,
        np.fromiter((s.gain_db for s in states), np.float64, count),
        np.fromiter((s.speech_level_dbfs for s in states), np.float64, count),
        np.fromiter((s.speech_frames for s in states), np.int_, count),
        speech,
        np.fromiter((s.levelling for s in states), np.bool_, count),
    )
    # Only speech rows change state (see apply_agc): the others are left as they were.
    for row in np.flatnonzero(speech).tolist():
        state = states[row]
        state.gain_db = float(result.gains_db[row])
        state.levelling = bool(result.levelling[row])
        state.speech_level_dbfs = float(result.speech_levels_dbfs[row])
        state.speech_frames = int(result.speech_frames[row])
    return result.frames
