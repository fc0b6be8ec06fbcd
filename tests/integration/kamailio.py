"""Issue #5's peers on 127.0.0.1: the test trunk (Kamailio) and the dial-out UAS (SIPp).

Kamailio (tests/fixtures/kamailio/kamailio.cfg) runs in the foreground on a UDP port of
the test's choosing, tracked by PID in the test's `ProcessGroup`, logging to the group's
directory. Its registrar keeps bindings in memory only, so `restart()` gives a registrar
that forgot everyone. Who is registered is asked over Kamailio's JSON-RPC on a second UDP
port (`ul.lookup`), not read from its log. The dial-out UAS is SIPp playing
tests/integration/sipp/dialout_uas.xml on a port fixed before the bridge starts, so the
bridge's config can name it. Every wait is bounded.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from tests.integration.harness import (
    LOCALHOST,
    REPO,
    SIPP,
    SIPP_SCENARIOS,
    Process,
    ProcessGroup,
    RunningBridge,
    Sipp,
    free_port,
    free_port_range,
    wait_until,
)

KAMAILIO = shutil.which("kamailio")
KAMAILIO_CONFIG = REPO / "tests" / "fixtures" / "kamailio" / "kamailio.cfg"
TRUNK_USER = "telerapat"
TRUNK_REALM = LOCALHOST
USRLOC_TABLE = "location"
_SHARED_MEMORY_MB = 32
_PRIVATE_MEMORY_MB = 4
_PROBE_TIMEOUT_S = 0.2


class KamailioRpcError(RuntimeError):
    """Kamailio answered a JSON-RPC request with an error object."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {code} {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact registered for an address of record, as Kamailio's usrloc holds it."""

    contact: str  # the Contact URI, e.g. "sip:telerapat@127.0.0.1:5062;transport=udp"
    expires_s: int  # seconds left until the binding lapses
    call_id: str
    cseq: int
    user_agent: str
    received: str  # where the REGISTER came from when the registrar recorded it, or ""

    @property
    def port(self) -> int | None:
        """The contact URI's port, None when it has none."""
        match = re.match(r"sips?:(?:[^@]*@)?[^:;>]+:(\d+)", self.contact)
        return int(match.group(1)) if match else None


