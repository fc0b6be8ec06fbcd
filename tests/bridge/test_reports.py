"""Hotline reports on disk: listing (with and without metadata, recovered) and the zip export."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from bridge.recording import WavRecording, recording_stem, recover_recordings
from bridge.reports import (
    INDEX_COLUMNS,
    Report,
    export_reports,
    format_duration,
    how_it_ended,
    list_reports,
    local_iso,
    report_json,
    report_table,
)

RATE_HZ = 16000
STARTED_AT = 1795428900.0  # 2026-11-23T10:15:00Z


def speech_like(seconds: float, seed: int = 7) -> NDArray[np.float32]:
    """Return reproducible float32 noise in [-0.5, 0.5), `seconds` long at RATE_HZ."""
    rng = np.random.default_rng(seed)
    return (rng.random(round(seconds * RATE_HZ), dtype=np.float32) - 0.5).astype(np.float32)


def metadata(caller: str, ended_by: str = "hang-up") -> dict[str, str | int | float]:
    return {
        "room": "hotline",
        "caller": caller,
        "caller_uri": f"sip:{caller.lower().replace(' ', '.')}@rt05.example",
        "call_id": f"{caller}-call@192.0.2.7",
        "ended_by": ended_by,
    }


def record_report(
    directory: Path, caller: str, started_at: float, seconds: float, ended_by: str = "hang-up"
) -> Path:
    """Record a finished report as the bridge does; return its `.wav`."""
    recording = WavRecording.start(
        directory, recording_stem("report", caller, started_at), RATE_HZ,
        metadata(caller, ended_by), started_at,
    )
    recording.write(speech_like(seconds))
    return recording.close(started_at + seconds)


def record_recovered_report(directory: Path, work: Path, caller: str, seconds: float) -> Path:
    """Leave in `directory` what a crash mid-report leaves, then recover it at start-up."""
    recording = WavRecording.start(
        work, recording_stem("report", caller, STARTED_AT), RATE_HZ,
        {key: value for key, value in metadata(caller).items() if key != "ended_by"},
        STARTED_AT, flush_interval_s=0.5,
    )
    recording.write(speech_like(seconds))  # whole flush intervals: all of it reaches the file
    directory.mkdir(parents=True, exist_ok=True)
    for path in (recording.part_path, recording.part_path.with_name(
            recording.part_path.name + ".json")):
        shutil.copy(path, directory / path.name)
    recording.close(STARTED_AT + seconds)
    (recovered,) = recover_recordings(directory, now=STARTED_AT + 600)
    return recovered


def test_list_reports_gives_metadata_oldest_first(tmp_path: Path) -> None:
    later = record_report(tmp_path, "Pak Budi", STARTED_AT + 3600, 2.5, ended_by="hash")
    earlier = record_report(tmp_path, "0812345678", STARTED_AT, 1.0, ended_by="limit")

    assert list_reports(tmp_path) == [
        Report(
            path=earlier,
            room="hotline",
            caller="0812345678",
            caller_uri="sip:0812345678@rt05.example",
            started_at=datetime(2026, 11, 23, 10, 15, tzinfo=UTC),
            duration_s=1.0,
            ended_by="limit",
            recovered=False,
        ),
        Report(
            path=later,
            room="hotline",
            caller="Pak Budi",
            caller_uri="sip:pak.budi@rt05.example",
            started_at=datetime(2026, 11, 23, 11, 15, tzinfo=UTC),
            duration_s=2.5,
            ended_by="hash",
            recovered=False,
        ),
    ]


def test_recovered_report_is_listed_as_ended_by_a_crash(tmp_path: Path) -> None:
    path = record_recovered_report(tmp_path / "reports", tmp_path / "work", "Bu Sri", 1.5)

    (report,) = list_reports(tmp_path / "reports")

    assert report.path == path
    assert (report.caller, report.room, report.recovered) == ("Bu Sri", "hotline", True)
    assert report.ended_by == "crash"
    assert report.duration_s == 1.5
    assert report.started_at == datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    assert how_it_ended(report) == "bridge crashed (recovered)"


def test_wav_without_sidecar_is_listed_from_its_audio_and_mtime(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = record_report(tmp_path, "Pak Budi", STARTED_AT, 2.0)
    path.with_suffix(".json").unlink()
    ended_at = STARTED_AT + 7200.0
    os.utime(path, (ended_at, ended_at))

    with caplog.at_level(logging.WARNING):
        (report,) = list_reports(tmp_path)

    assert report == Report(
        path=path,
        room=None,
        caller="unknown",
        caller_uri=None,
        started_at=datetime.fromtimestamp(ended_at - 2.0, tz=UTC),
        duration_s=2.0,
        ended_by=None,
        recovered=False,
    )
    assert "has no .json" in caplog.text


@pytest.mark.parametrize(
    "sidecar",
    [
        "{ not json",
        "[1, 2]",
        '{"started_at_epoch_s": "yesterday", "duration_s": 2.0, "metadata": {}}',
        '{"started_at_epoch_s": 1795428900.0, "duration_s": NaN, "metadata": {}}',
        '{"started_at_epoch_s": 1e300, "duration_s": 2.0, "metadata": {}}',
        '{"started_at_epoch_s": 1795428900.0, "duration_s": 2.0, "metadata": "caller"}',
    ],
)
def test_unreadable_sidecar_falls_back_to_the_audio(tmp_path: Path, sidecar: str) -> None:
    path = record_report(tmp_path, "Pak Budi", STARTED_AT, 2.0)
    path.with_suffix(".json").write_text(sidecar)

    (report,) = list_reports(tmp_path)

    assert (report.caller, report.duration_s, report.room) == ("unknown", 2.0, None)


def test_report_still_being_recorded_is_not_listed(tmp_path: Path) -> None:
    finished = record_report(tmp_path, "Pak Budi", STARTED_AT, 1.0)
    recording = WavRecording.start(
        tmp_path, recording_stem("report", "Bu Sri", STARTED_AT + 60), RATE_HZ,
        metadata("Bu Sri"), STARTED_AT + 60, flush_interval_s=0.5,
    )
    try:
        recording.write(speech_like(1.0))
        assert [report.path for report in list_reports(tmp_path)] == [finished]
    finally:
        recording.close(STARTED_AT + 61)


def test_file_that_is_neither_wav_nor_described_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "stray.wav").write_bytes(b"not audio at all")

    with caplog.at_level(logging.WARNING):
        assert list_reports(tmp_path) == []

    assert "skipping" in caplog.text and "stray.wav" in caplog.text


def test_missing_directory_has_no_reports(tmp_path: Path) -> None:
    assert list_reports(tmp_path / "never-created") == []


def read_index(archive: zipfile.ZipFile) -> list[dict[str, str]]:
    text = archive.read("index.csv").decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_export_zips_every_wav_and_json_with_an_index(tmp_path: Path) -> None:
    directory = tmp_path / "reports"
    first = record_report(directory, "0812345678", STARTED_AT, 1.0, ended_by="limit")
    second = record_report(directory, "Pak Budi", STARTED_AT + 3600, 2.5, ended_by="hash")
    recovered = record_recovered_report(directory, tmp_path / "work", "Bu Sri", 1.5)
    undescribed = record_report(directory, "Anon", STARTED_AT + 7200, 0.5)
    undescribed.with_suffix(".json").unlink()
    os.utime(undescribed, (STARTED_AT + 7200.5, STARTED_AT + 7200.5))
    reports = list_reports(directory)
    output = tmp_path / "out" / "reports.zip"
    output.parent.mkdir()

    assert export_reports(reports, output) == output

    with zipfile.ZipFile(output) as archive:
        assert archive.testzip() is None
        names = sorted(archive.namelist())
        expected = {path.name for path in (first, second, recovered, undescribed)}
        expected |= {path.with_suffix(".json").name for path in (first, second, recovered)}
        assert names == sorted(expected | {"index.csv"})
        for name in expected:
            assert archive.read(name) == (directory / name).read_bytes()
        rows = read_index(archive)
    assert list(rows[0]) == list(INDEX_COLUMNS)
    assert rows == [
        {
            "started_at": local_iso(report.started_at),
            "duration_s": f"{report.duration_s:.3f}",
            "caller": report.caller,
            "caller_uri": report.caller_uri or "",
            "room": report.room or "",
            "ended_by": report.ended_by or "",
            "file": report.path.name,
        }
        for report in reports
    ]
    assert [row["ended_by"] for row in rows] == ["limit", "crash", "hash", ""]
    assert rows[0]["duration_s"] == "1.000"


@pytest.mark.parametrize(
    ("caller", "cell"),
    [('=HYPERLINK("http://x.example","klik")', '\'=HYPERLINK("http://x.example","klik")'),
     ("@SUM(A1)", "'@SUM(A1)"), ("+6281234567", "'+6281234567"), ("Pak Budi", "Pak Budi")],
)
def test_index_keeps_display_names_from_running_as_formulas(
    tmp_path: Path, caller: str, cell: str
) -> None:
    record_report(tmp_path, caller, STARTED_AT, 0.5)
    output = tmp_path / "reports.zip"

    export_reports(list_reports(tmp_path), output)

    with zipfile.ZipFile(output) as archive:
        (row,) = read_index(archive)
    assert row["caller"] == cell


def test_export_replaces_an_old_zip_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    directory = tmp_path / "reports"
    record_report(directory, "Pak Budi", STARTED_AT, 0.5)
    output = tmp_path / "reports.zip"
    output.write_bytes(b"an older export")

    export_reports(list_reports(directory), output)

    assert zipfile.is_zipfile(output)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["reports", "reports.zip"]


def test_failed_export_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = record_report(tmp_path, "Pak Budi", STARTED_AT, 0.5)
    reports = list_reports(tmp_path)
    path.unlink()  # deleted between listing and export
    output = tmp_path / "out.zip"

    with pytest.raises(FileNotFoundError):
        export_reports(reports, output)

    assert not output.exists()
    assert not (tmp_path / "out.zip.tmp").exists()


@pytest.mark.parametrize(
    ("duration_s", "text"),
    [(0.0, "0:00"), (0.4, "0:00"), (59.4, "0:59"), (59.6, "1:00"), (75.0, "1:15"),
     (4500.0, "75:00")],
)
def test_format_duration_is_minutes_and_seconds(duration_s: float, text: str) -> None:
    assert format_duration(duration_s) == text


def sample_report(**changes: object) -> Report:
    fields: dict[str, object] = {
        "path": Path("/var/lib/telerapat/reports/report-Pak_Budi-20261123T101500Z.wav"),
        "room": "hotline",
        "caller": "Pak Budi",
        "caller_uri": "sip:pak.budi@rt05.example",
        "started_at": datetime(2026, 11, 23, 10, 15, tzinfo=UTC),
        "duration_s": 75.2,
        "ended_by": "hang-up",
        "recovered": False,
    }
    fields.update(changes)
    return Report(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ended_by", "recovered", "text"),
    [("hash", False, "# pressed"), ("hang-up", False, "hung up"), ("limit", False, "length limit"),
     ("crash", True, "bridge crashed (recovered)"), (None, False, "unknown"),
     ("transfer", False, "transfer")],
)
def test_how_it_ended_in_words(ended_by: str | None, recovered: bool, text: str) -> None:
    assert how_it_ended(sample_report(ended_by=ended_by, recovered=recovered)) == text


def test_table_has_a_header_and_aligned_columns() -> None:
    local = datetime(2026, 11, 23, 10, 15, tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")

    lines = report_table(
        [sample_report(), sample_report(caller="0812", room=None, ended_by="hash")]
    )

    assert lines == [
        "started              length  caller    room     ended      file",
        f"{local}  1:15    Pak Budi  hotline  hung up    report-Pak_Budi-20261123T101500Z.wav",
        f"{local}  1:15    0812      -        # pressed  report-Pak_Budi-20261123T101500Z.wav",
    ]


def test_table_escapes_control_characters_and_shortens_long_callers() -> None:
    (_, escaped) = report_table([sample_report(caller="\x1b[31mBudi\x1b[0m")])
    (_, shortened) = report_table([sample_report(caller="B" * 50)])

    assert "\x1b" not in escaped
    assert "\\x1b[31mBudi\\x1b[0m" in escaped
    assert "B" * 31 + "…" in shortened and "B" * 32 not in shortened


def test_json_line_has_every_field_and_the_full_path() -> None:
    report = sample_report(recovered=True, ended_by="crash", caller_uri=None)

    assert json.loads(report_json(report)) == {
        "started_at": local_iso(report.started_at),
        "duration_s": 75.2,
        "caller": "Pak Budi",
        "caller_uri": None,
        "room": "hotline",
        "ended_by": "crash",
        "recovered": True,
        "file": "/var/lib/telerapat/reports/report-Pak_Budi-20261123T101500Z.wav",
    }
