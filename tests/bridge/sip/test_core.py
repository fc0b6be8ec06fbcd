"""The UAS core: calls answered, confirmed, cancelled and ended, by bytes and scripted time."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sip.core import SipCore, TimerConfig
from bridge.sip.errors import LocalProtocolError
from bridge.sip.events import (
    AckTimedOut,
    ByeReceived,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallRef,
    InviteReceived,
    MessageDropped,
    ReinviteReceived,
    RequestReceived,
    SipEvent,
)
from bridge.sip.flow import Flow
from bridge.sip.message import Request, Response, response_to
from bridge.sip.parser import parse_message
from tests.conftest import load_fixture

UDP = Flow("udp", "192.0.2.1", 5060, "198.51.100.7", 5062)
TCP = Flow("tcp", "192.0.2.1", 5060, "198.51.100.7", 40111)
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n"
    b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
)
ANSWER = b"v=0\r\no=- 2 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
SDP_LENGTH = b"Content-Length: %d" % len(SDP)
# 2xx retransmissions after a 2xx sent at t=0: T1 doubling to T2, before 64*T1.
RETRANSMIT_TIMES = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def sip(start_line: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """Print a message the way a phone would, Content-Length last."""
    lines = [start_line, *(f"{name}: {value}" for name, value in headers)]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Caller:
    """A scripted UAC for one call: builds its requests as a phone would."""

    call_id: str = "call-1@198.51.100.7"
    from_tag: str = "a1"
    flow: Flow = UDP
    uri: str = "sip:1000@192.0.2.1"
    contact: str = "<sip:alice@198.51.100.7:5062>"
    invite_branch: str = "z9hG4bK-inv1"
    our_tag: str | None = None  # the bridge's To tag, learned from its 2xx

    @property
    def call(self) -> CallRef:
        return CallRef(self.call_id, self.from_tag)

    def via(self, branch: str) -> str:
        return f"SIP/2.0/{self.flow.transport.upper()} 198.51.100.7:5062;branch={branch};rport"

    def request(
        self,
        method: str,
        cseq: int,
        *,
        branch: str,
        to_tag: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        uri: str | None = None,
        content_type: str | None = "application/sdp",
    ) -> bytes:
        to = "<sip:1000@192.0.2.1>" + (f";tag={to_tag}" if to_tag else "")
        headers = [
            ("Via", self.via(branch)),
            ("Max-Forwards", "70"),
            ("From", f'"Alice" <sip:alice@example.org>;tag={self.from_tag}'),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", self.contact),
            *(extra or []),
        ]
        if body and content_type:
            headers.append(("Content-Type", content_type))
        return sip(f"{method} {uri or self.uri} SIP/2.0", headers, body)

    def invite(
        self,
        branch: str | None = None,
        *,
        body: bytes = SDP,
        extra: list[tuple[str, str]] | None = None,
        uri: str | None = None,
        content_type: str = "application/sdp",
    ) -> bytes:
        return self.request(
            "INVITE", 1, branch=branch or self.invite_branch, body=body, extra=extra, uri=uri,
            content_type=content_type,
        )

    def ack(self, cseq: int = 1, branch: str = "z9hG4bK-ack1", to_tag: str | None = None) -> bytes:
        return self.request("ACK", cseq, branch=branch, to_tag=to_tag or self.our_tag)

    def cancel(self, branch: str | None = None) -> bytes:
        return self.request("CANCEL", 1, branch=branch or self.invite_branch)

    def in_dialog(
        self,
        method: str,
        cseq: int,
        branch: str,
        *,
        body: bytes = b"",
        content_type: str = "application/sdp",
    ) -> bytes:
        return self.request(
            method, cseq, branch=branch, to_tag=self.our_tag, body=body, content_type=content_type
        )


@dataclass
class Bridge:
    """A SipCore and what it sent, parsed."""

    core: SipCore = field(default_factory=lambda: SipCore(rng=random.Random(7)))

    def receive(self, data: bytes, flow: Flow = UDP, now: float = 0.0) -> None:
        self.core.receive_datagram(data, flow, now)

    def sent(self) -> list[tuple[Request | Response, Flow]]:
        return [(parse_message(data), flow) for data, flow in self.core.datagrams_to_send()]

    def responses(self) -> list[Response]:
        out = []
        for message, _ in self.sent():
            assert isinstance(message, Response)
            out.append(message)
        return out

    def events(self) -> list[SipEvent]:
        out = []
        while (event := self.core.next_event()) is not None:
            out.append(event)
        return out

    def run_timers(self, until: float) -> list[tuple[float, bytes, Flow]]:
        """Fire every deadline up to `until`, exactly on time; return what was sent when."""
        sent = []
        while (deadline := self.core.next_deadline()) is not None and deadline <= until:
            self.core.handle_timer(deadline)
            sent += [(deadline, data, flow) for data, flow in self.core.datagrams_to_send()]
        return sent


def status_lines(responses: list[Response]) -> list[tuple[int, str]]:
    return [(r.status, r.cseq.method) for r in responses]


def start_line(data: bytes) -> str:
    """The first line of a sent message: `SIP/2.0 487 ...` or `BYE sip:... SIP/2.0`."""
    return data.split(b"\r\n", 1)[0].decode()


def start_call(bridge: Bridge, caller: Caller, now: float = 0.0) -> InviteReceived:
    bridge.receive(caller.invite(), caller.flow, now)
    (trying,) = bridge.responses()
    assert trying.status == 100
    (event,) = bridge.events()
    assert isinstance(event, InviteReceived)
    return event


def answer_call(bridge: Bridge, caller: Caller, now: float = 0.0) -> Response:
    """INVITE, 100, application 200; the caller learns our tag. Returns the 200."""
    start_call(bridge, caller, now)
    bridge.core.respond_invite(caller.call, 200, now, body=ANSWER)
    (ok,) = bridge.responses()
    assert ok.status == 200
    caller.our_tag = ok.to_address.tag
    return ok


def confirmed_call(bridge: Bridge, caller: Caller, now: float = 0.0) -> Response:
    ok = answer_call(bridge, caller, now)
    bridge.receive(caller.ack(), caller.flow, now)
    assert [type(e) for e in bridge.events()] == [CallConfirmed]
    return ok


# -- INVITE, 100 Trying, 200 OK ---------------------------------------------------------


def test_invite_gets_100_trying_at_once_and_goes_up() -> None:
    bridge, caller = Bridge(), Caller()
    bridge.receive(caller.invite())
    ((trying, flow),) = bridge.sent()
    assert isinstance(trying, Response) and trying.status == 100
    assert flow == UDP
    assert trying.to_address.tag is None  # §8.2.6.2: 100 need not carry a tag
    assert trying.call_id == caller.call_id and str(trying.cseq) == "1 INVITE"
    (event,) = bridge.events()
    assert isinstance(event, InviteReceived)
    assert event.call == CallRef(caller.call_id, "a1")
    assert event.request.body == SDP and event.flow == UDP
    assert bridge.core.is_active(event.call)
    assert bridge.core.call_flow(event.call) == UDP
    with pytest.raises(LocalProtocolError, match="unknown call"):
        bridge.core.call_flow(CallRef("nobody", "x"))


def test_answer_200_carries_tag_contact_capabilities_and_body() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.core.respond_invite(caller.call, 200, 0.0, body=ANSWER)
    (ok,) = bridge.responses()
    assert ok.status == 200 and ok.reason == "OK"
    assert ok.to_address.tag and len(ok.to_address.tag) >= 8
    assert ok.headers.get("Contact") == "<sip:1000@192.0.2.1:5060>"
    assert ok.headers.get("Allow") == "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER"
    assert "Supported" in ok.headers
    assert ok.headers.get("Server") == "telerapat"
    assert ok.headers.get("Content-Type") == "application/sdp"
    assert ok.body == ANSWER
    assert bridge.events() == []


def test_answer_extra_headers_reason_and_content_type() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.core.respond_invite(
        caller.call, 200, 0.0, reason="Fine", body=b"x", content_type="application/x-test",
        headers=[("X-Room", "rakor")],
    )
    (ok,) = bridge.responses()
    assert ok.reason == "Fine" and ok.headers.get("X-Room") == "rakor"
    assert ok.headers.get("Content-Type") == "application/x-test"


def test_ringing_carries_the_same_tag_and_contact_as_the_200() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.core.respond_invite(caller.call, 180, 0.0)
    (ringing,) = bridge.responses()
    assert ringing.status == 180 and ringing.to_address.tag
    assert ringing.headers.get("Contact") == "<sip:1000@192.0.2.1:5060>"
    bridge.core.respond_invite(caller.call, 200, 0.1, body=ANSWER)
    (ok,) = bridge.responses()
    assert ok.to_address.tag == ringing.to_address.tag


def test_contact_over_tcp_says_transport_tcp_and_uses_external_address() -> None:
    bridge = Bridge(SipCore(rng=random.Random(1), external_address="203.0.113.1"))
    caller = Caller(flow=TCP)
    ok = answer_call(bridge, caller)
    assert ok.headers.get("Contact") == "<sip:1000@203.0.113.1:5060;transport=tcp>"


def test_contact_brackets_ipv6_and_omits_missing_user() -> None:
    flow = Flow("udp", "2001:db8::1", 5060, "2001:db8::7", 5062)
    bridge, caller = Bridge(), Caller(flow=flow, uri="sip:[2001:db8::1]")
    ok = answer_call(bridge, caller)
    assert ok.headers.get("Contact") == "<sip:[2001:db8::1]:5060>"


def test_invite_without_contact_is_400() -> None:
    bridge, caller = Bridge(), Caller(contact="")
    data = caller.invite().replace(b"Contact: \r\n", b"")
    bridge.receive(data)
    (response,) = bridge.responses()
    assert response.status == 400 and response.reason == "missing Contact header"
    assert bridge.events() == []
    assert not bridge.core.is_active(caller.call)


def test_merged_invite_with_same_call_id_and_tag_is_482() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.receive(caller.invite(branch="z9hG4bK-forked"))
    assert status_lines(bridge.responses()) == [(482, "INVITE")]
    assert bridge.events() == []


# -- 2xx retransmission until the ACK (§13.3.1.4) ----------------------------------------


def test_2xx_retransmitted_on_udp_until_ack_timeout() -> None:
    bridge, caller = Bridge(), Caller()
    ok = answer_call(bridge, caller)
    sent = bridge.run_timers(until=100.0)
    assert [at for at, _, _ in sent] == RETRANSMIT_TIMES
    assert all(parse_message(data) == ok and flow == UDP for _, data, flow in sent)
    assert bridge.events() == [AckTimedOut(caller.call)]
    assert bridge.core.is_active(caller.call)  # the application decides to hang up
    assert bridge.core.next_deadline() is None
    bridge.core.hangup(caller.call, 33.0)  # §13.3.1.4: the dialog is confirmed; end it
    ((bye, flow),) = bridge.sent()
    assert isinstance(bye, Request) and bye.method == "BYE" and flow == UDP


def test_2xx_retransmission_follows_configured_timers() -> None:
    timers = TimerConfig(t1_s=0.1, t2_s=0.4, t4_s=1.0)
    bridge, caller = Bridge(SipCore(rng=random.Random(3), timers=timers)), Caller()
    answer_call(bridge, caller)
    sent = bridge.run_timers(until=10.0)
    assert [round(at, 3) for at, _, _ in sent] == [
        0.1, 0.3, 0.7, 1.1, 1.5, 1.9, 2.3, 2.7, 3.1, 3.5, 3.9, 4.3, 4.7, 5.1, 5.5, 5.9, 6.3
    ]
    assert bridge.events() == [AckTimedOut(caller.call)]  # at 64*T1 = 6.4 s


def test_2xx_not_retransmitted_on_tcp_but_ack_still_times_out() -> None:
    bridge, caller = Bridge(), Caller(flow=TCP)
    answer_call(bridge, caller)
    assert bridge.core.next_deadline() == 32.0
    assert bridge.run_timers(until=100.0) == []
    assert bridge.events() == [AckTimedOut(caller.call)]


def test_ack_stops_retransmission_and_confirms_the_call() -> None:
    bridge, caller = Bridge(), Caller()
    answer_call(bridge, caller)
    assert [at for at, _, _ in bridge.run_timers(until=2.0)] == [0.5, 1.5]
    bridge.receive(caller.ack(), now=2.0)
    (event,) = bridge.events()
    assert isinstance(event, CallConfirmed) and event.call == caller.call
    assert event.ack.method == "ACK"
    assert bridge.run_timers(until=100.0) == []
    assert bridge.events() == []


def test_ack_copies_are_absorbed_quietly() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.receive(caller.ack(), now=0.6)
    bridge.receive(caller.ack(branch="z9hG4bK-ack2"), now=0.7)
    assert bridge.events() == []
    assert bridge.sent() == []


def test_ack_carries_the_sdp_answer_when_our_2xx_offered() -> None:
    bridge, caller = Bridge(), Caller()
    bridge.receive(caller.invite(body=b""))
    bridge.sent(), bridge.events()
    bridge.core.respond_invite(caller.call, 200, 0.0, body=ANSWER)
    caller.our_tag = bridge.responses()[0].to_address.tag
    ack = caller.request("ACK", 1, branch="z9hG4bK-a", to_tag=caller.our_tag, body=SDP)
    bridge.receive(ack)
    (event,) = bridge.events()
    assert isinstance(event, CallConfirmed) and event.ack.body == SDP


def test_pyvoip_ack_with_its_own_to_tag_confirms_the_call() -> None:
    """pyVoIP 1.6.8 ACKs with a fresh To tag and the INVITE's branch (fixtures recorded)."""
    flow = Flow("udp", "127.0.0.1", 5060, "127.0.0.1", 5151)
    bridge = Bridge()
    bridge.receive(load_fixture("sip/invite_pyvoip.sip"), flow)
    bridge.sent()
    (event,) = bridge.events()
    assert isinstance(event, InviteReceived)
    bridge.core.respond_invite(event.call, 200, 0.0, body=ANSWER)
    (ok,) = bridge.responses()
    ack = load_fixture("sip/ack_pyvoip.sip")
    assert ok.to_address.tag != "6ca3d6c5" and b"tag=6ca3d6c5" in ack
    bridge.receive(ack, flow, now=0.1)
    (confirmed,) = bridge.events()
    assert isinstance(confirmed, CallConfirmed) and confirmed.call == event.call
    assert bridge.run_timers(until=100.0) == []  # no more 2xx retransmissions


