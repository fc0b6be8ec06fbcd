"""Janus AudioBridge as the reference mixer of the capacity benchmark (issue #6).

`JanusAudioBridge` runs Debian's `janus` from a config folder of its own (only the HTTP
transport on 127.0.0.1 and the AudioBridge plugin load; no admin API, no STUN/TURN, ICE-lite
on `lo`) and joins plain-RTP G.711 members to an AudioBridge room through the Janus HTTP API.
It needs the Debian package `janus` (it pulls in the plugin and transport libraries).

The Janus API is session → handle → plugin message: each member is one handle of a single
session, and everything the plugin says asynchronously (our `joined` replies, and the N²
notices of who joined, left or sent a first packet) arrives on that session's long poll.
One background thread long-polls it with `maxev`, hands each handle its own `joined` reply
and drops the rest; the poll is also the session's keepalive (Janus's HTTP transport
forwards every long poll to the core as a `keepalive`).

Run as a script it proves the harness end to end: N members on 127.0.0.1, two of them
sending a tone each and the rest line noise, and it prints what every member heard and the
CPU and memory Janus used.

    .venv/bin/python bench/janus.py --members 20
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bridge.rtp.packet import RtpPacket
from dsp.codecs import get_codec
from dsp.level import rms_dbfs

JanusMessage = dict[str, Any]

LOOPBACK = "127.0.0.1"
AUDIOBRIDGE = "janus.plugin.audiobridge"
PLUGIN_LIBRARY = "libjanus_audiobridge.so"
TRANSPORT_LIBRARY = "libjanus_http.so"
SESSION_TIMEOUT_S = 6 * 3600  # a backstop only: every long poll already keeps the session alive
LONG_POLL_EVENTS = 2000  # events per long-poll answer; Janus answers a poll every 30 s when idle
LONG_POLL_TIMEOUT_S = 45.0  # longer than Janus's own 30 s long-poll timeout
REQUEST_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0


class JanusError(RuntimeError):
    """Janus refused a request, failed to start, or did not answer in time."""


def janus_library_folder() -> Path:
    """Return where Debian installs Janus's modules: /usr/lib/<multiarch triplet>/janus."""
    for plugin in sorted(Path("/usr/lib").glob(f"*/janus/plugins/{PLUGIN_LIBRARY}")):
        return plugin.parent.parent
    raise JanusError(f"no {PLUGIN_LIBRARY} under /usr/lib/*/janus (Debian package janus)")


def _core_config(conf: Path, log_file: Path) -> str:
    """Return janus.jcfg: private module folders, no STUN/TURN, ICE-lite on `lo` only."""
    return f"""\
general: {{
\tconfigs_folder = "{conf}"
\tplugins_folder = "{conf / "plugins"}"
\ttransports_folder = "{conf / "transports"}"
\tevents_folder = "{conf / "none"}"
\tloggers_folder = "{conf / "none"}"
\tlog_to_stdout = false
\tlog_to_file = "{log_file}"
\tdebug_level = 4
\tsession_timeout = {SESSION_TIMEOUT_S}
\thide_dependencies = true
}}
media: {{
}}
nat: {{
\tice_lite = true
\tice_enforce_list = "lo"
\tignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
loggers: {{
}}
events: {{
\tbroadcast = false
}}
"""


def _http_config(port: int) -> str:
    """Return janus.transport.http.jcfg: the Janus API on 127.0.0.1 only, admin API off."""
    return f"""\
general: {{
\tevents = false
\tjson = "compact"
\tbase_path = "/janus"
\thttp = true
\tport = {port}
\tip = "{LOOPBACK}"
\thttps = false
}}
admin: {{
\tadmin_http = false
\tadmin_https = false
}}
"""


