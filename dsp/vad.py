"""Who is talking: voice activity with hangover per member, and the loudest few chosen to mix.

A frame counts as speech when it is well above its line's noise floor and WebRTC's VAD
(webrtcvad, Google's GMM detector) agrees; silent, idle or steadily noisy lines never reach
the detector, so it runs only on the few rows that might be speech. After the last speech
frame a member stays voiced for a hangover, so word endings and gaps between words are kept.
The room mixes at most K voiced members, and a talker keeps its slot unless a newcomer is
clearly louder for several frames. This module knows frames and levels only, not members.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import webrtcvad
from numpy.typing import NDArray

from dsp.codecs.base import to_pcm16

# Levels of digital silence are held here rather than -inf, so smoothing stays finite.
SILENCE_DBFS = -120.0
# Lines quieter than this never reach webrtcvad: idle phones and digital silence. Speech
# at even the quietest phone's active level (~-45 dBFS) sits well above it.
ENERGY_FLOOR_DBFS = -60.0
# A frame must stand this far above its line's noise floor to be speech: steady noise (a
# fan, a hiss at -45 dBFS) then never opens the line, however webrtcvad judges it.
NOISE_MARGIN_DB = 6.0
# Noise floor by minimum statistics (R. Martin, "Noise power spectral density estimation
# based on optimal smoothing and minimum statistics", IEEE TSAP 2001), on frame levels:
# the floor is the lowest level of the last NOISE_WINDOWS windows of NOISE_WINDOW_FRAMES.
# It follows a louder noise within 2 s, and speech pauses keep it down while someone talks.
NOISE_WINDOW_FRAMES = 20
NOISE_WINDOWS = 5
# After the last speech frame the member stays voiced this many frames (20 ms each):
# 240 ms covers a word's decaying end and the gaps between words.
HANGOVER_FRAMES = 12
# The short-term level used to rank talkers follows a rise within a frame and falls with a
# time constant of 200 ms, so a talker's level does not collapse between syllables.
LEVEL_RISE = 0.5
LEVEL_FALL = 1.0 - math.exp(-20.0 / 200.0)
# webrtcvad's aggressiveness, 0-3: 3 rejects the most non-speech, but on lossy links it
# also missed the first 40 ms of some words (its decisions depend on what it has heard,
# concealment included), and a word with its onset cut cost up to 0.3 PESQ (5 % loss +
# 60±40 ms, 100 runs: 9 lost over 0.03 against the buffer alone with 3, one with 2). Steady line
# noise is kept out by the noise-floor margin before webrtcvad, so 2 gives up nothing
# there (noisy room: +15.1 dB over the naive sum with either); the hangover keeps the
# quiet word endings it misses.
VAD_MODE = 2
# Talker selection: a newcomer takes a talker's slot only when its level is this much
# higher for this many consecutive frames (100 ms).
SWAP_MARGIN_DB = 4.0
SWAP_FRAMES = 5


@dataclass(slots=True, eq=False)
class TalkerState:
    """One member's talker detection, selection and AGC state; cheap to keep per member.

    `gain_db`, `levelling`, `speech_level_dbfs` and `speech_frames` belong to `dsp.agc`,
    kept here so the room holds one object per member.
    """

    vad: webrtcvad.Vad = field(default_factory=lambda: webrtcvad.Vad(VAD_MODE))
    speech: bool = False  # the last frame was speech (no hangover): AGC adapts on these
    voiced: bool = False  # speech or in hangover
    hangover_frames: int = 0
    level_dbfs: float = SILENCE_DBFS  # short-term level, before AGC
    noise_minima: tuple[float, ...] = (math.inf,) * NOISE_WINDOWS  # of the last windows
    noise_floor_dbfs: float = math.inf  # min(noise_minima)
    window_min_dbfs: float = math.inf  # lowest level in the current noise window
    window_frames: int = 0
    selected: bool = False
    challenge_frames: int = 0  # consecutive frames louder than a talker by SWAP_MARGIN_DB
    gain_db: float = 0.0
    levelling: bool = False  # the AGC gain is moving (see dsp.agc's hysteresis)
    speech_level_dbfs: float = math.nan  # NaN: no speech heard yet
    speech_frames: int = 0

    @property
    def heard_level_dbfs(self) -> float:
        """The short-term level after this member's AGC gain: what listeners hear."""
        return self.level_dbfs + self.gain_db


def frame_levels_dbfs(frames: NDArray[np.float32]) -> NDArray[np.float64]:
    """Return the RMS level of each row of `(k, n)` float32 frames in dBFS, as `(k,)`."""
    return energy_levels_dbfs(
        np.einsum("ij,ij->i", frames, frames, dtype=np.float64), frames.shape[1])


