"""Dialogs (RFC 3261 §12), the INVITE session and call attempt tables, 2xx retransmission."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sip.dialog import (
    ATTEMPT_TABLE,
    SESSION_TABLE,
    AnswerRetransmitter,
    AnswerTimer,
    AttemptInput,
    AttemptState,
    CallAttempt,
    Dialog,
    InviteSession,
    SessionInput,
    SessionState,
)
from bridge.sip.errors import LocalProtocolError, RemoteProtocolError, SipParseError
from bridge.sip.events import CallRef
from bridge.sip.flow import Flow
from bridge.sip.message import NameAddress, Request, Response, make_request, response_to
from bridge.sip.parser import parse_message
from bridge.sip.transaction import (
    ClientInviteTransaction,
    ServerInviteTransaction,
    TimerConfig,
    TransactionKey,
)
from tests.conftest import load_fixture

UDP = Flow("udp", "192.0.2.1", 5060, "198.51.100.7", 5062)
TCP = Flow("tcp", "192.0.2.1", 5060, "198.51.100.7", 40111)


def invite(
    *extra: tuple[str, str], contact: str | None = "<sip:alice@198.51.100.7:5062>"
) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-1"),
        ("From", '"Alice" <sip:alice@example.org>;tag=a1'),
        ("To", "<sip:1000@192.0.2.1>"),
        ("Call-ID", "call-1"),
        ("CSeq", "7 INVITE"),
        *extra,
    ]
    if contact is not None:
        headers.append(("Contact", contact))
    return make_request("INVITE", "sip:1000@192.0.2.1", headers)


def dialog(request: Request | None = None, flow: Flow = UDP) -> Dialog:
    return Dialog.for_uas(request or invite(), local_tag="ours", local_cseq=100, flow=flow)


# -- creation (§12.1.1) -----------------------------------------------------------------


def test_uas_dialog_takes_ids_from_the_invite() -> None:
    d = dialog()
    assert (d.call_id, d.local_tag, d.remote_tag) == ("call-1", "ours", "a1")
    assert d.remote_target == "sip:alice@198.51.100.7:5062"
    assert d.remote_cseq == 7 and d.local_cseq == 100
    assert d.local_address.uri == "sip:1000@192.0.2.1"
    assert d.remote_address.display_name == "Alice"
    assert d.route_set == () and d.flow == UDP


def test_uas_dialog_from_baresip_fixture() -> None:
    message = parse_message(load_fixture("sip/invite_baresip.sip"))
    assert isinstance(message, Request)
    d = dialog(message)
    assert d.remote_tag == "abbdbec34767d61e"
    assert d.remote_target == "sip:alice-0x558dbe660cc0@127.0.0.1:5111"
    assert d.remote_cseq == 6907


def test_uas_dialog_route_set_keeps_record_route_order_across_lines() -> None:
    request = invite(
        ("Record-Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr;x=1>"),
        ("Record-Route", "<sip:p3.example.com;lr>"),
    )
    assert dialog(request).route_set == (
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr;x=1>",
        "<sip:p3.example.com;lr>",
    )


def test_uas_dialog_needs_a_contact() -> None:
    with pytest.raises(SipParseError, match="missing Contact header"):
        dialog(invite(contact=None))


def test_uas_dialog_refuses_a_non_sip_contact() -> None:
    with pytest.raises(SipParseError, match="Contact is not a SIP URI"):
        dialog(invite(contact="<tel:+6221555>"))


def test_uas_dialog_refuses_a_non_sip_record_route() -> None:
    with pytest.raises(SipParseError, match="Record-Route is not a SIP URI"):
        dialog(invite(("Record-Route", "<tel:+6221555>")))


# -- CSeq order (§12.2.2) ---------------------------------------------------------------


def test_remote_cseq_lower_is_out_of_order() -> None:
    d = dialog()
    with pytest.raises(RemoteProtocolError, match="lower than 7") as caught:
        d.receive_cseq(6)
    assert caught.value.status_hint == 500
    assert d.remote_cseq == 7


def test_remote_cseq_equal_or_with_gaps_is_in_order() -> None:
    d = dialog()
    d.receive_cseq(7)
    d.receive_cseq(12)
    assert d.remote_cseq == 12
    with pytest.raises(RemoteProtocolError):
        d.receive_cseq(11)


# -- requests we send (§12.2.1.1) ------------------------------------------------------


def test_request_in_dialog_swaps_from_and_to_and_counts_cseq() -> None:
    d = dialog()
    bye = d.make_request("BYE", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx")
    assert bye.method == "BYE" and bye.uri == "sip:alice@198.51.100.7:5062"
    assert bye.from_address == NameAddress("sip:1000@192.0.2.1", None, (("tag", "ours"),))
    assert bye.to_address.uri == "sip:alice@example.org" and bye.to_address.tag == "a1"
    assert bye.call_id == "call-1"
    assert str(bye.cseq) == "101 BYE"
    assert bye.headers.get("Max-Forwards") == "70"
    assert bye.headers.get_all("Route") == []
    assert str(d.make_request("INFO", "SIP/2.0/UDP h;branch=z9hG4bKy").cseq) == "102 INFO"


def test_request_loose_routing_keeps_target_and_routes() -> None:
    d = dialog(invite(("Record-Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>")))
    bye = d.make_request("BYE", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx")
    assert bye.uri == "sip:alice@198.51.100.7:5062"
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]


def test_request_strict_routing_puts_first_route_in_request_uri() -> None:
    d = dialog(
        invite(("Record-Route", "<sip:strict.example.com;method=INVITE?x=y>, <sip:p2;lr>"))
    )
    bye = d.make_request("BYE", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx")
    assert bye.uri == "sip:strict.example.com"
    assert bye.headers.get_all("Route") == ["<sip:p2;lr>", "<sip:alice@198.51.100.7:5062>"]


# -- dialogs we create by calling out (§12.1.2) ------------------------------------------


def our_invite() -> Request:
    return make_request(
        "INVITE",
        "sip:meet@video.example",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv;rport"),
            ("From", '"Rapat" <sip:bridge@192.0.2.1>;tag=ours'),
            ("To", "<sip:meet@video.example>"),
            ("Call-ID", "c-1@192.0.2.1"),
            ("CSeq", "2 INVITE"),
            ("Contact", "<sip:telerapat@192.0.2.1:5060>"),
        ],
    )


def their_2xx(
    *extra: tuple[str, str], contact: str | None = "<sip:meet@203.0.113.5:5070>"
) -> Response:
    headers = [*extra] + ([("Contact", contact)] if contact is not None else [])
    return response_to(our_invite(), 200, to_tag="far", headers=headers)


def test_uac_dialog_takes_ids_from_our_invite_and_their_2xx() -> None:
    d = Dialog.for_uac(our_invite(), their_2xx(), UDP)
    assert (d.call_id, d.local_tag, d.remote_tag) == ("c-1@192.0.2.1", "ours", "far")
    assert d.remote_target == "sip:meet@203.0.113.5:5070"
    assert d.local_cseq == 2 and d.remote_cseq == 0  # §12.1.2: the remote one is empty
    assert d.local_address.display_name == "Rapat"
    assert d.remote_address.uri == "sip:meet@video.example"
    assert d.route_set == () and d.flow == UDP


def test_uac_dialog_route_set_is_the_record_route_reversed() -> None:
    response = their_2xx(
        ("Record-Route", "<sip:edge.example;lr>, <sip:core.example;lr>"),
        ("Record-Route", "<sip:proxy.example;lr>"),
    )
    d = Dialog.for_uac(our_invite(), response, UDP)
    assert d.route_set == (
        "<sip:proxy.example;lr>", "<sip:core.example;lr>", "<sip:edge.example;lr>"
    )
    bye = d.make_request("BYE", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKb")
    assert bye.uri == "sip:meet@203.0.113.5:5070"
    assert bye.headers.get_all("Route") == list(d.route_set)
    assert bye.from_address.tag == "ours" and bye.to_address.tag == "far"
    assert bye.from_address.uri == "sip:bridge@192.0.2.1"
    assert str(bye.cseq) == "3 BYE"


def test_uac_dialog_ack_keeps_the_invite_cseq() -> None:
    """§13.2.2.4: the ACK for a 2xx carries the INVITE's CSeq number and counts nothing."""
    d = Dialog.for_uac(our_invite(), their_2xx(), UDP)
    ack = d.make_request("ACK", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa", cseq=2)
    assert str(ack.cseq) == "2 ACK"
    assert d.local_cseq == 2
    assert str(d.make_request("BYE", "SIP/2.0/UDP h;branch=z9hG4bKb").cseq) == "3 BYE"


def test_uac_dialog_takes_any_first_cseq_from_the_peer() -> None:
    d = Dialog.for_uac(our_invite(), their_2xx(), UDP)
    d.receive_cseq(1)
    with pytest.raises(RemoteProtocolError):
        d.receive_cseq(0)


def test_uac_dialog_needs_a_sip_contact_and_sip_record_routes() -> None:
    with pytest.raises(SipParseError, match="missing Contact"):
        Dialog.for_uac(our_invite(), their_2xx(contact=None), UDP)
    with pytest.raises(SipParseError, match="Record-Route is not a SIP URI"):
        Dialog.for_uac(our_invite(), their_2xx(("Record-Route", "<tel:+1555>")), UDP)


def test_refresh_target_takes_the_new_contact() -> None:
    d = dialog()
    d.refresh_target(invite(contact="<sip:alice@203.0.113.9:7000;transport=tcp>"))
    assert d.remote_target == "sip:alice@203.0.113.9:7000;transport=tcp"
    bye = d.make_request("BYE", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx")
    assert bye.uri == "sip:alice@203.0.113.9:7000;transport=tcp"


# -- the session table ------------------------------------------------------------------


def session(state: SessionState = SessionState.INCOMING) -> InviteSession:
    s = InviteSession(CallRef("call-1", "a1"), dialog())
    s.state = state
    return s


@pytest.mark.parametrize(
    ("state", "input_"), list(SESSION_TABLE), ids=lambda v: getattr(v, "name", "")
)
def test_session_table_row(state: SessionState, input_: SessionInput) -> None:
    s = session(state)
    assert s.apply(input_) is SESSION_TABLE[(state, input_)]
    assert s.state is SESSION_TABLE[(state, input_)]


@settings(max_examples=200, deadline=None)
@given(state=st.sampled_from(SessionState), input_=st.sampled_from(SessionInput))
def test_session_unlisted_input_raises_and_keeps_state(
    state: SessionState, input_: SessionInput
) -> None:
    s = session(state)
    if (state, input_) in SESSION_TABLE:
        assert s.apply(input_) is SESSION_TABLE[(state, input_)]
    else:
        with pytest.raises(LocalProtocolError, match="not allowed in session state"):
            s.apply(input_)
        assert s.state is state


def test_session_table_every_state_can_end_and_terminated_is_final() -> None:
    graph: dict[SessionState, set[SessionState]] = {}
    for (state, _), target in SESSION_TABLE.items():
        graph.setdefault(state, set()).add(target)
    assert SessionState.TERMINATED not in graph
    for start in SessionState:
        seen, frontier = {start}, [start]
        while frontier:
            for target in graph.get(frontier.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    frontier.append(target)
        assert SessionState.TERMINATED in seen, start


def test_session_bye_only_after_the_ack() -> None:
    """§15: no BYE while our 2xx awaits its ACK; the core defers it instead."""
    assert (SessionState.ACCEPTED, SessionInput.BYE_SENT) not in SESSION_TABLE
    assert (SessionState.INCOMING, SessionInput.BYE_SENT) not in SESSION_TABLE


def test_session_rejected_reinvite_keeps_the_call() -> None:
    assert SESSION_TABLE[(SessionState.CONFIRMED, SessionInput.FAILURE_SENT)] is (
        SessionState.CONFIRMED
    )
    assert SESSION_TABLE[(SessionState.INCOMING, SessionInput.FAILURE_SENT)] is (
        SessionState.TERMINATED
    )


# -- 2xx retransmission (§13.3.1.4) -----------------------------------------------------


def accepted(flow: Flow) -> ServerInviteTransaction:
    request = invite()
    tx = ServerInviteTransaction(TransactionKey.for_request(request), request, flow, TimerConfig())
    tx.send_response(200, b"200", 0.0)
    return tx


def test_answer_retransmits_at_t1_doubling_to_t2_then_gives_up_at_64_t1() -> None:
    answer = AnswerRetransmitter(accepted(UDP), 200, b"200", now=0.0, timers=TimerConfig())
    assert answer.cseq == 7 and answer.status == 200
    times, actions = [], []
    while (deadline := answer.next_deadline()) is not None:
        times.append(deadline)
        actions.append(answer.handle_timer(deadline))
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0]
    intervals = [round(b - a, 3) for a, b in zip([0.0, *times[:-2]], times[:-1], strict=True)]
    assert intervals == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert actions == [AnswerTimer.RETRANSMIT] * 10 + [AnswerTimer.GIVE_UP]


def test_answer_on_tcp_only_gives_up() -> None:
    answer = AnswerRetransmitter(accepted(TCP), 200, b"200", now=10.0, timers=TimerConfig())
    assert answer.next_deadline() == 42.0
    assert answer.handle_timer(41.9) is AnswerTimer.IDLE
    assert answer.handle_timer(42.0) is AnswerTimer.GIVE_UP
    assert answer.next_deadline() is None


def test_answer_giving_up_wins_over_a_late_retransmission() -> None:
    answer = AnswerRetransmitter(accepted(UDP), 200, b"200", now=0.0, timers=TimerConfig())
    assert answer.handle_timer(0.2) is AnswerTimer.IDLE
    assert answer.handle_timer(50.0) is AnswerTimer.GIVE_UP
    assert answer.handle_timer(60.0) is AnswerTimer.IDLE


def test_session_deadline_is_its_answers() -> None:
    s = session(SessionState.ACCEPTED)
    assert s.next_deadline() is None
    s.answer = AnswerRetransmitter(accepted(UDP), 200, b"200", now=1.0, timers=TimerConfig())
    assert s.next_deadline() == 1.5
    assert s.flow == UDP


# -- the call attempt table (calls we place) -------------------------------------------


def attempt(state: AttemptState = AttemptState.CALLING) -> CallAttempt:
    request = our_invite()
    transaction = ClientInviteTransaction(request, b"INVITE", UDP, TimerConfig(), 0.0)
    a = CallAttempt(CallRef("c-1@192.0.2.1", "ours"), request, transaction, UDP, None)
    a.state = state
    return a


@pytest.mark.parametrize(
    ("state", "input_"), list(ATTEMPT_TABLE), ids=lambda v: getattr(v, "name", "")
)
def test_attempt_table_row(state: AttemptState, input_: AttemptInput) -> None:
    a = attempt(state)
    assert a.apply(input_) is ATTEMPT_TABLE[(state, input_)]
    assert a.state is ATTEMPT_TABLE[(state, input_)]


@settings(max_examples=200, deadline=None)
@given(state=st.sampled_from(AttemptState), input_=st.sampled_from(AttemptInput))
def test_attempt_unlisted_input_raises_and_keeps_state(
    state: AttemptState, input_: AttemptInput
) -> None:
    a = attempt(state)
    if (state, input_) in ATTEMPT_TABLE:
        assert a.apply(input_) is ATTEMPT_TABLE[(state, input_)]
    else:
        with pytest.raises(LocalProtocolError, match="not allowed in attempt state"):
            a.apply(input_)
        assert a.state is state


def test_attempt_every_live_state_ends_and_the_ends_are_final() -> None:
    ends = {AttemptState.ANSWERED, AttemptState.FAILED}
    assert not [key for key in ATTEMPT_TABLE if key[0] in ends]
    for state in AttemptState:
        if state in ends:
            assert not attempt(state).live
            continue
        assert attempt(state).live
        targets = {ATTEMPT_TABLE[(state, i)] for i in AttemptInput if (state, i) in ATTEMPT_TABLE}
        assert AttemptState.FAILED in targets


def test_attempt_cancelled_then_answered_still_fails() -> None:
    """§9.1: a 2xx can overtake our CANCEL; the core ACKs and BYEs, the attempt failed."""
    assert ATTEMPT_TABLE[(AttemptState.CANCELLING, AttemptInput.SUCCESS_RECEIVED)] is (
        AttemptState.FAILED
    )
    assert (AttemptState.CANCELLING, AttemptInput.CHALLENGE_ANSWERED) not in ATTEMPT_TABLE


def test_attempt_deadline_is_the_cancel_limit_while_cancelling() -> None:
    a = attempt(AttemptState.PROCEEDING)
    assert a.next_deadline() is None
    a.apply(AttemptInput.HANGUP)
    a.give_up_at = 40.0
    assert a.next_deadline() == 40.0
    a.apply(AttemptInput.FAILURE_RECEIVED)
    assert a.next_deadline() is None