@dataclass
class RunningKamailio:
    """A Kamailio started by `start_kamailio`; `restart()` keeps its ports and config."""

    group: ProcessGroup
    argv: list[str]
    port: int
    rpc_port: int
    password: str
    process: Process
    generations: list[Process] = field(default_factory=list)

    def uri(self, user: str) -> str:
        """A SIP URI for `user` (a DID or the trunk user) at this Kamailio."""
        return f"sip:{user}@{LOCALHOST}:{self.port}"

    @property
    def sipp_peer(self) -> RunningBridge:
        """This Kamailio as the peer `harness.start_sipp`/`run_sipp` send to."""
        return RunningBridge(self.process, self.port, KAMAILIO_CONFIG, {})

    def log(self) -> str:
        """Everything every run of this Kamailio has logged, oldest first."""
        return "\n".join(
            f"----- {process.name} (pid {process.pid})\n{process.output()}"
            for process in self.generations
        )

    def rpc(self, method: str, *params: str | int, timeout_s: float = 2.0) -> Any:
        """Call a Kamailio RPC command; return its JSON `result` (jsonrpcs over UDP)."""
        request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind((LOCALHOST, 0))
            client.settimeout(timeout_s)
            client.sendto(json.dumps(request).encode(), (LOCALHOST, self.rpc_port))
            reply = json.loads(client.recv(65535))
        if "error" in reply:
            error = reply["error"]
            raise KamailioRpcError(method, int(error.get("code", 0)), str(error.get("message")))
        return reply["result"]

    def bindings(self, user: str = TRUNK_USER) -> list[Binding]:
        """The unexpired contacts registered for `user` (empty when none)."""
        try:
            record = self.rpc("ul.lookup", USRLOC_TABLE, user)
        except KamailioRpcError as error:
            if "not found" in error.message.lower():
                return []
            raise
        bindings = []
        for entry in record.get("Contacts", []):
            contact = entry["Contact"]
            expires = contact.get("Expires")
            if not isinstance(expires, int):
                continue  # "expired", awaiting usrloc's timer (never "permanent" here)
            bindings.append(Binding(
                contact=str(contact["Address"]),
                expires_s=expires,
                call_id=str(contact.get("Call-ID", "")),
                cseq=int(contact.get("CSeq", 0)),
                user_agent=str(contact.get("User-Agent", "")),
                received=_value_if_set(contact.get("Received")),
            ))
        return bindings

    def wait_for_binding(
        self, user: str = TRUNK_USER, *, port: int | None = None, timeout_s: float = 10.0
    ) -> Binding:
        """Wait until `user` has a binding (whose contact has `port`, if given); return it."""
        found: list[Binding] = []

        def registered() -> bool:
            self._check_running()
            found[:] = [binding for binding in self.bindings(user)
                        if port is None or binding.port == port]
            return bool(found)

        wait_until(registered, timeout_s, f"{user} to register at Kamailio port {self.port}")
        return found[0]

    def stop(self) -> None:
        """Stop Kamailio (SIGTERM to its process group, SIGKILL after 5 s)."""
        self.process.stop()

    def restart(self, timeout_s: float = 10.0) -> None:
        """Stop Kamailio and start it again on the same ports: every binding is lost."""
        self.stop()
        self.process = _launch(self.group, self.argv, len(self.generations) + 1)
        self.generations.append(self.process)
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Wait until Kamailio answers an OPTIONS to itself and a JSON-RPC request."""
        deadline = time.monotonic() + timeout_s

        def answers_options() -> bool:
            self._check_running()
            return _options_answered(self.port)

        def answers_rpc() -> bool:
            self._check_running()
            try:
                self.rpc("core.version", timeout_s=_PROBE_TIMEOUT_S)
            except OSError:  # TimeoutError included: the RPC process is not up yet
                return False
            return True

        wait_until(answers_options, timeout_s, f"kamailio to answer OPTIONS on port {self.port}")
        wait_until(answers_rpc, max(deadline - time.monotonic(), 0.5),
                   f"kamailio to answer JSON-RPC on port {self.rpc_port}")

    def _check_running(self) -> None:
        if self.process.popen.poll() is not None:
            raise AssertionError(
                f"kamailio exited ({self.process.popen.returncode}):\n"
                f"{self.process.output()[-3000:]}"
            )


def start_kamailio(
    processes: ProcessGroup,
    workdir: Path,
    *,
    port: int,
    password: str,
    user: str = TRUNK_USER,
    realm: str = TRUNK_REALM,
    algorithm: str = "MD5",
    min_expires_s: int = 5,
    timeout_s: float = 10.0,
) -> RunningKamailio:
    """Start Kamailio as registrar (digest auth for `user`/`password` in `realm`, with
    `algorithm` MD5 or SHA-256) and proxy from DIDs to `user` on 127.0.0.1:`port` (UDP);
    return once it answers both SIP OPTIONS and JSON-RPC."""
    if KAMAILIO is None:
        raise RuntimeError("kamailio is not installed (Debian package kamailio)")
    workdir.mkdir(parents=True, exist_ok=True)
    rpc_port = free_port()
    argv = [
        KAMAILIO, "-f", str(KAMAILIO_CONFIG),
        "-DD", "-E",  # stay in the foreground, log to stderr (the process's log file)
        "-l", f"udp:{LOCALHOST}:{port}", "-T", "-S",  # this UDP socket only: no TCP, SCTP
        "-n", "2", "-m", str(_SHARED_MEMORY_MB), "-M", str(_PRIVATE_MEMORY_MB),
        "-w", str(workdir), "-Y", str(workdir), "-P", str(workdir / "kamailio.pid"),
        "-A", f"AUTH_USER={_quoted(user)}",
        "-A", f"AUTH_REALM={_quoted(realm)}",
        "-A", f"AUTH_PASSWORD={_quoted(password)}",
        "-A", f"AUTH_ALGORITHM={_quoted(algorithm)}",
        "-A", f"MIN_EXPIRES={min_expires_s:d}",
        "-A", f"RPC_SOCKET={_quoted(f'udp:{LOCALHOST}:{rpc_port}')}",
    ]
    process = _launch(processes, argv, 1)
    kamailio = RunningKamailio(processes, argv, port, rpc_port, password, process, [process])
    kamailio.wait_ready(timeout_s)
    return kamailio


def _value_if_set(value: object) -> str:
    """A usrloc field as a string, "" for Kamailio's "[not set]"."""
    return "" if value is None or value == "[not set]" else str(value)


