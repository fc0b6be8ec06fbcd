"""The command line: check-config verdicts, serve refusing bad configs, and a clean SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest
import yaml

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
        r"dialplans/default\.yaml: OK: 2 rooms, 1 accounts, listening on "
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
