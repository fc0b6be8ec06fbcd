"""Dialogs (RFC 3261 §12), the UAS INVITE session table, and 2xx retransmission (§13.3.1.4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sip.dialog import (
    SESSION_TABLE,
    AnswerRetransmitter,
    AnswerTimer,
    Dialog,
    InviteSession,
    SessionInput,
    SessionState,
)
from bridge.sip.errors import LocalProtocolError, RemoteProtocolError, SipParseError
from bridge.sip.events import CallRef
from bridge.sip.flow import Flow
from bridge.sip.message import NameAddress, Request, make_request
from bridge.sip.parser import parse_message
from bridge.sip.transaction import ServerInviteTransaction, TimerConfig, TransactionKey
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
