"""SIP over UDP: one DatagramProtocol per listen address."""

from __future__ import annotations

import logging
from collections.abc import Callable

from twisted.internet.protocol import DatagramProtocol

from bridge.sip.flow import Flow

log = logging.getLogger(__name__)


class SipUdpProtocol(DatagramProtocol):
    """Hand every datagram to `on_datagram` with the flow it came on."""

    def __init__(self, host: str, port: int, on_datagram: Callable[[bytes, Flow], None]) -> None:
        self.host = host
        self.port = port
        self._on_datagram = on_datagram

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        self._on_datagram(datagram, Flow("udp", self.host, self.port, addr[0], addr[1]))

    def send(self, data: bytes, flow: Flow) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(data, flow.remote)
        except OSError as exc:  # e.g. EHOSTUNREACH: one peer's trouble is not ours
            log.info("sip: cannot send to %s:%d over udp: %s", *flow.remote, exc)
