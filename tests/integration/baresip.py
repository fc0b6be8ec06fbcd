"""Run baresip 1.0.0 as a scripted conference member: speak a WAV, record what it hears.

Each instance gets its own config folder, SIP port and ctrl_tcp port, loads only g711,
aufile (source), sndfile (records `dump-*-dec.wav` received and `-enc.wav` sent),
aubridge (a null player: a player is required), menu and ctrl_tcp, and never
registers (`regint=0`). The test drives it over ctrl_tcp's JSON interface (netstring
framed): `dial`, `sndcode` (RFC 4733 digits), `hangup`, and waits on its call events.
Quirks this relies on are in /work/shared/PEERS.md.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.audio_analysis import recorded_samples
from tests.integration.harness import (
    LOCALHOST,
    Process,
    ProcessGroup,
    free_port,
    free_port_range,
    wait_until,
)

MODULES_DIR = Path("/usr/lib/baresip/modules")
_COMMAND_TIMEOUT_S = 5.0


def _free_sip_port() -> int:
    """A port free for UDP and TCP whose successor is free for TCP too.

    baresip binds `sip_listen` on UDP and TCP and its TLS listener on the next port.
    """
    for _ in range(100):
        port = free_port(both=True)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tls:
                tls.bind((LOCALHOST, port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free SIP port pair on 127.0.0.1")


def _config_text(
    directory: Path, source_wav: Path, sip_port: int, ctrl_port: int, rtp_ports: tuple[int, int]
) -> str:
    return "\n".join([
        "poll_method epoll",
        f"sip_listen {LOCALHOST}:{sip_port}",
        "call_local_timeout 120",
        "call_max_calls 1",
        # aubridge with no source of the same device name plays into nothing.
        "audio_player aubridge,null",
        "audio_alert aubridge,null",
        f"audio_source aufile,{source_wav}",
        "audio_level no",
        "ausrc_format s16",
        "auplay_format s16",
        f"rtp_ports {rtp_ports[0]}-{rtp_ports[1]}",
        "rtcp_mux no",
        # An address, not an interface name: "lo" fails with "could not get network address".
        f"net_interface {LOCALHOST}",
        # Never ask the machine's resolver, which is not on loopback.
        f"dns_server {LOCALHOST}:53",
        f"module_path {MODULES_DIR}",
        "module g711.so",
        "module sndfile.so",
        "module aufile.so",
        "module aubridge.so",
        "module_tmp account.so",
        "module_app menu.so",
        "module_app ctrl_tcp.so",
        f"ctrl_tcp_listen {LOCALHOST}:{ctrl_port}",
        "statmode_default off",
        f"snd_path {directory}",
        "",
    ])


@dataclass
class _ControlChannel:
    """ctrl_tcp's JSON-in-netstring protocol: send commands, collect responses and events."""

    sock: socket.socket
    buffer: bytes = b""
    events: list[dict[str, Any]] = field(default_factory=list)
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)

    def send(self, command: str, params: str, token: str) -> None:
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def poll(self) -> None:
        """Read whatever has arrived, without blocking, and parse complete netstrings."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
        while True:
            length, colon, rest = self.buffer.partition(b":")
            if not colon or not length.isdigit() or len(rest) < int(length) + 1:
                return
            size = int(length)
            message = json.loads(rest[:size])
            self.buffer = rest[size + 1 :]  # drop the trailing ","
            if message.get("response"):
                self.responses[str(message.get("token"))] = message
            elif message.get("event"):
                self.events.append(message)


@dataclass
class Baresip:
    """One running baresip, its control channel and its recordings."""

    name: str
    process: Process
    directory: Path
    sip_port: int
    control: _ControlChannel
    _tokens: int = 0

    def command(self, command: str, params: str = "") -> dict[str, Any]:
        """Run a ctrl_tcp command and return its response; fail the test if it fails."""
        self._tokens += 1
        token = f"{self.name}-{self._tokens}"
        self.control.send(command, params, token)

        def answered() -> bool:
            self.control.poll()
            return token in self.control.responses

        wait_until(answered, _COMMAND_TIMEOUT_S, f"{self.name} to answer {command!r}")
        response = self.control.responses.pop(token)
        if not response.get("ok"):
            raise AssertionError(
                f"{self.name}: {command} {params!r} failed: {response.get('data')!r}\n"
                f"{self.process.output()[-2000:]}"
            )
        return response

    def dial(self, uri: str) -> None:
        self.command("dial", uri)

    def send_digits(self, digits: str) -> None:
        """Queue RFC 4733 digits (baresip sends no in-band tones); ~240 ms per digit."""
        self.command("sndcode", digits)

    def hang_up(self) -> None:
        self.command("hangup")

    def wait_event(self, event_type: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """Wait for a call event such as CALL_ESTABLISHED or CALL_CLOSED; return it."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            self.control.poll()
            found.extend(e for e in self.control.events if e.get("type") == event_type)
            if self.process.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.process.popen.returncode}):\n"
                    f"{self.process.output()[-2000:]}"
                )
            return bool(found)

        wait_until(seen, timeout_s, f"{self.name} to report {event_type}")
        return found[0]

    def has_event(self, event_type: str) -> bool:
        self.control.poll()
        return any(e.get("type") == event_type for e in self.control.events)

    def call(self, uri: str, timeout_s: float = 10.0) -> None:
        """Dial and wait until the call is established."""
        self.dial(uri)
        self.wait_event("CALL_ESTABLISHED", timeout_s)

    def end_call(self, timeout_s: float = 10.0) -> None:
        """Hang up and wait until baresip has closed the call (and its recordings)."""
        self.hang_up()
        self.wait_event("CALL_CLOSED", timeout_s)

    def recording(self, kind: str = "dec") -> Path:
        """The sndfile recording of this instance's one call: `dec` heard, `enc` sent."""
        paths = sorted(self.directory.glob(f"dump-*-{kind}.wav"))
        if len(paths) != 1:
            raise AssertionError(f"{self.name}: expected one {kind} recording, found {paths}")
        return paths[0]

    def heard_samples(self) -> int:
        """Samples received and recorded so far (0 before the call's media starts)."""
        paths = sorted(self.directory.glob("dump-*-dec.wav"))
        return recorded_samples(paths[0]) if paths else 0

    def wait_heard(self, samples: int, timeout_s: float) -> None:
        """Wait until the recording of what this member heard holds `samples` samples."""
        wait_until(lambda: self.heard_samples() >= samples, timeout_s,
                   f"{self.name} to have heard {samples} samples")

    def kill(self) -> None:
        """SIGKILL: the process vanishes without a BYE, its RTP simply stops."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.popen.wait(timeout=5)


def start_baresip(group: ProcessGroup, name: str, source_wav: Path) -> Baresip:
    """Start a baresip member that speaks `source_wav` (mono, 8 kHz) once a call is up.

    baresip hangs up when the source file ends, so `source_wav` must be longer than
    any call the test makes.
    """
    directory = group.directory / name
    directory.mkdir()
    sip_port = _free_sip_port()
    ctrl_port = free_port(socket.SOCK_STREAM)
    (directory / "config").write_text(
        _config_text(directory, source_wav, sip_port, ctrl_port, free_port_range(20))
    )
    (directory / "accounts").write_text(
        f"<sip:{name}@{LOCALHOST}:{sip_port}>;regint=0;answermode=manual\n"
    )
    process = group.start(name, ["baresip", "-f", str(directory)], cwd=directory)
    process.wait_for_output(r"baresip is ready", timeout_s=10)
    deadline = time.monotonic() + 5.0
    while True:
        try:
            sock = socket.create_connection((LOCALHOST, ctrl_port), timeout=1.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: ctrl_tcp not listening on {ctrl_port}") from None
            time.sleep(0.02)
    sock.setblocking(False)
    return Baresip(name, process, directory, sip_port, _ControlChannel(sock))
