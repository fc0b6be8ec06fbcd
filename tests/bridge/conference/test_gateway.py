"""Gateway members (issue #5): a leg to a video meeting is mixed like a talker, hears the
room minus itself, but is no person: no PIN, keypad, mute, count or prompt of its own; and
the room tells the controller when to connect such legs (`RoomStarted`) and hang them up
(`RoomEmptied`)."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.conference.room import (
    DigitHeard,
    HangUp,
    MeetingEnded,
    MemberJoined,
    MuteChanged,
    MuteState,
    Phase,
    RecordingChanged,
    Role,
    Room,
    RoomEmptied,
    RoomStarted,
)
from dsp.codecs import codec_rates, new_decoder, new_encoder
from dsp.codecs.base import EncoderSettings
from tests.bridge.conference.test_media import Caller, keyed, level_db, quiet_room, run, sine
from tests.bridge.conference.test_moderation import PIN, join, make_room
from tests.bridge.conference.test_room import FRAME, Harness, level_at

GATEWAY = 9
TICKS_PER_S = 50


def connect(room: Room, harness: Harness, member_id: int = GATEWAY) -> None:
    """The controller brings a video meeting's leg into the room (PCMU, as the harness)."""
    room.add_member(member_id, "video meeting", "PCMU", now=harness.now, gateway=True)


class Leg(Caller):
    """The video meeting's end of a gateway leg: a `Caller` whose member is a gateway."""

    def __init__(self, room: Room, member_id: int, codec: str) -> None:
        room.add_member(member_id, "video meeting", codec, 0.0, gateway=True)
        self.room, self.member_id, self.codec = room, member_id, codec
        self.settings = EncoderSettings()
        self.rate_hz, self.clock_hz = codec_rates(codec)
        self.encoder = new_encoder(codec, self.settings)
        self.decoder = new_decoder(codec)
        self.timestamp = 0
        self.heard = []
        self.packets = []


# -- joining ---------------------------------------------------------------------------------


def test_gateway_joins_a_pin_room_at_once_unannounced_and_hears_no_prompt() -> None:
    room, prompts, harness = make_room(announce="chime")
    join(room, harness, 1)
    room.pop_actions()
    connect(room, harness)
    gateway = room.member(GATEWAY)
    assert gateway.phase is Phase.IN_ROOM and gateway.role is Role.PARTICIPANT
    assert room.pop_actions() == [MemberJoined(GATEWAY, Role.PARTICIPANT)]
    assert prompts.queued(room, GATEWAY) == []  # no "enter PIN", "welcome" or "alone"
    assert prompts.queued(room, 1) == []  # no chime for it
    room.remove_member(GATEWAY)
    assert prompts.queued(room, 1) == [] and room.pop_actions() == []


def test_gateway_is_never_asked_for_its_name() -> None:
    room, prompts, harness = make_room(announce="name")
    connect(room, harness)
    assert room.member(GATEWAY).phase is Phase.IN_ROOM
    assert prompts.queued(room, GATEWAY) == []


def test_gateway_passes_a_lock() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    harness.press(1, "*5")
    connect(room, harness)
    assert room.locked and room.member(GATEWAY).phase is Phase.IN_ROOM
    assert room.member(GATEWAY).hang_up_reason is None
    assert prompts.queued(room, GATEWAY) == []


def test_gateway_passes_max_members_and_takes_no_place_in_it() -> None:
    room, _, harness = make_room(max_members=1)
    join(room, harness, 1)
    connect(room, harness)
    assert room.member(GATEWAY).hang_up_reason is None
    room.remove_member(1)
    join(room, harness, 2)  # the one place is free: the gateway does not hold it
    assert room.member(2).phase is Phase.IN_ROOM and room.member(2).hang_up_reason is None


