"""The UA core placing calls and sending requests: INVITE, ACK, CANCEL, BYE, digest retries,
REGISTER/OPTIONS through `send_request`, by bytes and scripted time."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from twisted.internet.task import Clock

from bridge.sip.auth import (
    AccountSecrets,
    Authenticated,
    Authenticator,
    Challenge,
    ClientCredentials,
    compute_ha1,
    parse_credentials,
)
from bridge.sip.core import MAX_CHALLENGES_ANSWERED, CoreStats, SipCore, TimerConfig
from bridge.sip.errors import LocalProtocolError
from bridge.sip.events import (
    ByeReceived,
    CallAnswered,
    CallConfirmed,
    CallEnded,
    CallFailed,
    CallProgress,
    CallRef,
    InviteReceived,
    MessageDropped,
    ReinviteReceived,
    RequestReceived,
    ResponseReceived,
    SipEvent,
)
from bridge.sip.flow import Flow
from bridge.sip.message import Request, Response, make_request, response_to
from bridge.sip.parser import parse_message

# Our socket and the outbound proxy (or the far end itself) we send to.
UDP = Flow("udp", "192.0.2.1", 5060, "203.0.113.5", 5060)
TCP = Flow("tcp", "192.0.2.1", 5060, "203.0.113.5", 5060)
# The same far end answering from another address (a proxy farm, a NAT rebinding).
ELSEWHERE = Flow("udp", "192.0.2.1", 5060, "203.0.113.6", 5099)
MEETING = "sip:8812345@video.example"
BRIDGE = "sip:rakor@telerapat.local"
FAR_CONTACT = "<sip:mcu@203.0.113.50:5070>"
OFFER = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
ANSWER = b"v=0\r\no=- 7 7 IN IP4 203.0.113.50\r\ns=-\r\nc=IN IP4 203.0.113.50\r\nt=0 0\r\n"
# Timer A from t=0: T1 doubling without a cap, before Timer B at 64*T1 = 32 s.
INVITE_RETRANSMIT_TIMES = [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
REALM = "video.example"
SECRET = b"0123456789abcdef0123456789abcdef"
CREDENTIALS = ClientCredentials("rakor", "rahasia")
EMPTY = CoreStats(server_transactions=0, client_transactions=0, calls=0, timers=0)


@dataclass
class Dialer:
    """A SipCore placing calls, what it sent (parsed) and what it said."""

    core: SipCore = field(default_factory=lambda: SipCore(rng=random.Random(11)))

    def place(self, now: float = 0.0, **kwargs: Any) -> tuple[CallRef, Request]:
        """Place a call to MEETING; return its CallRef and the INVITE that went out."""
        options: dict[str, Any] = {
            "request_uri": MEETING, "from_uri": BRIDGE, "flow": UDP, "body": OFFER, **kwargs
        }
        call = self.core.invite(now=now, **options)
        (invite,) = self.requests()
        return call, invite

    def receive(self, message: Request | Response, now: float = 0.0, flow: Flow = UDP) -> None:
        self.core.receive_datagram(bytes(message), flow, now)

    def sent(self) -> list[tuple[Request | Response, Flow]]:
        return [(parse_message(data), flow) for data, flow in self.core.datagrams_to_send()]

    def requests(self) -> list[Request]:
        out = []
        for message, _ in self.sent():
            assert isinstance(message, Request)
            out.append(message)
        return out

    def events(self) -> list[SipEvent]:
        out = []
        while (event := self.core.next_event()) is not None:
            out.append(event)
        return out

    def run_timers(self, until: float) -> list[tuple[float, Request | Response]]:
        """Fire every deadline up to `until`, exactly on time; return what was sent when."""
        sent = []
        while (deadline := self.core.next_deadline()) is not None and deadline <= until:
            self.core.handle_timer(deadline)
            sent += [(deadline, parse_message(data)) for data, _ in self.core.datagrams_to_send()]
        return sent


def reply(
    request: Request,
    status: int,
    *,
    to_tag: str | None = "far1",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Response:
    """The far end's response; a 101-299 carries its Contact, as §12.1.1 wants."""
    extra = list(headers or [])
    if 100 < status < 300:
        extra.append(("Contact", FAR_CONTACT))
    if body:
        extra.append(("Content-Type", "application/sdp"))
    return response_to(request, status, to_tag=to_tag if status > 100 else None,
                       headers=extra, body=body)