def _audiobridge_config(rtp_ports: tuple[int, int]) -> str:
    """Return janus.plugin.audiobridge.jcfg: no static rooms, plain RTP bound to 127.0.0.1."""
    low, high = rtp_ports
    return f"""\
general: {{
\tevents = false
\trtp_port_range = "{low}-{high}"
\tlocal_ip = "{LOOPBACK}"
}}
"""


@dataclass
class _JoinReply:
    """The `joined` event one handle waits for, filled in by the event thread."""

    done: threading.Event = field(default_factory=threading.Event)
    rtp: tuple[str, int] | None = None
    error: str | None = None


class _HttpApi:
    """One persistent HTTP connection to the Janus API; not shared between threads."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._connection: http.client.HTTPConnection | None = None
        self._transactions = itertools.count(1)

    def request(self, method: str, path: str, body: JanusMessage | None = None,
                timeout_s: float = REQUEST_TIMEOUT_S) -> Any:
        """Send one request and return its decoded JSON answer."""
        payload = None
        if body is not None:
            payload = json.dumps({**body, "transaction": str(next(self._transactions))})
        try:
            return self._exchange(method, path, payload, timeout_s)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()  # the server had closed the kept-alive connection: once more, anew
            return self._exchange(method, path, payload, timeout_s)

    def _exchange(self, method: str, path: str, payload: str | None, timeout_s: float) -> Any:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(LOOPBACK, self._port)
        self._connection.timeout = timeout_s
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout_s)
        self._connection.request(method, path, payload)
        response = self._connection.getresponse()
        text = response.read()
        if response.status != 200:
            raise JanusError(f"{method} {path}: HTTP {response.status}")
        return json.loads(text)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _EventPump(threading.Thread):
    """Long-polls a session: hands `joined` replies to their waiters, drops everything else."""

    def __init__(self, port: int, session_id: int) -> None:
        super().__init__(name="janus-events", daemon=True)
        self._api = _HttpApi(port)
        self._path = f"/janus/{session_id}?maxev={LONG_POLL_EVENTS}"
        self._waiting: dict[int, _JoinReply] = {}
        self._ended = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.events_drained = 0
        self.failure: BaseException | None = None

    def expect_joined(self, handle_id: int) -> _JoinReply:
        """Register a waiter before the join is sent, so its reply cannot slip past."""
        reply = _JoinReply()
        with self._lock:
            if self._ended:
                raise JanusError(f"the Janus event stream ended ({self.failure})")
            self._waiting[handle_id] = reply
        return reply

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                answer = self._api.request("GET", self._path, timeout_s=LONG_POLL_TIMEOUT_S)
                events = answer if isinstance(answer, list) else [answer]
                self.events_drained += len(events)
                for event in events:
                    self._route(event)
        except (OSError, http.client.HTTPException, JanusError, ValueError) as error:
            if not self._stopping.is_set():
                self.failure = error
        finally:
            self._api.close()
            self._fail_waiters("the Janus event stream ended")

    def _route(self, event: JanusMessage) -> None:
        """Resolve a waiter from its handle's own `joined` (it has `id`; notices about others
        carry only a `participants` list) or from an error answering its join."""
        sender = event.get("sender")
        if sender is None or event.get("janus") != "event":
            return
        with self._lock:
            reply = self._waiting.get(sender)
        if reply is None:
            return
        data = event.get("plugindata", {}).get("data", {})
        if data.get("audiobridge") == "joined" and "id" in data:
            rtp = data.get("rtp")
            if rtp is None:
                reply.error = f"joined without an rtp answer: {data}"
            else:
                reply.rtp = (str(rtp["ip"]), int(rtp["port"]))
        elif "error_code" in data:
            reply.error = f"join refused: {data.get('error')} ({data['error_code']})"
        else:
            return
        with self._lock:
            del self._waiting[sender]
        reply.done.set()

    def _fail_waiters(self, why: str) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, {}
            self._ended = True
        for reply in waiting.values():
            reply.error = why
            reply.done.set()


class JanusAudioBridge:
    """A private Janus process with one AudioBridge room of plain-RTP members."""

    def __init__(self, workdir: Path, *, http_port: int = 8088,
                 rtp_ports: tuple[int, int] = (20000, 29999)) -> None:
        self.workdir = workdir
        self.http_port = http_port
        self.rtp_ports = rtp_ports
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._api = _HttpApi(http_port)
        self._session_id: int | None = None
        self._control_handle: int | None = None
        self._events: _EventPump | None = None

    @property
    def log_file(self) -> Path:
        return self.workdir / "janus.log"

    @property
    def events_drained(self) -> int:
        """How many asynchronous events the session's long poll has taken off Janus."""
        return self._events.events_drained if self._events is not None else 0

    def __enter__(self) -> JanusAudioBridge:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 15.0) -> None:
        """Write the config folder, start Janus and wait until its API answers `info`."""
        if shutil.which("janus") is None:
            raise JanusError("janus is not installed (Debian package janus)")
        conf = self._write_config()
        _require_free_tcp_port(self.http_port)
        with open(self.workdir / "janus.stdout", "wb") as output:
            self._process = subprocess.Popen(
                ["janus", "--configs-folder", str(conf), "--config", str(conf / "janus.jcfg")],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches us; stop() ends Janus
            )
        self.pid = self._process.pid
        try:
            self._wait_for_info(timeout_s)
            answer = self._api.request("POST", "/janus", {"janus": "create"})
            self._session_id = int(_success(answer)["data"]["id"])
            self.drain_events()
            self._control_handle = self._attach()
        except BaseException:
            self.stop()
            raise

    def create_room(self, room_id: int, sampling_rate: int = 8000) -> None:
        """Create a room mixing at `sampling_rate` that plain-RTP members may join.

        Nothing beyond the plain mix: no recording, no audio-level extension or talking
        events, no RTP forwarder, no spatial audio; prebuffering stays at Janus's default.
        """
        data = self._plugin_request(self._control_handle, {
            "request": "create", "room": room_id, "permanent": False,
            "description": f"capacity bench {room_id}", "sampling_rate": sampling_rate,
            "allow_rtp_participants": True, "record": False, "spatial_audio": False,
            "audiolevel_ext": False, "audiolevel_event": False,
        })
        if data.get("audiobridge") != "created":
            raise JanusError(f"create room {room_id}: {data}")

    def join_rtp(self, room_id: int, local_port: int, codec: str = "pcmu") -> tuple[str, int]:
        """Join one member whose RTP comes from and goes to 127.0.0.1:`local_port`;
        return the address Janus listens on for it."""
        return self.join_many(room_id, [local_port], codec)[0]

    def join_many(self, room_id: int, local_ports: list[int], codec: str = "pcmu",
                  timeout_s: float = 120.0) -> list[tuple[str, int]]:
        """Join many members: attach and send every join first, then collect the replies.

        Joins are asynchronous in Janus (an `ack`, then a `joined` event), so the round
        trips overlap with the plugin's work instead of waiting one join at a time.
        """
        if self._events is None:
            raise JanusError("Janus is not started")
        replies = []
        for port in local_ports:
            handle_id = self._attach()
            replies.append(self._events.expect_joined(handle_id))
            answer = self._api.request("POST", self._handle_path(handle_id), {
                "janus": "message",
                "body": {
                    "request": "join", "room": room_id, "display": f"rtp-{port}",
                    "muted": False, "codec": codec, "rtp": {"ip": LOOPBACK, "port": port},
                },
            })
            if answer.get("janus") != "ack":
                raise JanusError(f"join from port {port}: {answer}")
        deadline = time.monotonic() + timeout_s
        addresses = []
        for port, reply in zip(local_ports, replies, strict=True):
            if not reply.done.wait(max(0.0, deadline - time.monotonic())):
                raise JanusError(f"no joined event for port {port} within {timeout_s} s")
            if reply.rtp is None:
                raise JanusError(f"join from port {port}: {reply.error}")
            addresses.append(reply.rtp)
        return addresses

    def drain_events(self) -> None:
        """Keep the session's event queue empty for the rest of the run (idempotent).

        Janus 1.1.2 cannot switch the N² notices off (`pause_events` came later), so a
        thread takes them off its queue with one long poll per batch. `start` already
        calls this, because joins are answered on the same stream.
        """
        if self._session_id is None:
            raise JanusError("Janus has no session yet")
        if self._events is None or not self._events.is_alive():
            self._events = _EventPump(self.http_port, self._session_id)
            self._events.start()

    def stop(self) -> None:
        """End Janus: SIGTERM, a bounded wait, then SIGKILL, by PID. Safe to call twice.

        No leave or destroy first: each of those notifies every other member, N² work on
        the way out, and Janus tears the session down itself on SIGTERM.
        """
        if self._events is not None:
            self._events.stop()
        self._api.close()
        process, self._process = self._process, None
        if process is not None:
            _end_process(process)
        if self._events is not None:
            self._events.join(timeout=STOP_GRACE_S)
            self._events = None
        self._session_id = None
        self._control_handle = None

    def _write_config(self) -> Path:
        """Write the config folder and a private module folder holding just our two modules."""
        conf = (self.workdir / "janus-conf").resolve()
        library = janus_library_folder()
        for folder, module in (("plugins", PLUGIN_LIBRARY), ("transports", TRANSPORT_LIBRARY)):
            (conf / folder).mkdir(parents=True, exist_ok=True)
            link = conf / folder / module
            link.unlink(missing_ok=True)
            link.symlink_to(library / folder / module)
        (conf / "none").mkdir(exist_ok=True)
        (conf / "janus.jcfg").write_text(_core_config(conf, self.log_file.resolve()))
        (conf / "janus.transport.http.jcfg").write_text(_http_config(self.http_port))
        (conf / "janus.plugin.audiobridge.jcfg").write_text(_audiobridge_config(self.rtp_ports))
        return conf

    def _wait_for_info(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise JanusError(f"janus exited with {self._process.returncode}; "
                                 f"see {self.log_file}")
            try:
                if self._api.request("GET", "/janus/info", timeout_s=1.0).get("janus") == \
                        "server_info":
                    return
            except (OSError, http.client.HTTPException, ValueError):
                self._api.close()
            if time.monotonic() > deadline:
                raise JanusError(f"Janus API did not answer within {timeout_s} s")
            time.sleep(0.05)

    def _attach(self) -> int:
        answer = self._api.request("POST", f"/janus/{self._session_id}",
                                   {"janus": "attach", "plugin": AUDIOBRIDGE})
        return int(_success(answer)["data"]["id"])

    def _handle_path(self, handle_id: int) -> str:
        return f"/janus/{self._session_id}/{handle_id}"

    def _plugin_request(self, handle_id: int | None, body: JanusMessage) -> JanusMessage:
        """Send a synchronous plugin request and return the plugin's answer."""
        if handle_id is None:
            raise JanusError("Janus is not started")
        answer = self._api.request("POST", self._handle_path(handle_id),
                                   {"janus": "message", "body": body})
        data: JanusMessage = _success(answer)["plugindata"]["data"]
        return data


def _success(answer: JanusMessage) -> JanusMessage:
    if answer.get("janus") != "success":
        raise JanusError(f"Janus answered {answer}")
    return answer


def _require_free_tcp_port(port: int) -> None:
    """Refuse to start beside another server on the port: `info` would answer for it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind((LOOPBACK, port))
        except OSError as error:
            raise JanusError(f"TCP port {port} on {LOOPBACK} is in use: {error}") from None


def _end_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait up to STOP_GRACE_S, then SIGKILL: by PID, never by name."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_GRACE_S)


def cpu_times(pid: int) -> tuple[float, float]:
    """Return the user and system CPU seconds of a process, all its threads counted
    (proc(5) stat fields 14, 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU of a process, all its threads counted."""
    return sum(cpu_times(pid))


def rss_bytes(pid: int) -> int:
    """Return the resident set size of a process (proc(5) status VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise JanusError(f"no VmRSS for pid {pid}")


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


# --- the proof run -----------------------------------------------------------------------

FRAME = 160  # 20 ms at 8 kHz
FRAME_S = 0.020
PCMU_PAYLOAD_TYPE = 0  # RFC 3551 §6
TALKER_TONES_HZ = (440.0, 660.0)  # member k < 2 sends tone k
TONE_DBFS = -12.0
NOISE_DBFS = -60.0  # an open phone in a quiet room
NOISE_TABLE_FRAMES = 1009
HEARD_TONE_DBFS = -30.0  # a tone's level in what a member receives, above which it is heard
WARM_UP_TICKS = 50  # first-packet notices and Janus's prebuffering fall in the first second
ROOM_ID = 1234


def _tone_payloads(frequency_hz: float, ticks: int) -> NDArray[np.uint8]:
    t = np.arange(ticks * FRAME) / 8000.0
    amplitude = math.sqrt(2.0) * 10 ** (TONE_DBFS / 20)
    tone = (amplitude * np.sin(2 * math.pi * frequency_hz * t)).astype(np.float32)
    return get_codec("PCMU").encode(tone.reshape(ticks, FRAME))


def _noise_payloads(frames: int, seed: int) -> NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    noise = (10 ** (NOISE_DBFS / 20) * rng.standard_normal((frames, FRAME))).astype(np.float32)
    return get_codec("PCMU").encode(noise)


def tone_level_dbfs(samples: NDArray[np.float32], frequency_hz: float) -> float:
    """Return the RMS level of one sinusoid in `samples` (8 kHz), from a Hann-windowed DFT."""
    window = np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(samples * window))
    bin_hz = 8000.0 / samples.size
    centre = int(round(frequency_hz / bin_hz))
    peak = float(np.max(spectrum[max(centre - 2, 0):centre + 3]))
    amplitude = 2.0 * peak / float(np.sum(window))
    rms = amplitude / math.sqrt(2.0)
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def run(members: int, seconds: float, workdir: Path, http_port: int) -> None:
    """Join `members` sockets, stream `seconds` of PCMU both ways, print what Janus did."""
    ticks = int(seconds / FRAME_S)
    talkers = min(len(TALKER_TONES_HZ), members)
    sockets = []
    for _ in range(members):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        sock.bind((LOOPBACK, 0))
        sock.setblocking(False)
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    payloads = [_tone_payloads(TALKER_TONES_HZ[k], ticks) for k in range(talkers)]
    # One table, each member reading it from its own offset: no two members send the same
    # frame at the same tick, so their noise adds in power, as real lines' would.
    noise = _noise_payloads(max(NOISE_TABLE_FRAMES, members), seed=1)
    janus = JanusAudioBridge(workdir, http_port=http_port)
    try:
        janus.start()
        assert janus.pid is not None
        janus.create_room(ROOM_ID, sampling_rate=8000)
        started = time.monotonic()
        addresses = janus.join_many(ROOM_ID, ports)
        join_s = time.monotonic() - started
        print(f"joined {members} members in {join_s:.2f} s "
              f"({join_s / members * 1000:.1f} ms each); Janus RSS "
              f"{rss_bytes(janus.pid) / 2**20:.1f} MiB, {thread_count(janus.pid)} threads, "
              f"{janus.events_drained} events drained")
        received = [0] * members
        heard: list[list[bytes]] = [[] for _ in range(min(members, talkers + 1))]
        cpu_start = cpu_seconds(janus.pid)
        cpu_warm = cpu_start
        next_tick = time.monotonic()
        for tick in range(ticks):
            if tick == WARM_UP_TICKS:
                cpu_warm = cpu_seconds(janus.pid)
            for member, (sock, address) in enumerate(zip(sockets, addresses, strict=True)):
                if member < talkers:
                    payload = payloads[member][tick].tobytes()
                else:
                    payload = noise[(tick + member) % len(noise)].tobytes()
                packet = RtpPacket(PCMU_PAYLOAD_TYPE, tick & 0xFFFF, tick * FRAME, member + 1,
                                   payload, marker=tick == 0)
                sock.sendto(bytes(packet), address)
            next_tick += FRAME_S
            time.sleep(max(0.0, next_tick - time.monotonic()))
            for member, sock in enumerate(sockets):
                while True:
                    try:
                        data = sock.recv(2048)
                    except BlockingIOError:
                        break
                    received[member] += 1
                    if member < len(heard) and tick >= WARM_UP_TICKS:
                        heard[member].append(RtpPacket.parse(data).payload)
        cpu_end = cpu_seconds(janus.pid)
        rss = rss_bytes(janus.pid)
        threads = thread_count(janus.pid)
        drained = janus.events_drained
    finally:
        janus.stop()
        for sock in sockets:
            sock.close()
    _report(members, ticks, received, heard, talkers)
    steady_ticks = max(ticks - WARM_UP_TICKS, 1)
    print(f"Janus CPU: {cpu_end - cpu_start:.2f} s over {ticks * FRAME_S:.1f} s of audio; "
          f"steady (after {WARM_UP_TICKS * FRAME_S:.0f} s) "
          f"{(cpu_end - cpu_warm) / steady_ticks / members * 1e6:.1f} µs per member per 20 ms, "
          f"{(cpu_end - cpu_warm) / (steady_ticks * FRAME_S) * 100:.0f} % of one core")
    print(f"Janus RSS {rss / 2**20:.1f} MiB ({rss / members / 2**20:.2f} MiB per member), "
          f"{threads} threads, {drained} events drained")


def _report(members: int, ticks: int, received: list[int], heard: list[list[bytes]],
            talkers: int) -> None:
    """Print packets received per member, then check who heard which tone."""
    print(f"packets received per member (sent {ticks} each): min {min(received)}, "
          f"median {statistics.median(received):.0f}, max {max(received)}")
    print("  " + " ".join(f"{count}" for count in received))
    codec = get_codec("PCMU")
    failures = []
    for member, payloads in enumerate(heard):
        if not payloads:
            failures.append(f"member {member} heard nothing")
            continue
        samples = codec.decode_many(np.frombuffer(b"".join(payloads), np.uint8).reshape(-1, FRAME))
        samples = samples.reshape(-1)
        levels = [tone_level_dbfs(samples, TALKER_TONES_HZ[k]) for k in range(talkers)]
        print(f"member {member} ({'talker' if member < talkers else 'listener'}) hears "
              f"{rms_dbfs(samples):.1f} dBFS: "
              + ", ".join(f"{TALKER_TONES_HZ[k]:.0f} Hz at {level:.1f} dBFS"
                          for k, level in enumerate(levels)))
        for k, level in enumerate(levels):
            if (level > HEARD_TONE_DBFS) != (k != member):  # mix-minus: all tones but its own
                failures.append(f"member {member}: {TALKER_TONES_HZ[k]:.0f} Hz at {level:.1f}")
    print("mix check: " + ("ok, every member hears the other talkers' tones and not its own"
                           if not failures else "FAILED: " + "; ".join(failures)))
    if failures:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--http-port", type=int, default=8088)
    parser.add_argument("--workdir", type=Path, help="keep Janus's config and log here")
    args = parser.parse_args()
    if args.workdir is not None:
        run(args.members, args.seconds, args.workdir, args.http_port)
        return
    with tempfile.TemporaryDirectory(prefix="janus-bench-") as workdir:
        run(args.members, args.seconds, Path(workdir), args.http_port)


if __name__ == "__main__":
    main()
