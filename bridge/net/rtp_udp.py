"""RTP/RTCP sockets: a pool of even/odd port pairs from the configured range.

RTP is read in one sweep per 20 ms tick rather than packet by packet as it arrives: the
mixer only reads the playout buffers at the tick, so a packet pushed at arrival or just
before the tick plays at the same moment, and the sweep saves the reactor's per-packet
dispatch (a wake-up, a read loop ending in EAGAIN, logging context) for hundreds of
members. The kernel stamps each datagram on arrival (SO_TIMESTAMPNS), so the playout
buffer still sees true arrival times, with less scheduling noise than a user-space
clock. RTCP (a few packets per member per minute) stays with the Twisted reactor.

Each RTP port has two sockets (SO_REUSEPORT, one owner): one connected to where the call's
RTP goes, which sends without an address and receives the peer's packets, and one left
unconnected for packets from anywhere else. A send on a connected socket skips the
kernel's route lookup and Python's address parsing (0.45 of 2.95 us a packet on loopback;
1.5 % of the serving process's CPU at 500 members), and the send is the bridge's largest
single cost per member. The unconnected one keeps what a single socket gave: the first
packets of a caller behind NAT, and a caller whose NAT moved it to a new port (the
controller relatches, the next send reconnects).
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
from operator import itemgetter
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
    rtp: socket.socket  # connected to the call's RTP destination once it sends
    stray: socket.socket  # the same port, unconnected: packets from anyone else
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
        # fd -> (port, its recvmsg, whether it is a stray socket); RTP port -> (the
        # destination its socket is connected to, that socket's send); port -> the sendto
        # of its socket (RTP even, RTCP odd): bound methods looked up once, not for every
        # packet of every tick.
        self._by_fd: dict[int, tuple[int, Callable[..., Any], bool]] = {}
        self._connected: dict[int, tuple[tuple[str, int], Callable[[bytes], Any]]] = {}
        self._senders: dict[int, Callable[[bytes, tuple[str, int]], Any]] = {}
        self._ready = select.epoll()

    def allocate(self, host: str) -> int:
        for _ in range(len(self._ports)):
            port = self._ports[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._ports)
            if port in self._listening:
                continue
            try:
                rtp, stray = _bind_rtp(host, port)
            except OSError:
                continue
            rtcp_socket = _RtcpSocket(port + 1, self._on_rtcp)
            try:
                rtcp = self._reactor.listenUDP(port + 1, rtcp_socket, host, _MAX_PACKET_BYTES)
            except CannotListenError:
                rtp.close()
                stray.close()
                continue
            self._listening[port] = _PortPair(rtp, stray, rtcp_socket, rtcp)
            self._by_fd[rtp.fileno()] = (port, rtp.recvmsg, False)
            self._by_fd[stray.fileno()] = (port, stray.recvmsg, True)
            self._senders[port], self._senders[port + 1] = rtp.sendto, rtcp_socket.send
            self._ready.register(rtp.fileno(), select.EPOLLIN)
            self._ready.register(stray.fileno(), select.EPOLLIN)
            return port
        raise NoMediaPorts(f"no free RTP port pair in {self._ports[0]}-{self._ports[-1] + 1}")

    def release(self, port: int) -> None:
        pair = self._listening.pop(port, None)
        if pair is not None:
            del self._senders[port], self._senders[port + 1]
            self._connected.pop(port, None)
            for sock in (pair.rtp, pair.stray):
                del self._by_fd[sock.fileno()]
                self._ready.unregister(sock.fileno())
                sock.close()
            pair.rtcp_listening.stopListening()

    def sweep(self) -> list[ReceivedRtp]:
        """Read every RTP datagram waiting on any port, oldest first per port."""
        received: list[ReceivedRtp] = []
        append, by_fd, unpack_time = received.append, self._by_fd, _TIMESPEC.unpack_from
        strays = False  # a packet came on a stray socket: the port's order is by arrival
        for _ in range(_MAX_PACKETS_PER_SWEEP):
            ready = self._ready.poll(0)
            if not ready:
                break
            for fd, _events in ready:
                port, recvmsg, stray = by_fd[fd]
                strays = strays or stray
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
        if strays:
            # A port's two sockets were read one after the other: put its packets back in
            # the order they came (stable, so equal stamps keep their order).
            received.sort(key=itemgetter(3))  # arrival
        return received

    def send_many(self, datagrams: list[tuple[int, bytes, tuple[str, int]]]) -> None:
        """Send each (local port, bytes, destination): RTP from the even port's socket,
        RTCP from the odd one's. One call per tick for every member's packet."""
        connected = self._connected
        for port, data, destination in datagrams:
            try:
                peer = connected.get(port)
                if peer is not None and peer[0] == destination:
                    peer[1](data)
                else:
                    self._send_unconnected(port, data, destination)
            except OSError as exc:  # a full send buffer or an unreachable host: this packet only
                log.debug("rtp: cannot send to %s:%d: %s", *destination, exc)

    def _send_unconnected(self, port: int, data: bytes, destination: tuple[str, int]) -> None:
        """RTCP, and RTP to a new destination: its socket is connected there first (once
        per call, and again after a relatch)."""
        pair = self._listening.get(port)
        if pair is not None:
            try:
                pair.rtp.connect(destination)
            except OSError as exc:  # not a destination this socket can reach: send unconnected
                log.debug("rtp: port %d cannot connect to %s:%d: %s", port, *destination, exc)
                self._connected.pop(port, None)
            else:
                self._connected[port] = (destination, pair.rtp.send)
                pair.rtp.send(data)
                return
        send = self._senders.get(port)
        if send is not None:
            send(data, destination)

    def close(self) -> None:
        for port in list(self._listening):
            self.release(port)
        self._ready.close()

    def __len__(self) -> int:
        return len(self._listening)


def _bind_rtp(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """The port's two sockets (see the module's docstring), if nobody holds the port.

    SO_REUSEPORT lets the two share it, and would let any other socket of this user that
    asks for it share it too: a plain bind, let go at once, first makes sure the port is
    free (a second bridge with the same port range then skips it, as it did before).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind((host, port))
    sockets: list[socket.socket] = []
    try:
        for _ in range(2):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sock.bind((host, port))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets[0], sockets[1]


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The kernel's receive time; now, should a datagram come without one."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return float(seconds + nanoseconds * 1e-9)
    return time.time()