def test_gateway_neither_waits_for_a_moderator_nor_counts_as_one() -> None:
    room, _, harness = make_room(wait_for_moderator=True)
    connect(room, harness)
    join(room, harness, 2)
    assert room.member(GATEWAY).phase is Phase.IN_ROOM
    assert room.member(2).phase is Phase.WAITING  # still waiting: the gateway is no moderator
    heard = harness.run(10, {GATEWAY: 600.0})
    assert level_at(heard[2][-FRAME * 5 :], 600) < 0.001  # not heard while waiting
    join(room, harness, 1, moderator=True)
    assert room.member(2).phase is Phase.IN_ROOM


def test_hotline_takes_no_gateway() -> None:
    room, _, harness = make_room(mode="hotline", pin=None, operator_extension="6001")
    with pytest.raises(ValueError, match="hotline: it takes no gateway"):
        connect(room, harness)
    assert GATEWAY not in room


# -- what it hears -----------------------------------------------------------------------------


def test_gateway_hears_announcements_to_the_room_and_no_personal_prompt() -> None:
    room, prompts, harness = make_room(announce="chime")
    join(room, harness, 1, moderator=True)
    connect(room, harness)
    join(room, harness, 2)
    assert prompts.queued(room, GATEWAY) == ["tone"]  # a person joined: the room's chime
    for keys in ("*#", "*0", "*3", "*6", "*9"):  # count, help, volume, mute, hand
        harness.press(2, keys)
    harness.press(1, "##")  # mute all: "muted by the moderator" goes to the participants
    harness.press(1, "99")
    assert prompts.queued(room, GATEWAY) == []
    harness.press(1, "*7")
    assert prompts.queued(room, GATEWAY) == ["recording_started"]
    harness.press(1, "*7")
    assert prompts.queued(room, GATEWAY) == ["recording_stopped"]
    room.remove_member(2)
    assert prompts.queued(room, GATEWAY) == ["tone"]  # a person left


def test_gateway_joining_a_recorded_meeting_is_told_it_is_recorded() -> None:
    room, prompts, harness = make_room(record=True)
    join(room, harness, 1)
    assert room.recording
    connect(room, harness)
    assert prompts.queued(room, GATEWAY) == ["recording_started"]


def test_ending_the_meeting_tells_the_gateway_but_leaves_its_hang_up_to_the_controller(
) -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    join(room, harness, 2)
    connect(room, harness)
    harness.step({})
    room.pop_actions()
    harness.press(1, "*41")
    assert room.pop_actions() == [
        MeetingEnded(1, "ended by a moderator"), RoomEmptied(1, "meeting ended by a moderator")
    ]
    assert prompts.queued(room, GATEWAY) == ["meeting_ended"]
    assert room.member(GATEWAY).hang_up_reason is None
    harness.run(TICKS_PER_S, {})
    actions = room.pop_actions()
    assert {a.member_id for a in actions if isinstance(a, HangUp)} == {1, 2}
    assert not any(isinstance(a, (RoomStarted, RoomEmptied)) for a in actions)  # once only
    assert room.member_ids == [GATEWAY]


# -- mute and keypad ---------------------------------------------------------------------------


def test_gateway_is_not_muted_in_a_webinar_nor_by_mute_all() -> None:
    room, prompts, harness = make_room(mode="webinar")
    join(room, harness, 1, moderator=True)
    connect(room, harness)
    join(room, harness, 2)
    assert room.member(GATEWAY).mute is MuteState.FREE
    assert room.member(2).mute is MuteState.MODERATOR_MUTED
    room.pop_actions()
    harness.press(1, "##")
    assert room.member(GATEWAY).mute is MuteState.FREE
    prompts.queued(room, 1)
    prompts.queued(room, 2)
    heard = harness.run(10, {GATEWAY: 600.0, 2: 900.0})
    for listener in (1, 2):  # the video meeting is heard; the muted participant is not
        assert level_at(heard[listener][-FRAME * 5 :], 600) > 0.2
        assert level_at(heard[listener][-FRAME * 5 :], 900) < 0.01
    harness.press(1, "99")  # lifts the participant's mute; the gateway had none
    assert room.member(GATEWAY).mute is MuteState.FREE
    assert not any(
        isinstance(a, MuteChanged) and a.member_id == GATEWAY for a in room.pop_actions()
    )


