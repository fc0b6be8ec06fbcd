"""One load generator process: its members' sockets, the 20 ms send schedule, receive records.

Everything runs in one loop of 20 ms rounds on absolute deadlines (t0 + k * 20 ms, from
time.monotonic): each round sends one PCMU packet per streaming member, spread over the
round in SEND_SLOTS slots by member (as phones' packet clocks fall anywhere in the 20 ms,
not all at one instant), then reads what arrived, then does SIP. A round that is wholly
missed is skipped, never made up with a burst. Arrival times are the kernel's receive
timestamps (SO_TIMESTAMPNS), so reading sockets once per round costs no accuracy and the
process wakes SEND_SLOTS times a round. Per packet, Python only packs a 12-byte header, or
appends a received header and its timestamp to two bytearrays; statistics are worked out
with numpy at the end.
"""

from __future__ import annotations

import gc
import logging
import random
import resource
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from loadgen_sip import (
    ByeCompleted,
    CallEnded,
    CallFailed,
    CallJoined,
    MediaMoved,
    Uac,
)
from numpy.typing import NDArray
from scipy.signal import lfilter

log = logging.getLogger("loadgen")

Address = tuple[str, int]

PERIOD_S = 0.020
CLOCK_RATE_HZ = 8000  # PCMU (RFC 3551 §4.5.14)
SAMPLES_PER_PACKET = 160
PCMU_PAYLOAD_TYPE = 0
LOCAL_HOST = "127.0.0.1"
GAP_S = 0.060  # an inter-arrival longer than three packet times counts as a gap
LATE_S = 0.005
_RTP_VERSION_BYTE = 0x80  # V=2, no padding, no extension, no CSRC (RFC 3550 §5.1)
_MARKER = 0x80
_HEADER = struct.Struct("!BBHII")
_HEADER_BYTES = _HEADER.size
# What a received header is stored as (RFC 3550 §5.1), parsed only at the end.
_HEADER_DTYPE = np.dtype(
    [("flags", "u1"), ("marker_pt", "u1"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4")]
)
# Linux asm-generic/socket.h; Python's socket module does not name it. The kernel then
# hands each datagram's receive time (CLOCK_REALTIME, struct timespec) as ancillary data.
SO_TIMESTAMPNS = 35
_TIMESPEC_SPACE = socket.CMSG_SPACE(16)
SEND_SLOTS = 10  # member i sends at (i % 10) * 2 ms into each round
_DRAIN_PASSES = 8  # reads per socket per round at most; more waits for the next round
_FINAL_DRAIN_PASSES = 64  # at the window's end: a backlog of up to 1.3 s per socket
_SIP_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """One member: its local RTP port (RTCP on the next), what it sends, and where to."""

    index: int
    local_port: int
    remote: Address | None  # None in SIP mode: the bridge's answer says
    frames: Sequence[bytes]  # PCMU payloads, looped
    frame_offset: int
    # Uplink loss: round k's packet is not sent where byte k (looped) is 0; empty: all sent.
    sends: bytes = b""


@dataclass(frozen=True, slots=True)
class SipSettings:
    bridge: Address
    request_uri: str
    join_rate_per_s: float
    max_pending: int
    bye_timeout_s: float


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    members: tuple[MemberSpec, ...]
    sip: SipSettings | None
    t0: float  # round k is due at t0 + k * PERIOD_S (time.monotonic)
    seed: int


class Coordinator(Protocol):
    """How a worker learns its steady window and tells that its members have joined."""

    def joined(self, round_index: int) -> None:
        """All of this worker's members have joined or failed, at `round_index`."""

    def window(self) -> tuple[int, int] | None:
        """Return the steady window as rounds [first, end), once it is known."""

    def phase(self, word: str) -> None:
        """The steady window starts ("STEADY") or ends ("DONE") now."""


class _Member:
    __slots__ = ("spec", "rtp", "rtcp", "heads", "stamps", "ssrc", "seq0", "ts0",
                 "joined", "ended")

    def __init__(self, spec: MemberSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rtp = _bind(spec.local_port, timestamps=True)
        try:
            self.rtcp: socket.socket | None = _bind(spec.local_port + 1, timestamps=False)
        except OSError as exc:
            log.warning("member %d: RTCP port %d not bound: %s", spec.index,
                        spec.local_port + 1, exc)
            self.rtcp = None
        self.heads = bytearray()
        self.stamps = bytearray()
        self.ssrc, self.seq0, self.ts0 = (int(v) for v in rng.integers(0, 1 << 32, 3))
        self.seq0 &= 0xFFFF
        self.joined = False
        self.ended = False


def _bind(port: int, *, timestamps: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if timestamps:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind((LOCAL_HOST, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


# (send, ssrc, first round, seq0, ts0, frames, frame count, frame offset, uplink pattern)
_Sender = tuple[Callable[[bytes], int], int, int, int, int, Sequence[bytes], int, int, bytes]


class Worker:
    """Streams, receives and (in SIP mode) calls for a share of the members."""

    def __init__(self, plan: WorkerPlan, coordinator: Coordinator) -> None:
        self._plan = plan
        self._coordinator = coordinator
        rng = np.random.default_rng(plan.seed)
        self._members: list[_Member] = []
        self._poll = select.epoll()
        self._rtp: dict[int, tuple[Callable[..., Any], bytearray, bytearray]] = {}
        self._rtcp: dict[int, socket.socket] = {}
        self._senders: dict[int, _Sender] = {}
        self._send_slots: list[list[_Sender]] = [[] for _ in range(SEND_SLOTS)]
        self._lateness: list[float] = []
        self._rounds: list[int] = []
        self._skipped: list[tuple[int, int]] = []  # [from, to) rounds never started
        self.send_errors = 0
        self.bad_packets = 0
        self.rtcp_received = 0
        self.failures: Counter[str] = Counter()
        self.hung_up_by_bridge = 0
        self._joined_count = 0
        self._settled_at: float | None = None
        self._first_invite_at: float | None = None
        self._sip_sock: socket.socket | None = None
        self._uac: Uac | None = None
        self._byes_sent: set[int] = set()
        self._byes_answered = 0
        self._byes_timed_out = 0
        self._byes_done: set[int] = set()
        self._tokens = 1.0
        self._next_invite = 0
        self._round = 0
        self._streaming_at_start = 0
        self._cpu_at_start = self._cpu_at_end = _cpu_times()
        try:
            for spec in plan.members:
                member = _Member(spec, rng)
                self._members.append(member)
                self._watch_media(member)
            if plan.sip is not None:
                self._sip_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._sip_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SIP_BUFFER_BYTES)
                self._sip_sock.bind((LOCAL_HOST, 0))
                self._sip_sock.setblocking(False)
                self._poll.register(self._sip_sock.fileno(), select.EPOLLIN)
                # Call-IDs and tags must differ between runs (RFC 3261 §8.1.1.4), so
                # they come from the system's entropy, not from --seed.
                self._uac = Uac(self._sip_sock.getsockname(), plan.sip.bridge,
                                plan.sip.request_uri, random.SystemRandom())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for member in self._members:
            member.rtp.close()
            if member.rtcp is not None:
                member.rtcp.close()
        if self._sip_sock is not None:
            self._sip_sock.close()
        self._poll.close()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Join, stream through the steady window, hang up; return this worker's figures.

        The garbage collector is off meanwhile: nothing here makes reference cycles, and
        a collection pass over the receive records would stall a round.
        """
        gc.disable()
        try:
            window = self._stream()
            self._hang_up_all()
            return self._report(window)
        finally:
            gc.enable()
            self.close()

    def _stream(self) -> tuple[int, int]:
        plan = self._plan
        coordinator = self._coordinator
        joined_reported = False
        window: tuple[int, int] | None = None
        steady = False
        self._round = max(0, int((time.monotonic() - plan.t0) / PERIOD_S) + 1)
        for member in self._members:
            if member.spec.remote is not None:  # RTP mode: the orchestrator joined them
                self._start(member, member.spec.remote, first_round=self._round)
        while True:
            now = self._wait_for_round()
            if window is None and joined_reported:
                window = coordinator.window()
            if window is not None and not steady and self._round >= window[0]:
                steady = True
                coordinator.phase("STEADY")
                self._cpu_at_start = _cpu_times()
                self._streaming_at_start = len(self._senders)
            if window is not None and self._round >= window[1]:
                coordinator.phase("DONE")
                self._drain(_FINAL_DRAIN_PASSES)
                self._cpu_at_end = _cpu_times()
                return window
            for slot, senders in enumerate(self._send_slots):
                if slot:
                    self._wait_for_slot(slot)
                self._send_round(self._round, senders)
            self._drain(_DRAIN_PASSES)
            if self._uac is not None:
                self._sip_round(now)
            if not joined_reported and self._settled():
                self._settled_at = now
                joined_reported = True
                coordinator.joined(self._round)
            self._round += 1

    def _wait_for_round(self) -> float:
        """Sleep to the current round's deadline; skip rounds already past; record lateness."""
        t0 = self._plan.t0
        deadline = t0 + self._round * PERIOD_S
        now = time.monotonic()
        if now < deadline:
            time.sleep(deadline - now)
            now = time.monotonic()
        due = int((now - t0) / PERIOD_S)
        if due > self._round:
            self._skipped.append((self._round, due))
            self._round = due
            deadline = t0 + due * PERIOD_S
        self._rounds.append(self._round)
        self._lateness.append(now - deadline)
        return now

    def _wait_for_slot(self, slot: int) -> None:
        """Sleep to `slot`'s share of the current round (none if already past it)."""
        delay = (self._plan.t0 + (self._round + slot / SEND_SLOTS) * PERIOD_S) - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _send_round(self, round_index: int, senders: list[_Sender]) -> None:
        """Send one packet per member of `senders`: header packed here, payload precomputed."""
        pack = _HEADER.pack
        errors = 0
        for send, ssrc, first, seq0, ts0, frames, count, offset, sends in senders:
            k = round_index - first
            if sends and not sends[k % len(sends)]:
                continue  # lost on the way up: its sequence number is skipped
            try:
                send(pack(_RTP_VERSION_BYTE,
                          PCMU_PAYLOAD_TYPE if k else PCMU_PAYLOAD_TYPE | _MARKER,
                          (seq0 + k) & 0xFFFF, (ts0 + SAMPLES_PER_PACKET * k) & 0xFFFFFFFF,
                          ssrc) + frames[(offset + k) % count])
            except OSError:  # e.g. ECONNREFUSED: the far port was closed (ICMP)
                errors += 1
        self.send_errors += errors

    def _drain(self, passes: int) -> None:
        """Read one datagram per ready socket per pass (level-triggered epoll)."""
        poll = self._poll.poll
        rtp = self._rtp
        for _ in range(passes):
            events = poll(0)
            if not events:
                return
            for fd, _mask in events:
                entry = rtp.get(fd)
                if entry is None:
                    self._other_ready(fd)
                    continue
                recvmsg, heads, stamps = entry
                try:
                    data, ancillary, _flags, _source = recvmsg(_HEADER_BYTES, _TIMESPEC_SPACE)
                except OSError:
                    continue
                if len(data) == _HEADER_BYTES and ancillary:
                    heads += data
                    stamps += ancillary[0][2]
                else:
                    self.bad_packets += 1

    def _other_ready(self, fd: int) -> None:
        rtcp = self._rtcp.get(fd)
        if rtcp is not None:
            try:
                rtcp.recv(1)
                self.rtcp_received += 1
            except OSError:
                pass
            return
        if self._sip_sock is not None and fd == self._sip_sock.fileno():
            self._read_sip()

    # -- media ------------------------------------------------------------------------------

    def _watch_media(self, member: _Member) -> None:
        self._rtp[member.rtp.fileno()] = (member.rtp.recvmsg, member.heads, member.stamps)
        self._poll.register(member.rtp.fileno(), select.EPOLLIN)
        if member.rtcp is not None:
            self._rtcp[member.rtcp.fileno()] = member.rtcp
            self._poll.register(member.rtcp.fileno(), select.EPOLLIN)

    def _start(self, member: _Member, remote: Address, first_round: int) -> None:
        """Connect the member's RTP socket to the far end and stream from `first_round`.

        Connected, the kernel skips a route lookup per packet and only the far end's own
        port (symmetric RTP, as both servers send) gets through to us.
        """
        member.rtp.connect(remote)
        member.joined = True
        spec = member.spec
        self._senders[spec.index] = (
            member.rtp.send, member.ssrc, first_round, member.seq0, member.ts0,
            spec.frames, len(spec.frames), spec.frame_offset, spec.sends,
        )
        self._sort_senders()

    def _stop(self, member: _Member) -> None:
        member.ended = True
        if self._senders.pop(member.spec.index, None) is not None:
            self._sort_senders()

    def _sort_senders(self) -> None:
        self._send_slots = [[] for _ in range(SEND_SLOTS)]
        for index, sender in self._senders.items():
            self._send_slots[index % SEND_SLOTS].append(sender)

    # -- SIP --------------------------------------------------------------------------------

    def _read_sip(self) -> None:
        assert self._sip_sock is not None and self._uac is not None
        now = time.monotonic()
        while True:
            try:
                data, source = self._sip_sock.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError as exc:
                log.debug("sip: receive failed: %s", exc)
                return
            try:
                self._uac.receive(data, source, now)
            except ValueError as exc:
                log.debug("sip: dropped a datagram from %s:%d: %s", *source, exc)

    def _sip_round(self, now: float) -> None:
        """Pace new INVITEs, run SIP timers, send what the UAC has, act on its events."""
        uac, sip = self._uac, self._plan.sip
        assert uac is not None and sip is not None
        members = self._members
        per_round = sip.join_rate_per_s * PERIOD_S
        self._tokens = min(self._tokens + per_round, max(1.0, per_round))
        while (self._next_invite < len(members) and self._tokens >= 1
               and uac.in_flight < sip.max_pending):
            member = members[self._next_invite]
            if self._first_invite_at is None:
                self._first_invite_at = now
            uac.invite(self._next_invite, member.spec.local_port, now)
            self._next_invite += 1
            self._tokens -= 1
        uac.handle_timers(now)
        self._flush_sip()

    def _flush_sip(self) -> None:
        assert self._uac is not None and self._sip_sock is not None
        for data, destination in self._uac.datagrams_to_send():
            try:
                self._sip_sock.sendto(data, destination)
            except OSError as exc:
                log.debug("sip: cannot send to %s:%d: %s", *destination, exc)
        while (event := self._uac.next_event()) is not None:
            member = self._members[event.index]
            if isinstance(event, CallJoined):
                self._joined_count += 1
                self._start(member, event.remote_rtp, first_round=self._round + 1)
            elif isinstance(event, CallFailed):
                self.failures[event.reason] += 1
                log.info("member %d: join failed: %s", member.spec.index, event.reason)
            elif isinstance(event, MediaMoved):
                member.rtp.connect(event.remote_rtp)
            elif isinstance(event, CallEnded):
                self.hung_up_by_bridge += 1
                self._byes_done.add(event.index)
                self._stop(member)
                log.info("member %d: the bridge hung up", member.spec.index)
            elif isinstance(event, ByeCompleted) and event.index in self._byes_sent:
                self._byes_done.add(event.index)
                if event.status is None:
                    self._byes_timed_out += 1
                else:
                    self._byes_answered += 1

    def _settled(self) -> bool:
        if self._uac is None:
            return True
        return self._joined_count + sum(self.failures.values()) >= len(self._members)

    def _hang_up_all(self) -> None:
        """BYE every joined member, paced like the joins; wait (bounded) for the answers."""
        for member in self._members:
            self._poll.unregister(member.rtp.fileno())
            if member.rtcp is not None:
                self._poll.unregister(member.rtcp.fileno())
        self._rtp.clear()
        self._rtcp.clear()
        self._senders.clear()
        self._sort_senders()
        uac, sip = self._uac, self._plan.sip
        if uac is None or sip is None:
            return
        # The UAC knows calls by their place in this worker's member list.
        to_end = [at for at, m in enumerate(self._members) if m.joined and not m.ended]
        per_round = sip.join_rate_per_s * PERIOD_S
        tokens = 1.0
        last_sent_at = time.monotonic()
        while True:
            now = time.monotonic()
            tokens = min(tokens + per_round, max(1.0, per_round))
            while to_end and tokens >= 1 and uac.in_flight < sip.max_pending:
                index = to_end.pop()
                if uac.hang_up(index, now):
                    self._byes_sent.add(index)
                    last_sent_at = now
                tokens -= 1
            uac.handle_timers(now)
            self._flush_sip()
            if not to_end and self._byes_sent <= self._byes_done:
                return
            if not to_end and now - last_sent_at > sip.bye_timeout_s:
                log.warning("%d BYEs unanswered after %.1f s",
                            len(self._byes_sent - self._byes_done), sip.bye_timeout_s)
                return
            self._drain(1)
            time.sleep(PERIOD_S)

    # -- figures ----------------------------------------------------------------------------

    def _report(self, window: tuple[int, int]) -> dict[str, Any]:
        t0 = self._plan.t0
        start_s, end_s = t0 + window[0] * PERIOD_S, t0 + window[1] * PERIOD_S
        offset = _realtime_minus_monotonic()
        rounds = np.asarray(self._rounds)
        inside = (rounds >= window[0]) & (rounds < window[1])
        skipped = sum(max(0, min(b, window[1]) - max(a, window[0])) for a, b in self._skipped)
        per_member = [
            stream_statistics(bytes(m.heads), bytes(m.stamps), start_s + offset, end_s + offset)
            for m in self._members
        ]
        columns = np.array(per_member, dtype=np.float64).reshape(-1, 5)
        before, after = self._cpu_at_start, self._cpu_at_end
        invite_span = (None if self._first_invite_at is None or self._settled_at is None
                       else self._settled_at - self._first_invite_at)
        return {
            "index": np.array([m.spec.index for m in self._members], dtype=np.int64),
            "joined": np.array([m.joined for m in self._members], dtype=bool),
            "ended_by_bridge": np.array([m.ended for m in self._members], dtype=bool),
            "received": columns[:, 0].astype(np.int64),
            "expected": columns[:, 1].astype(np.int64),
            "jitter_ms": columns[:, 2],
            "gaps": columns[:, 3].astype(np.int64),
            "gap_max_ms": columns[:, 4],
            "lateness_s": np.asarray(self._lateness)[inside],
            "skipped_rounds": skipped,
            "window_rounds": window[1] - window[0],
            "streaming": self._streaming_at_start,
            "cpu_user_s": after[0] - before[0],
            "cpu_sys_s": after[1] - before[1],
            "failures": dict(self.failures),
            "hung_up_by_bridge": self.hung_up_by_bridge,
            "join_s": invite_span,
            "send_errors": self.send_errors,
            "bad_packets": self.bad_packets,
            "rtcp_received": self.rtcp_received,
            "byes_sent": len(self._byes_sent),
            "byes_answered": self._byes_answered,
            "byes_timed_out": self._byes_timed_out,
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }


def stream_statistics(
    heads: bytes, stamps: bytes, start_s: float, end_s: float
) -> tuple[int, int, float, int, float]:
    """Return (received, expected, jitter ms, gaps, longest gap ms) over [start_s, end_s).

    `heads` are the 12-byte RTP headers as received, `stamps` their kernel receive times
    (native struct timespec), both in arrival order; the bounds are on the same clock.
    Expected counts the sequence numbers from the first to the last packet received in
    the window (RFC 3550 §6.4.1). Jitter is RFC 3550 §6.4.1's estimator (A.8) run over
    the whole stream and read at the window's last packet. The window's edges count as
    arrivals for gaps, so a stream that stops or starts late inside it shows a gap.
    """
    header = np.frombuffer(heads, dtype=_HEADER_DTYPE)
    timespec = np.frombuffer(stamps, dtype=np.int64).reshape(-1, 2)
    base = int(start_s)  # keep float64 resolution in the nanoseconds
    arrival_s = (timespec[:, 0] - base) + timespec[:, 1] * 1e-9
    start, end = start_s - base, end_s - base
    inside = np.flatnonzero((arrival_s >= start) & (arrival_s < end))
    edges = np.concatenate(([start], arrival_s[inside], [end]))
    intervals = np.diff(edges)
    gaps = int(np.count_nonzero(intervals > GAP_S))
    gap_max_ms = float(intervals.max()) * 1000
    if inside.size == 0:
        return 0, 0, 0.0, gaps, gap_max_ms
    seq = unwrap(header["seq"].astype(np.int64), 16)
    expected = int(seq[inside].max() - seq[inside].min() + 1)
    jitter_ms = 0.0
    last = int(inside[-1])
    if last >= 1:
        timestamp = unwrap(header["ts"][: last + 1].astype(np.int64), 32)
        transit = arrival_s[: last + 1] * CLOCK_RATE_HZ - timestamp
        # J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16, a one-pole filter over |D|.
        jitter = lfilter([1 / 16], [1, -15 / 16], np.abs(np.diff(transit)))
        jitter_ms = float(jitter[-1]) / CLOCK_RATE_HZ * 1000
    return int(inside.size), expected, jitter_ms, gaps, gap_max_ms


def unwrap(values: NDArray[np.int64], bits: int) -> NDArray[np.int64]:
    """Extend wrapping counters (RTP sequence numbers, timestamps) taken in order.

    Each step is read as the shortest signed distance modulo 2**bits (RFC 3550 §A.1).
    """
    if values.size == 0:
        return values
    span = 1 << bits
    steps = (np.diff(values) + span // 2) % span - span // 2
    return np.asarray(values[0] + np.concatenate(([0], np.cumsum(steps))), dtype=np.int64)


def _realtime_minus_monotonic() -> float:
    """Return CLOCK_REALTIME - CLOCK_MONOTONIC, from the tightest of a few readings."""
    best: tuple[float, float] = (float("inf"), 0.0)
    for _ in range(5):
        before = time.monotonic()
        real = time.time()
        after = time.monotonic()
        best = min(best, (after - before, real - (before + after) / 2))
    return best[1]


def _cpu_times() -> tuple[float, float]:
    """Return this process's (user, system) CPU seconds; getrusage counts in microseconds,
    where os.times only counts 10 ms clock ticks."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime
