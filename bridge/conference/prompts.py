"""Recorded prompts and tones, and their playback to one member at a time.

A prompt plays to one member without cutting them off from the room: the room mix keeps
flowing under it. Prompts are loaded from disk by the edge (`bridge.prompt_files`) and
handed in as arrays at the room's rate; this module never touches files.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Clip = NDArray[np.float32]


@dataclass(frozen=True)
class PromptLibrary:
    """Prompt clips by language and name, as `(samples,)` float32 at `rate_hz`."""

    rate_hz: int
    clips: Mapping[tuple[str, str], Clip]

    def get(self, language: str, name: str) -> Clip:
        """Return a prompt, falling back to Indonesian, the default language."""
        clip = self.clips.get((language, name))
        if clip is None:
            clip = self.clips.get(("id", name))
        if clip is None:
            raise KeyError(f"no prompt named {name!r} for language {language!r}")
        return clip


class PromptPlayer:
    """A queue of clips for one member, read one frame at a time."""

    def __init__(self) -> None:
        self._queue: deque[Clip] = deque()
        self._position = 0

    @property
    def playing(self) -> bool:
        return bool(self._queue)

    def play(self, clip: Clip) -> None:
        """Queue a clip after whatever is already playing."""
        if clip.shape[0]:
            self._queue.append(clip)

    def stop(self) -> None:
        """Drop everything queued, e.g. when the caller starts typing (barge-in)."""
        self._queue.clear()
        self._position = 0

    def read(self, count: int) -> Clip | None:
        """Return the next `count` samples, zero-padded at the end; None when idle."""
        if not self._queue:
            return None
        out = np.zeros(count, dtype=np.float32)
        filled = 0
        while filled < count and self._queue:
            clip = self._queue[0]
            take = min(count - filled, clip.shape[0] - self._position)
            out[filled : filled + take] = clip[self._position : self._position + take]
            filled += take
            self._position += take
            if self._position >= clip.shape[0]:
                self._queue.popleft()
                self._position = 0
        return out
