"""RTP/RTCP sockets: a pool of even/odd port pairs from the configured range.

RTP is read in one sweep per 20 ms tick rather than packet by packet as it arrives: the
mixer only reads the playout buffers at the tick, so a packet pushed at arrival or just
before the tick plays at the same moment, and the sweep saves the reactor's per-packet
dispatch (a wake-up, a read loop ending in EAGAIN, logging context) for hundreds of
members. The kernel stamps each datagram on arrival (SO_TIMESTAMPNS), so the playout
buffer still sees true arrival times, with less scheduling noise than a user-space
clock. RTCP (a few packets per member per minute) stays with the Twisted reactor.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.internet.protocol import DatagramProtocol

from bridge.controller import NoMediaPorts, ReceivedRtp

log = logging.getLogger(__name__)

_MAX_PACKET_BYTES = 8192  # RTP/RTCP on a voice leg stays far below this
# Python 3.11 does not name it; 35 on Linux x86-64 and arm64 (asm-generic/socket.h), where
# the control message that carries the time (SCM_TIMESTAMPNS) has the same number.
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")  # struct timespec on 64-bit Linux: seconds, nanoseconds
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)
_TIMESTAMP_MESSAGE = (socket.SOL_SOCKET, _SO_TIMESTAMPNS)  # its control message's level, type
# A sweep reads at most this many packets per socket: a sender flooding one port cannot
# hold the tick; what is left waits for the next sweep.
_MAX_PACKETS_PER_SWEEP = 8

PacketHandler = Callable[[int, bytes, tuple[str, int]], None]


class _RtcpSocket(DatagramProtocol):
    def __init__(self, port: int, on_packet: PacketHandler) -> None:
        self.port = port
        self._on_packet = on_packet

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        self._on_packet(self.port, datagram, addr)

    def send(self, data: bytes, destination: tuple[str, int]) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(data, destination)
        except OSError as exc:
            log.debug("rtcp: cannot send to %s:%d: %s", *destination, exc)


@dataclass(frozen=True)
class _PortPair:
    rtp: socket.socket
    rtcp: _RtcpSocket
    rtcp_listening: IListeningPort


class RtpPortPool:
    """Binds RTP (even) and RTCP (odd) ports; implements `controller.MediaPorts`.

    Ports are handed out round-robin, so a port freed by one call is not reused at
    once and stray packets of the old call do not reach a new one. RTP is collected by
    `sweep`, RTCP handed to `on_rtcp` as it comes.
    """

    def __init__(
        self,
        reactor: IReactorUDP,
        port_min: int,
        port_max: int,
        on_rtcp: PacketHandler,
    ) -> None:
        self._reactor = reactor
        self._ports = list(range(port_min + port_min % 2, port_max, 2))
        self._cursor = 0
        self._on_rtcp = on_rtcp
        self._listening: dict[int, _PortPair] = {}
        # fd -> (port, its recvmsg); port -> the send of its socket (RTP even, RTCP odd):
        # bound methods looked up once, not for every packet of every tick.
        self._by_fd: dict[int, tuple[int, Callable[..., Any]]] = {}
        self._senders: dict[int, Callable[[bytes, tuple[str, int]], Any]] = {}
        self._ready = select.epoll()

    def allocate(self, host: str) -> int:
        for _ in range(len(self._ports)):
            port = self._ports[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._ports)
            if port in self._listening:
                continue
            try:
                rtp = _bind_rtp(host, port)
            except OSError:
                continue
            rtcp_socket = _RtcpSocket(port + 1, self._on_rtcp)
            try:
                rtcp = self._reactor.listenUDP(port + 1, rtcp_socket, host, _MAX_PACKET_BYTES)
            except CannotListenError:
                rtp.close()
                continue
            self._listening[port] = _PortPair(rtp, rtcp_socket, rtcp)
            self._by_fd[rtp.fileno()] = (port, rtp.recvmsg)
            self._senders[port], self._senders[port + 1] = rtp.sendto, rtcp_socket.send
            self._ready.register(rtp.fileno(), select.EPOLLIN)
            return port
        raise NoMediaPorts(f"no free RTP port pair in {self._ports[0]}-{self._ports[-1] + 1}")

    def release(self, port: int) -> None:
        pair = self._listening.pop(port, None)
        if pair is not None:
            del self._by_fd[pair.rtp.fileno()]
            del self._senders[port], self._senders[port + 1]
            self._ready.unregister(pair.rtp.fileno())
            pair.rtp.close()
            pair.rtcp_listening.stopListening()

    def sweep(self) -> list[ReceivedRtp]:
        """Read every RTP datagram waiting on any port, oldest first per port."""
        received: list[ReceivedRtp] = []
        append, by_fd, unpack_time = received.append, self._by_fd, _TIMESPEC.unpack_from
        for _ in range(_MAX_PACKETS_PER_SWEEP):
            ready = self._ready.poll(0)
            if not ready:
                break
            for fd, _events in ready:
                port, recvmsg = by_fd[fd]
                try:
                    data, ancillary, _flags, source = recvmsg(_MAX_PACKET_BYTES, _ANCILLARY_BYTES)
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                        log.debug("rtp: port %d: %s", port, exc)
                    continue
                # The one control message asked for, read in line (once per packet of
                # every member: a call to `_arrival` costs a tenth of the read).
                if len(ancillary) == 1 and ancillary[0][:2] == _TIMESTAMP_MESSAGE:
                    seconds, nanoseconds = unpack_time(ancillary[0][2])
                    arrival = seconds + nanoseconds * 1e-9
                else:
                    arrival = _arrival(ancillary)
                append((port, data, source[:2], arrival))
        return received

    def send_many(self, datagrams: list[tuple[int, bytes, tuple[str, int]]]) -> None:
        """Send each (local port, bytes, destination): RTP from the even port's socket,
        RTCP from the odd one's. One call per tick for every member's packet."""
        senders = self._senders
        for port, data, destination in datagrams:
            send = senders.get(port)
            if send is None:
                continue
            try:
                send(data, destination)
            except OSError as exc:  # a full send buffer or an unreachable host: this packet only
                log.debug("rtp: cannot send to %s:%d: %s", *destination, exc)

    def close(self) -> None:
        for port in list(self._listening):
            self.release(port)
        self._ready.close()

    def __len__(self) -> int:
        return len(self._listening)


def _bind_rtp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    rtp = socket.socket(family, socket.SOCK_DGRAM)
    try:
        rtp.setblocking(False)
        rtp.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        rtp.bind((host, port))
    except OSError:
        rtp.close()
        raise
    return rtp


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The kernel's receive time; now, should a datagram come without one."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return float(seconds + nanoseconds * 1e-9)
    return time.time()