def test_ack_with_wrong_tag_and_wrong_cseq_is_dropped() -> None:
    bridge, caller = Bridge(), Caller()
    answer_call(bridge, caller)
    bridge.receive(caller.ack(cseq=5, to_tag="stranger"), now=0.1)
    (event,) = bridge.events()
    assert isinstance(event, MessageDropped) and "CSeq 5" in event.reason
    assert [at for at, _, _ in bridge.run_timers(until=1.0)] == [0.5]  # still unacknowledged


def test_ack_for_unknown_call_is_dropped_without_answer() -> None:
    bridge = Bridge()
    bridge.receive(Caller().ack(to_tag="x"))
    (event,) = bridge.events()
    assert isinstance(event, MessageDropped)
    assert bridge.sent() == []


def test_baresip_ack_on_its_own_branch_confirms() -> None:
    flow = Flow("udp", "127.0.0.1", 5110, "127.0.0.1", 5111)
    bridge = Bridge()
    bridge.receive(load_fixture("sip/invite_baresip.sip"), flow)
    (trying,) = bridge.responses()
    assert trying.headers.get("Via") == (
        "SIP/2.0/UDP 127.0.0.1:5111;branch=z9hG4bK61d36dba5b79d036;rport=5111;received=127.0.0.1"
    )
    (event,) = bridge.events()
    assert isinstance(event, InviteReceived)
    bridge.core.respond_invite(event.call, 200, 0.0, body=ANSWER)
    (ok,) = bridge.responses()
    assert ok.headers.get("Contact") == "<sip:1000@127.0.0.1:5110>"
    ack = load_fixture("sip/ack_baresip.sip").replace(
        b"tag=srv80ec2fc1", f"tag={ok.to_address.tag}".encode()
    )
    bridge.receive(ack, flow, 0.1)
    assert [type(e) for e in bridge.events()] == [CallConfirmed]


