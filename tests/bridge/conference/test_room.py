"""A room's behaviour: N-1 audio, shared encodes, PIN entry, self-mute, hold."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.conference.prompts import PromptLibrary
from bridge.conference.room import (
    HANG_UP_DRAIN_S,
    HangUp,
    MemberJoined,
    MuteChanged,
    MuteState,
    Phase,
    PinRejected,
    Role,
    Room,
    TalkingChanged,
)
from bridge.config import RoomConfig
from dsp.codecs import get_codec
from dsp.resample import (
    downsample_16k_to_8k,
    downsampler_state,
    upsample_8k_to_16k,
    upsampler_state,
)

RATE = 8000  # what PCMU members send and hear
FRAME = 160
ROOM_RATE = 16000  # what the room mixes and prompts play at
PROMPT_NAMES = ("enter_pin", "wrong_pin", "too_many_attempts", "welcome", "alone", "muted",
                "unmuted", "moderator")


def prompt_library() -> PromptLibrary:
    """Each prompt a 100 ms tone at its own frequency, so tests can tell them apart."""
    t = np.arange(ROOM_RATE // 10) / ROOM_RATE
    clips = {
        ("en", name): (0.1 * np.sin(2 * np.pi * (300 + 100 * i) * t)).astype(np.float32)
        for i, name in enumerate(PROMPT_NAMES)
    }
    return PromptLibrary(ROOM_RATE, clips)


def room_config(pin: str | None = None, moderator_pin: str | None = None) -> RoomConfig:
    # Tones are not speech: every line above the floor is a talker here, at the level it
    # was sent, so tests can tell members apart by frequency (VAD and AGC: test_talkers.py).
    return RoomConfig(
        id="rakor", extension="1000", name=None, pin=pin, moderator_pin=moderator_pin,
        mode="meeting", access="anyone", language="en", codecs=("PCMU", "PCMA"),
        voice_detection=False, agc=False,
    )


def tone(freq_hz: float, index: int) -> np.ndarray:
    t = (np.arange(FRAME) + index * FRAME) / RATE
    return (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


class Harness:
    """Feeds members' audio as PCMU payloads and decodes what the room sends back."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.codec = get_codec("PCMU")
        self.index = 0
        self.now = 0.0

    def step(self, talkers: dict[int, float]) -> dict[int, np.ndarray]:
        for member_id, freq in talkers.items():
            payload = self.codec.encode(tone(freq, self.index)[np.newaxis])[0].tobytes()
            self.room.push_audio(member_id, self.index * FRAME, payload)
        out = self.room.tick(self.now)
        self.index += 1
        self.now += 0.02
        return {m: self.codec.decode(p.payload) for m, p in out.items() if p.payload is not None}

    def run(self, frames: int, talkers: dict[int, float]) -> dict[int, np.ndarray]:
        heard: dict[int, list[np.ndarray]] = {}
        for _ in range(frames):
            for member_id, samples in self.step(talkers).items():
                heard.setdefault(member_id, []).append(samples)
        return {m: np.concatenate(chunks) for m, chunks in heard.items()}

    def press(self, member_id: int, digits: str) -> None:
        for digit in digits:
            self.room.press(member_id, digit, self.now)


def level_at(samples: np.ndarray, freq_hz: float) -> float:
    """Amplitude of one frequency component (single-bin DFT)."""
    t = np.arange(samples.shape[0]) / RATE
    return float(2 * abs(np.mean(samples * np.exp(-2j * np.pi * freq_hz * t))))


def test_pinless_room_admits_at_once_and_says_alone() -> None:
    room = Room(room_config(), prompt_library())
    room.add_member(1, "A", "PCMU", now=0.0)
    assert room.member(1).phase is Phase.IN_ROOM
    assert room.pop_actions() == [MemberJoined(1, Role.PARTICIPANT)]
    assert room.member(1).prompts.playing  # "you are the only participant"
    room.add_member(2, "B", "PCMU", now=0.0)
    assert not room.member(2).prompts.playing


