"""Talker detection, selection and levels in a room, with speech rather than tones.

The speech is the shipped English welcome prompt (espeak-ng, 2.4 s), looped, sent by PCMU
members at 8 kHz; noisy lines carry white noise. What listeners receive is decoded.
"""

from __future__ import annotations

import numpy as np

from bridge.conference.prompts import PromptLibrary
from bridge.conference.room import Room, TalkingChanged
from bridge.config import RoomConfig
from dsp.codecs import get_codec
from dsp.level import rms_dbfs
from dsp.resample import resample
from tests.dsp.codecs.speech import SPEECH

RATE = 8000
FRAME = 160
SPEECH_8K = resample(SPEECH, 16000, RATE).astype(np.float32)


def room(**settings: object) -> Room:
    config = RoomConfig(
        id="r", extension="1", name=None, pin=None, moderator_pin=None, mode="meeting",
        access="anyone", language="en", codecs=("PCMU",), **settings,  # type: ignore[arg-type]
    )
    silence = np.zeros(320, dtype=np.float32)
    names = ("alone", "welcome", "muted", "unmuted")
    return Room(config, PromptLibrary(16000, {("en", n): silence for n in names}))


def at_level(clip: np.ndarray, dbfs: float) -> np.ndarray:
    """`clip` scaled so its speech frames (above -50 dBFS) average `dbfs`."""
    frames = clip[: len(clip) // FRAME * FRAME].reshape(-1, FRAME)
    levels = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    active = frames[levels > levels.max() - 30]
    gain = 10 ** ((dbfs - rms_dbfs(active)) / 20)
    return (clip * gain).astype(np.float32)


class Lines:
    """Members' audio sent as PCMU, one 20 ms frame a tick; what each hears, decoded."""

    def __init__(self, room: Room, sources: dict[int, np.ndarray], listeners: int) -> None:
        self.room = room
        self.codec = get_codec("PCMU")
        self.sources = sources
        for member_id in [*sources, *range(100, 100 + listeners)]:
            room.add_member(member_id, str(member_id), "PCMU", now=0.0)
        self.tick = 0
        self.events: list[TalkingChanged] = []
        self.talking: set[int] = set()
        self.talkers_per_tick: list[int] = []

    def run(self, ticks: int) -> dict[int, np.ndarray]:
        heard: dict[int, list[np.ndarray]] = {}
        for _ in range(ticks):
            for member_id, clip in self.sources.items():
                start = self.tick * FRAME % (len(clip) - FRAME)
                frame = clip[start : start + FRAME]
                payload = self.codec.encode(frame[np.newaxis])[0].tobytes()
                self.room.push_audio(member_id, self.tick * FRAME, payload)
            out = self.room.tick(self.tick * 0.02)
            self.tick += 1
            for action in self.room.pop_actions():
                if isinstance(action, TalkingChanged):
                    self.events.append(action)
                    if action.talking:
                        self.talking.add(action.member_id)
                    else:
                        self.talking.discard(action.member_id)
            self.talkers_per_tick.append(len(self.talking))
            for member_id, packet in out.items():
                if packet.payload is not None:
                    heard.setdefault(member_id, []).append(self.codec.decode(packet.payload))
        return {m: np.concatenate(chunks) for m, chunks in heard.items()}


def noise(seconds: float, dbfs: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(seconds * RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def test_noisy_lines_are_not_mixed_and_the_talker_is() -> None:
    lines = {m: noise(3.0, -45.0, m) for m in range(2, 12)}
    # The talker starts after 2 s of silence.
    lines[1] = np.concatenate([np.zeros(2 * RATE, np.float32), at_level(SPEECH_8K, -26.0)])
    harness = Lines(room(), lines, listeners=1)
    heard = harness.run(200)[100]
    assert {e.member_id for e in harness.events} == {1}
    assert TalkingChanged(1, True) in harness.events
    # Ten lines of noise at -45 dBFS summed would be -35 dBFS; before the talker speaks
    # the listener hears nothing, then the talker.
    assert rms_dbfs(heard[10 * FRAME : 95 * FRAME]) < -70.0
    assert rms_dbfs(heard[110 * FRAME :]) > -35.0


def test_no_more_than_max_talkers_are_mixed() -> None:
    clips = {m: at_level(np.roll(SPEECH_8K, 1234 * m), -26.0) for m in range(1, 6)}
    harness = Lines(room(max_talkers=2), clips, listeners=1)
    harness.run(250)
    assert max(harness.talkers_per_tick) == 2
    assert len({e.member_id for e in harness.events}) >= 2


def test_agc_brings_a_quiet_talker_to_the_room_level_and_off_leaves_it() -> None:
    quiet = at_level(SPEECH_8K, -40.0)
    levels = {}
    for agc in (True, False):
        heard = Lines(room(agc=agc), {1: quiet}, listeners=1).run(500)[100]
        frames = heard[250 * FRAME :].reshape(-1, FRAME)
        active = frames[np.mean(frames.astype(np.float64) ** 2, axis=1) > 10 ** (-65 / 10)]
        levels[agc] = rms_dbfs(active)
    assert -30.0 < levels[True] < -22.0
    assert levels[False] < -37.0