def _quoted(value: str) -> str:
    """A Kamailio preprocessor string value (`-A NAME="value"`)."""
    if '"' in value or "\\" in value or "\n" in value:
        raise ValueError(f"cannot pass {value!r} as a Kamailio define")
    return f'"{value}"'


def _launch(processes: ProcessGroup, argv: list[str], generation: int) -> Process:
    name = "kamailio" if generation == 1 else f"kamailio.{generation}"
    return processes.start(name, argv)


def _options_answered(port: int) -> bool:
    """Send one OPTIONS to the server itself; True when a 200 comes back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOCALHOST, 0))
        probe.settimeout(_PROBE_TIMEOUT_S)
        local_port = probe.getsockname()[1]
        call_id = f"probe-{local_port}-{time.monotonic_ns()}"
        request = (
            f"OPTIONS sip:{LOCALHOST}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOCALHOST}:{local_port};branch=z9hG4bK{call_id}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{LOCALHOST}>;tag={local_port}\r\n"
            f"To: <sip:{LOCALHOST}:{port}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        try:
            probe.sendto(request.encode(), (LOCALHOST, port))
            return probe.recv(65535).startswith(b"SIP/2.0 200 ")
        except OSError:  # nothing listening yet (ICMP port unreachable) or no answer
            return False


# -- SIPp dial-out UAS ----------------------------------------------------------------------

DIALOUT_UAS_SCENARIO = SIPP_SCENARIOS / "dialout_uas.xml"


def start_dialout_uas(
    processes: ProcessGroup,
    *,
    sip_port: int,
    rtp_port: int,
    user: str,
    password: str,
    hangup_ms: int,
    calls: int = 2,
    max_run_s: int = 30,
) -> Sipp:
    """Start SIPp as a video meeting's SIP gateway on 127.0.0.1:`sip_port` (UDP).

    It challenges the bridge's INVITE (digest `user`/`password`), answers with PCMU and
    telephone-event sent to 127.0.0.1:`rtp_port`, hangs up the first call after
    `hangup_ms`, waits for the bridge's BYE on later calls, and exits after `calls` calls
    (failing if `max_run_s` passes first). `Sipp.finish` gives the trace.
    """
    if SIPP is None:
        raise RuntimeError("sipp is not installed (Debian package sip-tester)")
    name = f"sipp{len(processes.processes)}-dialout_uas"
    files = {kind: processes.directory / f"{name}.{kind}" for kind in ("msg", "err", "csv")}
    argv = [
        SIPP, "-sf", str(DIALOUT_UAS_SCENARIO),
        "-i", LOCALHOST, "-mi", LOCALHOST, "-p", str(sip_port), "-mp", str(free_port_range(4)[0]),
        "-t", "u1", "-m", str(calls), "-nostdin",
        "-timeout", f"{max_run_s}s", "-timeout_error",
        "-set", "user", user, "-set", "password", password,
        "-set", "rtp_port", str(rtp_port), "-set", "hangup_ms", str(hangup_ms),
        "-trace_msg", "-message_file", str(files["msg"]),
        "-trace_err", "-error_file", str(files["err"]),
        "-trace_stat", "-stf", str(files["csv"]),
    ]
    process = processes.start(name, argv, cwd=processes.directory)
    uas = Sipp(process, files["msg"], files["err"], files["csv"])
    wait_for_sipp_listening(uas)
    return uas


def wait_for_sipp_listening(sipp: Sipp, timeout_s: float = 5.0) -> None:
    """Wait until SIPp holds its UDP SIP port, so that a first request to it is not lost."""
    port = sip_port_of(sipp)

    def bound() -> bool:
        if sipp.process.popen.poll() is not None:
            raise AssertionError(f"{sipp.process.name} exited:\n{sipp.process.output()[-3000:]}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((LOCALHOST, port))
            except OSError:
                return True
        return False

    wait_until(bound, timeout_s, f"{sipp.process.name} to listen on UDP port {port}")


def sip_port_of(sipp: Sipp) -> int:
    """The SIP port a SIPp process listens on (its last -p: SIPp takes the last one)."""
    args = sipp.process.popen.args
    if isinstance(args, (str, bytes, PathLike)):
        raise ValueError(f"{sipp.process.name} was not started from an argument list")
    argv = [str(arg) for arg in args]
    positions = [index for index, arg in enumerate(argv) if arg == "-p"]
    if not positions:
        raise ValueError(f"{sipp.process.name} was started without -p")
    return int(argv[positions[-1] + 1])