def far_request(
    method: str, cseq: int, *, call: CallRef, to_tag: str = "far1", branch: str = "z9hG4bKfar1"
) -> Request:
    """A request from the far end inside the dialog of a call we placed."""
    return make_request(
        method,
        "sip:telerapat@192.0.2.1:5060",
        [
            ("Via", f"SIP/2.0/UDP 203.0.113.50:5070;branch={branch}"),
            ("Max-Forwards", "70"),
            ("From", f"<{MEETING}>;tag={to_tag}"),
            ("To", f"<{BRIDGE}>;tag={call.remote_tag}"),
            ("Call-ID", call.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", FAR_CONTACT),
        ],
    )


def answered_call(
    dialer: Dialer, headers: list[tuple[str, str]] | None = None, **kwargs: Any
) -> tuple[CallRef, Request, Request]:
    """Place a call, get 180 and 200; return the CallRef, the INVITE and our ACK."""
    call, invite = dialer.place(**kwargs)
    dialer.receive(reply(invite, 180), 0.1)
    dialer.receive(reply(invite, 200, headers=headers, body=ANSWER), 0.2)
    (ack,) = dialer.requests()
    events = dialer.events()
    assert [type(e) for e in events] == [CallProgress, CallAnswered]
    return call, invite, ack


def authenticator() -> Authenticator:
    account = AccountSecrets(
        "rakor", compute_ha1("rakor", REALM, "rahasia", "MD5"), None
    )
    return Authenticator(REALM, {"rakor": account}, SECRET, rng=random.Random(5))


def challenged(request: Request, outcome: object, to_tag: str = "proxy1") -> Response:
    assert isinstance(outcome, Challenge)
    return response_to(request, outcome.status, to_tag=to_tag, headers=outcome.headers)


# -- the INVITE --------------------------------------------------------------------------


def test_invite_carries_the_offer_and_the_headers_of_a_new_call() -> None:
    dialer = Dialer()
    call, invite = dialer.place(
        from_display="Rapat Koordinasi",
        route=["<sip:proxy.example;lr>"],
        headers=[("X-Room", "rakor")],
    )
    assert (invite.method, invite.uri) == ("INVITE", MEETING)
    assert invite.from_address.uri == BRIDGE
    assert invite.from_address.display_name == "Rapat Koordinasi"
    assert invite.from_address.tag == call.remote_tag
    assert invite.to_address.uri == MEETING and invite.to_address.tag is None
    assert invite.call_id == call.call_id and call.call_id.endswith("@192.0.2.1")
    assert str(invite.cseq) == "1 INVITE"
    assert invite.headers.get("Max-Forwards") == "70"
    assert invite.headers.get_all("Route") == ["<sip:proxy.example;lr>"]
    assert invite.headers.get("Contact") == "<sip:telerapat@192.0.2.1:5060>"
    assert "INVITE" in (invite.headers.get("Allow") or "")
    assert invite.headers.get("User-Agent") == "telerapat"
    assert invite.headers.get("X-Room") == "rakor"
    assert invite.content_type == "application/sdp" and invite.body == OFFER
    via = invite.top_via
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.1", 5060)
    assert via.branch is not None and via.branch.startswith("z9hG4bK")
    assert via.param("rport") == ""
    assert dialer.core.is_active(call) and dialer.core.call_flow(call) == UDP


def test_invite_contact_names_the_user_external_address_and_transport() -> None:
    dialer = Dialer(SipCore(rng=random.Random(1), external_address="198.51.100.1"))
    _, invite = dialer.place(flow=TCP, contact_user="rakor", to_uri="sip:room@video.example")
    assert invite.headers.get("Contact") == "<sip:rakor@198.51.100.1:5060;transport=tcp>"
    assert invite.top_via.transport == "TCP"
    assert invite.to_address.uri == "sip:room@video.example"


def test_calls_get_distinct_call_ids_and_tags() -> None:
    dialer = Dialer()
    first, _ = dialer.place()
    second, _ = dialer.place()
    assert first.call_id != second.call_id and first.remote_tag != second.remote_tag


def test_bare_loose_route_is_accepted() -> None:
    _, invite = Dialer().place(route=["sip:proxy.example:5070;lr", "<sip:core.example;lr>"])
    assert invite.headers.get_all("Route") == [
        "<sip:proxy.example:5070;lr>", "<sip:core.example;lr>"
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"route": ["<sip:strict.example>"]}, "strict routing"),
        ({"route": ["sip:strict.example"]}, "strict routing"),
        ({"route": ["<tel:+62215550100>"]}, "not a SIP URI"),
        ({"route": ["<sip:bad host>"]}, "invalid route"),
        ({"body": b""}, "SDP offer"),
        ({"request_uri": "meeting"}, "invalid Request-URI"),
        ({"from_uri": "http://x"}, "invalid From URI"),
    ],
)
def test_invite_refuses_what_it_cannot_send(kwargs: dict[str, Any], message: str) -> None:
    dialer = Dialer()
    with pytest.raises(ValueError, match=message):
        dialer.place(**kwargs)
    assert dialer.core.stats() == EMPTY


# -- answered ----------------------------------------------------------------------------