def test_gateway_key_presses_are_ignored() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    connect(room, harness)
    room.pop_actions()
    harness.press(GATEWAY, "*6")  # mute
    harness.press(GATEWAY, "*9")  # hand
    harness.press(GATEWAY, "12")  # neither a command nor the start of one: no error tone
    assert room.member(GATEWAY).mute is MuteState.FREE and room.raised_hands == []
    assert prompts.queued(room, GATEWAY) == [] and room.pop_actions() == []


def test_in_band_tones_from_a_gateway_are_ignored_and_kept_out_of_the_mix() -> None:
    room = quiet_room()
    listener = Caller(room, 1, "G722")
    leg = Leg(room, GATEWAY, "PCMU")
    room.pop_actions()
    run(room, [listener, leg], {GATEWAY: keyed("*6", 8000)}, 25)
    actions = room.pop_actions()
    assert not any(isinstance(a, (DigitHeard, MuteChanged)) for a in actions)
    assert room.member(GATEWAY).mute is MuteState.FREE
    # As for a phone's tones: only the ~20 ms before the detector is sure can leak.
    loud = np.abs(listener.recording()) > 0.02
    assert loud.sum() < 16000 * 0.05


# -- not a person ------------------------------------------------------------------------------


def test_head_count_and_alone_ignore_the_gateway() -> None:
    room, prompts, harness = make_room()
    connect(room, harness)
    join(room, harness, 1)  # `join` clears the prompts: check the first entry's own
    assert room.present_count == 1
    harness.press(1, "*#")
    assert prompts.queued(room, 1) == ["alone"]
    join(room, harness, 2)
    harness.press(1, "*#")
    assert prompts.queued(room, 1) == ["there_are", "num_two", "participants"]


def test_a_person_joining_a_room_of_gateways_hears_they_are_alone() -> None:
    room, prompts, harness = make_room(pin=None, moderator_pin=None)
    connect(room, harness)
    room.add_member(1, "first", "PCMU", now=harness.now)
    assert prompts.queued(room, 1) == ["alone"]


def test_remove_last_skips_the_gateway() -> None:
    room, prompts, harness = make_room()
    join(room, harness, 1, moderator=True)
    join(room, harness, 2)
    connect(room, harness)  # joined last
    harness.press(1, "*2")
    assert room.member(2).hang_up_reason == "removed by a moderator"
    prompts.queued(room, 1)
    harness.press(1, "*2")  # nobody else to remove
    assert prompts.queued(room, 1) == ["tone"]
    assert room.member(GATEWAY).hang_up_reason is None


def test_a_room_of_gateways_only_is_empty() -> None:
    room, _, harness = make_room(record=True, end_when_moderator_leaves=True)
    join(room, harness, 1, moderator=True)
    connect(room, harness)
    harness.press(1, "*5")
    harness.step({})
    assert room.locked and room.recording
    room.pop_actions()
    room.remove_member(1)
    assert not room.locked and not room.recording and room.present_count == 0
    actions = room.pop_actions()
    assert actions == [RoomEmptied(1, "the last person left"), RecordingChanged(0, False)]
    assert room.member(GATEWAY).hang_up_reason is None  # the controller hangs it up


# -- when the controller connects and hangs up legs --------------------------------------------


def test_room_starts_at_the_first_person_in_and_empties_when_the_last_leaves() -> None:
    room, _, harness = make_room()
    room.add_member(1, "first", "PCMU", now=harness.now)
    harness.step({})
    assert room.pop_actions() == []  # at the PIN prompt: not in the room's audio yet
    harness.press(1, f"{PIN}#")
    harness.step({})
    assert room.pop_actions() == [MemberJoined(1, Role.PARTICIPANT), RoomStarted(1)]
    connect(room, harness)
    join(room, harness, 2)
    harness.step({})
    assert not any(isinstance(a, RoomStarted) for a in room.pop_actions())
    room.remove_member(2)
    assert room.pop_actions() == []
    room.remove_member(1)
    assert room.pop_actions() == [RoomEmptied(1, "the last person left")]
    harness.step({})  # the gateway alone: nothing starts
    room.remove_member(GATEWAY)
    assert room.pop_actions() == []


