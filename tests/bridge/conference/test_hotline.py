"""The reporters' hotline: callers queue for an operator who takes them one by one, or,
with nobody on duty, leave a report; and recorded names announcing joins and leaves."""

from __future__ import annotations

import dataclasses
from datetime import datetime, time

import numpy as np

from bridge.conference.room import (
    NAME_MAX_S,
    HangUp,
    OperatorConnected,
    Phase,
    ReportEnded,
    ReportStarted,
    Role,
    Room,
    TransferToRoom,
)
from bridge.config import OperatorHours, RoomConfig
from tests.bridge.conference.test_moderation import Prompts
from tests.bridge.conference.test_room import FRAME, RATE, Harness, level_at

OPERATOR_PIN = "2468"
TICKS_PER_S = 50


MONDAY_MORNING = datetime(2026, 11, 23, 10, 0)


def hotline(
    wall_time: datetime = MONDAY_MORNING, **options: object
) -> tuple[Room, Prompts, Harness]:
    config = RoomConfig(
        id="pengaduan", extension="6000", name=None, pin=None, moderator_pin=OPERATOR_PIN,
        mode="hotline", access="anyone", language="en", codecs=("PCMU",),
        voice_detection=False, agc=False, operator_extension="6001", report_max_s=60.0,
        transfer_room="rakor",
    )
    prompts = Prompts()
    room = Room(dataclasses.replace(config, **options), prompts.library,  # type: ignore[arg-type]
                wall_clock=lambda: wall_time)
    return room, prompts, Harness(room)


def operator_joins(room: Room, harness: Harness, member_id: int) -> None:
    room.add_member(member_id, "operator", "PCMU", now=harness.now, operator=True)
    harness.press(member_id, f"{OPERATOR_PIN}#")
    assert room.member(member_id).role is Role.MODERATOR
    room.member(member_id).prompts.stop()


def caller_calls(room: Room, harness: Harness, member_id: int) -> None:
    room.add_member(member_id, f"warga {member_id}", "PCMU", now=harness.now)


def until_quiet(room: Room, harness: Harness, member_id: int, limit_s: float = 60) -> None:
    """Run ticks until a member's prompts have played out."""
    for _ in range(int(limit_s * TICKS_PER_S)):
        if not room.member(member_id).prompts.playing:
            return
        harness.step({})
    raise AssertionError("prompts never ended")


def test_with_nobody_on_duty_a_caller_leaves_a_report_ended_with_hash() -> None:
    room, prompts, harness = hotline()
    caller_calls(room, harness, 1)
    assert room.member(1).phase is Phase.REPORTING
    assert prompts.names.get(id(room.member(1).prompts.queued[0])) == "hotline_welcome"
    until_quiet(room, harness, 1)
    harness.step({})
    assert ReportStarted(1, RATE) in room.pop_actions()
    room.pop_captured()
    harness.run(TICKS_PER_S, {1: 500.0})
    said = np.concatenate(room.pop_captured()[1])
    assert said.shape == (TICKS_PER_S * FRAME,)
    assert level_at(said[-FRAME * 10 :], 500) > 0.25  # as the caller said it
    harness.press(1, "#")
    assert room.pop_actions() == [ReportEnded(1, "hash")]
    assert prompts.queued(room, 1) == ["report_saved"]
    harness.run(TICKS_PER_S, {})
    assert room.pop_actions() == [HangUp(1, "report saved")]


def test_a_report_stops_at_its_limit_and_one_cut_by_hang_up_is_kept() -> None:
    room, _, harness = hotline(report_max_s=1.0)
    caller_calls(room, harness, 1)
    caller_calls(room, harness, 2)
    until_quiet(room, harness, 1)
    harness.run(10, {1: 500.0, 2: 700.0})
    room.remove_member(2)  # the reporter hangs up mid-report
    assert ReportEnded(2, "hang-up") in room.pop_actions()
    harness.run(TICKS_PER_S, {1: 500.0})
    assert ReportEnded(1, "limit") in room.pop_actions()


