"""Hotline reports on disk: list them and export them for the people who follow them up.

An edge module for `telerapat reports`: it reads the finished recordings (`<stem>.wav` plus
the `<stem>.json` that bridge/recording.py writes) of the reports folder and never imports
twisted. It only reads that folder: a `.wav.part` still being written (or left by a crash
until the bridge restarts and recovers it) is not a report yet.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import wave
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

from bridge.recording import SIDECAR_SUFFIX, TEMP_SUFFIX

log = logging.getLogger(__name__)

UNKNOWN_CALLER = "unknown"
INDEX_NAME = "index.csv"
INDEX_COLUMNS = ("started_at", "duration_s", "caller", "caller_uri", "room", "ended_by", "file")

# How a report ended (metadata "ended_by"), in words for the table.
ENDED_BY_TEXT = {
    "hash": "# pressed",
    "hang-up": "hung up",
    "limit": "length limit",
    "crash": "bridge crashed",
}
# A caller's display name comes from their SIP From header, so it is theirs to choose:
# keep the table narrow when it is long.
_MAX_CALLER_CHARACTERS = 32
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection), and
# callers choose their display names: such cells get a leading apostrophe (OWASP's advice).
# Excel hides it and keeps the cell as text, which also keeps the "+" of "+62812...".
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Report:
    """One recorded hotline report; None where the files do not say."""

    path: Path  # the <stem>.wav
    room: str | None
    caller: str  # display name or number; UNKNOWN_CALLER without metadata
    caller_uri: str | None
    started_at: datetime  # aware, UTC
    duration_s: float
    ended_by: str | None  # "hash" | "hang-up" | "limit" | "crash"
    recovered: bool  # finished by recover_recordings after a crash


def list_reports(directory: Path) -> list[Report]:
    """Return the finished reports in `directory`, oldest first; none if it does not exist.

    A `.wav` whose `.json` is missing or unreadable is still listed, with what the WAV
    itself tells; one that is not a readable WAV either is logged and left out.
    """
    if not directory.is_dir():
        return []
    reports = []
    for wav_path in directory.glob("*.wav"):
        report = _read_report(wav_path)
        if report is not None:
            reports.append(report)
    reports.sort(key=lambda report: (report.started_at, report.path.name))
    return reports


def _read_report(wav_path: Path) -> Report | None:
    json_path = wav_path.with_suffix(SIDECAR_SUFFIX)
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
        return _report_from_summary(wav_path, document)
    except FileNotFoundError:
        log.warning("%s has no .json beside it; listed from its audio alone", wav_path)
    # JSONDecodeError is a ValueError; OverflowError: a start time past year 9999.
    except (OSError, ValueError, OverflowError) as error:
        log.warning("unreadable %s (%s); report listed from its audio alone", json_path, error)
    try:
        return _report_from_wav(wav_path)
    except (OSError, EOFError, wave.Error) as error:
        log.warning("skipping %s: neither its .json nor its audio can be read (%s)",
                    wav_path, error)
        return None


def _report_from_summary(wav_path: Path, document: Any) -> Report:
    """Build a Report from the `<stem>.json` of bridge.recording; ValueError if malformed."""
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    started_at = document.get("started_at_epoch_s")
    duration_s = document.get("duration_s")
    metadata = document.get("metadata", {})
    if not _is_finite_number(started_at) or not _is_finite_number(duration_s):
        raise ValueError("started_at_epoch_s or duration_s is not a finite number")
    if not isinstance(metadata, dict):
        raise ValueError("metadata is not an object")
    recovered = document.get("recovered") is True
    ended_by = _text(metadata, "ended_by")
    if ended_by is None and recovered:
        # Only a recording the bridge never closed is recovered: it crashed mid-report.
        ended_by = "crash"
    return Report(
        path=wav_path,
        room=_text(metadata, "room"),
        caller=_text(metadata, "caller") or UNKNOWN_CALLER,
        caller_uri=_text(metadata, "caller_uri"),
        started_at=datetime.fromtimestamp(started_at, tz=UTC),
        duration_s=float(duration_s),
        ended_by=ended_by,
        recovered=recovered,
    )


def _is_finite_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(metadata: Mapping[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return str(value) if value is not None and value != "" else None


def _report_from_wav(wav_path: Path) -> Report:
    """Build a Report from the audio alone: its length, and its mtime as the end.

    The same guess recover_recordings makes without a sidecar: the recording was last
    written when it ended.
    """
    with wave.open(str(wav_path), "rb") as wav:
        if wav.getframerate() <= 0:
            raise wave.Error(f"sample rate {wav.getframerate()} Hz")
        duration_s = wav.getnframes() / wav.getframerate()
    ended_at = wav_path.stat().st_mtime
    return Report(
        path=wav_path,
        room=None,
        caller=UNKNOWN_CALLER,
        caller_uri=None,
        started_at=datetime.fromtimestamp(ended_at - duration_s, tz=UTC),
        duration_s=duration_s,
        ended_by=None,
        recovered=False,
    )


def export_reports(reports: Sequence[Report], output: Path) -> Path:
    """Write a zip of every report's `.wav` and `.json` plus an index.csv; return `output`.

    The zip is built under a temporary name and renamed into place, so `output` is either
    the previous file or the whole new one. Deflate: speech with pauses shrinks by about a
    quarter (measured on the prompts), which matters when the zip is mailed.
    """
    temp = output.with_name(output.name + TEMP_SUFFIX)
    try:
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for report in reports:
                archive.write(report.path, report.path.name)
                json_path = report.path.with_suffix(SIDECAR_SUFFIX)
                if json_path.exists():
                    archive.write(json_path, json_path.name)
            archive.writestr(INDEX_NAME, index_csv(reports))
        os.replace(temp, output)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return output


def index_csv(reports: Iterable[Report]) -> str:
    """Return index.csv: a header, then one row per report, start times in local time.

    UTF-8 with a byte order mark, which is how Excel (what the operators open it with)
    recognises UTF-8; rows end in CRLF (RFC 4180 §2).
    """
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(INDEX_COLUMNS)
    for report in reports:
        writer.writerow([
            local_iso(report.started_at),
            f"{report.duration_s:.3f}",
            _cell(report.caller),
            _cell(report.caller_uri or ""),
            _cell(report.room or ""),
            _cell(report.ended_by or ""),
            _cell(report.path.name),
        ])
    return "\ufeff" + text.getvalue()


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def local_iso(moment: datetime) -> str:
    """Return `moment` in the local time zone as ISO 8601 with its offset, to the second."""
    return moment.astimezone().isoformat(timespec="seconds")


def format_duration(duration_s: float) -> str:
    """Return m:ss, rounded to the second (minutes go past 59: "75:00")."""
    minutes, seconds = divmod(round(duration_s), 60)
    return f"{minutes}:{seconds:02d}"


def how_it_ended(report: Report) -> str:
    """Return how the report ended in words, e.g. "hung up", "bridge crashed (recovered)"."""
    text = ENDED_BY_TEXT.get(report.ended_by or "", report.ended_by or "unknown")
    return f"{text} (recovered)" if report.recovered else text


def report_table(reports: Iterable[Report]) -> list[str]:
    """Return the lines of the `reports list` table: a header, then one line per report."""
    rows = [("started", "length", "caller", "room", "ended", "file")]
    for report in reports:
        rows.append((
            report.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            format_duration(report.duration_s),
            _shorten(_printable(report.caller), _MAX_CALLER_CHARACTERS),
            _printable(report.room or "-"),
            _printable(how_it_ended(report)),
            _printable(report.path.name),
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def _printable(text: str) -> str:
    """Escape control characters (a display name could carry terminal escape sequences)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report_json(report: Report) -> str:
    """Return one JSON line for `reports list --json`; the start in local time with offset."""
    return json.dumps({
        "started_at": local_iso(report.started_at),
        "duration_s": report.duration_s,
        "caller": report.caller,
        "caller_uri": report.caller_uri,
        "room": report.room,
        "ended_by": report.ended_by,
        "recovered": report.recovered,
        "file": str(report.path),
    })
