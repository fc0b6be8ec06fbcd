"""The command line: check-config verdicts, serve refusing bad configs, a clean SIGTERM, and
`reports list|export`."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from bridge.recording import WavRecording, recording_stem
from tests.integration.harness import (
    LOCALHOST,
    REPO,
    SIPP,
    SIPP_SCENARIOS,
    ProcessGroup,
    default_test_config,
    free_port,
    free_port_range,
    start_bridge,
    start_sipp,
)

EXIT_TIMEOUT_S = 20.0
TELERAPAT = Path(sys.executable).parent / "telerapat"  # the console script of pyproject.toml

# A config with one mistake per line that matters; line numbers are the file's own.
BAD_CONFIG = """\
sip:
  listen: ["udp:localhost:5060"]
rtp:
  ports: "40001-40999"
rooms:
  - id: Rakor
    extension: "1000"
    pin: "12ab"
  - id: other
    extension: "1000"
    colour: blue
"""
BAD_CONFIG_PROBLEMS = {
    (2, "sip.listen[0]"),
    (4, "rtp.ports"),
    (6, "rooms[0].id"),
    (8, "rooms[0].pin"),
    (10, "rooms[1].extension"),
    (11, "rooms[1].colour"),
}


def problems(path: Path, stderr: str) -> set[tuple[int, str]]:
    """Parse `file:line: field: message` lines; fail on any line of another shape."""
    found = set()
    for line in stderr.splitlines():
        match = re.fullmatch(rf"{re.escape(str(path))}:(\d+): ([\w.\[\]]+): (.+)", line)
        assert match, f"not a file:line: field: message line: {line!r}"
        found.add((int(match.group(1)), match.group(2)))
    return found


@pytest.fixture
def bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    return path


def test_check_config_accepts_the_shipped_default(procs: ProcessGroup) -> None:
    process = procs.start(
        "check", [sys.executable, "-m", "bridge", "check-config", "dialplans/default.yaml"],
        cwd=REPO, separate_stderr=True,
    )
    assert process.wait_exit(EXIT_TIMEOUT_S) == 0, process.errors()
    assert re.fullmatch(
        r"dialplans/default\.yaml: OK: 3 rooms, 1 accounts, listening on "
        r"udp:127\.0\.0\.1:5060, tcp:127\.0\.0\.1:5060\n",
        process.output(),
    )
    assert process.errors() == ""


def test_check_config_reports_every_problem_with_file_line_and_field(
    procs: ProcessGroup, bad_config: Path
) -> None:
    process = procs.start(
        "check", [sys.executable, "-m", "bridge", "check-config", str(bad_config)],
        cwd=REPO, separate_stderr=True,
    )
    assert process.wait_exit(EXIT_TIMEOUT_S) == 1
    assert process.output() == ""
    assert problems(bad_config, process.errors()) == BAD_CONFIG_PROBLEMS
    assert '"localhost" is not an IP address' in process.errors()


def test_check_config_of_a_missing_file_exits_1(procs: ProcessGroup, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    process = procs.start(
        "check", [sys.executable, "-m", "bridge", "check-config", str(missing)],
        cwd=REPO, separate_stderr=True,
    )
    assert process.wait_exit(EXIT_TIMEOUT_S) == 1
    assert process.errors() == f"{missing}: No such file or directory\n"


def test_telerapat_serve_with_a_bad_config_exits_1_with_the_problems(
    procs: ProcessGroup, bad_config: Path
) -> None:
    assert TELERAPAT.exists(), "the telerapat script is installed with the package"
    process = procs.start(
        "serve", [str(TELERAPAT), "serve", "--config", str(bad_config)],
        cwd=REPO, separate_stderr=True,
    )
    assert process.wait_exit(EXIT_TIMEOUT_S) == 1
    assert problems(bad_config, process.errors()) == BAD_CONFIG_PROBLEMS
    assert "listening" not in process.output()


def test_serve_exits_1_when_its_sip_port_is_taken(procs: ProcessGroup, tmp_path: Path) -> None:
    port = free_port(both=True)
    config_path = tmp_path / "taken.yaml"
    config_path.write_text(yaml.safe_dump(default_test_config(port, free_port_range(20))))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((LOCALHOST, port))
        process = procs.start(
            "serve", [sys.executable, "-m", "bridge", "serve", "--config", str(config_path)],
            cwd=REPO,
        )
        assert process.wait_exit(EXIT_TIMEOUT_S) == 1
    assert re.search(rf"cannot start: .*{LOCALHOST}:{port}", process.output())


@pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian package sip-tester)")
def test_sigterm_hangs_up_every_member_with_bye_and_exits_0(procs: ProcessGroup) -> None:
    bridge = start_bridge(procs)
    member = start_sipp(procs, bridge, SIPP_SCENARIOS / "wait_bye.xml", service="2000")
    call_id = f"1-{member.process.pid}@{LOCALHOST}"  # SIPp's [call_id] of its first call
    bridge.process.wait_for_output(rf"call={re.escape(call_id)} [^\n]*joined", timeout_s=10)
    os.kill(bridge.process.pid, signal.SIGTERM)
    assert bridge.process.wait_exit(EXIT_TIMEOUT_S) == 0, bridge.log()[-3000:]
    run = member.finish(timeout_s=EXIT_TIMEOUT_S)
    assert run.returncode == 0, run.describe()
    (bye,) = run.requests_received("BYE")
    assert bye.header("Call-ID") == call_id
    assert [m.status for m in run.responses_sent("BYE")] == [200]
    log = bridge.log()
    assert f"call={call_id} room=terbuka member=1: hanging up: bridge shutting down" in log
    assert re.search(rf"call={re.escape(call_id)} [^\n]*ended \(hung up, BYE answered 200\)",
                     log)
    assert "Traceback" not in log


# -- telerapat reports ---------------------------------------------------------------------

# Western Indonesian Time (UTC+7, no daylight saving) as a POSIX TZ rule, which needs no
# zoneinfo files: the reports commands show times in the local zone.
WIB = {"TZ": "WIB-7"}
REPORT_RATE_HZ = 16000
FIRST_REPORT_AT = 1795428900.0  # 2026-11-23T10:15:00Z, 17:15 WIB
SECOND_REPORT_AT = 1795455000.0  # 2026-11-23T17:30:00Z, already 2026-11-24 00:30 WIB


def record_report(
    directory: Path, caller: str, started_at: float, seconds: float, ended_by: str
) -> Path:
    """Record a finished hotline report the way the bridge does."""
    metadata: dict[str, str | int | float] = {
        "room": "hotline", "caller": caller, "caller_uri": f"sip:{caller}@rt05.example",
        "call_id": f"{started_at}@192.0.2.7", "ended_by": ended_by,
    }
    recording = WavRecording.start(directory, recording_stem("report", caller, started_at),
                                   REPORT_RATE_HZ, metadata, started_at)
    noise = np.random.default_rng(5).random(round(seconds * REPORT_RATE_HZ), dtype=np.float32)
    recording.write(noise - np.float32(0.5))
    return recording.close(started_at + seconds)


@pytest.fixture
def reports_config(tmp_path: Path) -> Path:
    """A config whose recording folder (relative to it) holds two hotline reports."""
    path = tmp_path / "config" / "telerapat.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({**default_test_config(5060, (40000, 40999)),
                                    "recording": {"directory": "rec"}}))
    reports = path.parent / "rec" / "reports"
    record_report(reports, "0812345678", FIRST_REPORT_AT, 2.0, ended_by="hang-up")
    record_report(reports, "Pak Budi", SECOND_REPORT_AT, 1.0, ended_by="hash")
    return path


def run_reports(procs: ProcessGroup, config: Path, *arguments: str) -> tuple[int, str, str]:
    """Run the installed `telerapat reports`; return its exit status, stdout and stderr."""
    process = procs.start(
        "reports", [str(TELERAPAT), "reports", "--config", str(config), *arguments],
        cwd=REPO, env=WIB, separate_stderr=True,
    )
    status = process.wait_exit(EXIT_TIMEOUT_S)
    return status, process.output(), process.errors()


def test_reports_list_prints_a_table_in_local_time(
    procs: ProcessGroup, reports_config: Path
) -> None:
    status, output, errors = run_reports(procs, reports_config, "list")

    assert (status, errors) == (0, "")
    assert output == (
        "started              length  caller      room     ended      file\n"
        "2026-11-23 17:15:00  0:02    0812345678  hotline  hung up    "
        "report-0812345678-20261123T101500Z.wav\n"
        "2026-11-24 00:30:00  0:01    Pak Budi    hotline  # pressed  "
        "report-Pak_Budi-20261123T173000Z.wav\n"
    )


def test_reports_list_json_since_a_local_day(procs: ProcessGroup, reports_config: Path) -> None:
    status, output, errors = run_reports(procs, reports_config, "list", "--since", "2026-11-24",
                                         "--json")

    assert (status, errors) == (0, "")
    assert [json.loads(line) for line in output.splitlines()] == [{
        "started_at": "2026-11-24T00:30:00+07:00",
        "duration_s": 1.0,
        "caller": "Pak Budi",
        "caller_uri": "sip:Pak Budi@rt05.example",
        "room": "hotline",
        "ended_by": "hash",
        "recovered": False,
        "file": str(reports_config.parent / "rec" / "reports"
                    / "report-Pak_Budi-20261123T173000Z.wav"),
    }]


def test_reports_export_writes_a_zip_and_says_how_many(
    procs: ProcessGroup, reports_config: Path, tmp_path: Path
) -> None:
    output = tmp_path / "hotline-november.zip"

    status, printed, errors = run_reports(procs, reports_config, "export", "--output", str(output))

    assert (status, errors) == (0, "")
    reports = reports_config.parent / "rec" / "reports"
    assert printed == f"exported 2 reports from {reports} to {output}\n"
    with zipfile.ZipFile(output) as archive:
        assert sorted(archive.namelist()) == sorted(
            [path.name for path in reports.iterdir()] + ["index.csv"]
        )
        index = archive.read("index.csv").decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(index)))
    assert rows == [
        ["started_at", "duration_s", "caller", "caller_uri", "room", "ended_by", "file"],
        ["2026-11-23T17:15:00+07:00", "2.000", "0812345678", "sip:0812345678@rt05.example",
         "hotline", "hang-up", "report-0812345678-20261123T101500Z.wav"],
        ["2026-11-24T00:30:00+07:00", "1.000", "Pak Budi", "sip:Pak Budi@rt05.example",
         "hotline", "hash", "report-Pak_Budi-20261123T173000Z.wav"],
    ]


def test_reports_without_any_say_so(procs: ProcessGroup, reports_config: Path) -> None:
    status, output, errors = run_reports(procs, reports_config, "list", "--since", "2026-11-25")

    assert (status, errors) == (0, "")
    reports = reports_config.parent / "rec" / "reports"
    assert output == f"no reports in {reports} since 2026-11-25\n"


def test_reports_with_a_bad_config_exits_1_with_the_problems(
    procs: ProcessGroup, bad_config: Path
) -> None:
    status, output, errors = run_reports(procs, bad_config, "list")

    assert (status, output) == (1, "")
    assert problems(bad_config, errors) == BAD_CONFIG_PROBLEMS


def test_reports_with_a_bad_date_is_a_usage_error(
    procs: ProcessGroup, reports_config: Path
) -> None:
    status, output, errors = run_reports(procs, reports_config, "list", "--since", "23/11/2026")

    assert (status, output) == (2, "")
    assert "'23/11/2026' is not a date like 2026-11-23" in errors