def test_answered_call_is_acked_in_its_dialog_through_the_record_route() -> None:
    """§13.2.2.4 and §12.1.2: ACK to the Contact, Route = Record-Route reversed."""
    dialer = Dialer()
    call, invite = dialer.place(route=["<sip:proxy.example;lr>"])
    dialer.receive(reply(invite, 100), 0.05)
    dialer.receive(reply(invite, 180), 0.1)
    assert dialer.events() == [CallProgress(call, 100), CallProgress(call, 180)]
    ok = reply(invite, 200, body=ANSWER, headers=[
        ("Record-Route", "<sip:edge.example;lr>, <sip:core.example;lr>"),
        ("Record-Route", "<sip:proxy.example;lr>"),
    ])
    dialer.receive(ok, 0.2)
    ((ack, flow),) = dialer.sent()
    assert isinstance(ack, Request) and flow == UDP
    assert (ack.method, ack.uri) == ("ACK", "sip:mcu@203.0.113.50:5070")
    assert ack.headers.get_all("Route") == [
        "<sip:proxy.example;lr>", "<sip:core.example;lr>", "<sip:edge.example;lr>"
    ]
    assert str(ack.cseq) == "1 ACK"
    assert ack.top_via.branch != invite.top_via.branch
    assert ack.from_address.tag == call.remote_tag and ack.to_address.tag == "far1"
    assert ack.call_id == call.call_id and ack.body == b""
    (answered,) = dialer.events()
    assert isinstance(answered, CallAnswered) and answered.call == call
    assert answered.response.body == ANSWER
    assert dialer.core.is_active(call)


def test_2xx_retransmissions_are_acked_again_until_timer_m() -> None:
    dialer = Dialer()
    call, invite, ack = answered_call(dialer)
    ok = reply(invite, 200, body=ANSWER)
    dialer.receive(ok, 0.7)
    dialer.receive(ok, 1.7, flow=ELSEWHERE)  # from another address: still ours
    again = dialer.sent()
    # To the 2xx's Contact, the dialog's remote target (no Record-Route: RFC 3261 §12.2.1.1).
    contact = replace(UDP, remote_host="203.0.113.50", remote_port=5070)
    assert [(bytes(m), f) for m, f in again] == [(bytes(ack), contact)] * 2
    assert dialer.events() == []
    dialer.run_timers(until=32.3)  # Timer M (64*T1 after the first 2xx)
    dialer.receive(ok, 33.0)
    assert dialer.sent() == []
    (dropped,) = dialer.events()
    assert isinstance(dropped, MessageDropped)
    assert dialer.core.is_active(call)


def test_2xx_from_another_fork_is_acked_and_byed() -> None:
    """§13.2.2.4: the first 2xx makes our call; a second dialog is ended at once."""
    dialer = Dialer()
    call, invite, _ = answered_call(dialer)
    fork = response_to(invite, 200, to_tag="far2", body=ANSWER, headers=[
        ("Contact", "<sip:other@203.0.113.60>"), ("Content-Type", "application/sdp"),
    ])
    dialer.receive(fork, 0.3)
    ack, bye = dialer.requests()
    assert (ack.method, ack.uri, ack.to_address.tag) == ("ACK", "sip:other@203.0.113.60", "far2")
    assert (bye.method, bye.uri, bye.to_address.tag) == ("BYE", "sip:other@203.0.113.60", "far2")
    assert str(bye.cseq) == "2 BYE"
    assert dialer.events() == []
    dialer.receive(fork, 0.4)  # its retransmission: the same ACK again
    assert [r.method for r in dialer.requests()] == ["ACK"]
    dialer.receive(response_to(bye, 200), 0.5)
    assert dialer.events() == [] and dialer.core.is_active(call)


def test_hangup_after_answer_sends_bye_along_the_route_set() -> None:
    dialer = Dialer()
    rr = [("Record-Route", "<sip:proxy.example;lr>")]
    call, _, _ = answered_call(dialer, headers=rr)
    dialer.core.hangup(call, 5.0)
    ((bye, flow),) = dialer.sent()
    assert isinstance(bye, Request) and flow == UDP
    assert (bye.method, bye.uri) == ("BYE", "sip:mcu@203.0.113.50:5070")
    assert bye.headers.get_all("Route") == ["<sip:proxy.example;lr>"]
    assert str(bye.cseq) == "2 BYE"
    assert bye.from_address.tag == call.remote_tag and bye.to_address.tag == "far1"
    assert dialer.events() == []
    dialer.receive(response_to(bye, 200), 5.1)
    assert dialer.events() == [CallEnded(call, "hung up, BYE answered 200")]
    assert not dialer.core.is_active(call)


def test_far_end_bye_on_a_placed_call_ends_it() -> None:
    dialer = Dialer()
    call, _, _ = answered_call(dialer)
    dialer.receive(far_request("BYE", 1, call=call), 9.0, flow=ELSEWHERE)
    ((ok, flow),) = dialer.sent()
    assert isinstance(ok, Response) and (ok.status, ok.cseq.method) == (200, "BYE")
    assert flow == ELSEWHERE  # responses go where the request came from
    assert [type(e) for e in dialer.events()] == [ByeReceived, CallEnded]
    assert not dialer.core.is_active(call)


def test_far_end_requests_on_a_placed_call_work_as_on_an_answered_one() -> None:
    dialer = Dialer()
    call, _, _ = answered_call(dialer)
    dialer.receive(far_request("INFO", 5, call=call, branch="z9hG4bKinfo"), 1.0)
    (info,) = dialer.events()
    assert isinstance(info, RequestReceived) and info.call == call
    dialer.core.respond(info.key, response_to(info.request, 200), 1.0)
    dialer.sent()
    dialer.receive(far_request("INFO", 4, call=call, branch="z9hG4bKold"), 1.1)
    (late,) = [m for m, _ in dialer.sent() if isinstance(m, Response)]
    assert late.status == 500  # §12.2.2: lower than the remote CSeq
    reinvite = far_request("INVITE", 6, call=call, branch="z9hG4bKre")
    dialer.receive(reinvite, 2.0)
    (event,) = dialer.events()
    assert isinstance(event, ReinviteReceived) and event.call == call
    dialer.core.respond_invite(call, 200, 2.0, body=OFFER)
    statuses = [m.status for m, _ in dialer.sent() if isinstance(m, Response)]
    assert statuses == [100, 200]
    ack = far_request("ACK", 6, call=call, branch="z9hG4bKreack")
    dialer.receive(ack, 2.1)
    (confirmed,) = dialer.events()
    assert isinstance(confirmed, CallConfirmed) and confirmed.call == call