def energy_levels_dbfs(energies: NDArray[np.float64], samples: int) -> NDArray[np.float64]:
    """`frame_levels_dbfs` from frames' energies (sums of squares) of `samples` each, for a
    caller that has summed them already."""
    power = np.asarray(energies, np.float64) / samples
    levels: NDArray[np.float64] = 10.0 * np.log10(np.maximum(power, 10 ** (SILENCE_DBFS / 10)))
    return levels


def detect_voice(
    frames: NDArray[np.float32], states: Sequence[TalkerState], rate_hz: int,
    *, classify: bool = True, rows: NDArray[np.intp] | None = None,
    energies: NDArray[np.float64] | None = None,
) -> NDArray[np.bool_]:
    """Return `(k,)` voiced flags (speech or hangover) for `(k, n)` float32 frames at `rate_hz`.

    All rows share one rate (8000 or 16000 Hz; 20 ms frames, 160 or 320 samples) and
    `states[i]` belongs to row i. Updates the states' levels, noise floors and hangovers.
    Only rows above ENERGY_FLOOR_DBFS and their noise floor by NOISE_MARGIN_DB are given to
    webrtcvad, one call each; everything else is numpy over all rows. With `classify`
    False, every row above ENERGY_FLOOR_DBFS is speech, whatever it sounds like: for lines
    that carry music or an already mixed room, where only the level says who is on.

    `rows`: the frames judged are `frames[rows]`, `states[i]` that of `frames[rows[i]]`;
    a bridge judges rows of the frames it popped where they lie, not a copy of them (only
    the few loud ones are copied, for webrtcvad). `energies`: the judged frames' sums of
    squares, where the caller has summed them already.
    """
    count = len(states)
    judged = count if rows is None else rows.shape[0]
    if frames.ndim != 2 or judged != count or (rows is None and frames.shape[0] != count):
        raise ValueError(f"expected ({count}, samples) frames, got {frames.shape}"
                         + ("" if rows is None else f" and {judged} rows"))
    if energies is not None and np.shape(energies) != (count,):
        raise ValueError(f"expected {count} energies, got {np.shape(energies)}")
    if energies is not None:
        levels = energy_levels_dbfs(energies, frames.shape[1])
    else:
        levels = frame_levels_dbfs(frames if rows is None else frames[rows])
    noise = _update_noise_floors(levels, states)
    if not classify:
        speech = levels > ENERGY_FLOOR_DBFS
        loud = np.zeros(0, dtype=np.intp)
    else:
        loud = np.flatnonzero((levels > ENERGY_FLOOR_DBFS) & (levels > noise + NOISE_MARGIN_DB))
        speech = np.zeros(count, dtype=np.bool_)
    if loud.size:
        pcm = to_pcm16(frames[loud if rows is None else rows[loud]])
        for k, row in enumerate(loud.tolist()):
            speech[row] = states[row].vad.is_speech(pcm[k].tobytes(), rate_hz)
    previous = np.fromiter((s.level_dbfs for s in states), np.float64, count)
    rate = np.where(levels > previous, LEVEL_RISE, LEVEL_FALL)
    smoothed = previous + rate * (levels - previous)
    hangovers = np.fromiter((s.hangover_frames for s in states), np.int_, count)
    voiced = speech | (hangovers > 0)
    hangovers = np.where(speech, HANGOVER_FRAMES, np.maximum(hangovers - 1, 0))
    for state, level, hangover, is_speech, is_voiced in zip(
        states, smoothed.tolist(), hangovers.tolist(), speech.tolist(), voiced.tolist(),
        strict=True,
    ):
        state.level_dbfs = level
        state.hangover_frames = hangover
        state.speech = is_speech
        state.voiced = is_voiced
    return voiced


def _update_noise_floors(
    levels: NDArray[np.float64], states: Sequence[TalkerState]
) -> NDArray[np.float64]:
    """Fold this frame's levels into the noise-floor windows; return the floors `(k,)`."""
    count = len(states)
    window_min = np.minimum(
        np.fromiter((s.window_min_dbfs for s in states), np.float64, count), levels
    )
    # A new line's floor is its first frames until its first window closes.
    floors = np.minimum(
        np.fromiter((s.noise_floor_dbfs for s in states), np.float64, count), window_min
    )
    window_frames = NOISE_WINDOW_FRAMES
    for state, lowest in zip(states, window_min.tolist(), strict=True):
        frames_seen = state.window_frames + 1
        if frames_seen == window_frames:
            state.noise_minima = (*state.noise_minima[1:], lowest)
            state.noise_floor_dbfs = min(state.noise_minima)
            state.window_min_dbfs = math.inf
            state.window_frames = 0
        else:
            state.window_min_dbfs = lowest
            state.window_frames = frames_seen
    floors_dbfs: NDArray[np.float64] = floors
    return floors_dbfs


