"""The dialplan: which room a dialled number reaches.

A pure lookup built once from the configured rooms; it knows nothing of SIP messages,
calls or sockets. The caller hands in the Request-URI and To user parts, already
%-unescaped, and gets back a `Route` or None (the caller answers 404).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from bridge.config import RoomConfig

# RFC 3966 §3: visual-separator = "-" / "." / "(" / ")"; spaces come from people typing
# numbers into softphones the way they are printed ("+62 21 1000").
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a call goes: the room it joins, and whether as a hotline operator."""

    room_id: str
    # Dialled a hotline's operator_extension: an operator (moderator PIN), not a reporter.
    operator: bool = False

    def __str__(self) -> str:
        return f"room {self.room_id!r}" + (" (operators)" if self.operator else "")


def dialled_digits(user: str) -> str | None:
    """Return the digits a user part dials, or None when it is not a telephone number.

    A leading "+" and visual separators are dropped, and so are telephone-subscriber
    parameters such as ";phone-context=..." or ";isub=..." that a `user=phone` SIP URI
    carries in its user part (RFC 3261 §19.1.6, RFC 3966 §5.1).
    """
    number = user.partition(";")[0].translate(_VISUAL_SEPARATORS).removeprefix("+")
    return number if _DIGITS.fullmatch(number) else None


class Dialplan:
    """Room lookup by dialled number, first on the Request-URI, then on the To user.

    A room is reached at its extension and at each of its `numbers` (a trunk's DIDs, often
    listed in both national and international form); a hotline's operators at its
    operator_extension.
    """

    def __init__(self, rooms: Sequence[RoomConfig]) -> None:
        by_number: dict[str, Route] = {}
        by_id: dict[str, RoomConfig] = {}
        for room in rooms:
            if room.id in by_id:
                raise ValueError(f"room id {room.id!r} is used twice")
            by_id[room.id] = room
            numbers = [("extension", room.extension, Route(room.id))]
            if room.operator_extension is not None:
                numbers.append(
                    ("operator_extension", room.operator_extension, Route(room.id, operator=True))
                )
            numbers.extend(("number", number, Route(room.id)) for number in room.numbers)
            for key, extension, route in numbers:
                number = dialled_digits(extension)
                if number is None:
                    raise ValueError(f"room {room.id!r}: {key} {extension!r} is not a number")
                if number in by_number:
                    raise ValueError(
                        f"room {room.id!r}: {key} {extension!r} is already {by_number[number]}"
                    )
                by_number[number] = route
        self._by_number = MappingProxyType(by_number)
        self._by_id = MappingProxyType(by_id)

    def match(self, request_user: str | None, to_user: str | None) -> Route | None:
        """Return the route for a new INVITE, or None when no room has the number.

        A hotline's operator_extension routes to the hotline with `operator` set.

        The Request-URI decides (RFC 3261 §8.2.2.1: it names the resource). Some trunks put
        their own host or a pilot number there and the dialled DID only in To, so the To
        user is tried when the Request-URI user reaches no room.
        """
        for user in (request_user, to_user):
            number = dialled_digits(user) if user is not None else None
            route = self._by_number.get(number) if number is not None else None
            if route is not None:
                return route
        return None

    def room(self, room_id: str) -> RoomConfig:
        """Return the configuration of a room; KeyError when there is none by that id."""
        return self._by_id[room_id]
