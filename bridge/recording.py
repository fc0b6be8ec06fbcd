"""Crash-safe WAV recordings: meetings' mixes and hotline reports.

An edge module: it does file I/O and is handed frames by the controller/app; it never
imports twisted, and bridge/conference never imports it. A recording in progress is
`<stem>.wav.part` (a valid WAV up to its last flush) plus a `<stem>.wav.part.json` sidecar;
close() turns them into `<stem>.wav` and `<stem>.json`. recover_recordings() finishes the
`.part` files a crash left behind.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import wave
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".json"
TEMP_SUFFIX = ".tmp"

SAMPLE_BYTES = 2  # mono 16-bit PCM
# The 44-byte canonical RIFF/WAVE header, written by hand rather than with `wave`: the
# recording rewrites the two size fields in place (os.pwrite at fixed offsets) after every
# flush, and recovery fixes them in a file `wave` would refuse to reopen for writing.
# Fields: "RIFF", RIFF size, "WAVE", "fmt ", fmt size, format, channels, rate, byte rate,
# block align, bits per sample, "data", data size.
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
HEADER_BYTES = _HEADER.size
_SIZE_FIELD = struct.Struct("<I")
_RIFF_SIZE_OFFSET = 4
_DATA_SIZE_OFFSET = 40
_PCM_FORMAT = 1
# The RIFF size is 32 bits and counts 36 header bytes besides the data: about 37 hours
# at 16 kHz.
MAX_DATA_BYTES = (0xFFFF_FFFF - (HEADER_BYTES - 8)) // SAMPLE_BYTES * SAMPLE_BYTES
MAX_SAMPLES = MAX_DATA_BYTES // SAMPLE_BYTES

_UNSAFE_STEM_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_STEM_PART_CHARACTERS = 64


def recording_stem(kind: str, name: str, started_at: float) -> str:
    """Return `<kind>-<name>-<UTC start>`, e.g. "meeting-rakor-20261123T101500Z".

    `kind` and `name` are reduced to [A-Za-z0-9_-] (runs of anything else become "_") so a
    room name or caller id is safe as a file name; `started_at` is epoch seconds.
    """
    stamp = datetime.fromtimestamp(started_at, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{_sanitize(kind)}-{_sanitize(name)}-{stamp}"


def _sanitize(text: str) -> str:
    cleaned = _UNSAFE_STEM_CHARACTERS.sub("_", text)[:_MAX_STEM_PART_CHARACTERS]
    return cleaned or "_"


def _iso_utc(epoch_s: float) -> str:
    """Return ISO 8601 UTC with milliseconds, e.g. "2026-11-23T10:15:00.000Z"."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _wav_header(rate_hz: int, data_bytes: int) -> bytes:
    return _HEADER.pack(
        b"RIFF",
        HEADER_BYTES - 8 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        _PCM_FORMAT,
        1,
        rate_hz,
        rate_hz * SAMPLE_BYTES,
        SAMPLE_BYTES,
        8 * SAMPLE_BYTES,
        b"data",
        data_bytes,
    )


def _rate_from_header(header: bytes) -> int:
    """Return the rate of one of our own headers (mono 16-bit PCM); raise ValueError if not."""
    if len(header) < HEADER_BYTES:
        raise ValueError("shorter than a WAV header")
    (
        riff, _, wave_id, fmt, fmt_bytes, audio_format, channels,
        rate_hz, byte_rate, block_align, bits, data, _,
    ) = _HEADER.unpack(header[:HEADER_BYTES])
    if (riff, wave_id, fmt, data) != (b"RIFF", b"WAVE", b"fmt ", b"data"):
        raise ValueError("not a canonical RIFF/WAVE header")
    if (fmt_bytes, audio_format, channels, bits, block_align) != (16, _PCM_FORMAT, 1, 16, 2):
        raise ValueError("not mono 16-bit PCM")
    if rate_hz <= 0 or byte_rate != rate_hz * SAMPLE_BYTES:
        raise ValueError(f"bad rate {rate_hz} Hz / byte rate {byte_rate}")
    return int(rate_hz)


def _write_sizes(fd: int, data_bytes: int) -> None:
    """Rewrite the header's RIFF and data sizes in place for `data_bytes` of samples."""
    os.pwrite(fd, _SIZE_FIELD.pack(HEADER_BYTES - 8 + data_bytes), _RIFF_SIZE_OFFSET)
    os.pwrite(fd, _SIZE_FIELD.pack(data_bytes), _DATA_SIZE_OFFSET)