# -- retransmitted INVITEs ----------------------------------------------------------------


def test_retransmitted_invite_resends_last_provisional_and_is_not_passed_up() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.receive(caller.invite(), now=0.5)
    assert status_lines(bridge.responses()) == [(100, "INVITE")]
    bridge.core.respond_invite(caller.call, 180, 0.6)
    ringing = bridge.responses()
    bridge.receive(caller.invite(), now=1.5)
    assert bridge.responses() == ringing
    assert bridge.events() == []


def test_retransmitted_invite_after_2xx_is_absorbed() -> None:
    """RFC 6026 §8.7: the Accepted transaction absorbs INVITE copies; the 2xx timer resends."""
    bridge, caller = Bridge(), Caller()
    answer_call(bridge, caller)
    bridge.receive(caller.invite(), now=0.2)
    assert bridge.sent() == [] and bridge.events() == []


def test_retransmitted_invite_after_rejection_gets_the_rejection_again() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.core.respond_invite(caller.call, 486, 0.0)
    (busy,) = bridge.responses()
    assert busy.status == 486 and busy.to_address.tag
    assert bridge.events() == [CallEnded(caller.call, "rejected with 486")]
    bridge.receive(caller.invite(), now=0.2)
    assert bridge.responses() == [busy]


def test_rejection_is_retransmitted_until_ack_then_forgotten() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.core.respond_invite(caller.call, 404, 0.0)
    busy = bridge.responses()[0]
    assert bridge.events() == [CallEnded(caller.call, "rejected with 404")]
    assert [at for at, _, _ in bridge.run_timers(until=2.0)] == [0.5, 1.5]
    # The ACK for a non-2xx uses the INVITE's branch and our To tag (§17.1.1.3).
    bridge.receive(caller.request("ACK", 1, branch="z9hG4bK-inv1", to_tag=busy.to_address.tag),
                   now=2.0)
    assert bridge.events() == [] and bridge.sent() == []
    assert bridge.run_timers(until=100.0) == []  # Timer I ends it quietly
    assert bridge.core.stats().server_transactions == 0


# -- CANCEL (§9.2) ------------------------------------------------------------------------


def test_cancel_before_answer_gives_200_then_487_and_ends_the_call() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.core.respond_invite(caller.call, 180, 0.0)
    ringing = bridge.responses()[0]
    bridge.receive(caller.cancel(), now=0.3)
    ok, terminated = bridge.responses()
    assert (ok.status, str(ok.cseq)) == (200, "1 CANCEL")
    assert (terminated.status, str(terminated.cseq)) == (487, "1 INVITE")
    assert ok.to_address.tag == terminated.to_address.tag == ringing.to_address.tag
    assert bridge.events() == [CallCancelled(caller.call), CallEnded(caller.call, "cancelled")]
    assert not bridge.core.is_active(caller.call)
    bridge.core.respond_invite(caller.call, 200, 0.4, body=ANSWER)  # too late: ignored
    assert bridge.sent() == []


def test_cancel_487_is_retransmitted_until_the_ack() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.receive(caller.cancel(), now=0.0)
    terminated = bridge.responses()[1]
    sent = bridge.run_timers(until=1.0)
    assert [(at, start_line(data)) for at, data, _ in sent] == [
        (0.5, "SIP/2.0 487 Request Terminated")
    ]
    bridge.receive(caller.request("ACK", 1, branch="z9hG4bK-inv1",
                                  to_tag=terminated.to_address.tag), now=1.0)
    assert bridge.run_timers(until=100.0) == []


def test_cancel_retransmission_gets_the_same_200_and_no_new_events() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.receive(caller.cancel(), now=0.1)
    ok = bridge.responses()[0]
    bridge.events()
    bridge.receive(caller.cancel(), now=0.6)
    assert bridge.responses() == [ok]
    assert bridge.events() == []


def test_cancel_after_answer_gets_200_only() -> None:
    bridge, caller = Bridge(), Caller()
    answer_call(bridge, caller)
    bridge.receive(caller.cancel(), now=0.1)
    assert status_lines(bridge.responses()) == [(200, "CANCEL")]
    assert bridge.events() == []
    assert bridge.core.is_active(caller.call)
    bridge.receive(caller.ack(), now=0.2)
    assert [type(e) for e in bridge.events()] == [CallConfirmed]


def test_cancel_matching_nothing_is_481() -> None:
    bridge = Bridge()
    bridge.receive(Caller().cancel(branch="z9hG4bK-nothing"))
    assert status_lines(bridge.responses()) == [(481, "CANCEL")]


def test_cancel_of_pending_reinvite_keeps_the_call() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.receive(caller.in_dialog("INVITE", 2, "z9hG4bK-re1", body=SDP), now=1.0)
    bridge.sent(), bridge.events()
    bridge.receive(caller.request("CANCEL", 2, branch="z9hG4bK-re1"), now=1.1)
    assert status_lines(bridge.responses()) == [(200, "CANCEL"), (487, "INVITE")]
    assert bridge.events() == []
    assert bridge.core.is_active(caller.call)


# -- BYE (§15) ----------------------------------------------------------------------------


def test_bye_from_caller_is_answered_and_ends_the_call_once() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bye = caller.in_dialog("BYE", 2, "z9hG4bK-bye1")
    bridge.receive(bye, now=5.0)
    (ok,) = bridge.responses()
    assert (ok.status, str(ok.cseq)) == (200, "2 BYE")
    assert bridge.events() == [ByeReceived(caller.call), CallEnded(caller.call, "remote hung up")]
    bridge.receive(bye, now=5.5)  # retransmission: same answer, nothing new
    assert bridge.responses() == [ok]
    assert bridge.events() == []
    assert not bridge.core.is_active(caller.call)


def test_bye_with_unknown_tag_or_none_is_481() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.receive(caller.request("BYE", 2, branch="z9hG4bK-b1", to_tag="not-ours"))
    bridge.receive(caller.request("BYE", 3, branch="z9hG4bK-b2"))
    stranger = Caller(call_id="other", our_tag="x")
    bridge.receive(stranger.in_dialog("BYE", 2, "z9hG4bK-b3"))
    assert status_lines(bridge.responses()) == [(481, "BYE")] * 3
    assert bridge.events() == []
    assert bridge.core.is_active(caller.call)