def test_far_end_request_with_another_tag_matches_no_dialog() -> None:
    dialer = Dialer()
    call, _, _ = answered_call(dialer)
    dialer.receive(far_request("BYE", 1, call=call, to_tag="stranger"), 1.0)
    ((response, _),) = dialer.sent()
    assert isinstance(response, Response) and response.status == 481
    assert dialer.events() == [] and dialer.core.is_active(call)


def test_unusable_2xx_fails_the_call() -> None:
    dialer = Dialer()
    call, invite = dialer.place()
    dialer.receive(response_to(invite, 200, to_tag="far1", body=ANSWER), 0.1)  # no Contact
    assert dialer.sent() == []
    failed, ended = dialer.events()
    assert isinstance(failed, CallFailed) and failed.status == 502
    assert "Contact" in failed.reason
    assert isinstance(ended, CallEnded) and not dialer.core.is_active(call)


# -- rejected and timed out ----------------------------------------------------------------


def test_busy_is_acked_by_the_transaction_and_fails_the_call() -> None:
    dialer = Dialer()
    call, invite = dialer.place(route=["<sip:proxy.example;lr>"])
    busy = reply(invite, 486, to_tag="busy1")
    dialer.receive(busy, 0.2)
    ((ack, flow),) = dialer.sent()
    assert isinstance(ack, Request) and flow == UDP
    assert (ack.method, ack.uri) == ("ACK", MEETING)
    assert ack.top_via.branch == invite.top_via.branch  # §17.1.1.3: same transaction
    assert ack.to_address.tag == "busy1" and str(ack.cseq) == "1 ACK"
    assert ack.headers.get_all("Route") == ["<sip:proxy.example;lr>"]
    assert dialer.events() == [
        CallFailed(call, 486, "Busy Here"), CallEnded(call, "call failed: 486 Busy Here")
    ]
    assert not dialer.core.is_active(call)
    dialer.receive(busy, 0.8)  # retransmitted: the same ACK, no news
    assert [bytes(m) for m, _ in dialer.sent()] == [bytes(ack)]
    assert dialer.events() == []
    dialer.run_timers(until=40.0)  # Timer D
    assert dialer.core.stats() == EMPTY


def test_no_answer_times_out_with_408_after_retransmitting() -> None:
    dialer = Dialer()
    call, invite = dialer.place()
    sent = dialer.run_timers(until=100.0)
    assert [at for at, _ in sent] == INVITE_RETRANSMIT_TIMES
    assert all(bytes(m) == bytes(invite) for _, m in sent)
    assert dialer.events() == [
        CallFailed(call, 408, "no response to the INVITE (Timer B)"),
        CallEnded(call, "call failed: 408 no response to the INVITE (Timer B)"),
    ]
    assert dialer.core.stats() == EMPTY


def test_tcp_call_sends_no_retransmissions_and_forgets_a_rejection_at_once() -> None:
    dialer = Dialer()
    call, invite = dialer.place(flow=TCP)
    assert dialer.core.next_deadline() == 32.0
    dialer.core.receive_datagram(bytes(reply(invite, 603)), TCP, 0.1)
    ((ack, flow),) = dialer.sent()
    assert isinstance(ack, Request) and ack.method == "ACK" and flow == TCP
    assert [type(e) for e in dialer.events()] == [CallFailed, CallEnded]
    assert dialer.core.stats().client_transactions == 0 and dialer.core.stats().calls == 0


def test_malformed_response_is_dropped_without_touching_the_call() -> None:
    dialer = Dialer()
    call, invite = dialer.place()
    bad = bytes(reply(invite, 200, body=ANSWER)).replace(b"To: <", b"To: <<", 1)
    dialer.core.receive_datagram(bad, UDP, 0.1)
    (dropped,) = dialer.events()
    assert isinstance(dropped, MessageDropped)
    dialer.receive(reply(invite, 200, body=ANSWER), 0.2)
    assert [r.method for r in dialer.requests()] == ["ACK"]
    assert [type(e) for e in dialer.events()] == [CallAnswered]


# -- digest authentication -------------------------------------------------------------


