"""SIP over TCP: framing by Content-Length, one connection per flow.

Responses and in-dialog requests go back over the connection their flow names; when
the peer has closed it, the message is dropped and logged (RFC 3261 §18.2.2 would
open a new connection to the Via address; phones that call over TCP keep theirs open).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from bridge.sip.errors import SipParseError
from bridge.sip.flow import Flow
from bridge.sip.parser import StreamFramer

log = logging.getLogger(__name__)


class TcpConnections:
    """The open SIP TCP connections, by flow."""

    def __init__(self) -> None:
        self._by_flow: dict[Flow, SipTcpProtocol] = {}

    def add(self, flow: Flow, protocol: SipTcpProtocol) -> None:
        self._by_flow[flow] = protocol

    def remove(self, flow: Flow) -> None:
        self._by_flow.pop(flow, None)

    def send(self, data: bytes, flow: Flow) -> None:
        protocol = self._by_flow.get(flow)
        if protocol is None or protocol.transport is None:
            log.info("sip: connection %s:%d gone; dropped %d bytes", *flow.remote, len(data))
            return
        protocol.transport.write(data)

    def __len__(self) -> int:
        return len(self._by_flow)


def _host_port(address: IAddress) -> tuple[str, int]:
    return (getattr(address, "host", ""), int(getattr(address, "port", 0)))


class SipTcpProtocol(Protocol):
    """One accepted SIP connection."""

    def __init__(self, connections: TcpConnections, on_message: Callable[[bytes, Flow], None]):
        self._connections = connections
        self._on_message = on_message
        self._framer = StreamFramer()
        self.flow: Flow | None = None

    def connectionMade(self) -> None:  # noqa: N802
        assert self.transport is not None
        local = _host_port(self.transport.getHost())
        remote = _host_port(self.transport.getPeer())
        self.flow = Flow("tcp", local[0], local[1], remote[0], remote[1])
        self._connections.add(self.flow, self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        assert self.transport is not None and self.flow is not None
        pings = self._framer.pings
        try:
            messages = self._framer.feed(data)
        except SipParseError as exc:
            log.info("sip: closing tcp connection from %s:%d: %s", *self.flow.remote, exc)
            self.transport.loseConnection()
            return
        if self._framer.pings != pings:  # RFC 5626 §4.4.1: a CRLF pong for every ping
            self.transport.write(b"\r\n" * (self._framer.pings - pings))
        for message in messages:
            self._on_message(message, self.flow)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        if self.flow is not None:
            self._connections.remove(self.flow)


class SipTcpFactory(Factory):
    def __init__(self, connections: TcpConnections, on_message: Callable[[bytes, Flow], None]):
        self._connections = connections
        self._on_message = on_message

    def buildProtocol(self, addr: IAddress | None) -> SipTcpProtocol:  # noqa: N802
        return SipTcpProtocol(self._connections, self._on_message)