def test_waiting_for_a_moderator_does_not_start_the_room() -> None:
    room, _, harness = make_room(wait_for_moderator=True)
    join(room, harness, 2)
    harness.run(5, {})
    assert not any(isinstance(a, RoomStarted) for a in room.pop_actions())
    room.remove_member(2)
    assert room.pop_actions() == []  # never started: nothing to empty
    join(room, harness, 3)
    join(room, harness, 1, moderator=True)
    harness.step({})
    assert RoomStarted(3) in room.pop_actions()


def test_a_gateway_may_join_before_the_room_starts_and_after_a_redial() -> None:
    room, _, harness = make_room()
    connect(room, harness)
    harness.step({})
    assert room.pop_actions() == [MemberJoined(GATEWAY, Role.PARTICIPANT)]
    join(room, harness, 1)
    harness.step({})
    assert RoomStarted(1) in room.pop_actions()
    room.remove_member(GATEWAY)  # the far end dropped
    connect(room, harness)  # and was dialled again
    harness.step({})
    assert room.pop_actions() == [MemberJoined(GATEWAY, Role.PARTICIPANT)]


def test_a_new_meeting_after_an_ended_one_starts_again() -> None:
    room, _, harness = make_room()
    join(room, harness, 1, moderator=True)
    connect(room, harness)
    harness.step({})
    harness.press(1, "*41")
    join(room, harness, 2)  # while the moderator's "meeting ended" still plays
    harness.step({})
    actions = room.pop_actions()
    assert [a for a in actions if isinstance(a, (RoomStarted, RoomEmptied))] == [
        RoomStarted(1), RoomEmptied(1, "meeting ended by a moderator"), RoomStarted(2)
    ]


# -- media -------------------------------------------------------------------------------------


def test_gateway_has_no_echo_canceller() -> None:
    room, _, harness = make_room(echo_cancellation="on")
    join(room, harness, 1)
    connect(room, harness)
    assert room.member(1).media.echo is not None
    assert room.member(GATEWAY).media.echo_mode == "off"
    assert room.member(GATEWAY).media.echo is None


def test_gateway_and_phone_each_hear_the_other_but_not_themselves() -> None:
    room, _, harness = make_room()
    join(room, harness, 1)
    connect(room, harness)
    harness.run(5, {})
    heard = harness.run(20, {1: 500.0, GATEWAY: 1300.0})
    gateway, phone = heard[GATEWAY][-FRAME * 10 :], heard[1][-FRAME * 10 :]
    assert level_at(gateway, 500) > 0.2 and level_at(gateway, 1300) < 0.01
    assert level_at(phone, 1300) > 0.2 and level_at(phone, 500) < 0.01


def test_an_opus_gateway_is_mixed_with_narrow_and_wideband_phones() -> None:
    room = quiet_room()
    narrow = Caller(room, 1, "PCMU")
    wide = Caller(room, 2, "G722")
    leg = Leg(room, GATEWAY, "OPUS")
    speech = {1: sine(700, 2.0, 8000), GATEWAY: sine(5000, 2.0, 16000)}
    run(room, [narrow, wide, leg], speech, 100)
    from_video = wide.recording()[16000:]
    assert level_db(from_video, 5000, 16000) > -16  # wideband through Opus and G.722
    assert level_db(from_video, 700, 16000) > -16
    to_video = leg.recording()[16000:]
    assert level_db(to_video, 700, 16000) > -16  # the phone, upsampled, reaches it
    assert level_db(to_video, 5000, 16000) < -50  # N-1: not its own voice back

