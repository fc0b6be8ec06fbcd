"""Start the real bridge and real SIP clients on 127.0.0.1, with bounded waits.

Every process started here is tracked by PID and killed at teardown, whatever the
test's outcome. Waits poll with a deadline; nothing sleeps for a fixed time to let
something happen.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
    stderr_path: Path | None = None  # set when started with `separate_stderr`

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def errors(self) -> str:
        """What the process wrote to stderr, when it was kept apart from stdout."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

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
        separate_stderr: bool = False,
    ) -> Process:
        log_path = self.directory / f"{name}.log"
        stderr_path = self.directory / f"{name}.stderr" if separate_stderr else None
        handle = log_path.open("wb")
        error_handle = stderr_path.open("wb") if stderr_path is not None else None
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=stdin,
            stdout=handle,
            stderr=error_handle if error_handle is not None else subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches its children
        )
        handle.close()
        if error_handle is not None:
            error_handle.close()
        process = Process(name, popen, log_path, stderr_path)
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


# -- SIPp (Debian sip-tester) ----------------------------------------------------------------

SIPP = shutil.which("sipp")
SIPP_SCENARIOS = Path(__file__).resolve().parent / "sipp"
SIPP_PCAPS = Path("/usr/share/sip-tester")  # dtmf_2833_<key>.pcap, g711a.pcap

# One entry of `-trace_msg`: a dashed line with the time, then "UDP message sent (N bytes):"
# or "TCP message received [N] bytes :", an empty line, and the N bytes of the message.
_TRACE_ENTRY = re.compile(
    rb"^-{10,} (?P<stamp>\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d\.\d+)\n"
    rb"(?P<transport>UDP|TCP|TLS) message (?P<direction>sent|received) "
    rb"(?:\((?P<sent_length>\d+) bytes\)|\[(?P<received_length>\d+)\] bytes ?):\n\n",
    re.MULTILINE,
)


@dataclass(frozen=True)
class TracedMessage:
    """One SIP message SIPp sent or received, as its `-trace_msg` file recorded it."""

    direction: str  # "sent" | "received"
    transport: str  # "UDP" | "TCP"
    at: float  # wall-clock seconds (SIPp's own timestamp)
    text: str

    @property
    def start_line(self) -> str:
        return self.text.split("\r\n", 1)[0]

    @property
    def status(self) -> int | None:
        """The status code of a response, None for a request."""
        match = re.match(r"SIP/2\.0 (\d{3}) ", self.start_line + " ")
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str:
        """The request's method, or the CSeq method of a response."""
        if self.status is None:
            return self.start_line.split(" ", 1)[0]
        return (self.header("CSeq") or " ").split()[-1]

    @property
    def body(self) -> str:
        return self.text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in self.text else ""

    def headers(self, name: str) -> list[str]:
        """Every value of header `name` (case-insensitive, full names only)."""
        head = self.text.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
        wanted = name.lower()
        return [
            value.strip()
            for field_name, _, value in (line.partition(":") for line in head)
            if field_name.strip().lower() == wanted
        ]

    def header(self, name: str) -> str | None:
        values = self.headers(name)
        return values[0] if values else None


def parse_sipp_trace(data: bytes) -> list[TracedMessage]:
    """Split a SIPp `-message_file` into its messages, in order."""
    messages = []
    for match in _TRACE_ENTRY.finditer(data):
        start = match.end()
        length = int(match.group("sent_length") or match.group("received_length"))
        text = data[start : start + length].decode("utf-8", "replace")
        stamp = datetime.strptime(
            match.group("stamp").decode().replace("\t", " "), "%Y-%m-%d %H:%M:%S.%f"
        )
        messages.append(
            TracedMessage(
                match.group("direction").decode(),
                match.group("transport").decode(),
                stamp.timestamp(),
                text,
            )
        )
    return messages


