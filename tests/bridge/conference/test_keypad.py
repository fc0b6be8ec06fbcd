"""Keypad sequences: commands, rejections and the inter-digit timeout."""

from bridge.conference.keypad import (
    DEFAULT_KEYMAP,
    CommandEntered,
    KeypadCommand,
    KeypadSequencer,
    SequenceRejected,
)


def test_star_six_toggles_mute() -> None:
    keypad = KeypadSequencer(DEFAULT_KEYMAP)
    assert keypad.press("*", now=0.0) is None
    assert keypad.press("6", now=0.5) == CommandEntered(KeypadCommand.TOGGLE_MUTE, "*6")


def test_unknown_sequence_is_rejected_at_once() -> None:
    keypad = KeypadSequencer(DEFAULT_KEYMAP)
    assert keypad.press("*", now=0.0) is None
    assert keypad.press("4", now=0.1) == SequenceRejected("*4")
    assert keypad.next_deadline is None


def test_digit_that_starts_nothing_is_rejected() -> None:
    keypad = KeypadSequencer(DEFAULT_KEYMAP)
    assert keypad.press("5", now=0.0) == SequenceRejected("5")


def test_partial_sequence_expires_after_timeout() -> None:
    keypad = KeypadSequencer(DEFAULT_KEYMAP, timeout_s=3.0)
    keypad.press("*", now=10.0)
    assert keypad.next_deadline == 13.0
    assert keypad.expire(now=12.9) is None
    assert keypad.expire(now=13.0) == SequenceRejected("*")
    assert keypad.next_deadline is None


def test_stale_partial_sequence_does_not_swallow_the_next_one() -> None:
    keypad = KeypadSequencer(DEFAULT_KEYMAP, timeout_s=3.0)
    keypad.press("*", now=0.0)
    assert keypad.press("*", now=5.0) is None  # the old "*" is gone; a new one starts
    assert keypad.press("6", now=5.2) == CommandEntered(KeypadCommand.TOGGLE_MUTE, "*6")
