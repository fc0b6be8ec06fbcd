"""Rows of a bank's state arrays (`ReceiveBank`, `SendBank`), one per stream for its life."""

from __future__ import annotations

import weakref
from collections.abc import Callable

FIRST_ROWS = 64


class RowPool:
    """Hands out row numbers, lowest first, and takes a row back when its stream dies.

    When none is free the bank's arrays grow to twice their rows (`grow(rows)` is called
    with the new count before a row of it is handed out); `vacate(row)`, if given, runs
    when a row comes back.
    """

    def __init__(
        self, grow: Callable[[int], None], vacate: Callable[[int], None] | None = None
    ) -> None:
        self._grow = grow
        self._vacate = vacate
        self._free: list[int] = []
        self._rows = 0

    def take(self, owner: object) -> int:
        """A free row for `owner`, until `owner` is garbage."""
        if not self._free:
            old, self._rows = self._rows, max(FIRST_ROWS, 2 * self._rows)
            self._grow(self._rows)
            self._free.extend(range(self._rows - 1, old - 1, -1))
        row = self._free.pop()
        weakref.finalize(owner, self._give_back, row)
        return row

    def _give_back(self, row: int) -> None:
        if self._vacate is not None:
            self._vacate(row)
        self._free.append(row)