def _write_json_atomically(path: Path, document: Mapping[str, Any], *, durable: bool) -> None:
    """Write `document` to a temp file and os.replace it over `path`.

    A reader sees the old file or the whole new one, never half of it. With `durable` the
    temp file is fsynced first, so the rename cannot outlive its content on power loss
    (the caller fsyncs the directory).
    """
    temp = path.with_name(path.name + TEMP_SUFFIX)
    with temp.open("w", encoding="utf-8") as stream:
        json.dump(document, stream, indent=2, sort_keys=True)
        stream.write("\n")
        if durable:
            stream.flush()
            os.fsync(stream.fileno())
    os.replace(temp, path)


def _fsync_directory(directory: Path) -> None:
    """Make renames and unlinks in `directory` durable (POSIX: fsync the directory)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sidecar_path(part_path: Path) -> Path:
    return part_path.with_name(part_path.name + SIDECAR_SUFFIX)


def _summary(
    *,
    final_path: Path,
    rate_hz: int,
    samples: int,
    metadata: Mapping[str, Any],
    started_at: float,
    ended_at: float,
) -> dict[str, Any]:
    """Return the `<stem>.json` document that describes a finished recording."""
    return {
        "file": final_path.name,
        "rate_hz": rate_hz,
        "samples": samples,
        "duration_s": samples / rate_hz,
        "started_at": _iso_utc(started_at),
        "started_at_epoch_s": started_at,
        "ended_at": _iso_utc(ended_at),
        "ended_at_epoch_s": ended_at,
        "recovered": False,
        "metadata": dict(metadata),
    }


class WavRecording:
    """One recording in progress: mono 16-bit PCM, appended one frame at a time.

    Frames collect in memory and reach the file every `flush_interval_s` of audio, each
    flush followed by a header rewrite, so the `.part` file is a valid WAV up to its last
    flush. Flushes do not fsync: a process crash keeps whatever the kernel has, which is
    every flush; only close() makes the recording durable against power loss.
    """

    def __init__(
        self,
        *,
        fd: int,
        part_path: Path,
        rate_hz: int,
        metadata: Mapping[str, str | int | float],
        started_at: float,
        flush_interval_s: float = 1.0,
    ) -> None:
        """Take over `fd`, open on `part_path` with its header written; use start()."""
        self.rate_hz = rate_hz
        self.part_path = part_path
        self.final_path = part_path.with_suffix("")  # <stem>.wav
        self._fd: int | None = fd
        self._metadata = dict(metadata)
        self._started_at = started_at
        capacity = max(1, round(rate_hz * flush_interval_s))
        self._buffer = np.zeros(capacity, dtype="<i2")
        self._scratch = np.zeros(capacity, dtype=np.float32)
        self._buffered = 0
        self._flushed_samples = 0
        self._samples = 0
        self._closed = False
        self._finished = False

    @classmethod
    def start(
        cls,
        directory: Path,
        stem: str,
        rate_hz: int,
        metadata: Mapping[str, str | int | float],
        started_at: float,
        *,
        flush_interval_s: float = 1.0,
    ) -> WavRecording:
        """Open `<directory>/<stem>.wav.part` with an empty WAV header and write its sidecar.

        A stem already taken by a finished or partial recording becomes `<stem>-2`,
        `<stem>-3`, ... `started_at` is epoch seconds (wall clock: it names a moment for
        people, unlike the monotonic `now` of the cores).
        """
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, not {rate_hz}")
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, not {flush_interval_s}")
        directory.mkdir(parents=True, exist_ok=True)
        fd, part_path = _create_part(directory, stem)
        try:
            os.write(fd, _wav_header(rate_hz, 0))
            sidecar = {
                "metadata": dict(metadata),
                "rate_hz": rate_hz,
                "started_at": _iso_utc(started_at),
                "started_at_epoch_s": started_at,
            }
            _write_json_atomically(_sidecar_path(part_path), sidecar, durable=False)
            return cls(
                fd=fd,
                part_path=part_path,
                rate_hz=rate_hz,
                metadata=metadata,
                started_at=started_at,
                flush_interval_s=flush_interval_s,
            )
        except BaseException:
            os.close(fd)
            part_path.unlink(missing_ok=True)
            raise

    @property
    def samples(self) -> int:
        """Samples written so far, buffered ones included."""
        return self._samples

    @property
    def duration_s(self) -> float:
        """Seconds of audio written so far, buffered ones included."""
        return self._samples / self.rate_hz

    @property
    def closed(self) -> bool:
        """True once close() was called, even if it raised: no more writes."""
        return self._closed

    def write(self, samples: NDArray[np.float32]) -> None:
        """Append float32 samples in [-1, 1), shape (n,); out-of-range values are clipped.

        Cheap enough for the 20 ms media tick: a scale, clip and round into a preallocated
        int16 buffer, plus a flush (one write and a header rewrite) once per interval.
        Raises ValueError after close(), OverflowError past the 4 GiB RIFF limit.
        """
        if self._closed:
            raise ValueError("write to a closed recording")
        count = len(samples)
        if self._samples + count > MAX_SAMPLES:
            raise OverflowError("recording reached the 4 GiB RIFF limit; start a new one")
        capacity = len(self._buffer)
        taken = 0
        while taken < count:
            chunk = min(count - taken, capacity - self._buffered)
            # In place, without temporaries; np.minimum/np.maximum because np.clip's
            # Python wrapper alone costs more than the arithmetic on 320 samples.
            scaled = self._scratch[:chunk]
            np.multiply(samples[taken : taken + chunk], 32768.0, out=scaled)
            np.minimum(scaled, 32767.0, out=scaled)
            np.maximum(scaled, -32768.0, out=scaled)
            end = self._buffered + chunk
            np.rint(scaled, out=self._buffer[self._buffered : end], casting="unsafe")
            self._buffered = end
            self._samples += chunk
            taken += chunk
            if self._buffered == capacity:
                self._flush()

    def note(self, key: str, value: str | int | float) -> None:
        """Add to the metadata what is known only at the end (how a report ended); it
        goes into `<stem>.json` at close."""
        if self._finished:
            raise ValueError(f"{self.final_path} is already finished")
        self._metadata[key] = value

    def close(self, ended_at: float) -> Path:
        """Finish the recording durably and return the path of `<stem>.wav`.

        Order matters for recovery: the audio is fsynced, `<stem>.json` is written before
        the rename, so a crash at any step leaves either a `.part` (which
        recover_recordings finishes) or a finished `.wav` with its `.json`. Calling it
        again returns the same path. If it raises (disk full), the `.part` stays for
        recover_recordings and a later close() retries.
        """
        self._closed = True
        if self._finished:
            return self.final_path
        if self._fd is not None:
            self._flush()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        summary = _summary(
            final_path=self.final_path,
            rate_hz=self.rate_hz,
            samples=self._samples,
            metadata=self._metadata,
            started_at=self._started_at,
            ended_at=ended_at,
        )
        _write_json_atomically(self.final_path.with_suffix(".json"), summary, durable=True)
        if self.part_path.exists():  # a retried close may find it renamed already
            os.replace(self.part_path, self.final_path)
        _sidecar_path(self.part_path).unlink(missing_ok=True)
        _fsync_directory(self.final_path.parent)
        self._finished = True
        return self.final_path

    def _flush(self) -> None:
        """Write the buffered samples after the last flushed ones, then fix the header.

        os.pwrite at an explicit offset (rather than os.write at the file position) makes
        a retry after a failed or short write land in the same place. Data goes first, so
        the header never claims bytes the file does not hold.
        """
        if self._buffered == 0 or self._fd is None:
            return
        data = self._buffer[: self._buffered].tobytes()
        offset = HEADER_BYTES + self._flushed_samples * SAMPLE_BYTES
        done = 0
        while done < len(data):
            done += os.pwrite(self._fd, data[done:], offset + done)
        self._flushed_samples += self._buffered
        self._buffered = 0
        _write_sizes(self._fd, self._flushed_samples * SAMPLE_BYTES)


def _create_part(directory: Path, stem: str) -> tuple[int, Path]:
    """Create `<stem>[-N].wav.part` exclusively, skipping stems any recording file uses."""
    suffix = 1
    while True:
        candidate = stem if suffix == 1 else f"{stem}-{suffix}"
        suffix += 1
        final = directory / f"{candidate}.wav"
        part = final.with_name(final.name + PART_SUFFIX)
        taken = (final, part, final.with_suffix(".json"), _sidecar_path(part))
        if any(path.exists() for path in taken):
            continue
        try:
            return os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), part
        except FileExistsError:  # another recording took it between the check and the open
            continue


def recover_recordings(directory: Path, now: float) -> list[Path]:
    """Finish every `*.wav.part` a crash left in `directory`; return the new `.wav` paths.

    Run at start-up, before any recording starts. A bad file is logged and left alone;
    the others are still recovered. `now` (epoch seconds) is noted as `recovered_at`.
    """
    if not directory.is_dir():
        return []
    recovered: list[Path] = []
    for part_path in sorted(directory.glob(f"*.wav{PART_SUFFIX}")):
        try:
            recovered.append(_recover(part_path, now))
        except (OSError, ValueError) as error:
            log.error("cannot recover recording %s, left as it is: %s", part_path, error)
    _remove_orphan_sidecars(directory)
    if recovered:
        _fsync_directory(directory)
    return recovered


def _recover(part_path: Path, now: float) -> Path:
    """Make one `.part` a finished recording with `"recovered": true` in its `.json`."""
    final_path = part_path.with_suffix("")
    if final_path.exists():
        raise FileExistsError(f"{final_path.name} already exists")
    ended_at = part_path.stat().st_mtime  # before truncating or rewriting touches it
    fd = os.open(part_path, os.O_RDWR)
    try:
        rate_hz = _rate_from_header(os.pread(fd, HEADER_BYTES, 0))
        file_bytes = os.fstat(fd).st_size
        # A crash mid-write can leave half a sample at the end (or data the header does
        # not count yet): keep every whole sample the file holds.
        data_bytes = min(file_bytes - HEADER_BYTES, MAX_DATA_BYTES)
        data_bytes -= data_bytes % SAMPLE_BYTES
        if file_bytes != HEADER_BYTES + data_bytes:
            os.ftruncate(fd, HEADER_BYTES + data_bytes)
        _write_sizes(fd, data_bytes)
        os.fsync(fd)
    finally:
        os.close(fd)
    samples = data_bytes // SAMPLE_BYTES
    sidecar_path = _sidecar_path(part_path)
    metadata, started_at = _read_sidecar(sidecar_path)
    if started_at is None:  # no sidecar: the best guess is that the audio ran until mtime
        started_at = ended_at - samples / rate_hz
    summary = _summary(
        final_path=final_path,
        rate_hz=rate_hz,
        samples=samples,
        metadata=metadata,
        started_at=started_at,
        ended_at=ended_at,
    )
    summary["recovered"] = True
    summary["recovered_at"] = _iso_utc(now)
    summary["recovered_at_epoch_s"] = now
    _write_json_atomically(final_path.with_suffix(".json"), summary, durable=True)
    os.replace(part_path, final_path)
    sidecar_path.unlink(missing_ok=True)
    log.warning("recovered recording %s (%.1f s) left by a crash", final_path, samples / rate_hz)
    return final_path


def _read_sidecar(path: Path) -> tuple[dict[str, Any], float | None]:
    """Return the metadata and start time of a sidecar, or ({}, None) if it is unusable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("recording %s has no sidecar; recovering it without metadata", path)
        return {}, None
    except (OSError, ValueError) as error:
        log.warning("unreadable sidecar %s (%s); recovering without metadata", path, error)
        return {}, None
    metadata = document.get("metadata") if isinstance(document, dict) else None
    started_at = document.get("started_at_epoch_s") if isinstance(document, dict) else None
    if not isinstance(metadata, dict) or not isinstance(started_at, int | float):
        log.warning("malformed sidecar %s; recovering without metadata", path)
        return {}, None
    return metadata, float(started_at)


def _remove_orphan_sidecars(directory: Path) -> None:
    """Remove sidecars a crash in close() left after the `.wav` was already renamed."""
    for sidecar in directory.glob(f"*.wav{PART_SUFFIX}{SIDECAR_SUFFIX}"):
        part_path = sidecar.with_suffix("")
        if not part_path.exists() and part_path.with_suffix("").exists():
            sidecar.unlink(missing_ok=True)


def read_recording(path: Path) -> tuple[NDArray[np.float32], int, dict[str, Any]]:
    """Return a finished recording's samples (float32, shape (n,)), rate and `.json` document."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != SAMPLE_BYTES:
            raise ValueError(f"{path}: recordings are mono 16-bit PCM WAV")
        rate_hz = wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / np.float32(32768.0)
    document: dict[str, Any] = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return samples, rate_hz, document
