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

# Callers hear Indonesian unless their room says otherwise.
DEFAULT_LANGUAGE = "id"
# The "language" of clips that are the same for everyone, such as the hold music.
COMMON = "common"


@dataclass(frozen=True)
class PromptLibrary:
    """Prompt clips by (language, name), as `(samples,)` float32 at `rate_hz`.

    Language-neutral clips are stored under the language COMMON.
    """

    rate_hz: int
    clips: Mapping[tuple[str, str], Clip]

    def get(self, language: str, name: str) -> Clip:
        """Return a prompt in `language`, else in Indonesian, else its language-neutral
        clip: a deployment that records only some prompts in English still plays them all."""
        for key in ((language, name), (DEFAULT_LANGUAGE, name), (COMMON, name)):
            clip = self.clips.get(key)
            if clip is not None:
                return clip
        raise KeyError(f"no prompt named {name!r} for language {language!r}")


class PromptPlayer:
    """A queue of clips for one member, read one frame at a time."""

    __slots__ = ("_queue", "_position")  # read for every member every tick (see `Member`)

    def __init__(self) -> None:
        self._queue: deque[Clip] = deque()
        self._position = 0

    @property
    def playing(self) -> bool:
        return bool(self._queue)

    @property
    def queued(self) -> tuple[Clip, ...]:
        """The clips still to play, the current one first."""
        return tuple(self._queue)

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