def test_operator_takes_queued_callers_one_by_one_and_only_the_pair_hear_each_other() -> None:
    room, prompts, harness = hotline()
    operator_joins(room, harness, 9)
    caller_calls(room, harness, 1)
    caller_calls(room, harness, 2)
    assert {room.member(m).phase for m in (1, 2)} == {Phase.QUEUED}
    prompts.queued(room, 1)
    prompts.queued(room, 2)
    harness.step({})
    assert prompts.queued(room, 2) == ["queue_position", "num_two", "in_queue", "hold_music"]
    harness.press(9, "*#")
    assert prompts.queued(room, 9) == ["there_are", "num_two", "callers_waiting"]
    harness.press(9, "*8")
    assert room.pop_actions()[-1] == OperatorConnected(9, 1)
    assert prompts.queued(room, 1) == ["operator_connected"]
    prompts.queued(room, 2)
    heard = harness.run(10, {1: 500.0, 2: 700.0, 9: 900.0})
    tail = {m: heard[m][-FRAME * 5 :] for m in (1, 2, 9)}
    assert level_at(tail[9], 500) > 0.2 and level_at(tail[9], 700) < 0.01
    assert level_at(tail[1], 900) > 0.2 and level_at(tail[1], 700) < 0.01
    assert level_at(tail[2], 900) < 0.01 and level_at(tail[2], 500) < 0.01
    harness.press(9, "*8")  # done with the first: thanked and hung up; the second is next
    assert room.member(1).hang_up_reason == "call ended by the operator"
    assert prompts.queued(room, 1) == ["call_ended"]
    assert room.member(2).phase is Phase.WITH_OPERATOR
    heard = harness.run(10, {2: 700.0, 9: 900.0})
    assert level_at(heard[9][-FRAME * 5 :], 700) > 0.2


def test_operator_sends_a_caller_back_to_the_front_or_brings_them_to_a_room() -> None:
    room, _, harness = hotline()
    operator_joins(room, harness, 9)
    for member_id in (1, 2):
        caller_calls(room, harness, member_id)
        harness.step({})
    harness.press(9, "*8")
    harness.press(9, "*2")
    assert room.member(1).phase is Phase.QUEUED
    harness.press(9, "*8")
    assert room.member(1).phase is Phase.WITH_OPERATOR  # back at the front, not behind 2
    room.pop_actions()
    harness.press(9, "*5")
    assert TransferToRoom(1, "rakor") in room.pop_actions()


def test_end_key_with_confirmation_ends_only_the_current_call() -> None:
    room, _, harness = hotline()
    operator_joins(room, harness, 9)
    caller_calls(room, harness, 1)
    caller_calls(room, harness, 2)
    harness.press(9, "*8")
    harness.press(9, "*41")
    assert room.member(1).hang_up_reason == "call ended by the operator"
    assert room.member(2).hang_up_reason is None and room.member(9).hang_up_reason is None


def test_when_the_last_operator_leaves_the_queue_is_offered_a_report() -> None:
    room, _, harness = hotline()
    operator_joins(room, harness, 9)
    caller_calls(room, harness, 1)
    caller_calls(room, harness, 2)
    harness.press(9, "*8")
    room.remove_member(9)
    assert {room.member(m).phase for m in (1, 2)} == {Phase.REPORTING}


def test_outside_operator_hours_callers_leave_reports() -> None:
    office = OperatorHours(frozenset(range(5)), time(7, 30), time(16, 0))
    room, _, harness = hotline(datetime(2026, 11, 23, 19, 0), operator_hours=office)
    operator_joins(room, harness, 9)
    caller_calls(room, harness, 1)
    assert room.member(1).phase is Phase.REPORTING


def test_the_operator_number_needs_the_operator_pin() -> None:
    room, _, harness = hotline()
    room.add_member(9, "someone", "PCMU", now=0.0, operator=True)
    harness.press(9, "#")  # an empty entry is no way in here
    assert room.member(9).phase is Phase.PIN_ENTRY


# -- recorded names ------------------------------------------------------------------------