def test_bye_out_of_order_cseq_is_500() -> None:
    bridge, caller = Bridge(), Caller()
    bridge.receive(caller.request("INVITE", 10, branch="z9hG4bK-i", body=SDP))
    bridge.sent(), bridge.events()
    bridge.core.respond_invite(caller.call, 200, 0.0, body=ANSWER)
    caller.our_tag = bridge.responses()[0].to_address.tag
    bridge.receive(caller.ack(cseq=10))
    bridge.events()
    bridge.receive(caller.in_dialog("BYE", 9, "z9hG4bK-b"))
    (response,) = bridge.responses()
    assert response.status == 500 and "out of order" in response.reason
    assert bridge.core.is_active(caller.call)


def test_bye_before_ack_ends_the_call_and_stops_retransmission() -> None:
    bridge, caller = Bridge(), Caller()
    answer_call(bridge, caller)
    bridge.receive(caller.in_dialog("BYE", 2, "z9hG4bK-bye1"), now=0.2)
    assert status_lines(bridge.responses()) == [(200, "BYE")]
    assert [type(e) for e in bridge.events()] == [ByeReceived, CallEnded]
    assert bridge.run_timers(100.0) == []


def test_bye_in_early_dialog_also_terminates_the_invite() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.core.respond_invite(caller.call, 183, 0.0)
    caller.our_tag = bridge.responses()[0].to_address.tag
    bridge.receive(caller.in_dialog("BYE", 2, "z9hG4bK-bye1"), now=0.5)
    assert status_lines(bridge.responses()) == [(200, "BYE"), (487, "INVITE")]
    assert [type(e) for e in bridge.events()] == [ByeReceived, CallEnded]


def test_hangup_sends_bye_over_the_dialog_flow_to_the_contact() -> None:
    bridge = Bridge()
    caller = Caller(contact="<sip:alice@10.0.0.9:5999;transport=udp>")
    invite = caller.invite(extra=[("Record-Route", "<sip:proxy.example;lr>")])
    bridge.receive(invite)
    bridge.sent(), bridge.events()
    bridge.core.respond_invite(caller.call, 200, 0.0, body=ANSWER)
    (ok,) = bridge.responses()
    assert ok.headers.get_all("Record-Route") == ["<sip:proxy.example;lr>"]
    bridge.receive(caller.ack(to_tag=ok.to_address.tag))
    bridge.events()
    bridge.core.hangup(caller.call, 3.0)
    ((bye, flow),) = bridge.sent()
    assert isinstance(bye, Request) and bye.method == "BYE"
    assert flow == UDP  # back where the INVITE came from, not to the Contact's address
    assert bye.uri == "sip:alice@10.0.0.9:5999;transport=udp"
    assert bye.headers.get_all("Route") == ["<sip:proxy.example;lr>"]
    assert bye.from_address.tag == ok.to_address.tag and bye.to_address.tag == "a1"
    assert bye.from_address.uri == "sip:1000@192.0.2.1"
    assert bye.call_id == caller.call_id
    assert bye.top_via.branch and bye.top_via.branch.startswith("z9hG4bK")
    assert (bye.top_via.transport, bye.top_via.host, bye.top_via.port) == ("UDP", "192.0.2.1", 5060)
    assert bye.headers.get("User-Agent") == "telerapat"
    assert bye.headers.get("Max-Forwards") == "70"
    assert bridge.events() == []  # the call ends when the BYE is answered
    bridge.receive(sip("SIP/2.0 200 OK", [
        ("Via", bye.headers.get("Via") or ""), ("From", bye.headers.get("From") or ""),
        ("To", bye.headers.get("To") or ""), ("Call-ID", bye.call_id),
        ("CSeq", str(bye.cseq)),
    ]), now=3.1)
    assert bridge.events() == [CallEnded(caller.call, "hung up, BYE answered 200")]
    assert bridge.run_timers(until=100.0) == []  # no BYE retransmission after the 200


def bye_response(bye: Request, status: int) -> bytes:
    return bytes(response_to(bye, status))


def test_our_bye_is_retransmitted_by_timer_e_and_times_out_by_timer_f() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.core.hangup(caller.call, 0.0)
    ((bye, _),) = bridge.sent()
    sent = bridge.run_timers(until=100.0)
    assert [at for at, _, _ in sent] == RETRANSMIT_TIMES
    assert all(parse_message(data) == bye for _, data, _ in sent)
    assert bridge.events() == [CallEnded(caller.call, "hung up, BYE timed out")]
    assert bridge.core.stats().calls == 0


def test_our_bye_on_tcp_is_not_retransmitted() -> None:
    bridge, caller = Bridge(), Caller(flow=TCP)
    confirmed_call(bridge, caller)
    bridge.core.hangup(caller.call, 0.0)
    ((bye, flow),) = bridge.sent()
    assert flow == TCP and isinstance(bye, Request) and bye.top_via.transport == "TCP"
    assert bridge.run_timers(until=100.0) == []
    assert bridge.events() == [CallEnded(caller.call, "hung up, BYE timed out")]


def test_our_bye_answered_481_still_ends_the_call() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.core.hangup(caller.call, 0.0)
    ((bye, _),) = bridge.sent()
    assert isinstance(bye, Request)
    bridge.receive(bye_response(bye, 100), now=0.1)
    assert bridge.events() == []
    bridge.receive(bye_response(bye, 481), now=0.2)
    bridge.receive(bye_response(bye, 481), now=0.3)  # copy: absorbed
    assert bridge.events() == [CallEnded(caller.call, "hung up, BYE answered 481")]


def test_hangup_twice_sends_one_bye() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.core.hangup(caller.call, 0.0)
    bridge.core.hangup(caller.call, 0.1)
    assert len(bridge.sent()) == 1


def test_bye_glare_answers_200_and_ends_once() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.core.hangup(caller.call, 1.0)
    ((ours, _),) = bridge.sent()
    assert isinstance(ours, Request)
    bridge.receive(caller.in_dialog("BYE", 2, "z9hG4bK-theirs"), now=1.1)
    assert status_lines(bridge.responses()) == [(200, "BYE")]
    assert bridge.events() == [ByeReceived(caller.call), CallEnded(caller.call, "remote hung up")]
    bridge.receive(bye_response(ours, 200), now=1.2)
    assert bridge.events() == []
    assert bridge.run_timers(until=100.0) == []
    assert bridge.core.stats().client_transactions == 0


def test_hangup_before_ack_waits_for_the_ack() -> None:
    bridge, caller = Bridge(), Caller()
    answer_call(bridge, caller)
    bridge.core.hangup(caller.call, 0.1)
    assert bridge.sent() == []  # §15: no BYE before the ACK
    assert [at for at, _, _ in bridge.run_timers(until=1.0)] == [0.5]  # 2xx still resent
    bridge.receive(caller.ack(), now=1.0)
    assert [type(e) for e in bridge.events()] == [CallConfirmed]
    ((bye, _),) = bridge.sent()
    assert isinstance(bye, Request) and bye.method == "BYE"


def test_hangup_before_ack_sends_bye_when_the_2xx_times_out() -> None:
    bridge, caller = Bridge(), Caller()
    answer_call(bridge, caller)
    bridge.core.hangup(caller.call, 0.1)
    sent = bridge.run_timers(until=32.0)
    assert [at for at, _, _ in sent[:-1]] == RETRANSMIT_TIMES
    assert sent[-1][0] == 32.0 and start_line(sent[-1][1]).startswith("BYE ")
    assert bridge.events() == [AckTimedOut(caller.call)]