def test_401_is_answered_once_with_a_correct_authorization() -> None:
    server = authenticator()
    dialer = Dialer()
    call, invite = dialer.place(credentials=CREDENTIALS)
    dialer.receive(challenged(invite, server.authenticate(invite, 0.1), "uas1"), 0.1)
    ack, retry = dialer.requests()
    assert ack.method == "ACK" and ack.top_via.branch == invite.top_via.branch
    assert retry.method == "INVITE" and str(retry.cseq) == "2 INVITE"
    assert retry.top_via.branch != invite.top_via.branch
    assert retry.call_id == invite.call_id
    assert retry.from_address.tag == invite.from_address.tag
    assert retry.to_address.tag is None and retry.body == OFFER
    assert server.authenticate(retry, 0.2) == Authenticated("rakor")
    authorization = parse_credentials(retry.headers.get("Authorization") or "")
    assert (authorization.uri, authorization.realm) == (MEETING, REALM)
    assert dialer.events() == []  # the challenge is the core's business
    dialer.receive(reply(retry, 200, body=ANSWER), 0.3)
    (ack2,) = dialer.requests()
    # §13.2.2.4: the ACK has the INVITE's CSeq number and credentials.
    assert str(ack2.cseq) == "2 ACK"
    assert ack2.headers.get("Authorization") == retry.headers.get("Authorization")
    assert [type(e) for e in dialer.events()] == [CallAnswered]
    assert dialer.core.is_active(call)


def test_407_is_answered_with_proxy_authorization() -> None:
    server = authenticator()
    dialer = Dialer()
    _, invite = dialer.place(credentials=CREDENTIALS)
    dialer.receive(challenged(invite, server.authenticate(invite, 0.1, proxy=True)), 0.1)
    _, retry = dialer.requests()
    assert "Authorization" not in retry.headers
    assert server.authenticate(retry, 0.2, proxy=True) == Authenticated("rakor")


def test_proxy_and_far_end_challenges_both_stand_in_the_last_retry() -> None:
    proxy = authenticator()
    far_end = Authenticator(
        "meet.example",
        {"rakor": AccountSecrets("rakor", compute_ha1("rakor", "meet.example", "rahasia", "MD5"),
                                 None)},
        SECRET, rng=random.Random(6),
    )
    dialer = Dialer()
    _, invite = dialer.place(credentials=CREDENTIALS)
    dialer.receive(challenged(invite, proxy.authenticate(invite, 0.1, proxy=True)), 0.1)
    _, second = dialer.requests()
    assert proxy.authenticate(second, 0.2, proxy=True) == Authenticated("rakor")
    dialer.receive(challenged(second, far_end.authenticate(second, 0.2), "uas1"), 0.2)
    _, third = dialer.requests()
    assert str(third.cseq) == "3 INVITE"
    assert len(third.headers.get_all("Proxy-Authorization")) == 1
    assert far_end.authenticate(third, 0.3) == Authenticated("rakor")
    # The proxy's nonce answered a second time counts on (RFC 7616 §3.4), so a proxy that
    # refuses a replayed count (ours does, as Kamailio with nonce_count) still lets it by.
    assert "nc=00000002" in (third.headers.get("Proxy-Authorization") or "")
    assert proxy.authenticate(third, 0.3, proxy=True) == Authenticated("rakor")
    assert dialer.events() == []


def test_second_challenge_after_our_credentials_fails_the_call() -> None:
    server = authenticator()
    dialer = Dialer()
    call, invite = dialer.place(credentials=ClientCredentials("rakor", "wrong"))
    dialer.receive(challenged(invite, server.authenticate(invite, 0.1)), 0.1)
    _, retry = dialer.requests()
    again = server.authenticate(retry, 0.2)
    assert isinstance(again, Challenge)
    dialer.receive(challenged(retry, again), 0.2)
    (ack,) = dialer.requests()
    assert ack.method == "ACK"
    assert dialer.events() == [
        CallFailed(call, 401, "authentication failed"),
        CallEnded(call, "call failed: 401 authentication failed"),
    ]


def test_stale_challenge_is_answered_again() -> None:
    """RFC 7616 §3.3: stale=true says the nonce expired, not that the password is wrong."""
    server = authenticator()
    dialer = Dialer()
    _, invite = dialer.place(credentials=CREDENTIALS)
    dialer.receive(challenged(invite, server.authenticate(invite, 0.1)), 0.1)
    _, retry = dialer.requests()
    late = server.authenticate(retry, 1000.0)  # past the nonce lifetime: stale
    assert isinstance(late, Challenge) and "stale=true" in late.headers[0][1]
    dialer.receive(challenged(retry, late), 1000.0)
    _, third = dialer.requests()
    assert str(third.cseq) == "3 INVITE"
    assert len(third.headers.get_all("Authorization")) == 1
    assert server.authenticate(third, 1000.1) == Authenticated("rakor")


def test_endless_stale_challenges_end_after_a_few_answers() -> None:
    server = authenticator()
    dialer = Dialer()
    call, invite = dialer.place(credentials=CREDENTIALS)
    request = invite
    now = 0.0
    for _ in range(10):
        challenge = server.authenticate(invite, now)  # never credentials: always a challenge
        assert isinstance(challenge, Challenge)
        stale = (challenge.headers[0][0], challenge.headers[0][1] + ", stale=true")
        dialer.receive(response_to(request, 401, to_tag="x", headers=[stale]), now)
        sent = dialer.requests()
        if len(sent) == 1:
            break
        request = sent[1]
        now += 1.0
    assert request.cseq.number == MAX_CHALLENGES_ANSWERED + 1  # the first INVITE + 3 answers
    assert [type(e) for e in dialer.events()] == [CallFailed, CallEnded]


