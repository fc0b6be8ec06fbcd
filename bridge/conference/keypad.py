"""Keypad sequences: digits in, commands out, with a timeout between keys.

The key map is data (sequence -> command) so rooms can remap it. A sequence that can no
longer match, or a partial one left hanging for `timeout_s`, is rejected so the member
hears an error tone instead of silence.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class KeypadCommand(enum.Enum):
    """What a member can ask for from the keypad."""

    TOGGLE_MUTE = "toggle_mute"


# The default key map of ../shared/PRODUCT.md; the moderator keys arrive with issue #4.
DEFAULT_KEYMAP: Mapping[str, KeypadCommand] = {"*6": KeypadCommand.TOGGLE_MUTE}


@dataclass(frozen=True, slots=True)
class CommandEntered:
    command: KeypadCommand
    digits: str


@dataclass(frozen=True, slots=True)
class SequenceRejected:
    digits: str


KeypadResult = CommandEntered | SequenceRejected


class KeypadSequencer:
    """Match one member's digits against a key map."""

    def __init__(self, keymap: Mapping[str, KeypadCommand], timeout_s: float = 3.0) -> None:
        self._keymap = dict(keymap)
        self._prefixes = {seq[:i] for seq in keymap for i in range(1, len(seq))}
        self._timeout_s = timeout_s
        self._buffer = ""
        self._deadline: float | None = None

    def press(self, digit: str, now: float) -> KeypadResult | None:
        """Add a digit; return a command, a rejection, or None while a sequence is open."""
        if self._deadline is not None and now >= self._deadline:
            self._finish(SequenceRejected(self._buffer))  # stale: the room's tick missed it
        self._buffer += digit
        command = self._keymap.get(self._buffer)
        if command is not None:
            return self._finish(CommandEntered(command, self._buffer))
        if self._buffer in self._prefixes:
            self._deadline = now + self._timeout_s
            return None
        return self._finish(SequenceRejected(self._buffer))

    def expire(self, now: float) -> SequenceRejected | None:
        """Reject a partial sequence whose next key did not come in time."""
        if self._deadline is not None and now >= self._deadline:
            rejected = SequenceRejected(self._buffer)
            self._finish(rejected)
            return rejected
        return None

    @property
    def next_deadline(self) -> float | None:
        return self._deadline

    def _finish(self, result: KeypadResult) -> KeypadResult:
        self._buffer = ""
        self._deadline = None
        return result
