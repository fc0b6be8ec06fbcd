"""Keypad sequences: digits in, commands out, with a timeout between keys.

The key map is data (sequence -> command) so rooms can remap it. A sequence that can no
longer match, or a partial one left hanging for `timeout_s`, is rejected so the member
hears an error tone instead of silence.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class KeypadCommand(enum.Enum):
    """What a member can ask for from the keypad; the values are the config's names."""

    MUTE = "mute"  # mute / unmute yourself
    HAND = "hand"  # raise / lower your hand
    COUNT = "count"  # how many are in the room
    VOLUME_DOWN = "volume_down"  # what you hear, quieter
    VOLUME_UP = "volume_up"
    HELP = "help"
    MUTE_ALL = "mute_all"  # moderators: everyone but moderators, who cannot undo it
    UNMUTE_ALL = "unmute_all"
    FLOOR = "floor"  # give the floor to the first raised hand
    LOCK = "lock"  # lock / unlock the room
    RECORD = "record"  # start / stop recording
    REMOVE_LAST = "remove_last"  # remove the last person who joined
    END = "end"  # end the meeting for everyone (after a confirming "1")


MODERATOR_COMMANDS = frozenset({
    KeypadCommand.MUTE_ALL, KeypadCommand.UNMUTE_ALL, KeypadCommand.FLOOR, KeypadCommand.LOCK,
    KeypadCommand.RECORD, KeypadCommand.REMOVE_LAST, KeypadCommand.END,
})


def keymap_for(pairs: Iterable[tuple[str, str]], *, moderator: bool) -> dict[str, KeypadCommand]:
    """Sequence -> command for one member, from a room's (command, sequence) pairs.

    A participant's map leaves the moderator commands out, so their keys are rejected at
    once (an error tone) instead of waiting for a sequence they may not use.
    """
    keymap = {sequence: KeypadCommand(name) for name, sequence in pairs}
    if moderator:
        return keymap
    return {seq: command for seq, command in keymap.items() if command not in MODERATOR_COMMANDS}


@dataclass(frozen=True, slots=True)
class CommandEntered:
    command: KeypadCommand
    digits: str


@dataclass(frozen=True, slots=True)
class SequenceRejected:
    digits: str


KeypadResult = CommandEntered | SequenceRejected


class KeypadSequencer:
    """Match one member's digits against a key map.

    `next_deadline`: when the open sequence times out (None: none open). A plain
    attribute, read for every member at every tick (`Room._expire`); only this class sets it.
    """

    __slots__ = ("_timeout_s", "_buffer", "next_deadline", "_keymap", "_prefixes")

    def __init__(self, keymap: Mapping[str, KeypadCommand], timeout_s: float = 3.0) -> None:
        self._timeout_s = timeout_s
        self._buffer = ""
        self.next_deadline: float | None = None
        self.set_keymap(keymap)

    def set_keymap(self, keymap: Mapping[str, KeypadCommand]) -> None:
        """Take a new key map (the member became a moderator); a half-typed sequence goes."""
        self._keymap = dict(keymap)
        self._prefixes = {seq[:i] for seq in keymap for i in range(1, len(seq))}
        self._finish(SequenceRejected(self._buffer))

    def press(self, digit: str, now: float) -> KeypadResult | None:
        """Add a digit; return a command, a rejection, or None while a sequence is open."""
        if self.next_deadline is not None and now >= self.next_deadline:
            self._finish(SequenceRejected(self._buffer))  # stale: the room's tick missed it
        self._buffer += digit
        command = self._keymap.get(self._buffer)
        if command is not None:
            return self._finish(CommandEntered(command, self._buffer))
        if self._buffer in self._prefixes:
            self.next_deadline = now + self._timeout_s
            return None
        return self._finish(SequenceRejected(self._buffer))

    def expire(self, now: float) -> SequenceRejected | None:
        """Reject a partial sequence whose next key did not come in time."""
        if self.next_deadline is not None and now >= self.next_deadline:
            rejected = SequenceRejected(self._buffer)
            self._finish(rejected)
            return rejected
        return None

    def _finish(self, result: KeypadResult) -> KeypadResult:
        self._buffer = ""
        self.next_deadline = None
        return result