@dataclass(frozen=True)
class SippRun:
    """What a finished SIPp run left: its exit code, messages, statistics and errors."""

    returncode: int
    messages: list[TracedMessage]
    statistics: dict[str, str]  # the last row of `-trace_stat`, cumulative columns "(C)"
    output: str
    errors: str

    def requests_received(self, method: str | None = None) -> list[TracedMessage]:
        return self._select("received", True, method, None)

    def responses_received(
        self, method: str | None = None, status: int | None = None
    ) -> list[TracedMessage]:
        """Responses SIPp received, to requests of `method` (by CSeq) with `status`."""
        return self._select("received", False, method, status)

    def requests_sent(self, method: str | None = None) -> list[TracedMessage]:
        return self._select("sent", True, method, None)

    def responses_sent(self, method: str | None = None) -> list[TracedMessage]:
        return self._select("sent", False, method, None)

    def _select(
        self, direction: str, requests: bool, method: str | None, status: int | None
    ) -> list[TracedMessage]:
        return [
            m for m in self.messages
            if m.direction == direction
            and (m.status is None) == requests
            and (method is None or m.method == method)
            and (status is None or m.status == status)
        ]

    @property
    def call_ids(self) -> list[str]:
        """The Call-IDs of the calls SIPp placed, in order of the first message about each.

        Responses count too: SIPp leaves out of its trace a request that its socket took
        only in part (EAGAIN under load over TCP) and sent later from its own buffer.
        """
        seen: dict[str, None] = {}
        for message in self.messages:
            if message.method == "INVITE" and (message.status is None) == (
                message.direction == "sent"
            ):
                seen.setdefault(message.header("Call-ID") or "", None)
        return list(seen)

    def describe(self) -> str:
        """Everything useful when a run failed: output tail, errors, first lines seen."""
        flow = "\n".join(f"  {m.direction:8} {m.start_line}" for m in self.messages)
        return (
            f"sipp exit code {self.returncode}\n--- errors:\n{self.errors[-2000:]}\n"
            f"--- messages:\n{flow}\n--- output:\n{self.output[-2000:]}"
        )


@dataclass
class Sipp:
    """A SIPp process started by `start_sipp`; `finish` waits for it, bounded."""

    process: Process
    message_file: Path
    error_file: Path
    stat_file: Path

    def finish(self, timeout_s: float = 30.0) -> SippRun:
        returncode = self.process.wait_exit(timeout_s)
        stats: dict[str, str] = {}
        if self.stat_file.exists():
            rows = [r for r in csv.reader(self.stat_file.open(), delimiter=";") if r]
            if len(rows) >= 2:
                stats = dict(zip(rows[0], rows[-1], strict=False))
        return SippRun(
            returncode,
            parse_sipp_trace(self.message_file.read_bytes()) if self.message_file.exists()
            else [],
            stats,
            self.process.output(),
            self.error_file.read_text(errors="replace") if self.error_file.exists() else "",
        )


def start_sipp(
    group: ProcessGroup,
    bridge: RunningBridge,
    scenario: Path | str,
    *,
    service: str,
    transport: str = "udp",
    calls: int = 1,
    extra_args: Sequence[str] = (),
    max_run_s: int = 30,
) -> Sipp:
    """Start SIPp against the bridge with a scenario file (a Path) or a built-in (`"uac"`).

    SIPp gets its own free SIP and media ports on 127.0.0.1, writes its message trace,
    errors and statistics into the group's directory, and ends itself with an error
    after `max_run_s` whatever the scenario does.
    """
    if SIPP is None:
        raise RuntimeError("sipp is not installed (Debian package sip-tester)")
    index = len(group.processes)
    stem = scenario.stem if isinstance(scenario, Path) else scenario
    name = f"sipp{index}-{stem}-{transport}"
    files = {kind: group.directory / f"{name}.{kind}" for kind in ("msg", "err", "csv")}
    media_port = free_port_range(4)[0]
    argv = [
        SIPP, f"{LOCALHOST}:{bridge.sip_port}",
        *(["-sf", str(scenario)] if isinstance(scenario, Path) else ["-sn", scenario]),
        "-s", service, "-i", LOCALHOST, "-mi", LOCALHOST,
        "-p", str(free_port(both=True)), "-mp", str(media_port),
        "-t", "t1" if transport == "tcp" else "u1",
        "-m", str(calls), "-nostdin", "-timeout", f"{max_run_s}s", "-timeout_error",
        "-trace_msg", "-message_file", str(files["msg"]),
        "-trace_err", "-error_file", str(files["err"]),
        "-trace_stat", "-stf", str(files["csv"]),
        *extra_args,
    ]
    process = group.start(name, argv, cwd=group.directory)
    return Sipp(process, files["msg"], files["err"], files["csv"])


