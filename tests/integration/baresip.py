"""Run baresip 1.0.0 as a scripted conference member: speak a WAV, record what it hears.

Each instance gets its own config folder, SIP port and ctrl_tcp port, loads only the
codecs asked for (G.711 by default; Opus, G.722), aufile (source), sndfile (records
`dump-*-dec.wav` received and `-enc.wav` sent, at the codec's rate and channels),
aubridge (a null player: a player is required), menu and ctrl_tcp, and never
registers (`regint=0`). The test drives it over ctrl_tcp's JSON interface (netstring
framed): `dial`, `sndcode` (RFC 4733 digits), `hangup`, `callstat`, `audio_debug`, and
waits on its call events.
Quirks this relies on are in /work/shared/PEERS.md.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.audio_analysis import read_wav, recorded_samples, recorded_seconds
from tests.integration.harness import (
    LOCALHOST,
    Process,
    ProcessGroup,
    free_port,
    free_port_range,
    wait_until,
)

MODULES_DIR = Path("/usr/lib/baresip/modules")


@dataclass(frozen=True, slots=True)
class AudioCodec:
    """A baresip audio codec: the module that provides it, and how `audio_codecs` names it."""

    module: str
    name: str  # encoding/RTP clock rate/channels, as the codec registers itself
    # The rate baresip's audio runs at with this codec: sndfile records at it, and a
    # source at it reaches the encoder without baresip's resampler.
    audio_rate_hz: int

    @property
    def encoding(self) -> str:
        """The encoding name in upper case, as the bridge logs it ("OPUS", "G722")."""
        return self.name.split("/", 1)[0].upper()


OPUS = AudioCodec("opus.so", "opus/48000/2", 48_000)
# RTP clock 8000 for G.722, although it samples at 16 kHz (RFC 3551 §4.5.2).
G722 = AudioCodec("g722.so", "G722/8000/1", 16_000)
PCMU = AudioCodec("g711.so", "PCMU/8000/1", 8_000)

_COMMAND_TIMEOUT_S = 5.0
_START_ATTEMPTS = 3  # baresip started again on fresh ports when one was taken meanwhile


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
    directory: Path,
    source_wav: Path,
    sip_port: int,
    ctrl_port: int,
    rtp_ports: tuple[int, int],
    codec_modules: Sequence[str],
) -> str:
    source_rate_hz = read_wav(source_wav)[1]
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
        # aufile refuses a file whose rate or channels differ from these (the codec's by
        # default); so the source is read as it is and baresip converts it to the codec's.
        f"ausrc_srate {source_rate_hz}",
        "ausrc_channels 1",
        "auplay_format s16",
        f"rtp_ports {rtp_ports[0]}-{rtp_ports[1]}",
        "rtcp_mux no",
        # An address, not an interface name: "lo" fails with "could not get network address".
        f"net_interface {LOCALHOST}",
        # Never ask the machine's resolver, which is not on loopback.
        f"dns_server {LOCALHOST}:53",
        f"module_path {MODULES_DIR}",
        *(f"module {module}" for module in codec_modules),
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

    def call(self, uri: str, timeout_s: float = 10.0) -> str:
        """Dial, wait until the call is established, and return its Call-ID."""
        self.dial(uri)
        return str(self.wait_event("CALL_ESTABLISHED", timeout_s)["id"])

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

    def heard_seconds(self) -> float:
        """Seconds of audio received and recorded so far, whatever the codec's rate."""
        paths = sorted(self.directory.glob("dump-*-dec.wav"))
        return recorded_seconds(paths[0]) if paths else 0.0

    def wait_heard_seconds(self, seconds: float, timeout_s: float) -> None:
        """Wait until the recording of what this member heard holds `seconds` of audio."""
        wait_until(lambda: self.heard_seconds() >= seconds, timeout_s,
                   f"{self.name} to have heard {seconds:g} s")

    def remote_audio_attributes(self) -> dict[str, str]:
        """The a= attributes of the far end's audio m= section, as baresip parsed them
        (`callstat`): for the bridge's answer, e.g. {"ptime": "40"}."""
        status = str(self.command("callstat")["data"])
        media = status.partition("\naudio ")[2]
        remote = media.partition("  remote attributes:\n")[2]
        attributes: dict[str, str] = {}
        for line in remote.splitlines():
            match = re.fullmatch(r"    (\S+?)(?:='(.*)')?", line)
            if match is None:
                break
            attributes[match.group(1)] = match.group(2) or ""
        return attributes

    def packets_received(self) -> int:
        """RTP packets received on the call's audio stream so far (`audio_debug`: the
        RTCP session's count for the far end's SSRC, RFC 3550 §6.4; no such line yet
        means no packet yet)."""
        status = str(self.command("audio_debug")["data"])
        if "RTCP Session" not in status:
            raise AssertionError(f"{self.name}: no RTCP session in audio_debug:\n{status}")
        match = re.search(r"\brcvd=(\d+)", status)
        return int(match.group(1)) if match else 0

    def kill(self) -> None:
        """SIGKILL: the process vanishes without a BYE, its RTP simply stops."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.popen.wait(timeout=5)


def start_baresip(
    group: ProcessGroup,
    name: str,
    source_wav: Path,
    *,
    codecs: Sequence[AudioCodec] = (),
    ptime_ms: int | None = None,
) -> Baresip:
    """Start a baresip member that speaks `source_wav` (mono) once a call is up.

    `codecs` are loaded and offered in that order, and nothing else (the account's
    `audio_codecs`); empty means the g711 module's two, PCMU and PCMA. `ptime_ms` is the
    packet time baresip sends and asks for (a=ptime); None keeps its default, 20 ms.

    baresip hangs up when the source file ends, so `source_wav` must be longer than
    any call the test makes.
    """
    directory = group.directory / name
    directory.mkdir()
    modules = list(dict.fromkeys(codec.module for codec in codecs)) or [PCMU.module]
    parameters = ";regint=0;answermode=manual"
    if codecs:
        parameters += ";audio_codecs=" + ",".join(codec.name for codec in codecs)
    if ptime_ms is not None:
        parameters += f";ptime={ptime_ms}"
    for attempt in range(1, _START_ATTEMPTS + 1):
        sip_port = _free_sip_port()
        ctrl_port = free_port(socket.SOCK_STREAM)
        (directory / "config").write_text(
            _config_text(directory, source_wav, sip_port, ctrl_port, free_port_range(20),
                         modules)
        )
        (directory / "accounts").write_text(
            f"<sip:{name}@{LOCALHOST}:{sip_port}>{parameters}\n"
        )
        process = group.start(name, ["baresip", "-f", str(directory)], cwd=directory)
        try:
            process.wait_for_output(r"baresip is ready", timeout_s=10)
            break
        except AssertionError:
            # The ports were free when probed, but another process may bind one before
            # baresip does (probing cannot reserve them): only that is tried again.
            if attempt == _START_ATTEMPTS or "Address already in use" not in process.output():
                raise
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