def test_hangup_before_answer_rejects_the_invite() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    bridge.core.hangup(caller.call, 0.1)
    assert status_lines(bridge.responses()) == [(480, "INVITE")]
    assert bridge.events() == [CallEnded(caller.call, "rejected with 480")]
    bridge.core.hangup(caller.call, 0.2)  # ended: nothing to do
    assert bridge.sent() == []


def test_hangup_with_custom_status_and_invalid_status() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    with pytest.raises(LocalProtocolError):
        bridge.core.hangup(caller.call, 0.0, status=200)
    bridge.core.hangup(caller.call, 0.0, status=603)
    assert status_lines(bridge.responses()) == [(603, "INVITE")]


# -- re-INVITE (§14) ----------------------------------------------------------------------

HOLD = SDP.replace(b"RTP/AVP 0\r\n", b"RTP/AVP 0\r\na=sendonly\r\n")


def test_reinvite_hold_is_passed_up_answered_and_confirmed() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.receive(caller.in_dialog("INVITE", 2, "z9hG4bK-re1", body=HOLD), now=5.0)
    assert status_lines(bridge.responses()) == [(100, "INVITE")]
    (event,) = bridge.events()
    assert isinstance(event, ReinviteReceived) and event.request.body == HOLD
    bridge.core.respond_invite(caller.call, 200, 5.0, body=ANSWER)
    (ok,) = bridge.responses()
    assert ok.to_address.tag == caller.our_tag and str(ok.cseq) == "2 INVITE"
    assert ok.headers.get("Contact") == "<sip:1000@192.0.2.1:5060>"
    assert [at for at, _, _ in bridge.run_timers(until=6.0)] == [5.5]  # resent until ACK
    bridge.receive(caller.ack(cseq=2, branch="z9hG4bK-ack2"), now=6.0)
    (confirmed,) = bridge.events()
    assert isinstance(confirmed, CallConfirmed) and str(confirmed.ack.cseq) == "2 ACK"
    assert bridge.run_timers(until=100.0) == []


def test_reinvite_refreshes_the_remote_target() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    caller.contact = "<sip:alice@203.0.113.5:6000>"
    bridge.receive(caller.in_dialog("INVITE", 2, "z9hG4bK-re1", body=SDP), now=1.0)
    bridge.sent(), bridge.events()
    bridge.core.respond_invite(caller.call, 200, 1.0, body=ANSWER)
    bridge.receive(caller.ack(cseq=2, branch="z9hG4bK-ack2"), now=1.1)
    bridge.sent(), bridge.events()
    bridge.core.hangup(caller.call, 2.0)
    ((bye, _),) = bridge.sent()
    assert isinstance(bye, Request) and bye.uri == "sip:alice@203.0.113.5:6000"


def test_overlapping_reinvite_is_500_with_retry_after_then_491_until_the_ack() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.receive(caller.in_dialog("INVITE", 2, "z9hG4bK-re1", body=SDP), now=1.0)
    bridge.sent(), bridge.events()
    bridge.receive(caller.in_dialog("INVITE", 3, "z9hG4bK-re2", body=SDP), now=1.1)
    (pending,) = bridge.responses()
    assert (pending.status, pending.cseq.method) == (500, "INVITE")
    assert 0 <= int(pending.headers.get("Retry-After") or "x") <= 10
    assert bridge.events() == []
    # And while our 2xx to the first still awaits its ACK.
    bridge.core.respond_invite(caller.call, 200, 1.2, body=ANSWER)
    bridge.sent()
    bridge.receive(caller.in_dialog("INVITE", 4, "z9hG4bK-re3", body=SDP), now=1.3)
    assert status_lines(bridge.responses()) == [(491, "INVITE")]
    bridge.receive(caller.ack(cseq=2, branch="z9hG4bK-ack2"), now=1.4)
    assert [type(e) for e in bridge.events()] == [CallConfirmed]
    bridge.receive(caller.in_dialog("INVITE", 5, "z9hG4bK-re4", body=SDP), now=1.5)
    assert [type(e) for e in bridge.events()] == [ReinviteReceived]


def test_rejected_reinvite_keeps_the_call() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.receive(caller.in_dialog("INVITE", 2, "z9hG4bK-re1", body=SDP), now=1.0)
    bridge.sent(), bridge.events()
    bridge.core.respond_invite(caller.call, 488, 1.0)
    assert status_lines(bridge.responses()) == [(488, "INVITE")]
    bridge.receive(caller.request("ACK", 2, branch="z9hG4bK-re1", to_tag=caller.our_tag), now=1.1)
    assert bridge.events() == [] and bridge.core.is_active(caller.call)
    bridge.receive(caller.in_dialog("BYE", 3, "z9hG4bK-bye"), now=2.0)
    assert status_lines(bridge.responses()) == [(200, "BYE")]


def test_reinvite_pending_when_bye_arrives_gets_487() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.receive(caller.in_dialog("INVITE", 2, "z9hG4bK-re1", body=SDP), now=1.0)
    bridge.sent(), bridge.events()
    bridge.receive(caller.in_dialog("BYE", 3, "z9hG4bK-bye"), now=1.5)
    assert status_lines(bridge.responses()) == [(200, "BYE"), (487, "INVITE")]
    assert [type(e) for e in bridge.events()] == [ByeReceived, CallEnded]
    bridge.core.respond_invite(caller.call, 200, 1.6, body=ANSWER)  # ended: ignored
    assert bridge.sent() == []


def test_hangup_with_reinvite_pending_answers_it_then_sends_bye() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.receive(caller.in_dialog("INVITE", 2, "z9hG4bK-re1", body=SDP), now=1.0)
    bridge.sent(), bridge.events()
    bridge.core.hangup(caller.call, 1.1)
    first, second = [start_line(data) for data, _ in bridge.core.datagrams_to_send()]
    assert first == "SIP/2.0 487 Request Terminated" and second.startswith("BYE ")


def test_reinvite_after_our_bye_is_481() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.core.hangup(caller.call, 1.0)
    bridge.sent()
    bridge.receive(caller.in_dialog("INVITE", 2, "z9hG4bK-re1", body=SDP), now=1.1)
    assert status_lines(bridge.responses()) == [(481, "INVITE")]


def test_reinvite_with_lower_cseq_is_500() -> None:
    bridge, caller = Bridge(), Caller()
    bridge.receive(caller.request("INVITE", 5, branch="z9hG4bK-i", body=SDP))
    bridge.sent(), bridge.events()
    bridge.core.respond_invite(caller.call, 200, 0.0, body=ANSWER)
    caller.our_tag = bridge.responses()[0].to_address.tag
    bridge.receive(caller.ack(cseq=5))
    bridge.events()
    bridge.receive(caller.in_dialog("INVITE", 4, "z9hG4bK-re", body=SDP), now=1.0)
    assert status_lines(bridge.responses()) == [(500, "INVITE")]


def test_respond_invite_twice_with_a_final_is_ignored_the_second_time() -> None:
    bridge, caller = Bridge(), Caller()
    answer_call(bridge, caller)
    bridge.core.respond_invite(caller.call, 486, 0.1)
    assert bridge.sent() == [] and bridge.core.is_active(caller.call)


@pytest.mark.parametrize("status", [100, 99, 700])
def test_respond_invite_refuses_status_out_of_range(status: int) -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    with pytest.raises(LocalProtocolError):
        bridge.core.respond_invite(caller.call, status, 0.0)


# -- OPTIONS and requests passed up -------------------------------------------------------