def test_challenge_without_credentials_or_digest_fails_the_call() -> None:
    dialer = Dialer()
    call, invite = dialer.place()
    dialer.receive(challenged(invite, authenticator().authenticate(invite, 0.1)), 0.1)
    assert dialer.events()[0] == CallFailed(call, 401, "Unauthorized")
    dialer.sent()
    call, invite = dialer.place(credentials=CREDENTIALS)
    basic = [("WWW-Authenticate", 'Basic realm="x"')]
    dialer.receive(response_to(invite, 401, to_tag="t", headers=basic), 0.2)
    assert dialer.events()[0] == CallFailed(call, 401, "no digest challenge we can answer")


# -- hanging up before the answer (§9.1) --------------------------------------------------


def test_hangup_after_ringing_cancels_and_487_fails_the_call() -> None:
    dialer = Dialer()
    call, invite = dialer.place(route=["<sip:proxy.example;lr>"])
    dialer.receive(reply(invite, 180), 0.1)
    dialer.events()
    dialer.core.hangup(call, 2.0)
    ((cancel, flow),) = dialer.sent()
    assert isinstance(cancel, Request) and flow == UDP
    assert (cancel.method, cancel.uri) == ("CANCEL", MEETING)
    assert cancel.headers.get_all("Via") == invite.headers.get_all("Via")
    assert str(cancel.cseq) == "1 CANCEL"
    assert cancel.to_address.tag is None and cancel.from_address == invite.from_address
    assert cancel.call_id == invite.call_id
    assert cancel.headers.get_all("Route") == ["<sip:proxy.example;lr>"]
    dialer.core.hangup(call, 2.1)  # a second hangup changes nothing
    assert dialer.sent() == []
    dialer.receive(response_to(cancel, 200, to_tag="far1"), 2.2)
    dialer.receive(reply(invite, 487), 2.3)
    ((ack, _),) = dialer.sent()
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert dialer.events() == [
        CallFailed(call, 487, "Request Terminated"),
        CallEnded(call, "call failed: 487 Request Terminated"),
    ]
    assert not dialer.core.is_active(call)
    dialer.run_timers(until=60.0)
    assert dialer.core.stats() == EMPTY


def test_hangup_before_any_response_waits_for_a_provisional_to_cancel() -> None:
    dialer = Dialer()
    call, invite = dialer.place()
    dialer.core.hangup(call, 0.2)
    assert dialer.sent() == []
    assert dialer.core.is_active(call)
    sent = dialer.run_timers(until=0.6)  # Timer A still retransmits the INVITE
    assert [m.method for _, m in sent if isinstance(m, Request)] == ["INVITE"]
    dialer.receive(reply(invite, 100), 0.7)
    (cancel,) = dialer.requests()
    assert cancel.method == "CANCEL"
    dialer.receive(reply(invite, 180), 0.8)
    assert dialer.sent() == []  # one CANCEL only
    assert dialer.events() == [CallProgress(call, 100), CallProgress(call, 180)]


def test_hangup_before_any_response_ends_on_timer_b() -> None:
    dialer = Dialer()
    call, _ = dialer.place()
    dialer.core.hangup(call, 0.2)
    dialer.run_timers(until=100.0)
    assert dialer.events() == [
        CallFailed(call, 487, "cancelled before any response"),
        CallEnded(call, "call failed: 487 cancelled before any response"),
    ]
    assert dialer.core.stats() == EMPTY


def test_2xx_crossing_our_cancel_is_acked_then_byed() -> None:
    dialer = Dialer()
    call, invite = dialer.place()
    dialer.receive(reply(invite, 180), 0.1)
    dialer.core.hangup(call, 1.0)
    (cancel,) = dialer.requests()
    dialer.receive(reply(invite, 200, body=ANSWER), 1.1)
    ack, bye = dialer.requests()
    assert (ack.method, bye.method) == ("ACK", "BYE")
    assert bye.uri == "sip:mcu@203.0.113.50:5070" and bye.to_address.tag == "far1"
    dialer.receive(response_to(cancel, 200, to_tag="far1"), 1.15)
    events = dialer.events()
    assert events[-1] == CallFailed(call, 487, "cancelled; answered anyway")
    assert not any(isinstance(e, CallAnswered) for e in events)
    assert dialer.core.is_active(call)  # until the BYE is answered
    dialer.receive(response_to(bye, 200), 1.2)
    assert dialer.events() == [CallEnded(call, "hung up, BYE answered 200")]
    assert not dialer.core.is_active(call)


def test_cancel_without_final_response_gives_up_after_64_t1() -> None:
    dialer = Dialer()
    call, invite = dialer.place()
    dialer.receive(reply(invite, 180), 0.1)
    dialer.core.hangup(call, 1.0)
    (cancel,) = dialer.requests()
    dialer.receive(response_to(cancel, 200, to_tag="far1"), 1.1)
    dialer.events()
    dialer.run_timers(until=32.9)
    assert dialer.events() == []
    dialer.run_timers(until=33.0)
    assert dialer.events() == [
        CallFailed(call, 487, "cancelled; no final response to the INVITE"),
        CallEnded(call, "call failed: 487 cancelled; no final response to the INVITE"),
    ]
    dialer.run_timers(until=60.0)
    assert dialer.core.stats() == EMPTY