def age_silent(states: Sequence[TalkerState]) -> None:
    """Advance members that had no audio this tick: their hangover and level run down.

    A line with no audio is not speech; its noise floor is left alone, since the missing
    frame says nothing about the noise on the line.
    """
    fall = LEVEL_FALL
    for state in states:
        hangover = state.hangover_frames
        state.speech = False
        state.voiced = hangover > 0
        state.hangover_frames = hangover - 1 if hangover > 0 else 0
        state.level_dbfs += fall * (SILENCE_DBFS - state.level_dbfs)


def note_quiet_frames(states: Sequence[TalkerState]) -> None:
    """Tell lines whose frame this tick was below ENERGY_FLOOR_DBFS (digital silence, a
    quiet room) that their noise floor is that low.

    Such frames never reach `detect_voice`; without this, a line that is silent between
    words would take the quietest of its speech frames for its noise floor and lose the
    quiet parts of words. Only lines whose floor is above ENERGY_FLOOR_DBFS need it.
    """
    floor = ENERGY_FLOOR_DBFS
    for state in states:  # min() without its call: this runs for hundreds of lines a tick
        if state.window_min_dbfs > floor:
            state.window_min_dbfs = floor
        if state.noise_floor_dbfs > floor:
            state.noise_floor_dbfs = floor


def select_talkers(
    levels_dbfs: NDArray[np.float64],
    voiced: NDArray[np.bool_],
    was_selected: NDArray[np.bool_],
    challenge_frames: NDArray[np.int_],
    max_talkers: int,
) -> tuple[NDArray[np.bool_], NDArray[np.int_]]:
    """Return who is mixed `(m,)` bool, and the new challenge counts `(m,)`, for a room.

    Voiced members take free slots at once, loudest first. When all `max_talkers` slots
    are held, the loudest waiting newcomer is paired with the quietest talker (the next
    with the next): it takes that slot once it has been louder by SWAP_MARGIN_DB for
    SWAP_FRAMES frames in a row (`challenge_frames` counts them). A talker that falls
    silent (hangover over) frees its slot. Levels are in dBFS, as heard (after AGC).
    """
    levels = np.asarray(levels_dbfs, dtype=np.float64)
    selected = np.asarray(voiced, np.bool_) & np.asarray(was_selected, np.bool_)
    challenge = np.zeros(levels.shape[0], dtype=np.int_)
    holders = np.flatnonzero(selected)
    if holders.size > max_talkers:  # the room's limit was lowered
        quietest = np.argsort(levels[holders], kind="stable")[: holders.size - max_talkers]
        selected[holders[quietest]] = False
    waiting = np.flatnonzero(np.asarray(voiced, np.bool_) & ~selected)
    if waiting.size == 0 or max_talkers <= 0:
        return selected, challenge
    waiting = waiting[np.argsort(-levels[waiting], kind="stable")]
    free = max_talkers - int(np.count_nonzero(selected))
    if free > 0:
        selected[waiting[:free]] = True
        waiting = waiting[free:]
    holders = np.flatnonzero(selected)
    holders = holders[np.argsort(levels[holders], kind="stable")]
    pairs = min(waiting.size, holders.size)
    newcomers, incumbents = waiting[:pairs], holders[:pairs]
    louder = levels[newcomers] > levels[incumbents] + SWAP_MARGIN_DB
    counts = np.where(louder, np.asarray(challenge_frames)[newcomers] + 1, 0)
    swap = counts >= SWAP_FRAMES
    selected[newcomers[swap]] = True
    selected[incumbents[swap]] = False
    challenge[newcomers] = np.where(swap, 0, counts)
    return selected, challenge


def choose_talkers(
    states: Sequence[TalkerState], max_talkers: int
) -> NDArray[np.bool_]:
    """Run `select_talkers` over a room's members (all rates) from and into their states.

    Call after `detect_voice`/`age_silent` have run for every member this tick; ranks by
    `heard_level_dbfs`. Returns `(m,)` bool: who is mixed.
    """
    count = len(states)
    levels = np.fromiter((s.level_dbfs + s.gain_db for s in states), np.float64, count)
    voiced = np.fromiter((s.voiced for s in states), np.bool_, count)
    was_selected = np.fromiter((s.selected for s in states), np.bool_, count)
    challenge = np.fromiter((s.challenge_frames for s in states), np.int_, count)
    selected, new_challenge = select_talkers(
        levels, voiced, was_selected, challenge, max_talkers
    )
    for row in np.flatnonzero((selected != was_selected) | (new_challenge != challenge)).tolist():
        state = states[row]
        state.selected = bool(selected[row])
        state.challenge_frames = int(new_challenge[row])
    return selected