def test_each_member_hears_the_others_but_not_itself() -> None:
    room = Room(room_config(), prompt_library())
    for member_id in (1, 2, 3):
        room.add_member(member_id, str(member_id), "PCMU", now=0.0)
    harness = Harness(room)
    harness.run(20, {})  # let the "alone" prompt finish
    heard = harness.run(20, {1: 500.0, 2: 1300.0})
    tail = {m: s[-FRAME * 10 :] for m, s in heard.items()}
    assert level_at(tail[1], 1300) > 0.2 and level_at(tail[1], 500) < 0.01
    assert level_at(tail[2], 500) > 0.2 and level_at(tail[2], 1300) < 0.01
    assert level_at(tail[3], 500) > 0.2 and level_at(tail[3], 1300) > 0.2


def test_listeners_share_one_encode() -> None:
    room = Room(room_config(), prompt_library())
    for member_id in range(1, 6):
        room.add_member(member_id, str(member_id), "PCMU", now=0.0)
    harness = Harness(room)
    harness.run(20, {})
    harness.step({1: 700.0})
    harness.step({1: 700.0})
    codec = harness.codec
    payload = codec.encode(tone(700.0, harness.index)[np.newaxis])[0].tobytes()
    room.push_audio(1, harness.index * FRAME, payload)
    out = room.tick(harness.now)
    assert out[2].payload is out[3].payload is out[4].payload is out[5].payload
    assert out[1].payload is not out[2].payload


def test_self_mute_silences_a_member_for_the_others_and_unmute_restores() -> None:
    room = Room(room_config(), prompt_library())
    room.add_member(1, "A", "PCMU", now=0.0)
    room.add_member(2, "B", "PCMU", now=0.0)
    harness = Harness(room)
    harness.run(20, {})
    room.pop_actions()
    assert level_at(harness.run(10, {1: 800.0})[2][-FRAME * 5 :], 800) > 0.2
    harness.press(1, "*6")
    assert room.member(1).mute is MuteState.SELF_MUTED
    assert room.pop_actions() == [TalkingChanged(1, True), MuteChanged(1, MuteState.SELF_MUTED)]
    # The first frame still carries the resampling filters' tail (2 x 4.6 ms) of the
    # word the mute cut off; from then on, nothing.
    assert level_at(harness.run(10, {1: 800.0})[2][FRAME:], 800) < 0.001
    assert room.pop_actions() == [TalkingChanged(1, False)]
    harness.press(1, "*6")
    assert room.member(1).mute is MuteState.FREE
    assert level_at(harness.run(10, {1: 800.0})[2][-FRAME * 5 :], 800) > 0.2


def test_self_mute_is_confirmed_to_the_member_only() -> None:
    room = Room(room_config(), prompt_library())
    room.add_member(1, "A", "PCMU", now=0.0)
    room.add_member(2, "B", "PCMU", now=0.0)
    harness = Harness(room)
    harness.run(20, {})
    harness.press(1, "*6")
    heard = harness.run(40, {})
    assert np.abs(heard[1]).max() > 0.05  # tone + "muted" prompt
    assert np.abs(heard[2]).max() < 0.001


def test_moderator_mute_cannot_be_lifted_with_star_six() -> None:
    room = Room(room_config(), prompt_library())
    room.add_member(1, "A", "PCMU", now=0.0)
    room.member(1).mute = MuteState.MODERATOR_MUTED
    Harness(room).press(1, "*6")
    assert room.member(1).mute is MuteState.MODERATOR_MUTED


def test_unknown_sequence_plays_an_error_tone() -> None:
    room = Room(room_config(), prompt_library())
    room.add_member(1, "A", "PCMU", now=0.0)
    harness = Harness(room)
    harness.run(20, {})
    harness.press(1, "*4")
    assert room.member(1).prompts.playing