def test_options_out_of_dialog_is_answered_by_the_core() -> None:
    bridge = Bridge()
    bridge.receive(load_fixture("sip/options_sipp.sip"), UDP)
    (ok,) = bridge.responses()
    assert ok.status == 200 and ok.to_address.tag
    assert ok.headers.get("Allow") == "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER"
    assert ok.headers.get("Accept") == "application/sdp, application/dtmf-relay"
    assert "Supported" in ok.headers
    assert ok.headers.get("Server") == "telerapat"
    assert re.search("INVITE.*BYE", ok.headers.get("Allow") or "")  # what sipp checks
    assert bridge.events() == []


def test_options_in_dialog_keeps_the_dialog_tag() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.receive(caller.in_dialog("OPTIONS", 2, "z9hG4bK-o"), now=1.0)
    (ok,) = bridge.responses()
    assert ok.status == 200 and ok.to_address.tag == caller.our_tag


def test_info_in_dialog_goes_up_with_its_call_and_is_answered() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    info = caller.in_dialog(
        "INFO", 2, "z9hG4bK-info", body=b"Signal=5\r\nDuration=160\r\n",
        content_type="application/dtmf-relay",
    )
    bridge.receive(info, now=1.0)
    (event,) = bridge.events()
    assert isinstance(event, RequestReceived)
    assert event.call == caller.call and event.request.method == "INFO" and event.flow == UDP
    bridge.core.respond(event.key, response_to(event.request, 200), 1.0)
    (ok,) = bridge.responses()
    assert ok.status == 200 and ok.to_address.tag == caller.our_tag
    assert ok.headers.get("Server") == "telerapat"
    with pytest.raises(LocalProtocolError):  # the transaction has its final answer
        bridge.core.respond(event.key, response_to(event.request, 500), 1.0)


def test_info_with_unknown_tag_is_481_and_not_passed_up() -> None:
    bridge = Bridge()
    bridge.receive(Caller(our_tag="gone").in_dialog("INFO", 2, "z9hG4bK-info"))
    assert status_lines(bridge.responses()) == [(481, "INFO")]
    assert bridge.events() == []


def test_non_invite_retransmission_absorbed_and_timer_j_forgets_it() -> None:
    bridge = Bridge()
    caller = Caller()
    register = caller.request("REGISTER", 1, branch="z9hG4bK-reg", uri="sip:192.0.2.1")
    bridge.receive(register, now=0.0)
    (event,) = bridge.events()
    assert isinstance(event, RequestReceived) and event.call is None
    bridge.receive(register, now=0.5)  # before the answer: absorbed
    assert bridge.sent() == [] and bridge.events() == []
    bridge.core.respond(event.key, response_to(event.request, 200), 1.0)
    (ok,) = bridge.responses()
    assert ok.to_address.tag  # the core added the tag the application left out
    bridge.receive(register, now=2.0)
    assert bridge.responses() == [ok] and bridge.events() == []
    assert bridge.core.stats().server_transactions == 1
    assert bridge.core.next_deadline() == 33.0  # Timer J = 64*T1 after the answer
    bridge.run_timers(until=33.0)
    assert bridge.core.stats().server_transactions == 0
    bridge.receive(register, now=40.0)  # now a new request again
    assert [type(e) for e in bridge.events()] == [RequestReceived]


def test_non_invite_on_tcp_is_forgotten_as_soon_as_answered() -> None:
    bridge = Bridge()
    bridge.receive(Caller(flow=TCP).request("REGISTER", 1, branch="z9hG4bK-r"), TCP)
    (event,) = bridge.events()
    assert isinstance(event, RequestReceived)
    bridge.core.respond(event.key, response_to(event.request, 401), 0.0)
    assert bridge.core.stats().server_transactions == 0


def test_respond_to_unknown_key_is_a_local_error() -> None:
    bridge = Bridge()
    bridge.receive(Caller().request("REGISTER", 1, branch="z9hG4bK-r"))
    (event,) = bridge.events()
    assert isinstance(event, RequestReceived)
    other = event.key.for_method("INFO")
    with pytest.raises(LocalProtocolError, match="no request awaits"):
        bridge.core.respond(other, response_to(event.request, 200), 0.0)


# -- what the core refuses ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER",
                                    "UPDATE", "PRACK"])
def test_known_but_unallowed_method_is_405_with_allow(method: str) -> None:
    bridge = Bridge()
    bridge.receive(Caller().request(method, 1, branch="z9hG4bK-x"))
    (response,) = bridge.responses()
    assert response.status == 405
    assert response.headers.get("Allow") == "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER"
    assert bridge.events() == []


def test_unknown_method_is_501() -> None:
    bridge = Bridge()
    bridge.receive(Caller().request("FROBNICATE", 1, branch="z9hG4bK-x"))
    assert status_lines(bridge.responses()) == [(501, "FROBNICATE")]


def test_allow_list_is_configurable() -> None:
    bridge = Bridge(SipCore(rng=random.Random(1), allow=("INVITE", "ACK", "CANCEL", "BYE")))
    bridge.receive(load_fixture("sip/options_sipp.sip"))
    (response,) = bridge.responses()
    assert response.status == 405 and response.headers.get("Allow") == "INVITE, ACK, CANCEL, BYE"


def test_require_with_unknown_option_is_420_with_unsupported() -> None:
    bridge = Bridge()
    bridge.receive(Caller().invite(extra=[("Require", "timer, 100rel")]))
    (response,) = bridge.responses()
    assert response.status == 420
    assert response.headers.get("Unsupported") == "timer, 100rel"
    assert bridge.events() == []


def test_require_on_cancel_is_ignored() -> None:
    bridge, caller = Bridge(), Caller()
    start_call(bridge, caller)
    cancel = caller.request("CANCEL", 1, branch="z9hG4bK-inv1", extra=[("Require", "timer")])
    bridge.receive(cancel)
    assert status_lines(bridge.responses()) == [(200, "CANCEL"), (487, "INVITE")]


@pytest.mark.parametrize("uri", ["http://example.org/1000", "mailto:room@example.org"])
def test_request_uri_of_another_scheme_is_416(uri: str) -> None:
    bridge = Bridge()
    bridge.receive(Caller().invite(uri=uri))
    (data, flow), = bridge.core.datagrams_to_send()
    assert data.startswith(b"SIP/2.0 416 unsupported URI scheme") and flow == UDP
    (event,) = bridge.events()
    assert isinstance(event, MessageDropped) and "416" in event.reason


