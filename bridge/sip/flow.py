"""Where a SIP message travelled: transport, our address and the peer's address."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Flow:
    """A transport association (RFC 5626's "flow", loosely).

    Responses go back on the flow their request came in on, to its source address and
    port (RFC 3581 symmetric response); in-dialog requests reuse the dialog's flow. For
    TCP the edge maps the flow to the open connection.
    """

    transport: str  # "udp" | "tcp"
    local_host: str
    local_port: int
    remote_host: str
    remote_port: int

    @property
    def remote(self) -> tuple[str, int]:
        return (self.remote_host, self.remote_port)

    @property
    def local(self) -> tuple[str, int]:
        return (self.local_host, self.local_port)

    @property
    def reliable(self) -> bool:
        """True for stream transports, where timers A, E, G do not retransmit (§17)."""
        return self.transport != "udp"