def run_sipp(
    group: ProcessGroup,
    bridge: RunningBridge,
    scenario: Path | str,
    *,
    service: str,
    transport: str = "udp",
    calls: int = 1,
    extra_args: Sequence[str] = (),
    timeout_s: float = 30.0,
) -> SippRun:
    """Run SIPp to its end (bounded by `timeout_s`) and return what it saw."""
    sipp = start_sipp(
        group, bridge, scenario, service=service, transport=transport, calls=calls,
        extra_args=extra_args, max_run_s=int(timeout_s),
    )
    return sipp.finish(timeout_s + 5)


# -- RFC 2833 key presses for SIPp's play_pcap_audio ---------------------------------------

_PCAP_HEADER = struct.Struct("<IHHiIII")  # magic, version, tz, sigfigs, snaplen, linktype
_PCAP_RECORD = struct.Struct("<IIII")  # seconds, microseconds, captured, original length
_PCAP_MAGIC_US = 0xA1B2C3D4
_LINKTYPE_ETHERNET = 1
_ETHERNET_IPV4 = b"\x00" * 12 + b"\x08\x00"
_PCAP_FILE_NAMES = {"#": "pound", "*": "star"}


@dataclass(frozen=True)
class _EventPacket:
    offset_s: float
    sequence_offset: int
    marker: bool
    payload_type: int
    payload: bytes
    ports: tuple[int, int]


def _read_event_capture(path: Path) -> list[_EventPacket]:
    """The RTP packets of one Debian DTMF capture (Ethernet, IPv4, UDP, RTP)."""
    data = path.read_bytes()
    magic, *_, linktype = _PCAP_HEADER.unpack_from(data)
    if magic != _PCAP_MAGIC_US or linktype != _LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: expected a little-endian Ethernet pcap")
    packets: list[_EventPacket] = []
    offset = _PCAP_HEADER.size
    first: tuple[float, int] | None = None
    while offset < len(data):
        seconds, micros, captured, _ = _PCAP_RECORD.unpack_from(data, offset)
        frame = data[offset + _PCAP_RECORD.size : offset + _PCAP_RECORD.size + captured]
        offset += _PCAP_RECORD.size + captured
        ip = frame[14:]
        udp = ip[(ip[0] & 0x0F) * 4 :]
        source_port, destination_port = struct.unpack_from("!HH", udp)
        rtp = udp[8:]
        if rtp[0] >> 6 != 2 or rtp[0] & 0x1F:
            raise ValueError(f"{path}: expected RTP v2 without CSRCs or extension")
        sequence_number = struct.unpack_from("!H", rtp, 2)[0]
        at = seconds + micros / 1e6
        if first is None:
            first = (at, sequence_number)
        packets.append(_EventPacket(
            at - first[0], (sequence_number - first[1]) & 0xFFFF, bool(rtp[1] & 0x80),
            rtp[1] & 0x7F, rtp[12:], (source_port, destination_port),
        ))
    return packets


