"""PIN entry before a member is let into a room: digits ending in `#`, limited tries.

A room with a participant PIN needs it or the moderator PIN. A room with only a
moderator PIN lets a caller in as a participant on an empty entry (just `#`, or no
digits before the timeout), and as a moderator with the PIN.
"""

from __future__ import annotations

import enum


class PinOutcome(enum.Enum):
    PARTICIPANT = "participant"
    MODERATOR = "moderator"
    WRONG = "wrong"  # try again
    FAILED = "failed"  # no tries left


class PinEntry:
    """Collect digits up to `#` and compare them with the room's PINs."""

    def __init__(self, pin: str | None, moderator_pin: str | None, max_attempts: int = 3) -> None:
        self._pin = pin
        self._moderator_pin = moderator_pin
        self._max_attempts = max_attempts
        self._digits = ""
        self.attempts = 0

    @property
    def has_digits(self) -> bool:
        return bool(self._digits)

    def press(self, digit: str) -> PinOutcome | None:
        """Add a digit; `#` submits. Return the outcome of a submission, else None."""
        if digit == "#":
            return self.submit()
        if len(self._digits) < 32:  # bounded: a stuck key must not grow memory
            self._digits += digit
        return None

    def submit(self) -> PinOutcome:
        """Judge what was typed so far (also used when the caller stops typing)."""
        entered, self._digits = self._digits, ""
        if self._moderator_pin is not None and entered == self._moderator_pin:
            return PinOutcome.MODERATOR
        if self._pin is not None and entered == self._pin:
            return PinOutcome.PARTICIPANT
        if self._pin is None and entered == "":
            return PinOutcome.PARTICIPANT
        self.attempts += 1
        return PinOutcome.FAILED if self.attempts >= self._max_attempts else PinOutcome.WRONG
