"""The keypad of issue #4: mute states, hands, head count, volume, moderator commands,
webinar mode, waiting for a moderator, locking, recording and ending the meeting.

Every prompt here is its own short clip, so a test reads which prompts a member was
given from their player's queue; what the others hear is checked on the decoded audio.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bridge.conference.keypad import KeypadCommand
from bridge.conference.numbers import spoken_number
from bridge.conference.prompts import PromptLibrary
from bridge.conference.room import (
    END_CONFIRM_S,
    FloorGiven,
    HandChanged,
    HangUp,
    MeetingEnded,
    MuteChanged,
    MuteState,
    Phase,
    RecordingChanged,
    Role,
    Room,
    RoomLockChanged,
)
from bridge.config import RoomConfig
from tests.bridge.conference.test_room import FRAME, Harness, level_at

ROOM_RATE = 16000
ROOM_PROMPTS = (
    "enter_pin", "wrong_pin", "too_many_attempts", "welcome", "alone", "muted", "unmuted",
    "moderator", "hand_raised", "hand_lowered", "muted_by_moderator", "listen_only",
    "floor_given", "floor_given_to", "no_hands", "hand_raised_moderator", "there_are",
    "participants", "volume_up", "volume_down", "volume_limit", "help", "help_moderator",
    "all_muted", "all_unmuted", "locked", "unlocked", "room_locked", "room_full",
    "recording_started", "recording_stopped", "removed", "member_removed", "end_confirm",
    "meeting_ended", "wait_for_moderator", "hold_music", "moderator_mute_hand",
    "hotline_welcome", "leave_report", "report_saved", "queue_position", "in_queue",
    "operator_connected", "next_caller", "no_callers", "callers_waiting", "call_ended",
    "say_your_name", "has_joined", "has_left",
)
NUMBER_WORDS = sorted({w for n in range(0, 120) for w in spoken_number(n, "en")})
PIN, MODERATOR_PIN = "4321", "9876"


class Prompts:
    """A library of 30 ms clips, one per name, and the way back from clip to name."""

    def __init__(self) -> None:
        samples = ROOM_RATE * 3 // 100
        self.names: dict[int, str] = {}
        clips = {}
        for index, name in enumerate((*ROOM_PROMPTS, *NUMBER_WORDS)):
            clip = np.full(samples, 0.01 + index * 1e-4, dtype=np.float32)
            clips[("en", name)] = clip
            self.names[id(clip)] = name
        self.library = PromptLibrary(ROOM_RATE, clips)

    def queued(self, room: Room, member_id: int) -> list[str]:
        """The prompts waiting for a member (tones show as "tone"), and clear them."""
        player = room.member(member_id).prompts
        names = [self.names.get(id(clip), "tone") for clip in player.queued]
        player.stop()
        return names


def make_room(**options: object) -> tuple[Room, Prompts, Harness]:
    config = RoomConfig(
        id="rakor", extension="1000", name=None, pin=PIN, moderator_pin=MODERATOR_PIN,
        mode="meeting", access="anyone", language="en", codecs=("PCMU",),
        voice_detection=False, agc=False,
    )
    prompts = Prompts()
    room = Room(dataclasses.replace(config, **options), prompts.library)  # type: ignore[arg-type]
    return room, prompts, Harness(room)


def join(room: Room, harness: Harness, member_id: int, *, moderator: bool = False) -> None:
    room.add_member(member_id, f"m{member_id}", "PCMU", now=harness.now)
    harness.press(member_id, f"{MODERATOR_PIN if moderator else PIN}#")
    room.member(member_id).prompts.stop()


# -- everyone's keys -------------------------------------------------------------------------


def test_hand_raise_says_the_place_in_the_queue_and_tells_the_moderators() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    join(room, harness, 2)
    join(room, harness, 3)
    room.pop_actions()
    harness.press(2, "*9")
    harness.press(3, "*9")
    assert prompts.queued(room, 3) == ["hand_raised", *(spoken_number(2, "en"))]
    assert prompts.queued(room, 1) == ["tone", "hand_raised_moderator"] * 2
    assert room.raised_hands == [2, 3]
    harness.press(2, "*9")  # lowered: the next in line moves up
    assert prompts.queued(room, 2)[-1] == "hand_lowered"
    assert room.raised_hands == [3]
    assert room.pop_actions() == [
        HandChanged(2, True, 1), HandChanged(3, True, 2), HandChanged(2, False)
    ]


def test_head_count_speaks_the_number_present() -> None:
    room, prompts, harness = make_room()
    for member_id in range(1, 24):
        join(room, harness, member_id)
    room.add_member(99, "at the PIN prompt", "PCMU", now=harness.now)  # not counted yet
    harness.press(5, "*#")
    assert prompts.queued(room, 5) == ["there_are", "num_twenty", "num_three", "participants"]
    for member_id in range(2, 24):
        room.remove_member(member_id)
    harness.press(1, "*#")
    assert prompts.queued(room, 1) == ["alone"]


def test_volume_steps_change_what_the_member_hears_within_limits() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1)
    join(room, harness, 2)
    harness.run(10, {})
    before = level_at(harness.run(10, {2: 700.0})[1][-FRAME * 5 :], 700)
    harness.press(1, "*1")
    assert prompts.queued(room, 1) == ["volume_down"]
    after = level_at(harness.run(10, {2: 700.0})[1][-FRAME * 5 :], 700)
    assert 20 * np.log10(after / before) == pytest.approx(-3.0, abs=0.5)
    for _ in range(5):
        harness.press(1, "*3")
    assert prompts.queued(room, 1) == ["volume_up"] * 5
    harness.press(1, "*3")
    assert prompts.queued(room, 1) == ["volume_limit"]
    assert room.member(1).volume_steps == 4


def test_help_lists_moderator_commands_to_moderators_only() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    join(room, harness, 2)
    harness.press(1, "*0")
    harness.press(2, "*0")
    assert prompts.queued(room, 1) == ["help", "help_moderator"]
    assert prompts.queued(room, 2) == ["help"]


def test_participant_cannot_use_moderator_keys() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1)
    join(room, harness, 2)
    harness.press(2, "##")
    harness.press(2, "*5")
    assert not room.locked and room.member(1).mute is MuteState.FREE
    # "#", "#" and "*5": each rejected with an error tone, never silence.
    assert prompts.queued(room, 2) == ["tone", "tone", "tone"]


# -- mute all, unmute all, the floor -----------------------------------------------------------


def test_mute_all_spares_moderators_and_star_six_then_raises_the_hand() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    join(room, harness, 2)
    join(room, harness, 3)
    harness.press(3, "*6")  # self-muted before: still muted after, by the moderator now
    harness.run(10, {})
    room.pop_actions()
    harness.press(1, "##")
    assert room.member(1).mute is MuteState.FREE
    assert {room.member(m).mute for m in (2, 3)} == {MuteState.MODERATOR_MUTED}
    assert prompts.queued(room, 1) == ["all_muted"]
    assert prompts.queued(room, 2) == ["moderator_mute_hand"]
    heard = harness.run(10, {2: 600.0, 1: 900.0})
    # 2 is not heard (what is left is the moderator's tone leaking into the 600 Hz bin).
    assert level_at(heard[3][-FRAME * 5 :], 600) < 0.01
    assert level_at(heard[3][-FRAME * 5 :], 900) > 0.2  # the moderator is
    harness.press(2, "*6")
    assert room.member(2).mute is MuteState.MODERATOR_MUTED
    assert prompts.queued(room, 2) == ["muted_by_moderator", "hand_raised", "num_one"]
    assert room.raised_hands == [2]
    room.pop_actions()
    harness.press(1, "99")
    assert {room.member(m).mute for m in (2, 3)} == {MuteState.FREE}
    assert room.pop_actions() == [
        MuteChanged(2, MuteState.FREE), MuteChanged(3, MuteState.FREE)
    ]


def test_unmute_all_leaves_a_members_own_mute_alone() -> None:
    room, _, harness = make_room()
    join(room, harness, 1, moderator=True)
    join(room, harness, 2)
    harness.press(2, "*6")
    harness.press(1, "99")
    assert room.member(2).mute is MuteState.SELF_MUTED


def test_floor_goes_to_the_first_raised_hand() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    for member_id in (2, 3, 4):
        join(room, harness, member_id)
    harness.press(1, "##")
    harness.press(3, "*9")
    harness.press(2, "*9")
    for member_id in (1, 2, 3, 4):
        prompts.queued(room, member_id)
    room.pop_actions()
    harness.press(1, "*8")
    assert room.member(3).mute is MuteState.FREE
    assert room.member(2).mute is MuteState.MODERATOR_MUTED
    assert prompts.queued(room, 3) == ["floor_given"]
    assert prompts.queued(room, 1) == ["floor_given_to"]
    assert room.raised_hands == [2]
    assert room.pop_actions() == [
        HandChanged(3, False), MuteChanged(3, MuteState.FREE), FloorGiven(1, 3)
    ]
    harness.press(1, "*8")
    harness.press(1, "*8")
    assert prompts.queued(room, 1) == ["floor_given_to", "no_hands"]


def test_a_hand_that_hangs_up_leaves_the_queue() -> None:
    room, _, harness = make_room()
    join(room, harness, 1, moderator=True)
    join(room, harness, 2)
    join(room, harness, 3)
    harness.press(2, "*9")
    harness.press(3, "*9")
    room.remove_member(2)
    harness.press(1, "*8")
    assert room.member(3).mute is MuteState.FREE and room.raised_hands == []


# -- lock, remove, end ------------------------------------------------------------------------


def test_locked_room_turns_participants_away_but_not_moderators() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    harness.press(1, "*5")
    assert room.locked and prompts.queued(room, 1) == ["locked"]
    assert room.pop_actions()[-1] == RoomLockChanged(1, True)
    room.add_member(2, "late", "PCMU", now=harness.now)
    harness.press(2, f"{PIN}#")
    assert room.member(2).phase is Phase.PIN_ENTRY  # never heard, never hears the room
    assert prompts.queued(room, 2) == ["room_locked"]
    harness.run(int(1.0 / 0.02), {})
    assert HangUp(2, "room locked") in room.pop_actions()
    join(room, harness, 3, moderator=True)
    assert room.member(3).phase is Phase.IN_ROOM
    harness.press(1, "*5")
    assert not room.locked


def test_lock_is_lifted_when_the_room_empties() -> None:
    room, _, harness = make_room()
    join(room, harness, 1, moderator=True)
    harness.press(1, "*5")
    room.remove_member(1)
    assert not room.locked


def test_max_members_turns_away_the_one_too_many() -> None:
    room, prompts, harness = make_room(max_members=2)
    join(room, harness, 1)
    join(room, harness, 2)
    room.add_member(3, "third", "PCMU", now=harness.now)
    harness.press(3, f"{PIN}#")
    assert prompts.queued(room, 3) == ["room_full"]
    assert room.member(3).hang_up_reason == "room full"
    assert room.present_count == 2


def test_remove_last_joiner_skips_moderators() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    join(room, harness, 2)
    join(room, harness, 3)
    join(room, harness, 4, moderator=True)
    harness.press(4, "*2")
    assert room.member(3).hang_up_reason == "removed by a moderator"
    assert prompts.queued(room, 3) == ["removed"]
    assert prompts.queued(room, 4) == ["member_removed"]
    assert room.present_count == 3
    harness.run(int(1.0 / 0.02), {})
    assert HangUp(3, "removed by a moderator") in room.pop_actions()
    harness.press(4, "*2")
    assert room.member(2).hang_up_reason is not None


def test_end_meeting_needs_the_confirming_key_then_hangs_up_everyone() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    join(room, harness, 2)
    join(room, harness, 3)
    harness.press(1, "*4")
    assert prompts.queued(room, 1) == ["end_confirm"]
    harness.press(1, "2")  # anything else: nothing ends
    assert prompts.queued(room, 1) == ["tone"]
    assert all(room.member(m).hang_up_reason is None for m in (1, 2, 3))
    harness.press(1, "*4")
    harness.run(int(END_CONFIRM_S / 0.02) + 2, {})  # no answer: it lapses with a tone
    assert prompts.queued(room, 1) == ["tone"]
    room.pop_actions()
    harness.press(1, "*4")
    harness.press(1, "1")
    assert room.pop_actions()[0] == MeetingEnded(1, "ended by a moderator")
    for member_id in (1, 2, 3):
        assert prompts.queued(room, member_id) == ["meeting_ended"]
    harness.run(int(1.0 / 0.02), {})
    assert {a.member_id for a in room.pop_actions() if isinstance(a, HangUp)} == {1, 2, 3}


def test_end_when_the_last_moderator_leaves() -> None:
    room, _, harness = make_room(end_when_moderator_leaves=True, moderator_pin=MODERATOR_PIN)
    join(room, harness, 1, moderator=True)
    join(room, harness, 2, moderator=True)
    join(room, harness, 3)
    room.remove_member(1)
    assert room.member(3).hang_up_reason is None
    room.remove_member(2)
    assert room.member(3).hang_up_reason == "meeting the last moderator left"


# -- webinar, waiting for a moderator, announcements ---------------------------------------


def test_webinar_twenty_join_muted_and_the_floor_makes_one_audible() -> None:
    room, prompts, harness = make_room(mode="webinar")
    join(room, harness, 1, moderator=True)
    for member_id in range(2, 22):
        room.add_member(member_id, f"m{member_id}", "PCMU", now=harness.now)
        harness.press(member_id, f"{PIN}#")
        assert prompts.queued(room, member_id)[-1] == "listen_only"
        assert room.member(member_id).mute is MuteState.MODERATOR_MUTED
    harness.run(10, {})
    frequencies = {m: 300.0 + 50 * m for m in range(2, 22)}
    heard = harness.run(10, frequencies)
    assert np.abs(heard[1][-FRAME * 5 :]).max() < 0.001  # twenty lines, nobody heard
    harness.press(7, "*6")  # cannot unmute: raises the hand instead
    assert room.raised_hands == [7]
    harness.press(1, "*8")
    for listener in (1, 2, 21):
        prompts.queued(room, listener)  # the moderator's cues would cover the room
    heard = harness.run(10, frequencies)
    for listener in (1, 2, 21):
        tail = heard[listener][-FRAME * 5 :].astype(np.float64)
        # Member 7's tone and nothing else: all the power is in that one sine.
        amplitude = level_at(tail, frequencies[7])
        assert amplitude > 0.2
        assert np.sqrt(np.mean(tail**2)) == pytest.approx(amplitude / np.sqrt(2), rel=0.05)


def test_members_wait_with_music_until_a_moderator_joins() -> None:
    room, prompts, harness = make_room(wait_for_moderator=True)
    join(room, harness, 2)
    join(room, harness, 3)
    assert room.member(2).phase is Phase.WAITING
    heard = harness.run(10, {2: 600.0})
    assert level_at(heard[3][-FRAME * 5 :], 600) < 0.001  # not heard while waiting
    # The music (here a 30 ms clip of DC) comes round again and again.
    assert np.mean(np.abs(heard[3][-FRAME * 5 :])) > 0.005
    join(room, harness, 1, moderator=True)
    assert room.member(2).phase is Phase.IN_ROOM
    harness.run(10, {})
    heard = harness.run(10, {2: 600.0})
    assert level_at(heard[3][-FRAME * 5 :], 600) > 0.2


def test_chime_announces_joins_and_leaves_to_those_in_the_room() -> None:
    room, prompts, harness = make_room(announce="chime")
    join(room, harness, 1)
    join(room, harness, 2)
    assert prompts.queued(room, 1) == ["tone"]
    room.remove_member(2)
    assert prompts.queued(room, 1) == ["tone"]


# -- recording -----------------------------------------------------------------------------


def test_recording_toggle_tells_everyone_and_hands_out_the_mix() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    join(room, harness, 2)
    room.pop_actions()
    harness.press(1, "*7")
    assert room.recording
    assert room.pop_actions() == [RecordingChanged(1, True)]
    assert prompts.queued(room, 1) == prompts.queued(room, 2) == ["recording_started"]
    harness.run(5, {2: 600.0})
    frames = room.pop_recorded()
    assert len(frames) == 5 and all(f.shape == (ROOM_RATE // 50,) for f in frames)
    assert np.abs(frames[-1]).max() > 0.1  # member 2 speaking, in the full mix
    join(room, harness, 3)  # a latecomer is told too
    harness.press(1, "*7")
    assert not room.recording and prompts.queued(room, 1) == ["recording_stopped"]
    harness.run(2, {})
    assert room.pop_recorded() == []


def test_config_record_starts_with_the_first_member_and_stops_when_empty() -> None:
    room, _, harness = make_room(record=True)
    join(room, harness, 1)
    assert room.recording and room.pop_actions()[-1] == RecordingChanged(0, True)
    room.remove_member(1)
    assert not room.recording and room.pop_actions()[-1] == RecordingChanged(0, False)


def test_a_room_keymap_remaps_and_disables_keys() -> None:
    keymap = (("mute", "*1"), ("count", "*#"), ("end", "*4"))
    room, prompts, harness = make_room(keymap=keymap)
    join(room, harness, 1, moderator=True)
    harness.press(1, "*1")
    assert room.member(1).mute is MuteState.SELF_MUTED
    harness.press(1, "*6")
    assert prompts.queued(room, 1)[-1] == "tone"
    assert KeypadCommand("end") is KeypadCommand.END
    assert room.member(1).role is Role.MODERATOR


def test_a_moderators_stop_holds_in_a_room_that_records_by_itself() -> None:
    room, _, harness = make_room(record=True)
    join(room, harness, 1, moderator=True)
    harness.press(1, "*7")
    assert not room.recording
    join(room, harness, 2)
    assert not room.recording  # the newcomer does not start it again
    room.remove_member(1)
    room.remove_member(2)
    join(room, harness, 3)
    assert room.recording  # a new meeting in the room: recorded again


def test_a_recording_that_cannot_start_is_off_and_the_moderator_hears_an_error() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    harness.press(1, "*7")
    prompts.queued(room, 1)
    room.recording_failed(1)
    assert not room.recording and prompts.queued(room, 1) == ["tone"]
    harness.press(1, "*7")
    assert room.recording  # the next *7 tries again


def test_members_still_naming_count_towards_max_members() -> None:
    room, prompts, harness = make_room(max_members=2, announce="name")
    for member_id in (1, 2, 3):
        room.add_member(member_id, f"m{member_id}", "PCMU", now=harness.now)
        harness.press(member_id, f"{PIN}#")
    assert room.member(3).hang_up_reason == "room full"
    assert prompts.queued(room, 3) == ["room_full"]