def test_pin_room_holds_members_out_until_the_right_pin() -> None:
    room = Room(room_config(pin="4321", moderator_pin="9876"), prompt_library())
    room.add_member(1, "A", "PCMU", now=0.0)
    room.add_member(2, "B", "PCMU", now=0.0)
    harness = Harness(room)
    harness.press(2, "4321#")
    assert room.member(2).phase is Phase.IN_ROOM
    harness.run(20, {})
    heard = harness.run(10, {1: 600.0})  # member 1 still at the PIN prompt
    assert level_at(heard[2], 600) < 0.001
    harness.press(1, "9876#")
    assert room.member(1).role is Role.MODERATOR
    heard = harness.run(20, {1: 600.0})
    assert level_at(heard[2][-FRAME * 5 :], 600) > 0.2


def test_three_wrong_pins_hang_up_after_the_goodbye_prompt_has_drained() -> None:
    room = Room(room_config(pin="4321"), prompt_library())
    room.add_member(1, "A", "PCMU", now=0.0)
    harness = Harness(room)
    for attempt in (1, 2, 3):
        harness.press(1, "1111#")
        actions = room.pop_actions()
        assert PinRejected(1, attempt) in actions
    assert not any(isinstance(a, HangUp) for a in room.pop_actions())
    frames: list[np.ndarray] = []
    while 1 in room and len(frames) < 100:
        heard = harness.step({})
        if 1 in heard:
            frames.append(heard[1])
    assert room.pop_actions() == [HangUp(1, "wrong PIN")]
    assert 1 not in room
    # The 100 ms goodbye prompt (5 frames at 500 Hz), then silence long enough for the
    # caller's jitter buffer to play the prompt's end before the BYE.
    goodbye, drain = np.concatenate(frames[:5]), np.concatenate(frames[5:])
    assert level_at(goodbye, 500) > 0.05
    assert np.all(drain == 0.0)
    assert HANG_UP_DRAIN_S <= len(frames[5:]) * FRAME / RATE <= HANG_UP_DRAIN_S + FRAME / RATE


def test_silence_at_the_pin_prompt_counts_as_a_try() -> None:
    room = Room(room_config(pin="4321"), prompt_library())
    room.add_member(1, "A", "PCMU", now=0.0)
    harness = Harness(room)
    harness.run(10, {})  # prompt plays out; the PIN timer starts
    harness.now += 10.0
    harness.run(1, {})
    assert PinRejected(1, 1) in room.pop_actions()


def test_member_on_hold_is_not_mixed() -> None:
    room = Room(room_config(), prompt_library())
    room.add_member(1, "A", "PCMU", now=0.0)
    room.add_member(2, "B", "PCMU", now=0.0)
    harness = Harness(room)
    harness.run(20, {})
    room.set_on_hold(1, True)
    assert level_at(harness.run(10, {1: 900.0})[2], 900) < 0.001


def test_loud_talkers_are_limited_not_wrapped() -> None:
    room = Room(room_config(), prompt_library())
    for member_id in range(1, 6):
        room.add_member(member_id, str(member_id), "PCMU", now=0.0)
    harness = Harness(room)
    harness.run(20, {})
    heard = harness.run(10, {1: 400.0, 2: 400.0, 3: 400.0, 4: 400.0})
    assert np.abs(heard[5]).max() < 1.0
    # The sum of four in-phase 0.3 tones would be 1.2: limited, with its sign kept.
    assert level_at(heard[5][-FRAME * 5 :], 400) > 0.6


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_members_with_different_codecs_hear_each_other(codec: str) -> None:
    room = Room(room_config(), prompt_library())
    room.add_member(1, "A", "PCMU", now=0.0)
    room.add_member(2, "B", codec, now=0.0)
    harness = Harness(room)
    harness.run(20, {})
    out_codec = get_codec(codec)
    for _ in range(10):
        harness.step({1: 1000.0})
    payload = room.tick(harness.now)[2].payload
    assert payload is not None
    assert level_at(out_codec.decode(payload), 1000) > 0.2