def test_max_forwards_zero_is_483_and_garbage_is_400() -> None:
    bridge = Bridge()
    caller = Caller()
    bridge.receive(caller.invite().replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    bridge.receive(caller.invite(branch="z9hG4bK-2").replace(b"Max-Forwards: 70",
                                                             b"Max-Forwards: many"))
    first, second = bridge.responses()
    assert first.status == 483
    assert second.status == 400 and second.reason.startswith("Invalid Max-Forwards")


def test_options_with_max_forwards_zero_is_answered_not_483() -> None:
    """RFC 3261 §11: OPTIONS at Max-Forwards 0 pings the first hop, which may answer it."""
    bridge = Bridge()
    bridge.receive(Caller().request("OPTIONS", 1, branch="z9hG4bK-o1",
                                    extra=[("Accept", "application/sdp")])
                   .replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    (response,) = bridge.responses()
    assert response.status == 200 and response.cseq.method == "OPTIONS"
    assert "INVITE" in (response.headers.get("Allow") or "")


def test_missing_max_forwards_is_fine() -> None:
    bridge = Bridge()
    bridge.receive(Caller().invite().replace(b"Max-Forwards: 70\r\n", b""))
    assert status_lines(bridge.responses()) == [(100, "INVITE")]


def test_body_of_unknown_type_is_415_with_accept() -> None:
    bridge = Bridge()
    bridge.receive(Caller().invite(body=b"hello", content_type="text/plain"))
    (response,) = bridge.responses()
    assert response.status == 415
    assert response.headers.get("Accept") == "application/sdp, application/dtmf-relay"


# -- malformed input ----------------------------------------------------------------------


def without_header(data: bytes, name: bytes) -> bytes:
    return b"".join(line for line in data.splitlines(keepends=True)
                    if not line.startswith(name + b":"))


@pytest.mark.parametrize(
    ("mangle", "status_line"),
    [
        (lambda d: without_header(d, b"Call-ID"), b"SIP/2.0 400 missing Call-ID header\r\n"),
        (lambda d: without_header(d, b"CSeq"), b"SIP/2.0 400 missing CSeq header\r\n"),
        (lambda d: d.replace(SDP_LENGTH, b"Content-Length: 900"),
         b"SIP/2.0 400 Content-Length 900 exceeds the %d body bytes\r\n" % len(SDP)),
        (lambda d: d.replace(SDP_LENGTH, b"Content-Length: ten"),
         b"SIP/2.0 400 invalid Content-Length: 'ten'\r\n"),
        (lambda d: d.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1),
         b"SIP/2.0 505 unsupported SIP version: SIP/3.0\r\n"),
    ],
    ids=["no-call-id", "no-cseq", "long-content-length", "bad-content-length", "version"],
)
def test_malformed_request_is_answered_then_the_core_still_works(
    mangle: Callable[[bytes], bytes], status_line: bytes
) -> None:
    bridge = Bridge()
    invite = Caller().invite()
    assert SDP_LENGTH in invite
    bridge.receive(mangle(invite))
    (data, flow), = bridge.core.datagrams_to_send()
    assert data.startswith(status_line) and flow == UDP
    assert b"branch=z9hG4bK-inv1;rport=5062;received=198.51.100.7" in data
    (event,) = bridge.events()
    assert isinstance(event, MessageDropped)
    assert bridge.core.stats() == bridge.core.stats().__class__(0, 0, 0, 0)
    bridge.receive(load_fixture("sip/options_sipp.sip"), now=0.1)
    assert status_lines(bridge.responses()) == [(200, "OPTIONS")]


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x02 not sip at all",
        b"",
        b"\r\n\r\n",
        b"INVITE sip:1000@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n",  # no end
        b"INVITE sip:x@y SIP/2.0\r\nCall-ID: c\r\n\r\n",  # no Via: nowhere to answer
        b"ACK sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n",  # never answered
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n",
    ],
)
def test_unanswerable_input_is_dropped(data: bytes) -> None:
    bridge = Bridge()
    bridge.receive(data)
    assert bridge.core.datagrams_to_send() == []
    (event,) = bridge.events()
    assert isinstance(event, MessageDropped) and event.flow == UDP


def test_huge_header_is_dropped_and_a_following_options_works() -> None:
    bridge = Bridge()
    huge = Caller().invite(extra=[("X-Padding", "a" * 100_000)])
    bridge.receive(huge)
    assert bridge.core.datagrams_to_send() == []
    (event,) = bridge.events()
    assert isinstance(event, MessageDropped) and "too large" in event.reason
    bridge.receive(load_fixture("sip/options_sipp.sip"), now=0.1)
    assert status_lines(bridge.responses()) == [(200, "OPTIONS")]


def test_malformed_request_does_not_disturb_a_call_in_progress() -> None:
    bridge, caller = Bridge(), Caller()
    confirmed_call(bridge, caller)
    bridge.receive(b"garbage\r\n\r\n", now=1.0)
    bridge.receive(without_header(caller.in_dialog("BYE", 2, "z9hG4bK-b"), b"CSeq"), now=1.1)
    bridge.core.datagrams_to_send(), bridge.events()
    assert bridge.core.is_active(caller.call)
    bridge.receive(caller.in_dialog("BYE", 2, "z9hG4bK-b2"), now=1.2)
    assert status_lines(bridge.responses()) == [(200, "BYE")]


def test_response_for_unknown_transaction_is_dropped() -> None:
    bridge = Bridge()
    bridge.receive(sip("SIP/2.0 200 OK", [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnever"), ("From", "<sip:a@b>;tag=1"),
        ("To", "<sip:c@d>;tag=2"), ("Call-ID", "x"), ("CSeq", "1 BYE"),
    ]))
    assert bridge.sent() == []
    (event,) = bridge.events()
    assert isinstance(event, MessageDropped) and "matches no transaction" in event.reason


def test_malformed_record_route_in_invite_is_400() -> None:
    bridge = Bridge()
    bridge.receive(Caller().invite(extra=[("Record-Route", "<tel:+62215550100>")]))
    (response,) = bridge.responses()
    assert response.status == 400 and "Record-Route" in response.reason


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    bridge = Bridge()
    bridge.receive(data)
    bridge.receive(b"INVITE sip:1000@192.0.2.1 SIP/2.0\r\n" + data)
    assert len(bridge.events()) >= 1


# -- transport: rport, received, flows (RFC 3581, §18.2.1) --------------------------------


def test_rport_is_filled_and_received_added_behind_nat() -> None:
    nat = Flow("udp", "192.0.2.1", 5060, "203.0.113.50", 40000)
    bridge = Bridge()
    caller = Caller(flow=nat)
    bridge.receive(caller.invite(), nat)
    ((trying, flow),) = bridge.sent()
    assert flow == nat  # back to the source, whatever Via says
    assert isinstance(trying, Response)
    assert trying.headers.get("Via") == (
        "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-inv1;rport=40000;received=203.0.113.50"
    )


def test_received_added_without_rport_when_host_differs() -> None:
    nat = Flow("udp", "192.0.2.1", 5060, "203.0.113.50", 40000)
    bridge = Bridge()
    data = Caller().invite().replace(b";rport\r\n", b"\r\n")
    bridge.receive(data, nat)
    (trying,) = bridge.responses()
    assert trying.headers.get("Via") == (
        "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-inv1;received=203.0.113.50"
    )


def test_via_left_alone_when_it_matches_the_source() -> None:
    bridge = Bridge()
    data = Caller().invite().replace(b";rport\r\n", b"\r\n")
    bridge.receive(data, UDP)
    (trying,) = bridge.responses()
    assert trying.headers.get("Via") == "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-inv1"


def test_only_the_top_via_is_stamped_in_a_combined_line() -> None:
    nat = Flow("udp", "192.0.2.1", 5060, "203.0.113.50", 40000)
    bridge = Bridge()
    data = Caller().invite().replace(
        b";rport\r\n", b";rport, SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKdown\r\n"
    )
    bridge.receive(data, nat)
    (trying,) = bridge.responses()
    assert trying.headers.get_all("Via") == [
        "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-inv1;rport=40000;received=203.0.113.50, "
        "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKdown"
    ]


def test_record_route_copied_in_order_and_used_as_route() -> None:
    bridge = Bridge()
    caller = Caller()
    invite = caller.invite(extra=[
        ("Record-Route", "<sip:p1.example;lr>, <sip:p2.example;lr>"),
        ("Record-Route", "<sip:p3.example;lr>"),
    ])
    bridge.receive(invite)
    bridge.sent(), bridge.events()
    bridge.core.respond_invite(caller.call, 200, 0.0, body=ANSWER)
    (ok,) = bridge.responses()
    assert ok.headers.get_all("Record-Route") == [
        "<sip:p1.example;lr>, <sip:p2.example;lr>", "<sip:p3.example;lr>"
    ]
    caller.our_tag = ok.to_address.tag
    bridge.receive(caller.ack())
    bridge.core.hangup(caller.call, 1.0)
    ((bye, _),) = bridge.sent()
    assert isinstance(bye, Request)
    assert bye.headers.get_all("Route") == [
        "<sip:p1.example;lr>", "<sip:p2.example;lr>", "<sip:p3.example;lr>"
    ]


