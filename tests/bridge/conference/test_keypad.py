"""Keypad sequences: commands, rejections and the inter-digit timeout."""

from bridge.conference.keypad import (
    CommandEntered,
    KeypadCommand,
    KeypadSequencer,
    SequenceRejected,
    keymap_for,
)
from bridge.config import DEFAULT_KEYMAP_ITEMS

PARTICIPANT_KEYMAP = keymap_for(DEFAULT_KEYMAP_ITEMS, moderator=False)


def test_star_six_toggles_mute() -> None:
    keypad = KeypadSequencer(PARTICIPANT_KEYMAP)
    assert keypad.press("*", now=0.0) is None
    assert keypad.press("6", now=0.5) == CommandEntered(KeypadCommand.MUTE, "*6")


def test_unknown_sequence_is_rejected_at_once() -> None:
    keypad = KeypadSequencer(PARTICIPANT_KEYMAP)
    assert keypad.press("*", now=0.0) is None
    assert keypad.press("4", now=0.1) == SequenceRejected("*4")
    assert keypad.next_deadline is None


def test_digit_that_starts_nothing_is_rejected() -> None:
    keypad = KeypadSequencer(PARTICIPANT_KEYMAP)
    assert keypad.press("5", now=0.0) == SequenceRejected("5")


def test_partial_sequence_expires_after_timeout() -> None:
    keypad = KeypadSequencer(PARTICIPANT_KEYMAP, timeout_s=3.0)
    keypad.press("*", now=10.0)
    assert keypad.next_deadline == 13.0
    assert keypad.expire(now=12.9) is None
    assert keypad.expire(now=13.0) == SequenceRejected("*")
    assert keypad.next_deadline is None


def test_stale_partial_sequence_does_not_swallow_the_next_one() -> None:
    keypad = KeypadSequencer(PARTICIPANT_KEYMAP, timeout_s=3.0)
    keypad.press("*", now=0.0)
    assert keypad.press("*", now=5.0) is None  # the old "*" is gone; a new one starts
    assert keypad.press("6", now=5.2) == CommandEntered(KeypadCommand.MUTE, "*6")


def test_participants_map_leaves_out_moderator_commands() -> None:
    moderator = keymap_for(DEFAULT_KEYMAP_ITEMS, moderator=True)
    assert moderator["##"] is KeypadCommand.MUTE_ALL and moderator["*4"] is KeypadCommand.END
    assert "##" not in PARTICIPANT_KEYMAP and "99" not in PARTICIPANT_KEYMAP
    assert PARTICIPANT_KEYMAP["*9"] is KeypadCommand.HAND
    keypad = KeypadSequencer(PARTICIPANT_KEYMAP)
    assert keypad.press("9", now=0.0) == SequenceRejected("9")  # at once, not after a wait


def test_a_new_keymap_drops_a_half_typed_sequence() -> None:
    keypad = KeypadSequencer(PARTICIPANT_KEYMAP)
    assert keypad.press("*", now=0.0) is None
    keypad.set_keymap(keymap_for(DEFAULT_KEYMAP_ITEMS, moderator=True))
    assert keypad.next_deadline is None
    assert keypad.press("#", now=0.1) is None  # "##" is a moderator's now
    assert keypad.press("#", now=0.2) == CommandEntered(KeypadCommand.MUTE_ALL, "##")