def test_a_talker_going_silent_is_heard_to_the_end_of_the_resampling_filters() -> None:
    """A tone that stops dead: the listener gets it and the filters' ring-out, as the
    8 -> 16 -> 8 kHz path without any gating would give it, not a frame cut off where
    the talker fell below the floor (the talker keeps its slot, and its filter history,
    while it is quiet)."""
    room = Room(room_config(), prompt_library())
    room.add_member(1, "talker", "PCMU", now=0.0)
    room.add_member(2, "listener", "PCMU", now=0.0)
    harness = Harness(room)
    harness.run(20, {})  # the "alone" prompt is over
    sent = [tone(500.0, i) for i in range(10)] + [np.zeros(FRAME, np.float32)] * 10
    codec = harness.codec
    heard = []
    for frame in sent:
        payload = codec.encode(frame[np.newaxis])[0].tobytes()
        room.push_audio(1, harness.index * FRAME, payload)
        out = room.tick(harness.now)
        harness.index += 1
        harness.now += 0.02
        heard.append(codec.decode(out[2].payload))
    received = np.concatenate(heard)
    # The reference: the same decoded frames through the same filters, never gated.
    up, down = upsampler_state()[np.newaxis], downsampler_state()[np.newaxis]
    expected = []
    for frame in sent:
        decoded = codec.decode(codec.encode(frame[np.newaxis])[0])[np.newaxis]
        wide, up = upsample_8k_to_16k(decoded.astype(np.float32), up)
        narrow, down = downsample_16k_to_8k(wide, down)
        expected.append(narrow[0])
    reference = np.concatenate(expected)
    lag = int(np.argmax(np.correlate(received, reference[: 5 * FRAME], mode="valid")))
    aligned = received[lag : lag + reference.shape[0]]
    end = 10 * FRAME  # where the tone stops; the ring-out follows
    ring = slice(end, end + 40)
    assert np.abs(reference[ring]).max() > 0.01  # there is a tail to hear
    error = aligned[ring] - reference[ring]
    assert np.sqrt(np.mean(error**2)) < 0.1 * np.sqrt(np.mean(reference[ring] ** 2))


def test_a_lone_g711_talker_reaches_g711_listeners_sample_for_sample() -> None:
    """One narrowband talker, nothing to mix it with: the listener's G.711 samples are the
    talker's, only later (no filtering, no requantizing); a second talker brings the
    16 kHz mix back."""
    room = Room(room_config(), prompt_library())
    for member_id in (1, 2, 3):
        room.add_member(member_id, str(member_id), "PCMU", now=0.0)
    harness = Harness(room)
    harness.run(20, {})
    rng = np.random.default_rng(5)
    sent = [(0.05 * rng.standard_normal(FRAME)).astype(np.float32) for _ in range(30)]
    codec = harness.codec
    decoded_sent, heard = [], []
    for frame in sent:
        payload = codec.encode(frame[np.newaxis])[0].tobytes()
        decoded_sent.append(codec.decode(payload))
        room.push_audio(1, harness.index * FRAME, payload)
        out = room.tick(harness.now)
        harness.index += 1
        harness.now += 0.02
        heard.append(codec.decode(out[3].payload))
    talker, listener = np.concatenate(decoded_sent), np.concatenate(heard)
    lag = int(np.argmax(np.correlate(listener, talker[:FRAME], mode="valid")))
    steady = slice(2 * FRAME, 25 * FRAME)
    np.testing.assert_array_equal(listener[lag:][steady], talker[steady])
    both = harness.run(10, {1: 500.0, 2: 1300.0})[3][-FRAME * 5 :]
    assert level_at(both, 500) > 0.2 and level_at(both, 1300) > 0.2
