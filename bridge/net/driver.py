"""Drive the call controller from sockets and clocks, and send what it produces.

After every input the driver flushes the controller's outputs to the sockets and
re-arms the single timer at the controller's next deadline (the aioquic adapter shape).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from bridge.controller import CallController, ReceivedRtp
from bridge.sip.flow import Flow

SipSend = Callable[[bytes, Flow], None]
# (local port, bytes, destination) of every RTP and RTCP datagram to send now
RtpSend = Callable[[list[tuple[int, bytes, tuple[str, int]]]], None]
RtpSweep = Callable[[], list[ReceivedRtp]]  # every RTP datagram waiting


class ControllerDriver:
    def __init__(
        self,
        clock: IReactorTime,
        controller: CallController,
        send_sip: SipSend,
        send_rtp: RtpSend,
        sweep_rtp: RtpSweep,
    ) -> None:
        self._clock = clock
        self._controller = controller
        self._send_sip = send_sip
        self._send_rtp = send_rtp
        self._sweep_rtp = sweep_rtp
        self._timer: IDelayedCall | None = None
        self._timer_at: float | None = None

    def sip_received(self, data: bytes, flow: Flow) -> None:
        self._controller.receive_sip(data, flow, self._clock.seconds())
        self.flush()

    def rtcp_received(self, port: int, data: bytes, source: tuple[str, int]) -> None:
        self._controller.receive_rtcp(port, data, source, self._clock.seconds())
        self.flush()

    def tick(self, now: float) -> None:
        """Take in the RTP that came since the last tick, then mix."""
        self._controller.receive_rtp_many(self._sweep_rtp())
        self._controller.tick(now)
        self.flush()

    def start(self) -> None:
        """Start what the controller begins on its own: registrations, plain RTP legs."""
        self._controller.start(self._clock.seconds())
        self.flush()

    def hang_up_all(self) -> None:
        self._controller.hang_up_all(self._clock.seconds())
        self.flush()

    def flush(self) -> None:
        for data, flow in self._controller.sip_datagrams():
            self._send_sip(data, flow)
        datagrams = self._controller.rtp_datagrams()
        if datagrams:
            self._send_rtp(datagrams)
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self._controller.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer, self._timer_at = None, deadline
        if deadline is not None:
            delay = max(0.0, deadline - self._clock.seconds())
            self._timer = self._clock.callLater(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        self._controller.handle_timer(self._clock.seconds())
        self.flush()
