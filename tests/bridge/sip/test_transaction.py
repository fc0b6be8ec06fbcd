"""SIP transactions (RFC 3261 §17, RFC 6026): keys, timers, retransmissions and their tables."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sip.errors import LocalProtocolError
from bridge.sip.flow import Flow
from bridge.sip.message import Request, Response, make_request, response_to
from bridge.sip.parser import parse_message
from bridge.sip.transaction import (
    CLIENT_INVITE_TABLE,
    CLIENT_NON_INVITE_TABLE,
    SERVER_INVITE_TABLE,
    SERVER_NON_INVITE_TABLE,
    Action,
    ClientInviteInput,
    ClientInviteState,
    ClientInviteTransaction,
    ClientNonInviteInput,
    ClientNonInviteState,
    ClientNonInviteTransaction,
    Outcome,
    ServerInviteInput,
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteInput,
    ServerNonInviteState,
    ServerNonInviteTransaction,
    TimerConfig,
    TransactionKey,
    transition,
)

UDP = Flow("udp", "192.0.2.1", 5060, "198.51.100.7", 5062)
UDP_MOVED = Flow("udp", "192.0.2.1", 5060, "198.51.100.7", 6000)
TCP = Flow("tcp", "192.0.2.1", 5060, "198.51.100.7", 40111)
TIMERS = TimerConfig()
# Retransmissions at T1 doubling to T2 from t=0, before 64*T1 = 32 s.
RETRANSMIT_TIMES = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-1",
    sent_by: str = "198.51.100.7:5062",
    cseq: int = 1,
    to_tag: str | None = None,
    uri: str = "sip:1000@192.0.2.1",
) -> Request:
    via = f"SIP/2.0/UDP {sent_by}" + (f";branch={branch}" if branch is not None else "")
    to = "<sip:1000@192.0.2.1>" + (f";tag={to_tag}" if to_tag else "")
    return make_request(
        method,
        uri,
        [
            ("Via", via),
            ("From", "<sip:alice@198.51.100.7>;tag=a1"),
            ("To", to),
            ("Call-ID", "call-1"),
            ("CSeq", f"{cseq} {method}"),
        ],
    )


def run_timers(
    next_deadline: Callable[[], float | None],
    handle_timer: Callable[[float], Outcome],
    until: float,
) -> list[tuple[float, Outcome]]:
    """Fire timers exactly at their deadlines up to `until`; return what each firing did."""
    fired = []
    while (deadline := next_deadline()) is not None and deadline <= until:
        fired.append((deadline, handle_timer(deadline)))
    return fired


# -- keys -------------------------------------------------------------------------------


def test_key_ack_matches_its_invite() -> None:
    invite = TransactionKey.for_request(request("INVITE"))
    ack = TransactionKey.for_request(request("ACK", to_tag="t9"))
    assert ack == invite
    assert invite.method == "INVITE"


def test_key_cancel_is_separate_but_finds_its_invite() -> None:
    invite = TransactionKey.for_request(request("INVITE"))
    cancel = TransactionKey.for_request(request("CANCEL"))
    assert cancel != invite
    assert cancel.for_method("INVITE") == invite


def test_key_differs_by_branch_sent_by_and_method() -> None:
    base = TransactionKey.for_request(request("INVITE"))
    assert TransactionKey.for_request(request("INVITE", branch="z9hG4bK-2")) != base
    assert TransactionKey.for_request(request("INVITE", sent_by="198.51.100.8:5062")) != base
    assert TransactionKey.for_request(request("BYE")) != base


def test_key_sent_by_keeps_port_absence_distinct() -> None:
    with_port = TransactionKey.for_request(request(sent_by="host.example:5060"))
    without = TransactionKey.for_request(request(sent_by="host.example"))
    assert with_port.sent_by == "host.example:5060"
    assert without.sent_by == "host.example"


def test_key_rfc2543_peer_matches_by_call_id_tags_and_cseq() -> None:
    """Without the magic cookie, INVITE, its non-2xx ACK and its CANCEL still match."""
    invite = TransactionKey.for_request(request("INVITE", branch="old1"))
    assert TransactionKey.for_request(request("ACK", branch="old1", to_tag="x")) == invite
    assert TransactionKey.for_request(request("CANCEL", branch="old1")).for_method(
        "INVITE"
    ) == invite
    assert TransactionKey.for_request(request("INVITE", branch="old1", cseq=2)) != invite
    assert not invite.branch.startswith("z9hG4bK")


def test_key_rfc2543_peer_without_any_branch() -> None:
    invite = TransactionKey.for_request(request("INVITE", branch=None))
    assert TransactionKey.for_request(request("ACK", branch=None, to_tag="x")) == invite


def test_timer_config_timeout_is_64_t1() -> None:
    assert TimerConfig().timeout_s == 32.0
    assert TimerConfig(t1_s=0.1).timeout_s == pytest.approx(6.4)


# -- server INVITE ----------------------------------------------------------------------


def server_invite(flow: Flow = UDP) -> ServerInviteTransaction:
    req = request("INVITE")
    return ServerInviteTransaction(TransactionKey.for_request(req), req, flow, TIMERS)


def test_server_invite_failure_retransmits_on_timer_g_until_timer_h() -> None:
    tx = server_invite()
    tx.send_response(100, b"100", 0.0)
    assert tx.send_response(486, b"486", 0.0).send == (b"486",)
    assert tx.state is ServerInviteState.COMPLETED
    fired = run_timers(tx.next_deadline, tx.handle_timer, until=100.0)
    resends = [at for at, outcome in fired if outcome.send == (b"486",)]
    assert resends == RETRANSMIT_TIMES
    assert fired[-1][0] == 32.0 and fired[-1][1].timed_out
    assert tx.terminated and tx.next_deadline() is None


def test_server_invite_failure_on_tcp_has_no_timer_g_but_timer_h() -> None:
    tx = server_invite(TCP)
    tx.send_response(486, b"486", 0.0)
    assert tx.next_deadline() == 32.0
    outcome = tx.handle_timer(32.0)
    assert outcome.send == () and outcome.timed_out and tx.terminated


def test_server_invite_ack_confirms_and_timer_i_ends_it() -> None:
    tx = server_invite()
    tx.send_response(486, b"486", 0.0)
    tx.handle_timer(0.5)
    outcome = tx.receive_ack(0.7)
    assert outcome == Outcome()
    assert tx.state is ServerInviteState.CONFIRMED
    assert tx.next_deadline() == pytest.approx(5.7)  # Timer I = T4; G and H are gone
    assert tx.receive_ack(1.0) == Outcome()  # copies of the ACK are absorbed
    assert tx.receive_request(UDP, 1.1) == Outcome()  # and so are INVITEs
    tx.handle_timer(5.7)
    assert tx.terminated


def test_server_invite_ack_on_tcp_terminates_at_once() -> None:
    tx = server_invite(TCP)
    tx.send_response(603, b"603", 0.0)
    tx.receive_ack(1.0)
    assert tx.terminated and tx.next_deadline() is None


def test_server_invite_retransmission_resends_last_provisional() -> None:
    tx = server_invite()
    assert tx.receive_request(UDP, 0.0).send == ()  # nothing sent yet: nothing to resend
    tx.send_response(100, b"100", 0.0)
    assert tx.receive_request(UDP, 0.5).send == (b"100",)
    tx.send_response(180, b"180", 0.6)
    assert tx.receive_request(UDP, 1.0).send == (b"180",)
    assert tx.state is ServerInviteState.PROCEEDING
    assert tx.next_deadline() is None  # Proceeding has no timers


def test_server_invite_retransmission_resends_final_in_completed() -> None:
    tx = server_invite()
    tx.send_response(404, b"404", 0.0)
    assert tx.receive_request(UDP, 0.2).send == (b"404",)


def test_server_invite_answers_go_where_the_latest_copy_came_from() -> None:
    tx = server_invite()
    tx.send_response(404, b"404", 0.0)
    tx.receive_request(UDP_MOVED, 0.2)
    assert tx.flow == UDP_MOVED


def test_server_invite_2xx_is_accepted_per_rfc6026() -> None:
    tx = server_invite()
    tx.send_response(100, b"100", 0.0)
    assert tx.send_response(200, b"200", 0.0).send == (b"200",)
    assert tx.state is ServerInviteState.ACCEPTED
    assert tx.final_status == 200
    assert tx.next_deadline() == 32.0  # Timer L only; the TU retransmits the 2xx
    assert tx.receive_request(UDP, 0.4) == Outcome()  # INVITE copies are absorbed
    assert tx.send_response(200, b"200", 0.5).send == (b"200",)  # the TU's retransmission
    assert tx.receive_ack(0.6) == Outcome(delivered=True)
    assert tx.receive_ack(0.7) == Outcome(delivered=True)
    tx.handle_timer(32.0)
    assert tx.terminated


def test_server_invite_second_final_is_refused() -> None:
    tx = server_invite()
    tx.send_response(486, b"486", 0.0)
    with pytest.raises(LocalProtocolError, match="FAILURE_SENT is not allowed in state COMPLETED"):
        tx.send_response(500, b"500", 0.1)
    with pytest.raises(LocalProtocolError):
        tx.send_response(200, b"200", 0.1)
    assert tx.state is ServerInviteState.COMPLETED
    assert tx.final_status == 486


@pytest.mark.parametrize("status", [0, 99, 700])
def test_server_invite_rejects_status_out_of_range(status: int) -> None:
    with pytest.raises(LocalProtocolError, match="out of range"):
        server_invite().send_response(status, b"x", 0.0)


def test_server_invite_late_timer_call_gives_up_rather_than_resending_forever() -> None:
    """A timer handled late fires each due timer once; H ends it even after a resend."""
    tx = server_invite()
    tx.send_response(486, b"486", 0.0)
    outcome = tx.handle_timer(40.0)
    assert outcome.send == (b"486",)
    assert outcome.timed_out and tx.terminated


def test_server_invite_timer_g_caps_at_t2_with_other_timer_values() -> None:
    tx = ServerInviteTransaction(
        TransactionKey.for_request(request()), request(), UDP, TimerConfig(t1_s=0.1, t2_s=0.3)
    )
    tx.send_response(486, b"486", 0.0)
    fired = run_timers(tx.next_deadline, tx.handle_timer, until=1.55)
    assert [round(at, 3) for at, _ in fired] == [0.1, 0.3, 0.6, 0.9, 1.2, 1.5]


# -- server non-INVITE ------------------------------------------------------------------


def server_non_invite(flow: Flow = UDP, method: str = "BYE") -> ServerNonInviteTransaction:
    req = request(method, to_tag="t1")
    return ServerNonInviteTransaction(TransactionKey.for_request(req), req, flow, TIMERS)


def test_server_non_invite_absorbs_until_answered_then_resends_final() -> None:
    tx = server_non_invite()
    assert tx.receive_request(UDP, 0.0) == Outcome()
    assert tx.send_response(200, b"200", 0.1).send == (b"200",)
    assert tx.state is ServerNonInviteState.COMPLETED
    assert tx.receive_request(UDP, 0.5).send == (b"200",)
    assert tx.receive_request(UDP, 1.5).send == (b"200",)


def test_server_non_invite_provisional_is_resent_while_proceeding() -> None:
    tx = server_non_invite()
    tx.send_response(100, b"100", 0.0)
    assert tx.state is ServerNonInviteState.PROCEEDING
    assert tx.receive_request(UDP, 0.5).send == (b"100",)
    tx.send_response(200, b"200", 1.0)
    assert tx.receive_request(UDP, 1.5).send == (b"200",)


def test_server_non_invite_timer_j_is_64_t1_on_udp() -> None:
    tx = server_non_invite()
    tx.send_response(200, b"200", 1.0)
    assert tx.next_deadline() == 33.0
    tx.handle_timer(32.9)
    assert not tx.terminated
    tx.handle_timer(33.0)
    assert tx.terminated


def test_server_non_invite_timer_j_is_zero_on_tcp() -> None:
    tx = server_non_invite(TCP)
    outcome = tx.send_response(200, b"200", 1.0)
    assert outcome.send == (b"200",)
    assert tx.terminated and tx.next_deadline() is None


def test_server_non_invite_second_final_is_refused() -> None:
    tx = server_non_invite()
    tx.send_response(200, b"200", 0.0)
    with pytest.raises(LocalProtocolError, match="FINAL_SENT is not allowed in state COMPLETED"):
        tx.send_response(481, b"481", 0.1)


# -- client non-INVITE ------------------------------------------------------------------


def client(flow: Flow = UDP, now: float = 0.0) -> ClientNonInviteTransaction:
    req = request("BYE", branch="z9hG4bKours", to_tag="t1")
    return ClientNonInviteTransaction(req, b"BYE", flow, TIMERS, now)


def test_client_timer_e_retransmits_until_timer_f() -> None:
    tx = client()
    assert (tx.branch, tx.method) == ("z9hG4bKours", "BYE")
    fired = run_timers(tx.next_deadline, tx.handle_timer, until=100.0)
    resends = [at for at, outcome in fired if outcome.send == (b"BYE",)]
    assert resends == RETRANSMIT_TIMES
    assert fired[-1][0] == 32.0 and fired[-1][1].timed_out
    assert tx.terminated and tx.final_status is None


def test_client_on_tcp_only_times_out() -> None:
    tx = client(TCP)
    assert tx.next_deadline() == 32.0
    outcome = tx.handle_timer(32.0)
    assert outcome == Outcome(timed_out=True)


def test_client_provisional_moves_timer_e_to_t2() -> None:
    """§17.1.2.2: in Proceeding, Timer E fires every T2."""
    tx = client()
    tx.handle_timer(0.5)  # E was 0.5, now 1.0: next at 1.5
    assert tx.receive_response(100, 0.7) == Outcome(delivered=True)
    assert tx.state is ClientNonInviteState.PROCEEDING
    fired = run_timers(tx.next_deadline, tx.handle_timer, until=14.0)
    assert [at for at, _ in fired] == [1.5, 5.5, 9.5, 13.5]


def test_client_final_response_is_delivered_once_and_timer_k_ends_it() -> None:
    tx = client()
    assert tx.receive_response(200, 0.2) == Outcome(delivered=True)
    assert tx.final_status == 200
    assert tx.state is ClientNonInviteState.COMPLETED
    assert tx.next_deadline() == pytest.approx(5.2)  # Timer K = T4, E and F cancelled
    assert tx.receive_response(200, 0.6) == Outcome()  # retransmitted 200: absorbed
    assert tx.receive_response(100, 0.7) == Outcome()
    tx.handle_timer(5.2)
    assert tx.terminated


def test_client_final_on_tcp_terminates_at_once() -> None:
    tx = client(TCP)
    assert tx.receive_response(481, 0.2) == Outcome(delivered=True)
    assert tx.terminated


def test_client_requires_an_rfc3261_branch() -> None:
    req = request("BYE", branch="nocookie", to_tag="t1")
    with pytest.raises(LocalProtocolError, match="branch"):
        ClientNonInviteTransaction(req, b"BYE", UDP, TIMERS, 0.0)


# -- client INVITE ----------------------------------------------------------------------

# Timer A from t=0: T1 doubling with no cap (§17.1.1.2), before Timer B at 64*T1 = 32 s.
INVITE_RETRANSMIT_TIMES = [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]


def outgoing_invite() -> Request:
    """An INVITE of ours, through an outbound proxy, as the core builds it."""
    return make_request(
        "INVITE",
        "sip:meet@video.example",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv;rport"),
            ("Max-Forwards", "70"),
            ("Route", "<sip:proxy.example;lr>"),
            ("Route", "<sip:edge.example;lr>"),
            ("From", '"Rapat" <sip:bridge@192.0.2.1>;tag=ours'),
            ("To", "<sip:meet@video.example>"),
            ("Call-ID", "c-1@192.0.2.1"),
            ("CSeq", "3 INVITE"),
            ("Contact", "<sip:telerapat@192.0.2.1:5060>"),
            ("Content-Type", "application/sdp"),
        ],
        b"v=0\r\n",
    )


def answer(status: int, to_tag: str | None = "far") -> Response:
    return response_to(outgoing_invite(), status, to_tag=to_tag)


def client_invite(flow: Flow = UDP, now: float = 0.0) -> ClientInviteTransaction:
    return ClientInviteTransaction(outgoing_invite(), b"INVITE", flow, TIMERS, now)


def test_client_invite_timer_a_doubles_without_cap_until_timer_b() -> None:
    tx = client_invite()
    assert tx.branch == "z9hG4bKinv"
    fired = run_timers(tx.next_deadline, tx.handle_timer, until=100.0)
    resends = [at for at, outcome in fired if outcome.send == (b"INVITE",)]
    assert resends == INVITE_RETRANSMIT_TIMES
    assert fired[-1][0] == 32.0 and fired[-1][1] == Outcome(timed_out=True)
    assert tx.terminated and tx.next_deadline() is None


def test_client_invite_on_tcp_only_times_out() -> None:
    tx = client_invite(TCP, now=10.0)
    assert tx.next_deadline() == 42.0
    assert tx.handle_timer(41.9) == Outcome()
    assert tx.handle_timer(42.0) == Outcome(timed_out=True)


def test_client_invite_provisional_stops_retransmissions_and_timer_b() -> None:
    """§17.1.1.2: in Proceeding the request is not retransmitted, and Timer B is gone."""
    tx = client_invite()
    tx.handle_timer(0.5)
    assert tx.receive_response(answer(180), 0.7) == Outcome(delivered=True)
    assert tx.state is ClientInviteState.PROCEEDING
    assert tx.next_deadline() is None
    assert tx.receive_response(answer(183), 0.8) == Outcome(delivered=True)


def test_client_invite_acks_a_failure_itself() -> None:
    """§17.1.1.3: the ACK of a 3xx-6xx copies the INVITE but for To (the response's)."""
    tx = client_invite()
    outcome = tx.receive_response(answer(486, to_tag="busy1"), 0.3)
    assert outcome.delivered and len(outcome.send) == 1
    ack = parse_message(outcome.send[0])
    assert isinstance(ack, Request)
    assert (ack.method, ack.uri) == ("ACK", "sip:meet@video.example")
    assert ack.headers.get_all("Via") == ["SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv;rport"]
    assert ack.headers.get("From") == '"Rapat" <sip:bridge@192.0.2.1>;tag=ours'
    assert ack.headers.get("To") == "<sip:meet@video.example>;tag=busy1"
    assert ack.call_id == "c-1@192.0.2.1"
    assert str(ack.cseq) == "3 ACK"
    assert ack.headers.get_all("Route") == ["<sip:proxy.example;lr>", "<sip:edge.example;lr>"]
    assert ack.headers.get("Max-Forwards") == "70"
    assert ack.body == b"" and "Contact" not in ack.headers
    assert tx.state is ClientInviteState.COMPLETED


def test_client_invite_failure_copies_are_answered_with_the_same_ack_until_timer_d() -> None:
    tx = client_invite()
    tx.handle_timer(0.5)
    first = tx.receive_response(answer(603), 1.0)
    assert tx.next_deadline() == 33.0  # Timer D = 32 s; A and B cancelled
    again = tx.receive_response(answer(603), 2.0)
    assert again == Outcome(send=first.send)  # resent, not delivered a second time
    assert tx.receive_response(answer(180), 2.1) == Outcome()
    assert tx.receive_response(answer(200), 2.2) == Outcome()
    assert tx.handle_timer(33.0) == Outcome()
    assert tx.terminated


def test_client_invite_failure_on_tcp_terminates_at_once() -> None:
    tx = client_invite(TCP)
    outcome = tx.receive_response(answer(404), 0.2)
    assert outcome.delivered and len(outcome.send) == 1
    assert tx.terminated and tx.next_deadline() is None


def test_client_invite_passes_every_2xx_up_in_accepted() -> None:
    """RFC 6026 §8.4: each 2xx retransmission (or other fork's 2xx) goes to the TU."""
    tx = client_invite()
    assert tx.receive_response(answer(200), 0.2) == Outcome(delivered=True)
    assert tx.state is ClientInviteState.ACCEPTED
    assert tx.next_deadline() == pytest.approx(32.2)  # Timer M; A and B cancelled
    assert tx.receive_response(answer(200), 0.7) == Outcome(delivered=True)
    assert tx.receive_response(answer(200, to_tag="fork2"), 0.8) == Outcome(delivered=True)
    assert tx.receive_response(answer(180), 0.9) == Outcome()
    assert tx.receive_response(answer(486), 1.0) == Outcome()
    assert tx.handle_timer(32.2) == Outcome()
    assert tx.terminated


def test_client_invite_2xx_over_tcp_still_waits_for_timer_m() -> None:
    tx = client_invite(TCP)
    tx.receive_response(answer(200), 0.0)
    assert tx.next_deadline() == 32.0 and not tx.terminated


def test_client_invite_needs_an_rfc3261_branch_and_an_invite() -> None:
    bye = request("BYE", branch="z9hG4bKx", to_tag="t")
    with pytest.raises(LocalProtocolError, match="cannot carry BYE"):
        ClientInviteTransaction(bye, b"BYE", UDP, TIMERS, 0.0)
    with pytest.raises(LocalProtocolError, match="branch"):
        ClientInviteTransaction(request(branch="old"), b"INVITE", UDP, TIMERS, 0.0)


def test_client_invite_timer_d_follows_the_config() -> None:
    tx = ClientInviteTransaction(
        outgoing_invite(), b"INVITE", UDP, TimerConfig(t1_s=0.1, timer_d_s=40.0), 0.0
    )
    assert tx.next_deadline() == pytest.approx(0.1)
    tx.receive_response(answer(500), 1.0)
    assert tx.next_deadline() == 41.0


# -- the tables themselves --------------------------------------------------------------

SERVER_INVITE_NETWORK = {ServerInviteInput.INVITE_RECEIVED, ServerInviteInput.ACK_RECEIVED}
SERVER_INVITE_TU = {
    ServerInviteInput.PROVISIONAL_SENT,
    ServerInviteInput.SUCCESS_SENT,
    ServerInviteInput.FAILURE_SENT,
}
SERVER_INVITE_TIMERS = set(ServerInviteInput) - SERVER_INVITE_NETWORK - SERVER_INVITE_TU


@pytest.mark.parametrize("state", [s for s in ServerInviteState if s.name != "TERMINATED"])
def test_server_invite_table_lists_every_network_input(state: ServerInviteState) -> None:
    """A peer can send anything at any time: no network input may be refused."""
    for input_ in SERVER_INVITE_NETWORK:
        assert (state, input_) in SERVER_INVITE_TABLE


def test_tables_have_no_way_out_of_terminated() -> None:
    tables = (
        SERVER_INVITE_TABLE, SERVER_NON_INVITE_TABLE, CLIENT_NON_INVITE_TABLE,
        CLIENT_INVITE_TABLE,
    )
    for table in tables:
        assert not [key for key in table if key[0].name == "TERMINATED"]


def test_client_invite_table_lists_every_network_input() -> None:
    for state in ClientInviteState:
        if state is not ClientInviteState.TERMINATED:
            for input_ in (
                ClientInviteInput.PROVISIONAL_RECEIVED,
                ClientInviteInput.SUCCESS_RECEIVED,
                ClientInviteInput.FAILURE_RECEIVED,
            ):
                assert (state, input_) in CLIENT_INVITE_TABLE


def test_non_invite_tables_list_every_network_input() -> None:
    for state in ServerNonInviteState:
        if state is not ServerNonInviteState.TERMINATED:
            assert (state, ServerNonInviteInput.REQUEST_RECEIVED) in SERVER_NON_INVITE_TABLE
    for client_state in ClientNonInviteState:
        if client_state is not ClientNonInviteState.TERMINATED:
            for input_ in (
                ClientNonInviteInput.PROVISIONAL_RECEIVED,
                ClientNonInviteInput.FINAL_RECEIVED,
            ):
                assert (client_state, input_) in CLIENT_NON_INVITE_TABLE


def test_transition_refuses_what_the_table_does_not_list() -> None:
    with pytest.raises(LocalProtocolError, match="TIMER_G is not allowed in state PROCEEDING"):
        transition(SERVER_INVITE_TABLE, ServerInviteState.PROCEEDING, ServerInviteInput.TIMER_G)


# Each row of each table is driven through the public API from a state reached the
# ordinary way; the outcome must show the row's action and the row's next state.

_SI = ServerInviteState
_SII = ServerInviteInput


def _reach_server_invite(state: ServerInviteState, flow: Flow) -> ServerInviteTransaction:
    tx = server_invite(flow)
    tx.send_response(100, b"100", 0.0)
    if state is _SI.ACCEPTED:
        tx.send_response(200, b"200", 0.0)
    elif state in (_SI.COMPLETED, _SI.CONFIRMED):
        tx.send_response(486, b"486", 0.0)
        if state is _SI.CONFIRMED:
            tx.receive_ack(0.0)
    assert tx.state is state
    return tx


_SERVER_INVITE_TIMER_AT = {
    _SII.TIMER_G: 0.5, _SII.TIMER_H: 32.0, _SII.TIMER_I: 5.0, _SII.TIMER_L: 32.0
}


def _apply_server_invite(tx: ServerInviteTransaction, input_: ServerInviteInput) -> Outcome:
    if input_ is _SII.INVITE_RECEIVED:
        return tx.receive_request(tx.flow, 0.1)
    if input_ is _SII.ACK_RECEIVED:
        return tx.receive_ack(0.1)
    if input_ in SERVER_INVITE_TU:
        status = {_SII.PROVISIONAL_SENT: 180, _SII.SUCCESS_SENT: 200, _SII.FAILURE_SENT: 486}
        return tx.send_response(status[input_], b"new", 0.1)
    assert tx.next_deadline() is not None
    return tx.handle_timer(_SERVER_INVITE_TIMER_AT[input_])


def _check_action(action: Action, outcome: Outcome, last: bytes | None) -> None:
    if action is Action.SEND:
        assert outcome.send == (b"new",)
    elif action is Action.RESEND:
        assert outcome.send == (last,)
    elif action is Action.DELIVER:
        assert outcome.delivered and outcome.send == ()
    elif action is Action.TIME_OUT:
        assert outcome.timed_out and not outcome.delivered
    else:
        assert outcome == Outcome()


@pytest.mark.parametrize(
    ("state", "input_"), list(SERVER_INVITE_TABLE), ids=lambda v: getattr(v, "name", "")
)
def test_server_invite_table_row(state: ServerInviteState, input_: ServerInviteInput) -> None:
    action, next_state = SERVER_INVITE_TABLE[(state, input_)]
    # Timer H is checked on TCP, where no Timer G retransmission fires alongside it.
    tx = _reach_server_invite(state, TCP if input_ is _SII.TIMER_H else UDP)
    last = {_SI.PROCEEDING: b"100", _SI.COMPLETED: b"486"}.get(state)
    _check_action(action, _apply_server_invite(tx, input_), last)
    assert tx.state is next_state


@pytest.mark.parametrize(
    ("state", "input_"),
    [
        (s, i)
        for s in ServerInviteState
        for i in SERVER_INVITE_TU
        if s is not _SI.TERMINATED and (s, i) not in SERVER_INVITE_TABLE
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_server_invite_unlisted_tu_input_raises_and_changes_nothing(
    state: ServerInviteState, input_: ServerInviteInput
) -> None:
    tx = _reach_server_invite(state, UDP)
    deadline = tx.next_deadline()
    with pytest.raises(LocalProtocolError):
        _apply_server_invite(tx, input_)
    assert tx.state is state and tx.next_deadline() == deadline


_SN = ServerNonInviteState
_SNI = ServerNonInviteInput


def _reach_server_non_invite(state: ServerNonInviteState) -> ServerNonInviteTransaction:
    tx = server_non_invite()
    if state is _SN.PROCEEDING:
        tx.send_response(100, b"100", 0.0)
    elif state is _SN.COMPLETED:
        tx.send_response(200, b"200", 0.0)
    assert tx.state is state
    return tx


@pytest.mark.parametrize(
    ("state", "input_"), list(SERVER_NON_INVITE_TABLE), ids=lambda v: getattr(v, "name", "")
)
def test_server_non_invite_table_row(
    state: ServerNonInviteState, input_: ServerNonInviteInput
) -> None:
    action, next_state = SERVER_NON_INVITE_TABLE[(state, input_)]
    tx = _reach_server_non_invite(state)
    if input_ is _SNI.REQUEST_RECEIVED:
        outcome = tx.receive_request(UDP, 0.1)
    elif input_ is _SNI.PROVISIONAL_SENT:
        outcome = tx.send_response(100, b"new", 0.1)
    elif input_ is _SNI.FINAL_SENT:
        outcome = tx.send_response(200, b"new", 0.1)
    else:
        outcome = tx.handle_timer(32.0)
    _check_action(action, outcome, {_SN.PROCEEDING: b"100", _SN.COMPLETED: b"200"}.get(state))
    assert tx.state is next_state


_CN = ClientNonInviteState
_CNI = ClientNonInviteInput


def _reach_client(state: ClientNonInviteState, flow: Flow) -> ClientNonInviteTransaction:
    tx = client(flow)
    if state is _CN.PROCEEDING:
        tx.receive_response(100, 0.0)
    elif state is _CN.COMPLETED:
        tx.receive_response(200, 0.0)
    assert tx.state is state
    return tx


@pytest.mark.parametrize(
    ("state", "input_"), list(CLIENT_NON_INVITE_TABLE), ids=lambda v: getattr(v, "name", "")
)
def test_client_non_invite_table_row(
    state: ClientNonInviteState, input_: ClientNonInviteInput
) -> None:
    action, next_state = CLIENT_NON_INVITE_TABLE[(state, input_)]
    tx = _reach_client(state, TCP if input_ is _CNI.TIMER_F else UDP)
    if input_ is _CNI.PROVISIONAL_RECEIVED:
        outcome = tx.receive_response(180, 0.1)
    elif input_ is _CNI.FINAL_RECEIVED:
        outcome = tx.receive_response(200, 0.1)
    else:
        at = {_CNI.TIMER_E: 0.5, _CNI.TIMER_F: 32.0, _CNI.TIMER_K: 5.0}[input_]
        outcome = tx.handle_timer(at)
    if action is Action.RESEND:
        assert outcome.send == (b"BYE",)
    elif action is Action.DELIVER:
        assert outcome == Outcome(delivered=True)
    else:
        _check_action(action, outcome, None)
    assert tx.state is next_state


_CI = ClientInviteState
_CII = ClientInviteInput
_CLIENT_INVITE_STATUS = {
    _CII.PROVISIONAL_RECEIVED: 180, _CII.SUCCESS_RECEIVED: 200, _CII.FAILURE_RECEIVED: 486
}


def _reach_client_invite(
    state: ClientInviteState, flow: Flow
) -> tuple[ClientInviteTransaction, bytes]:
    """Drive a transaction into `state`; return it and what a RESEND would send there."""
    tx = client_invite(flow)
    last = b"INVITE"
    if state is _CI.PROCEEDING:
        tx.receive_response(answer(100), 0.0)
    elif state is _CI.COMPLETED:
        (last,) = tx.receive_response(answer(486), 0.0).send
    elif state is _CI.ACCEPTED:
        tx.receive_response(answer(200), 0.0)
    assert tx.state is state
    return tx, last


@pytest.mark.parametrize(
    ("state", "input_"), list(CLIENT_INVITE_TABLE), ids=lambda v: getattr(v, "name", "")
)
def test_client_invite_table_row(state: ClientInviteState, input_: ClientInviteInput) -> None:
    action, next_state = CLIENT_INVITE_TABLE[(state, input_)]
    tx, last = _reach_client_invite(state, TCP if input_ is _CII.TIMER_B else UDP)
    if input_ in _CLIENT_INVITE_STATUS:
        outcome = tx.receive_response(answer(_CLIENT_INVITE_STATUS[input_]), 0.1)
    else:
        at = {_CII.TIMER_A: 0.5, _CII.TIMER_B: 32.0, _CII.TIMER_D: 32.0, _CII.TIMER_M: 32.0}
        outcome = tx.handle_timer(at[input_])
    if action is Action.ACKNOWLEDGE:
        assert outcome.delivered and len(outcome.send) == 1
        assert outcome.send[0].startswith(b"ACK sip:meet@video.example SIP/2.0")
    elif action is Action.DELIVER:
        assert outcome == Outcome(delivered=True)
    else:
        _check_action(action, outcome, last)
    assert tx.state is next_state


# -- random walks: the machines follow their tables whatever the order of inputs --------

_WALK_INPUTS = st.lists(
    st.sampled_from(["invite", "ack", "1xx", "2xx", "4xx", "timer"]), max_size=30
)


@settings(max_examples=200, deadline=None)
@given(steps=_WALK_INPUTS)
def test_server_invite_random_walk_follows_table(steps: list[str]) -> None:
    tx = server_invite(UDP)
    now = 0.0
    sent_final = False
    inputs = {
        "invite": _SII.INVITE_RECEIVED, "ack": _SII.ACK_RECEIVED, "1xx": _SII.PROVISIONAL_SENT,
        "2xx": _SII.SUCCESS_SENT, "4xx": _SII.FAILURE_SENT,
    }
    for step in steps:
        if tx.terminated:
            break
        before = tx.state
        if step == "timer":
            deadline = tx.next_deadline()
            if deadline is None:
                continue
            now = deadline
            tx.handle_timer(now)
            targets = {
                SERVER_INVITE_TABLE[(before, t)][1]
                for t in SERVER_INVITE_TIMERS
                if (before, t) in SERVER_INVITE_TABLE
            }
            assert tx.state is before or tx.state in targets
            continue
        input_ = inputs[step]
        entry = SERVER_INVITE_TABLE.get((before, input_))
        if entry is None:
            assert input_ in SERVER_INVITE_TU  # network inputs are always listed
            with pytest.raises(LocalProtocolError):
                _apply_server_invite(tx, input_)
            assert tx.state is before
            continue
        outcome = _apply_server_invite_at(tx, input_, now)
        assert tx.state is entry[1]
        assert outcome.delivered == (entry[0] is Action.DELIVER)
        sent_final = sent_final or input_ in (_SII.SUCCESS_SENT, _SII.FAILURE_SENT)
    if sent_final:
        tx.handle_timer(now + 100.0)
        assert tx.terminated and tx.next_deadline() is None


def _apply_server_invite_at(
    tx: ServerInviteTransaction, input_: ServerInviteInput, now: float
) -> Outcome:
    if input_ is _SII.INVITE_RECEIVED:
        return tx.receive_request(tx.flow, now)
    if input_ is _SII.ACK_RECEIVED:
        return tx.receive_ack(now)
    status = {_SII.PROVISIONAL_SENT: 180, _SII.SUCCESS_SENT: 200, _SII.FAILURE_SENT: 486}
    return tx.send_response(status[input_], b"r", now)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.sampled_from(["1xx", "final", "timer"]), max_size=20),
    reliable=st.booleans(),
)
def test_client_random_walk_follows_table_and_always_ends(
    steps: list[str], reliable: bool
) -> None:
    tx = client(TCP if reliable else UDP)
    now = 0.0
    delivered_finals = 0
    for step in steps:
        if tx.terminated:
            break
        before = tx.state
        if step == "timer":
            deadline = tx.next_deadline()
            assert deadline is not None
            now = deadline
            tx.handle_timer(now)
            continue
        status = 180 if step == "1xx" else 200
        outcome = tx.receive_response(status, now)
        input_ = _CNI.PROVISIONAL_RECEIVED if status < 200 else _CNI.FINAL_RECEIVED
        action, target = CLIENT_NON_INVITE_TABLE[(before, input_)]
        assert outcome.delivered == (action is Action.DELIVER)
        delivered_finals += outcome.delivered and status >= 200
        # On TCP, Timer K is zero: Completed ends at once.
        assert tx.state is target or (reliable and tx.terminated)
    assert delivered_finals <= 1
    tx.handle_timer(now + 100.0)
    assert tx.terminated and tx.next_deadline() is None


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.sampled_from(["1xx", "2xx", "4xx", "timer"]), max_size=20),
    reliable=st.booleans(),
)
def test_client_invite_random_walk_follows_table_and_always_ends(
    steps: list[str], reliable: bool
) -> None:
    tx = client_invite(TCP if reliable else UDP)
    now = 0.0
    finals_delivered = {"2xx": 0, "4xx": 0}
    inputs = {
        "1xx": _CII.PROVISIONAL_RECEIVED, "2xx": _CII.SUCCESS_RECEIVED,
        "4xx": _CII.FAILURE_RECEIVED,
    }
    for step in steps:
        if tx.terminated:
            break
        before = tx.state
        if step == "timer":
            deadline = tx.next_deadline()
            if deadline is None:
                continue  # Proceeding waits for a final response, with no timer
            now = deadline
            tx.handle_timer(now)
            continue
        input_ = inputs[step]
        action, target = CLIENT_INVITE_TABLE[(before, input_)]
        outcome = tx.receive_response(answer(_CLIENT_INVITE_STATUS[input_]), now)
        assert outcome.delivered == (action in (Action.DELIVER, Action.ACKNOWLEDGE))
        if outcome.delivered and step != "1xx":
            finals_delivered[step] += 1
        # On TCP, Timer D is zero: Completed ends at once.
        assert tx.state is target or (reliable and tx.terminated)
    assert finals_delivered["4xx"] <= 1
    assert not (finals_delivered["4xx"] and finals_delivered["2xx"])
    if tx.state is not ClientInviteState.PROCEEDING:
        tx.handle_timer(now + 100.0)
        assert tx.terminated and tx.next_deadline() is None