def _ipv4_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class KeyPressCaptures:
    """RFC 2833 key presses for SIPp's `play_pcap_audio`, made from the Debian captures.

    Each Debian capture holds one key press whose sequence numbers, timestamp and SSRC
    are the same whichever time it is played; SIPp replays them unchanged. Played twice,
    the second "1" is a duplicate of the first to any RFC 3550 receiver, not a new key
    press. Here every press keeps its capture's packets (marker, payload, spacing, end
    retransmissions) but gets sequence numbers continuing the call's stream and a
    timestamp of its own, as a phone sends them (RFC 4733 §2.5.1).
    """

    def __init__(
        self,
        ssrc: int = 0x7E1E5A9A,
        first_sequence_number: int = 20_000,
        clock_rate_hz: int = 8000,
    ) -> None:
        self._ssrc = ssrc
        self._next_sequence_number = first_sequence_number
        self._clock_rate_hz = clock_rate_hz
        self._first_timestamp = 160_000

    def write(self, path: Path, keys: str, *, start_s: float, key_interval_s: float) -> float:
        """Write presses of `keys`, one every `key_interval_s`, for a play starting
        `start_s` into the call; return how long the capture plays."""
        records = bytearray(_PCAP_HEADER.pack(_PCAP_MAGIC_US, 2, 4, 0, 0, 65535,
                                              _LINKTYPE_ETHERNET))
        end_s = 0.0
        for index, key in enumerate(keys):
            name = _PCAP_FILE_NAMES.get(key, key)
            press_s = index * key_interval_s
            timestamp = self._first_timestamp + round((start_s + press_s) * self._clock_rate_hz)
            packets = _read_event_capture(SIPP_PCAPS / f"dtmf_2833_{name}.pcap")
            for packet in packets:
                sequence_number = (self._next_sequence_number + packet.sequence_offset) & 0xFFFF
                rtp = struct.pack(
                    "!BBHII", 0x80, packet.marker << 7 | packet.payload_type,
                    sequence_number, timestamp & 0xFFFFFFFF, self._ssrc,
                ) + packet.payload
                udp = struct.pack("!HHHH", *packet.ports, 8 + len(rtp), 0) + rtp
                ip = bytearray(struct.pack(
                    "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                    socket.inet_aton(LOCALHOST), socket.inet_aton(LOCALHOST),
                ))
                ip[10:12] = struct.pack("!H", _ipv4_checksum(bytes(ip)))
                frame = _ETHERNET_IPV4 + bytes(ip) + udp
                at = press_s + packet.offset_s
                end_s = max(end_s, at)
                seconds, micros = divmod(round(at * 1e6), 1_000_000)
                records += _PCAP_RECORD.pack(seconds, micros, len(frame), len(frame))
                records += frame
            self._next_sequence_number += max(p.sequence_offset for p in packets) + 1
        path.write_bytes(bytes(records))
        return end_s


def write_audio_capture(
    path: Path, payloads: Sequence[bytes], *, payload_type: int, ports: tuple[int, int],
    ssrc: int = 0x5A1E17CE, samples_per_packet: int = 160, packet_s: float = 0.02,
) -> float:
    """Write RTP packets of encoded audio, one every `packet_s`, as an Ethernet pcap for
    SIPp's `play_pcap_audio` (which rewrites the addresses and ports); return its length."""
    records = bytearray(_PCAP_HEADER.pack(_PCAP_MAGIC_US, 2, 4, 0, 0, 65535,
                                          _LINKTYPE_ETHERNET))
    for index, payload in enumerate(payloads):
        rtp = struct.pack("!BBHII", 0x80, (index == 0) << 7 | payload_type, index & 0xFFFF,
                          (index * samples_per_packet) & 0xFFFFFFFF, ssrc) + payload
        udp = struct.pack("!HHHH", *ports, 8 + len(rtp), 0) + rtp
        ip = bytearray(struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
            socket.inet_aton(LOCALHOST), socket.inet_aton(LOCALHOST),
        ))
        ip[10:12] = struct.pack("!H", _ipv4_checksum(bytes(ip)))
        frame = _ETHERNET_IPV4 + bytes(ip) + udp
        seconds, micros = divmod(round(index * packet_s * 1e6), 1_000_000)
        records += _PCAP_RECORD.pack(seconds, micros, len(frame), len(frame)) + frame
    path.write_bytes(bytes(records))
    return len(payloads) * packet_s