def test_a_recorded_name_announces_the_join_and_the_leave() -> None:
    config = RoomConfig(
        id="rakor", extension="1000", name=None, pin=None, moderator_pin=None, mode="meeting",
        access="anyone", language="en", codecs=("PCMU",), voice_detection=False, agc=False,
        announce="name",
    )
    prompts = Prompts()
    room = Room(config, prompts.library)
    harness = Harness(room)
    room.add_member(1, "first", "PCMU", now=0.0)
    until_quiet(room, harness, 1)
    harness.step({})
    harness.press(1, "#")  # says nothing: no name, in all the same
    assert room.member(1).phase is Phase.IN_ROOM and room.member(1).name is None
    room.member(1).prompts.stop()
    room.add_member(2, "second", "PCMU", now=harness.now)
    assert room.member(2).phase is Phase.NAMING
    assert prompts.names.get(id(room.member(2).prompts.queued[0])) == "say_your_name"
    until_quiet(room, harness, 2)
    harness.run(25, {2: 400.0})  # half a second of "name"
    harness.press(2, "#")
    assert room.member(2).phase is Phase.IN_ROOM
    name = room.member(2).name
    assert name is not None and 0.4 < name.shape[0] / 16000 < 0.6
    assert 20 * np.log10(np.abs(name).max()) > -6.5
    queued = room.member(1).prompts.queued
    assert queued[-2] is name and prompts.names.get(id(queued[-1])) == "has_joined"
    room.member(1).prompts.stop()
    room.remove_member(2)
    queued = room.member(1).prompts.queued
    assert queued[0] is name and prompts.names.get(id(queued[1])) == "has_left"


def test_a_name_stops_by_itself_after_three_seconds() -> None:
    config = RoomConfig(
        id="rakor", extension="1000", name=None, pin=None, moderator_pin=None, mode="meeting",
        access="anyone", language="en", codecs=("PCMU",), voice_detection=False, agc=False,
        announce="name",
    )
    room = Room(config, Prompts().library)
    harness = Harness(room)
    room.add_member(1, "first", "PCMU", now=0.0)
    until_quiet(room, harness, 1)
    harness.run(int((NAME_MAX_S + 0.1) * TICKS_PER_S), {1: 400.0})
    assert room.member(1).phase is Phase.IN_ROOM
    name = room.member(1).name
    assert name is not None and name.shape[0] <= NAME_MAX_S * 16000 + 320


# -- found in review -------------------------------------------------------------------------


def test_a_caller_who_mutes_is_not_heard_by_the_operator() -> None:
    room, _, harness = hotline()
    operator_joins(room, harness, 9)
    caller_calls(room, harness, 1)
    harness.press(9, "*8")
    harness.press(1, "*6")
    heard = harness.run(10, {1: 500.0})
    assert level_at(heard[9][-FRAME * 5 :], 500) < 0.001


def test_a_key_pressed_in_the_queue_is_answered_at_once_not_after_the_music() -> None:
    room, prompts, harness = hotline()
    operator_joins(room, harness, 9)
    caller_calls(room, harness, 1)
    harness.run(3, {})  # the place, then music
    harness.press(1, "*9")  # no hands on a hotline: an error tone, now
    assert prompts.queued(room, 1) == ["tone"]


def test_sent_back_outside_the_hours_waits_in_the_queue_for_the_operator_who_is_there() -> None:
    office = OperatorHours(frozenset(range(5)), time(7, 30), time(16, 0))
    clock = [MONDAY_MORNING]
    room, _, harness = hotline(operator_hours=office)
    room = Room(room.config, Prompts().library, wall_clock=lambda: clock[0])
    harness = Harness(room)
    operator_joins(room, harness, 9)
    caller_calls(room, harness, 1)
    harness.press(9, "*8")
    clock[0] = datetime(2026, 11, 23, 16, 30)  # the shift has ended
    harness.press(9, "*2")
    assert room.member(1).phase is Phase.QUEUED


def test_a_caller_brought_over_gets_into_a_locked_or_full_room() -> None:
    config = RoomConfig(
        id="rakor", extension="1000", name=None, pin="4321", moderator_pin="9876",
        mode="meeting", access="anyone", language="en", codecs=("PCMU",), max_members=1,
    )
    room = Room(config, Prompts().library)
    harness = Harness(room)
    room.add_member(1, "moderator", "PCMU", now=0.0)
    harness.press(1, "9876#")
    harness.press(1, "*5")
    room.add_member(2, "from the hotline", "PCMU", now=0.0, vouched=True)
    assert room.member(2).phase is Phase.IN_ROOM and room.member(2).hang_up_reason is None
