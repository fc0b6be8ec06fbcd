"""Start the real bridge and real SIP clients on 127.0.0.1, with bounded waits.

Every process started here is tracked by PID and killed at teardown, whatever the
test's outcome. Waits poll with a deadline; nothing sleeps for a fixed time to let
something happen.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
LOCALHOST = "127.0.0.1"


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `predicate` every 20 ms until true; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.02)


def free_port(kind: int = socket.SOCK_DGRAM, *, both: bool = False) -> int:
    """A port free on 127.0.0.1 for UDP (and TCP too when `both`)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((LOCALHOST, 0))
            port = int(probe.getsockname()[1])
        if not both:
            return port
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind((LOCALHOST, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port on 127.0.0.1")


def free_port_range(count: int) -> tuple[int, int]:
    """An even-aligned block of `count` ports free for UDP, away from the ephemeral range."""
    rng = __import__("random").Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        base = rng.randrange(20000, 30000 - count) & ~1
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind((LOCALHOST, port))
            return base, base + count - 1
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range")


@dataclass
class Process:
    """A child process with its output captured to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_output(self, pattern: str, timeout_s: float = 10.0) -> re.Match[str]:
        """Wait until the output matches `pattern` (a regex); return the match."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = re.search(pattern, self.output())
            if match:
                found.append(match)
                return True
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.popen.returncode}) before printing "
                    f"{pattern!r}:\n{self.output()[-3000:]}"
                )
            return False

        wait_until(seen, timeout_s, f"{self.name} to print {pattern!r}")
        return found[0]

    def wait_exit(self, timeout_s: float) -> int:
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"{self.name} still running after {timeout_s:g} s:\n{self.output()[-3000:]}"
            ) from exc

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; always reaps the child (by PID)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)


@dataclass
class ProcessGroup:
    """Every process a test started, stopped at teardown in reverse order."""

    directory: Path
    processes: list[Process] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> Process:
        log_path = self.directory / f"{name}.log"
        handle = log_path.open("wb")
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=stdin,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches its children
        )
        handle.close()
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@dataclass
class RunningBridge:
    process: Process
    sip_port: int
    config_path: Path
    config: dict[str, object]

    def uri(self, extension: str, transport: str = "udp") -> str:
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"sip:{extension}@{LOCALHOST}:{self.sip_port}{suffix}"

    def log(self) -> str:
        return self.process.output()


def default_test_config(sip_port: int, rtp_range: tuple[int, int]) -> dict[str, object]:
    return {
        "sip": {
            "listen": [f"udp:{LOCALHOST}:{sip_port}", f"tcp:{LOCALHOST}:{sip_port}"],
            "domain": "telerapat.test",
        },
        "rtp": {"ports": f"{rtp_range[0]}-{rtp_range[1]}", "timeout_s": 30},
        "language": "en",
        "accounts": {"demo": {"password": "demo1234", "display": "Demo"}},
        "rooms": [
            {"id": "terbuka", "extension": "2000"},
            {"id": "rakor", "extension": "1000", "pin": "4321", "moderator_pin": "9876"},
            {"id": "tertutup", "extension": "3000", "access": "accounts"},
        ],
    }


def start_bridge(
    group: ProcessGroup, config: dict[str, object] | None = None, *, rtp_ports: int = 200
) -> RunningBridge:
    """Write a config on free ports and start `python -m bridge serve` with it."""
    sip_port = free_port(both=True)
    if config is None:
        config = default_test_config(sip_port, free_port_range(rtp_ports))
    else:
        config = {**config}
        sip = dict(config.get("sip", {}))  # type: ignore[call-overload]
        sip["listen"] = [f"udp:{LOCALHOST}:{sip_port}", f"tcp:{LOCALHOST}:{sip_port}"]
        config["sip"] = sip
        rtp = dict(config.get("rtp", {}))  # type: ignore[call-overload]
        low, high = free_port_range(rtp_ports)
        rtp.setdefault("ports", f"{low}-{high}")
        config["rtp"] = rtp
    config_path = group.directory / "bridge.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    process = group.start(
        "bridge",
        [sys.executable, "-m", "bridge", "serve", "--config", str(config_path),
         "--log-level", "DEBUG"],
        cwd=REPO,
    )
    process.wait_for_output(r"call sip:", timeout_s=20)
    return RunningBridge(process, sip_port, config_path, config)


def processes(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Generator behind the `procs` fixture."""
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