def test_hangup_of_a_failed_or_unknown_call_is_a_no_op() -> None:
    dialer = Dialer()
    call, invite = dialer.place()
    dialer.receive(reply(invite, 404), 0.1)
    dialer.sent(), dialer.events()
    dialer.core.hangup(call, 0.2)
    dialer.core.hangup(CallRef("nobody", "x"), 0.2)
    assert dialer.sent() == [] and dialer.events() == []
    assert dialer.core.call_flow(call) == UDP  # known until its transaction ends
    dialer.run_timers(until=40.0)
    with pytest.raises(LocalProtocolError, match="unknown call"):
        dialer.core.call_flow(call)


# -- send_request: REGISTER, OPTIONS ------------------------------------------------------


def register() -> Request:
    return make_request(
        "REGISTER",
        "sip:pbx.example",
        [
            ("From", "<sip:rakor@pbx.example>;tag=reg1"),
            ("To", "<sip:rakor@pbx.example>"),
            ("Call-ID", "reg-1@192.0.2.1"),
            ("CSeq", "1 REGISTER"),
            ("Contact", "<sip:rakor@192.0.2.1:5060>"),
            ("Expires", "300"),
        ],
    )


def test_send_request_adds_via_and_reports_the_final_response() -> None:
    dialer = Dialer()
    request = register()
    branch = dialer.core.send_request(request, UDP, 0.0)
    assert "Via" not in request.headers  # the caller's request is left alone
    (sent,) = dialer.requests()
    assert sent.top_via.branch == branch and branch.startswith("z9hG4bK")
    assert sent.top_via.param("rport") == ""
    assert sent.headers.get("User-Agent") == "telerapat"
    assert sent.headers.get("Max-Forwards") == "70"
    assert sent.headers.get("Expires") == "300"
    dialer.receive(response_to(sent, 100), 0.1)
    assert dialer.events() == []
    ok = response_to(sent, 200, to_tag="pbx", headers=[("Contact", "<sip:rakor@192.0.2.1:5060>")])
    dialer.receive(ok, 0.2, flow=ELSEWHERE)
    (event,) = dialer.events()
    assert isinstance(event, ResponseReceived) and event.branch == branch
    assert event.response.status == 200 and event.response.to_address.tag == "pbx"
    dialer.receive(ok, 0.3)  # a retransmission: absorbed
    assert dialer.events() == []
    dialer.run_timers(until=10.0)
    assert dialer.core.stats() == EMPTY


def test_send_request_timeout_reports_a_made_up_408() -> None:
    dialer = Dialer()
    branch = dialer.core.send_request(register(), UDP, 0.0)
    (sent,) = dialer.requests()
    retransmitted = dialer.run_timers(until=100.0)
    assert [at for at, _ in retransmitted] == [
        0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5
    ]
    (event,) = dialer.events()
    assert isinstance(event, ResponseReceived) and event.branch == branch
    response = event.response
    assert response.status == 408
    assert response.top_via.branch == branch and response.call_id == "reg-1@192.0.2.1"
    assert str(response.cseq) == "1 REGISTER" and response.to_address.tag is None
    assert dialer.core.stats() == EMPTY


def test_send_request_keeps_the_callers_max_forwards() -> None:
    dialer = Dialer()
    options = make_request("OPTIONS", "sip:pbx.example", [
        ("From", "<sip:rakor@pbx.example>;tag=o1"),
        ("To", "<sip:pbx.example>"),
        ("Call-ID", "opt-1@192.0.2.1"),
        ("CSeq", "1 OPTIONS"),
        ("Max-Forwards", "0"),
    ])
    dialer.core.send_request(options, UDP, 0.0)
    (sent,) = dialer.requests()
    assert sent.headers.get_all("Max-Forwards") == ["0"]


@pytest.mark.parametrize("method", ["INVITE", "ACK", "CANCEL"])
def test_send_request_refuses_invite_and_its_companions(method: str) -> None:
    with pytest.raises(LocalProtocolError, match="use invite"):
        Dialer().core.send_request(make_request(method, "sip:x@y", []), UDP, 0.0)


# -- calls through a trunk proxy (Record-Route on the UAS side) -----------------------------


