"""The life of a gateway leg: when it should be connected, and when to try again.

A leg joins a room to a video meeting (a plain RTP stream or a SIP call the bridge
places). It is wanted while the room has people in it: connected when the room starts,
hung up when it empties or a moderator ends the meeting. A SIP leg that fails or that the
far end hangs up is dialled again after a delay that doubles on each failure in a row
(a far end that is down is not hammered), up to a ceiling; a leg that stayed up a while
starts again from the shortest delay. Sans-I/O: time comes in as `now`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# A leg up at least this long was working: its next failure is a fresh one, not the
# next step of a run of failures.
STABLE_S = 30.0


class LegState(enum.Enum):
    IDLE = "idle"  # the room has not started, or has ended
    CONNECTING = "connecting"  # dialling (SIP) or starting
    UP = "up"
    WAITING = "waiting"  # failed or dropped; the next attempt is scheduled


@dataclass(frozen=True, slots=True)
class LegStatus:
    """What a leg is doing and why, for logs and later for the operator's API."""

    room_id: str
    leg_id: str
    state: LegState
    reason: str
    since: float
    attempts: int  # attempts in a row that did not stay up (0 once it is up a while)
    next_attempt_at: float | None = None


class GatewayLeg:
    """One leg's wanted state and re-dial schedule."""

    def __init__(self, room_id: str, leg_id: str, *, retry_min_s: float, retry_max_s: float):
        if not 0 < retry_min_s <= retry_max_s:
            raise ValueError(f"re-dial delays must be 0 < min <= max, got {retry_min_s}, "
                             f"{retry_max_s}")
        self.room_id = room_id
        self.leg_id = leg_id
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._wanted = False
        self._status = LegStatus(room_id, leg_id, LegState.IDLE, "room not started", 0.0, 0)
        self._up_since: float | None = None

    @property
    def status(self) -> LegStatus:
        return self._status

    @property
    def state(self) -> LegState:
        return self._status.state

    def room_started(self, now: float) -> bool:
        """The room has people now; return True when the leg must be connected at once."""
        self._wanted = True
        if self.state is not LegState.IDLE:
            return False
        self._set(LegState.CONNECTING, "room started", now)
        return True

    def room_ended(self, reason: str, now: float) -> bool:
        """The room is empty or ended; return True when a live attempt must be hung up."""
        self._wanted = False
        live = self.state in (LegState.CONNECTING, LegState.UP)
        self._up_since = None
        self._set(LegState.IDLE, reason, now, attempts=0)
        return live

    def connected(self, now: float, reason: str = "answered") -> None:
        self._up_since = now
        self._set(LegState.UP, reason, now)

    def dropped(self, reason: str, now: float) -> None:
        """The attempt failed or the far end hung up: schedule the next one if still wanted."""
        if not self._wanted:
            self._set(LegState.IDLE, reason, now, attempts=0)
            return
        attempts = self._status.attempts
        if self._up_since is not None and now - self._up_since >= STABLE_S:
            attempts = 0
        self._up_since = None
        delay = min(self._retry_max_s, self._retry_min_s * 2.0 ** attempts)
        self._set(LegState.WAITING, reason, now, attempts=attempts + 1,
                  next_attempt_at=now + delay)

    def due(self, now: float) -> bool:
        """Return True (and count the attempt as started) when a re-dial is due by `now`."""
        next_at = self._status.next_attempt_at
        if self.state is not LegState.WAITING or next_at is None or now < next_at:
            return False
        self._set(LegState.CONNECTING, f"re-dial after: {self._status.reason}", now)
        return True

    def next_deadline(self) -> float | None:
        return self._status.next_attempt_at if self.state is LegState.WAITING else None

    def _set(
        self, state: LegState, reason: str, now: float, *, attempts: int | None = None,
        next_attempt_at: float | None = None,
    ) -> None:
        self._status = LegStatus(
            self.room_id, self.leg_id, state, reason, now,
            self._status.attempts if attempts is None else attempts, next_attempt_at,
        )