def test_pre_rfc3261_peer_without_magic_cookie() -> None:
    bridge = Bridge()
    caller = Caller()
    invite = caller.invite(branch="oldstyle1")
    bridge.receive(invite)
    bridge.sent(), bridge.events()
    bridge.receive(invite, now=0.5)  # retransmission still matches
    assert status_lines(bridge.responses()) == [(100, "INVITE")]
    bridge.receive(caller.cancel(branch="oldstyle1"), now=0.6)
    assert status_lines(bridge.responses()) == [(200, "CANCEL"), (487, "INVITE")]
    assert [type(e) for e in bridge.events()] == [CallCancelled, CallEnded]


# -- many calls ---------------------------------------------------------------------------


def test_two_concurrent_calls_are_independent() -> None:
    bridge = Bridge()
    alice = Caller(call_id="call-a", from_tag="ta", invite_branch="z9hG4bK-a")
    bob = Caller(call_id="call-b", from_tag="tb", invite_branch="z9hG4bK-b")
    confirmed_call(bridge, alice)
    ok_bob = answer_call(bridge, bob, now=0.1)
    assert alice.our_tag != bob.our_tag
    bridge.receive(alice.in_dialog("BYE", 2, "z9hG4bK-bye-a"), now=0.2)
    assert bridge.events() == [ByeReceived(alice.call), CallEnded(alice.call, "remote hung up")]
    bridge.sent()
    assert bridge.core.is_active(bob.call)
    sent = bridge.run_timers(until=0.6)
    assert [(at, parse_message(d)) for at, d, _ in sent] == [(0.6, ok_bob)]
    # A BYE using Alice's Call-ID with Bob's tag belongs to nobody.
    bridge.receive(Caller(call_id="call-a", from_tag="tb", our_tag=bob.our_tag)
                   .in_dialog("BYE", 2, "z9hG4bK-x"), now=0.7)
    assert status_lines(bridge.responses()) == [(481, "BYE")]
    bridge.receive(bob.ack(), now=0.8)
    assert [type(e) for e in bridge.events()] == [CallConfirmed]


def test_long_run_leaves_no_state_behind() -> None:
    bridge = Bridge()
    now = 0.0
    peak = 0
    for n in range(300):
        caller = Caller(call_id=f"call-{n}", from_tag=f"t{n}", flow=UDP if n % 3 else TCP)
        bridge.receive(caller.invite(branch=f"z9hG4bK-i{n}"), caller.flow, now)
        bridge.sent(), bridge.events()
        if n % 5 == 0:
            bridge.receive(caller.cancel(branch=f"z9hG4bK-i{n}"), caller.flow, now)
        else:
            bridge.core.respond_invite(caller.call, 200, now, body=ANSWER)
            (ok,) = bridge.responses()
            caller.our_tag = ok.to_address.tag
            bridge.receive(caller.ack(branch=f"z9hG4bK-a{n}"), caller.flow, now)
            if n % 2:
                bridge.receive(caller.in_dialog("BYE", 2, f"z9hG4bK-b{n}"), caller.flow, now)
            else:
                bridge.core.hangup(caller.call, now)
                (bye, _), = [(m, f) for m, f in bridge.sent() if isinstance(m, Request)]
                bridge.receive(bye_response(bye, 200), caller.flow, now)
        bridge.sent(), bridge.events()
        now += 0.5
        bridge.run_timers(until=now)
        bridge.sent()
        peak = max(peak, bridge.core.stats().server_transactions)
        assert bridge.core.stats().calls == 0
    # Transactions live at most 64*T1 on UDP: about 32 s of the 0.5 s call rate, 3 each.
    assert peak < 3 * 64 + 20
    bridge.run_timers(until=now + 100.0)
    stats = bridge.core.stats()
    assert (stats.server_transactions, stats.client_transactions, stats.calls) == (0, 0, 0)
    assert stats.timers == 0 and bridge.core.next_deadline() is None


# -- property: whatever happens to a call, it ends exactly once and leaves nothing --------

ACTIONS = [
    "invite_again", "cancel", "ack", "ack_stranger_tag", "bye", "options", "info",
    "app_180", "app_200", "app_486", "hangup", "timer", "reinvite", "garbage",
]


@settings(max_examples=200, deadline=None)
@given(script=st.lists(st.sampled_from(ACTIONS), max_size=25), tcp=st.booleans())
def test_any_script_ends_each_call_exactly_once(script: list[str], tcp: bool) -> None:
    bridge = Bridge()
    caller = Caller(flow=TCP if tcp else UDP)
    events: list[SipEvent] = []
    now = 0.0
    cseq = 1

    def take_outputs() -> None:
        for message, _ in bridge.sent():
            if isinstance(message, Response) and message.to_address.tag:
                caller.our_tag = message.to_address.tag
        for event in bridge.events():
            if isinstance(event, RequestReceived):  # the application answers INFO at once
                bridge.core.respond(event.key, response_to(event.request, 200), now)
            events.append(event)

    bridge.receive(caller.invite(), caller.flow, now)
    take_outputs()
    for step in script:
        now += 0.1
        if step == "timer":
            deadline = bridge.core.next_deadline()
            if deadline is not None:
                now = max(now, deadline)
                bridge.core.handle_timer(now)
        elif step == "invite_again":
            bridge.receive(caller.invite(), caller.flow, now)
        elif step == "cancel":
            bridge.receive(caller.cancel(), caller.flow, now)
        elif step == "ack":
            bridge.receive(caller.ack(cseq=cseq, branch=f"z9hG4bK-a{cseq}"), caller.flow, now)
        elif step == "ack_stranger_tag":
            bridge.receive(caller.ack(cseq=cseq, to_tag="stranger"), caller.flow, now)
        elif step in ("bye", "options", "info", "reinvite"):
            cseq += 1
            method = {"bye": "BYE", "options": "OPTIONS", "info": "INFO", "reinvite": "INVITE"}
            body = SDP if step == "reinvite" else b""
            bridge.receive(caller.in_dialog(method[step], cseq, f"z9hG4bK-{step}{cseq}",
                                            body=body), caller.flow, now)
        elif step.startswith("app_"):
            bridge.core.respond_invite(caller.call, int(step[4:]), now, body=ANSWER)
        elif step == "hangup":
            bridge.core.hangup(caller.call, now)
        else:
            bridge.receive(b"\x01garbage", caller.flow, now)
        take_outputs()
        # A copy of the INVITE arriving after its transaction ended is a new call.
        started = sum(isinstance(e, InviteReceived) for e in events)
        ended = sum(isinstance(e, CallEnded) for e in events)
        assert started - ended in (0, 1)
        assert bridge.core.is_active(caller.call) == (started > ended)
    # Whatever state the call is in, our hangup plus time ends it and forgets everything.
    bridge.core.hangup(caller.call, now)
    while (deadline := bridge.core.next_deadline()) is not None:
        now = max(now, deadline)
        bridge.core.handle_timer(now)
        take_outputs()
    take_outputs()
    started = sum(isinstance(e, InviteReceived) for e in events)
    assert started >= 1
    assert sum(isinstance(e, CallEnded) for e in events) == started
    stats = bridge.core.stats()
    assert (stats.server_transactions, stats.client_transactions, stats.calls, stats.timers) == (
        0, 0, 0, 0
    )