def test_call_in_through_a_trunk_proxy_is_answered_and_ended_through_it() -> None:
    """A Kamailio-style trunk: two Vias, Record-Route; our BYE goes back through it."""
    core = SipCore(rng=random.Random(3))
    trunk = Flow("udp", "192.0.2.1", 5060, "198.51.100.20", 5060)
    invite = make_request(
        "INVITE",
        "sip:1000@192.0.2.1:5060",
        [
            ("Via", "SIP/2.0/UDP 198.51.100.20;branch=z9hG4bKkam1"),
            ("Via", "SIP/2.0/UDP 10.0.0.9:5060;rport=5060;branch=z9hG4bKgw1"),
            ("Record-Route", "<sip:198.51.100.20;lr;ftag=gw1>"),
            ("Max-Forwards", "69"),
            ("From", "<sip:+6281234@pstn.example>;tag=gw1"),
            ("To", "<sip:1000@trunk.example>"),
            ("Call-ID", "pstn-1"),
            ("CSeq", "10 INVITE"),
            ("Contact", "<sip:gw@10.0.0.9:5060>"),
            ("Content-Type", "application/sdp"),
        ],
        OFFER,
    )
    core.receive_datagram(bytes(invite), trunk, 0.0)
    core.datagrams_to_send()
    received = core.next_event()
    assert isinstance(received, InviteReceived)
    core.respond_invite(received.call, 200, 0.0, body=ANSWER)
    ((data, flow),) = core.datagrams_to_send()
    ok = parse_message(data)
    assert isinstance(ok, Response) and flow == trunk
    assert ok.headers.get_all("Record-Route") == ["<sip:198.51.100.20;lr;ftag=gw1>"]
    assert len(ok.headers.get_list("Via")) == 2
    ack = make_request("ACK", "sip:1000@192.0.2.1:5060", [
        ("Via", "SIP/2.0/UDP 198.51.100.20;branch=z9hG4bKkam2"),
        ("From", "<sip:+6281234@pstn.example>;tag=gw1"),
        ("To", ok.headers.get("To") or ""),
        ("Call-ID", "pstn-1"),
        ("CSeq", "10 ACK"),
    ])
    core.receive_datagram(bytes(ack), trunk, 0.1)
    core.hangup(received.call, 1.0)
    ((data, flow),) = core.datagrams_to_send()
    bye = parse_message(data)
    assert isinstance(bye, Request) and flow == trunk
    assert bye.uri == "sip:gw@10.0.0.9:5060"  # the remote target: the gateway's Contact
    assert bye.headers.get_all("Route") == ["<sip:198.51.100.20;lr;ftag=gw1>"]


# -- the same machines under Twisted's deterministic clock -------------------------------------


def drive(core: SipCore, clock: Clock, until: float) -> list[tuple[float, bytes]]:
    """The edge's loop in small: wait on `task.Clock` for the next deadline, then fire it."""
    sent = []
    while (deadline := core.next_deadline()) is not None and deadline <= until:
        clock.advance(max(0.0, deadline - clock.seconds()))
        core.handle_timer(clock.seconds())
        sent += [(clock.seconds(), data) for data, _ in core.datagrams_to_send()]
    clock.advance(max(0.0, until - clock.seconds()))
    return sent


def test_invite_retransmissions_and_timer_b_under_task_clock() -> None:
    clock = Clock()
    clock.advance(100.0)
    core = SipCore(rng=random.Random(2))
    call = core.invite(
        request_uri=MEETING, from_uri=BRIDGE, flow=UDP, body=OFFER, now=clock.seconds()
    )
    ((invite, _),) = core.datagrams_to_send()
    sent = drive(core, clock, until=clock.seconds() + 60.0)
    assert [round(at - 100.0, 3) for at, _ in sent] == INVITE_RETRANSMIT_TIMES
    assert all(data == invite for _, data in sent)
    events = []
    while (event := core.next_event()) is not None:
        events.append(event)
    assert [type(e) for e in events] == [CallFailed, CallEnded]
    assert isinstance(events[0], CallFailed) and events[0].status == 408
    assert events[0].call == call and core.stats() == EMPTY


def test_ringing_then_unanswered_cancel_under_task_clock() -> None:
    """A 180 stops Timer A; our CANCEL waits at most 64*T1; a short T1 scales it all."""
    clock = Clock()
    timers = TimerConfig(t1_s=0.1)
    core = SipCore(rng=random.Random(4), timers=timers)
    call = core.invite(
        request_uri=MEETING, from_uri=BRIDGE, flow=UDP, body=OFFER, now=clock.seconds()
    )
    ((data, _),) = core.datagrams_to_send()
    invite = parse_message(data)
    assert isinstance(invite, Request)
    sent = drive(core, clock, until=0.35)
    assert [round(at, 3) for at, _ in sent] == [0.1, 0.3]
    core.receive_datagram(bytes(reply(invite, 180)), UDP, clock.seconds())
    assert drive(core, clock, until=5.0) == []  # Proceeding: no retransmission, no Timer B
    core.hangup(call, clock.seconds())
    ((data, _),) = core.datagrams_to_send()
    assert data.startswith(b"CANCEL ")
    cancel_sent_at = clock.seconds()
    drive(core, clock, until=cancel_sent_at + 6.3)  # CANCEL retransmitted, unanswered
    assert core.is_active(call)
    drive(core, clock, until=cancel_sent_at + 6.4)  # 64*T1
    events = []
    while (event := core.next_event()) is not None:
        events.append(event)
    assert events[-2:] == [
        CallFailed(call, 487, "cancelled; no final response to the INVITE"),
        CallEnded(call, "call failed: 487 cancelled; no final response to the INVITE"),
    ]
    assert core.stats().calls == 0
    drive(core, clock, until=clock.seconds() + 10.0)
    assert core.stats() == EMPTY
