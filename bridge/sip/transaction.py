"""SIP transactions (RFC 3261 §17, RFC 6026 §7-§8): server and client, INVITE and non-INVITE.

Rule 1: a transaction knows one request, the flow it travels on, its responses and its
timers; it never knows dialogs, calls or the application (the "TU"). Rule 2: every state
change follows the table next to its class; an input the table does not list is a
`LocalProtocolError` (our own caller broke the protocol), never a silent change. Network
inputs are listed for every live state, so nothing a peer sends can raise here.
Time comes in as `now`; the bytes to send and what the TU must learn come back as an
`Outcome`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from bridge.sip.errors import LocalProtocolError
from bridge.sip.flow import Flow
from bridge.sip.message import Request, Response, make_request

# RFC 3261 §8.1.1.7: a branch starting with this was built by an RFC 3261 client and is
# unique per transaction, so it alone (with sent-by and method) identifies one.
MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """Base timer values (RFC 3261 §17.1.1.1 and Table 4), in seconds."""

    t1_s: float = 0.5  # round-trip estimate: first retransmission interval
    t2_s: float = 4.0  # cap on retransmission intervals of non-INVITE requests and INVITE responses
    t4_s: float = 5.0  # longest a message stays in the network
    timer_d_s: float = 32.0  # Timer D over unreliable transports: "> 32 s" (Table 4)

    @property
    def timeout_s(self) -> float:
        """64*T1: Timers B, F, H, J, L and M (RFC 3261 Table 4, RFC 6026 §8.4, §8.11)."""
        return 64 * self.t1_s


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """What matches a request to its server transaction (RFC 3261 §17.2.3).

    ACK is keyed as INVITE, so an ACK for a non-2xx final finds the INVITE transaction;
    CANCEL keeps its own method and finds the INVITE it cancels through `for_method`.
    """

    branch: str
    sent_by: str
    method: str

    @classmethod
    def for_request(cls, request: Request) -> TransactionKey:
        """Build the key from the top Via's branch and sent-by and the request method.

        A branch without the magic cookie comes from an RFC 2543 peer and need not be
        unique; §17.2.3 then matches on Request-URI, tags, Call-ID, CSeq and Via. We fold
        what stays equal between an INVITE, its retransmissions, its non-2xx ACK and its
        CANCEL (Request-URI, Call-ID, From tag, CSeq number) into the branch; the To tag,
        which an ACK adds, is left out. That is as far as simple matching goes.
        """
        via = request.top_via
        sent_by = via.host if via.port is None else f"{via.host}:{via.port}"
        method = "INVITE" if request.method == "ACK" else request.method
        branch = via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            tag = request.from_address.tag or ""
            parts = ("rfc2543", branch or "", request.uri, request.call_id, tag)
            branch = "|".join((*parts, str(request.cseq.number)))
        return cls(branch, sent_by, method)

    def for_method(self, method: str) -> TransactionKey:
        """Return the key of the transaction with the same branch and another method."""
        return replace(self, method=method)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input to a transaction asks of its user.

    `send`: messages to pass to the transport, on the transaction's flow, in order.
    `delivered`: the input goes up to the TU (an ACK in Accepted, a response to us).
    `timed_out`: Timer H or F fired; the TU must learn that the peer never answered.
    """

    send: tuple[bytes, ...] = ()
    delivered: bool = False
    timed_out: bool = False

    def then(self, other: Outcome) -> Outcome:
        """Return this outcome followed by `other`."""
        return Outcome(
            self.send + other.send,
            self.delivered or other.delivered,
            self.timed_out or other.timed_out,
        )


class Action(enum.Enum):
    """The side effect of one table entry."""

    SEND = "pass the TU's message to the transport and remember it"
    RESEND = "pass the remembered message to the transport again"
    ABSORB = "drop a retransmission that was already answered"
    DELIVER = "hand the input up to the TU"
    ACKNOWLEDGE = "send the ACK for a non-2xx final response and hand the response up"
    TIME_OUT = "tell the TU the transaction failed"
    EXPIRE = "nothing: the timer only ends the state"


StateT = TypeVar("StateT", bound=enum.Enum)
InputT = TypeVar("InputT", bound=enum.Enum)
# A transition table: (state, input) -> (side effect, next state).
Table = Mapping[tuple[StateT, InputT], tuple[Action, StateT]]


def transition(
    table: Table[StateT, InputT], state: StateT, input_: InputT
) -> tuple[Action, StateT]:
    """Look up `(state, input)`: anything not in the table is not allowed (h2's rule)."""
    entry = table.get((state, input_))
    if entry is None:
        raise LocalProtocolError(f"{input_.name} is not allowed in state {state.name}")
    return entry


class _Timers(Generic[InputT]):
    """Armed timers of one transaction: each a timer input and its deadline."""

    __slots__ = ("_deadlines", "_order")

    def __init__(self, order: tuple[InputT, ...]) -> None:
        # Earlier in `order` fires first at equal deadlines: timers that end the
        # transaction (H, F) come before retransmissions, which would be pointless then.
        self._order = order
        self._deadlines: dict[InputT, float] = {}

    def arm(self, timer: InputT, deadline: float) -> None:
        self._deadlines[timer] = deadline

    def cancel(self, *timers: InputT) -> None:
        for timer in timers:
            self._deadlines.pop(timer, None)

    def pop_due(self, now: float) -> InputT | None:
        """Disarm and return the timer that fires first by `now`, or None."""
        due = [(at, self._order.index(t), t) for t, at in self._deadlines.items() if at <= now]
        if not due:
            return None
        timer = min(due, key=lambda item: (item[0], item[1]))[2]
        del self._deadlines[timer]
        return timer

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)


def _check_status(status: int) -> None:
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"status code out of range: {status}")


# -- Server INVITE transaction ---------------------------------------------------------


class ServerInviteState(enum.Enum):
    PROCEEDING = "proceeding"  # INVITE received; provisional responses only so far
    ACCEPTED = "accepted"  # a 2xx was sent; the TU retransmits it (RFC 6026 §8.7)
    COMPLETED = "completed"  # a 3xx-6xx was sent; retransmitted until the ACK
    CONFIRMED = "confirmed"  # the ACK for the 3xx-6xx arrived; absorbing its copies
    TERMINATED = "terminated"  # gone; the core forgets the transaction


class ServerInviteInput(enum.Enum):
    INVITE_RECEIVED = "INVITE retransmission"
    ACK_RECEIVED = "ACK"
    PROVISIONAL_SENT = "1xx from the TU"
    SUCCESS_SENT = "2xx from the TU"
    FAILURE_SENT = "3xx-6xx from the TU"
    TIMER_G = "Timer G: retransmit the final response"
    TIMER_H = "Timer H: give up waiting for the ACK"
    TIMER_I = "Timer I: stop absorbing ACKs"
    TIMER_L = "Timer L: stop absorbing INVITEs after a 2xx"


_SI = ServerInviteState
_SII = ServerInviteInput

# RFC 3261 §17.2.1 Figure 7 as amended by RFC 6026 §7.1 Figure 5:
#
#                        |INVITE: pass to TU, send 100 Trying
#                        V
#   INVITE: resend  +-----------+  1xx from TU: send
#   last 1xx  +-----|Proceeding |-----+
#             +---->|           |<----+
#                   +-----------+
#    3xx-6xx from TU |         | 2xx from TU: send
#    send            |         V
#                    |   +-----------+  2xx from TU: send (the TU retransmits, §13.3.1.4)
#                    |   | Accepted  |  INVITE: absorb;  ACK: pass to TU
#                    |   +-----------+
#                    |         | Timer L (64*T1)
#                    V         |
#   INVITE, G: +-----------+   |
#   resend     | Completed |   |
#              +-----------+   |
#         ACK  |         | Timer H (64*T1): tell TU
#              V         |     |
#   +-----------+        |     |
#   | Confirmed | ACK, INVITE: absorb
#   +-----------+        |     |
#    Timer I (T4; 0 on   |     |
#    reliable transports)V     V
#              +-------------------+
#              |    Terminated     |
#              +-------------------+
SERVER_INVITE_TABLE: Table[ServerInviteState, ServerInviteInput] = {
    (_SI.PROCEEDING, _SII.INVITE_RECEIVED): (Action.RESEND, _SI.PROCEEDING),
    (_SI.PROCEEDING, _SII.ACK_RECEIVED): (Action.ABSORB, _SI.PROCEEDING),
    (_SI.PROCEEDING, _SII.PROVISIONAL_SENT): (Action.SEND, _SI.PROCEEDING),
    (_SI.PROCEEDING, _SII.SUCCESS_SENT): (Action.SEND, _SI.ACCEPTED),
    (_SI.PROCEEDING, _SII.FAILURE_SENT): (Action.SEND, _SI.COMPLETED),
    (_SI.ACCEPTED, _SII.INVITE_RECEIVED): (Action.ABSORB, _SI.ACCEPTED),
    (_SI.ACCEPTED, _SII.ACK_RECEIVED): (Action.DELIVER, _SI.ACCEPTED),
    (_SI.ACCEPTED, _SII.SUCCESS_SENT): (Action.SEND, _SI.ACCEPTED),
    (_SI.ACCEPTED, _SII.TIMER_L): (Action.EXPIRE, _SI.TERMINATED),
    (_SI.COMPLETED, _SII.INVITE_RECEIVED): (Action.RESEND, _SI.COMPLETED),
    (_SI.COMPLETED, _SII.ACK_RECEIVED): (Action.ABSORB, _SI.CONFIRMED),
    (_SI.COMPLETED, _SII.TIMER_G): (Action.RESEND, _SI.COMPLETED),
    (_SI.COMPLETED, _SII.TIMER_H): (Action.TIME_OUT, _SI.TERMINATED),
    (_SI.CONFIRMED, _SII.INVITE_RECEIVED): (Action.ABSORB, _SI.CONFIRMED),
    (_SI.CONFIRMED, _SII.ACK_RECEIVED): (Action.ABSORB, _SI.CONFIRMED),
    (_SI.CONFIRMED, _SII.TIMER_I): (Action.EXPIRE, _SI.TERMINATED),
}


class ServerInviteTransaction:
    """The UAS side of one INVITE (RFC 3261 §17.2.1, RFC 6026 §8.7)."""

    def __init__(self, key: TransactionKey, request: Request, flow: Flow, timers: TimerConfig):
        self.key = key
        self.request = request
        self.flow = flow
        self.state = ServerInviteState.PROCEEDING
        self.final_status: int | None = None
        self._config = timers
        self._timers = _Timers((_SII.TIMER_H, _SII.TIMER_L, _SII.TIMER_I, _SII.TIMER_G))
        self._timer_g_s = timers.t1_s
        self._last_response: bytes | None = None

    @property
    def terminated(self) -> bool:
        return self.state is ServerInviteState.TERMINATED

    def receive_request(self, flow: Flow, now: float) -> Outcome:
        """Handle a retransmitted INVITE; answers go where this copy came from (RFC 3581)."""
        self.flow = flow
        return self._input(_SII.INVITE_RECEIVED, now)

    def receive_ack(self, now: float) -> Outcome:
        """Handle an ACK matching this transaction (§17.2.3: ACK matches its INVITE)."""
        return self._input(_SII.ACK_RECEIVED, now)

    def send_response(self, status: int, data: bytes, now: float) -> Outcome:
        """Send a response from the TU; `data` is the serialised response."""
        _check_status(status)
        if status < 200:
            input_ = _SII.PROVISIONAL_SENT
        elif status < 300:
            input_ = _SII.SUCCESS_SENT
        else:
            input_ = _SII.FAILURE_SENT
        outcome = self._input(input_, now, data)
        if status >= 200 and self.final_status is None:
            self.final_status = status
        return outcome

    def handle_timer(self, now: float) -> Outcome:
        """Fire every timer due by `now`, earliest first."""
        outcome = Outcome()
        while (timer := self._timers.pop_due(now)) is not None:
            outcome = outcome.then(self._apply(timer, now, b""))
        return outcome

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def _input(self, input_: ServerInviteInput, now: float, data: bytes = b"") -> Outcome:
        # Zero-length timers (Timer I on TCP) and overdue ones fire right after the input.
        return self._apply(input_, now, data).then(self.handle_timer(now))

    def _apply(self, input_: ServerInviteInput, now: float, data: bytes) -> Outcome:
        action, state = transition(SERVER_INVITE_TABLE, self.state, input_)
        send: tuple[bytes, ...] = ()
        if action is Action.SEND:
            self._last_response = data
            send = (data,)
        elif action is Action.RESEND and self._last_response is not None:
            send = (self._last_response,)
        if input_ is _SII.TIMER_G:
            # §17.2.1: Timer G doubles up to T2 between retransmissions.
            self._timer_g_s = min(2 * self._timer_g_s, self._config.t2_s)
            self._timers.arm(_SII.TIMER_G, now + self._timer_g_s)
        if state is not self.state:
            self.state = state
            self._enter(state, now)
        return Outcome(send, action is Action.DELIVER, action is Action.TIME_OUT)

    def _enter(self, state: ServerInviteState, now: float) -> None:
        reliable = self.flow.reliable
        if state is _SI.ACCEPTED:
            self._timers.arm(_SII.TIMER_L, now + self._config.timeout_s)
        elif state is _SI.COMPLETED:
            self._timers.arm(_SII.TIMER_H, now + self._config.timeout_s)
            if not reliable:
                self._timers.arm(_SII.TIMER_G, now + self._timer_g_s)
        elif state is _SI.CONFIRMED:
            self._timers.cancel(_SII.TIMER_G, _SII.TIMER_H)
            self._timers.arm(_SII.TIMER_I, now + (0.0 if reliable else self._config.t4_s))
        else:
            self._timers.cancel(*ServerInviteInput)


# -- Server non-INVITE transaction -----------------------------------------------------


class ServerNonInviteState(enum.Enum):
    TRYING = "trying"  # request received, nothing sent yet
    PROCEEDING = "proceeding"  # a provisional response was sent
    COMPLETED = "completed"  # the final response was sent; absorbing retransmissions
    TERMINATED = "terminated"


class ServerNonInviteInput(enum.Enum):
    REQUEST_RECEIVED = "request retransmission"
    PROVISIONAL_SENT = "1xx from the TU"
    FINAL_SENT = "2xx-6xx from the TU"
    TIMER_J = "Timer J: stop absorbing retransmissions"


_SN = ServerNonInviteState
_SNI = ServerNonInviteInput

# RFC 3261 §17.2.2 Figure 8:
#
#                  |Request received: pass to TU
#                  V
#            +-----------+  request: absorb
#            |  Trying   |
#            +-----------+
#     1xx from TU |    | 2xx-6xx from TU: send
#     send        V    |
#  request:  +-----------+  1xx from TU: send
#  resend 1xx|Proceeding |
#            +-----------+
#        2xx-6xx from TU |
#        send            V
#            +-----------+  request: resend the final response
#            | Completed |
#            +-----------+
#                  | Timer J (64*T1; 0 on reliable transports)
#                  V
#            +-----------+
#            | Terminated|
#            +-----------+
SERVER_NON_INVITE_TABLE: Table[ServerNonInviteState, ServerNonInviteInput] = {
    (_SN.TRYING, _SNI.REQUEST_RECEIVED): (Action.ABSORB, _SN.TRYING),
    (_SN.TRYING, _SNI.PROVISIONAL_SENT): (Action.SEND, _SN.PROCEEDING),
    (_SN.TRYING, _SNI.FINAL_SENT): (Action.SEND, _SN.COMPLETED),
    (_SN.PROCEEDING, _SNI.REQUEST_RECEIVED): (Action.RESEND, _SN.PROCEEDING),
    (_SN.PROCEEDING, _SNI.PROVISIONAL_SENT): (Action.SEND, _SN.PROCEEDING),
    (_SN.PROCEEDING, _SNI.FINAL_SENT): (Action.SEND, _SN.COMPLETED),
    (_SN.COMPLETED, _SNI.REQUEST_RECEIVED): (Action.RESEND, _SN.COMPLETED),
    (_SN.COMPLETED, _SNI.TIMER_J): (Action.EXPIRE, _SN.TERMINATED),
}


class ServerNonInviteTransaction:
    """The UAS side of one BYE, CANCEL, OPTIONS, REGISTER, INFO... (RFC 3261 §17.2.2)."""

    def __init__(self, key: TransactionKey, request: Request, flow: Flow, timers: TimerConfig):
        self.key = key
        self.request = request
        self.flow = flow
        self.state = ServerNonInviteState.TRYING
        self._config = timers
        self._timers = _Timers((_SNI.TIMER_J,))
        self._last_response: bytes | None = None

    @property
    def terminated(self) -> bool:
        return self.state is ServerNonInviteState.TERMINATED

    def receive_request(self, flow: Flow, now: float) -> Outcome:
        """Handle a retransmitted request; answers go where this copy came from."""
        self.flow = flow
        return self._input(_SNI.REQUEST_RECEIVED, now)

    def send_response(self, status: int, data: bytes, now: float) -> Outcome:
        """Send a response from the TU; `data` is the serialised response."""
        _check_status(status)
        input_ = _SNI.PROVISIONAL_SENT if status < 200 else _SNI.FINAL_SENT
        return self._input(input_, now, data)

    def handle_timer(self, now: float) -> Outcome:
        outcome = Outcome()
        while (timer := self._timers.pop_due(now)) is not None:
            outcome = outcome.then(self._apply(timer, now, b""))
        return outcome

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def _input(self, input_: ServerNonInviteInput, now: float, data: bytes = b"") -> Outcome:
        return self._apply(input_, now, data).then(self.handle_timer(now))

    def _apply(self, input_: ServerNonInviteInput, now: float, data: bytes) -> Outcome:
        action, state = transition(SERVER_NON_INVITE_TABLE, self.state, input_)
        send: tuple[bytes, ...] = ()
        if action is Action.SEND:
            self._last_response = data
            send = (data,)
        elif action is Action.RESEND and self._last_response is not None:
            send = (self._last_response,)
        if state is not self.state:
            self.state = state
            if state is _SN.COMPLETED:
                delay_s = 0.0 if self.flow.reliable else self._config.timeout_s
                self._timers.arm(_SNI.TIMER_J, now + delay_s)
        return Outcome(send)


# -- Client INVITE transaction ---------------------------------------------------------


class ClientInviteState(enum.Enum):
    CALLING = "calling"  # INVITE sent, no response yet; retransmitted on Timer A
    PROCEEDING = "proceeding"  # a provisional response arrived; no more retransmissions
    COMPLETED = "completed"  # a 3xx-6xx arrived and was ACKed; absorbing its copies
    ACCEPTED = "accepted"  # a 2xx arrived; later 2xx go up too, for the TU to ACK (RFC 6026)
    TERMINATED = "terminated"


class ClientInviteInput(enum.Enum):
    PROVISIONAL_RECEIVED = "1xx"
    SUCCESS_RECEIVED = "2xx"
    FAILURE_RECEIVED = "3xx-6xx"
    TIMER_A = "Timer A: retransmit the INVITE"
    TIMER_B = "Timer B: give up"
    TIMER_D = "Timer D: stop absorbing 3xx-6xx retransmissions"
    TIMER_M = "Timer M: stop passing 2xx retransmissions up"


_CI = ClientInviteState
_CII = ClientInviteInput

# RFC 3261 §17.1.1.2 Figure 5 as amended by RFC 6026 §7.2 Figure 4:
#
#                 |INVITE from TU: send it; Timer B = 64*T1, Timer A = T1 (unreliable)
#                 V
#           +-----------+  Timer A: resend, A doubles
#           |  Calling  |---------------------------------------+ Timer B: tell TU
#           +-----------+                                       |
#        1xx: |    |    | 3xx-6xx: send ACK, to TU              |
#       to TU |    |    +---------------------+                 |
#             V    |                          V                 |
#  +-----------+   |  3xx-6xx: send     +-----------+           |
#  |Proceeding |---|------------------->| Completed |           |
#  +-----------+   |  ACK, to TU        +-----------+           |
#  1xx: to TU |    |                    3xx-6xx: resend ACK     |
#  2xx: to TU |    | 2xx: to TU         1xx, 2xx: absorb        |
#             V    V                          |                 |
#           +-----------+                     | Timer D (32 s;  |
#           | Accepted  |  2xx: to TU (it     | 0 if reliable)  |
#           +-----------+  ACKs every copy)   |                 |
#  1xx, 3xx-6xx: |                            |                 |
#  absorb        | Timer M (64*T1)            |                 |
#                V                            V                 V
#           +---------------------------------------------------+
#           |                    Terminated                     |
#           +---------------------------------------------------+
CLIENT_INVITE_TABLE: Table[ClientInviteState, ClientInviteInput] = {
    (_CI.CALLING, _CII.PROVISIONAL_RECEIVED): (Action.DELIVER, _CI.PROCEEDING),
    (_CI.CALLING, _CII.SUCCESS_RECEIVED): (Action.DELIVER, _CI.ACCEPTED),
    (_CI.CALLING, _CII.FAILURE_RECEIVED): (Action.ACKNOWLEDGE, _CI.COMPLETED),
    (_CI.CALLING, _CII.TIMER_A): (Action.RESEND, _CI.CALLING),
    (_CI.CALLING, _CII.TIMER_B): (Action.TIME_OUT, _CI.TERMINATED),
    (_CI.PROCEEDING, _CII.PROVISIONAL_RECEIVED): (Action.DELIVER, _CI.PROCEEDING),
    (_CI.PROCEEDING, _CII.SUCCESS_RECEIVED): (Action.DELIVER, _CI.ACCEPTED),
    (_CI.PROCEEDING, _CII.FAILURE_RECEIVED): (Action.ACKNOWLEDGE, _CI.COMPLETED),
    (_CI.COMPLETED, _CII.PROVISIONAL_RECEIVED): (Action.ABSORB, _CI.COMPLETED),
    (_CI.COMPLETED, _CII.SUCCESS_RECEIVED): (Action.ABSORB, _CI.COMPLETED),
    (_CI.COMPLETED, _CII.FAILURE_RECEIVED): (Action.RESEND, _CI.COMPLETED),
    (_CI.COMPLETED, _CII.TIMER_D): (Action.EXPIRE, _CI.TERMINATED),
    (_CI.ACCEPTED, _CII.PROVISIONAL_RECEIVED): (Action.ABSORB, _CI.ACCEPTED),
    (_CI.ACCEPTED, _CII.SUCCESS_RECEIVED): (Action.DELIVER, _CI.ACCEPTED),
    (_CI.ACCEPTED, _CII.FAILURE_RECEIVED): (Action.ABSORB, _CI.ACCEPTED),
    (_CI.ACCEPTED, _CII.TIMER_M): (Action.EXPIRE, _CI.TERMINATED),
}


class ClientInviteTransaction:
    """Our side of one INVITE we sent (RFC 3261 §17.1.1, RFC 6026 §8.4).

    Create it when the INVITE is handed to the transport, with the bytes that were sent.
    Responses match it by top Via branch and CSeq method INVITE (§17.1.3). The ACK for
    a 3xx-6xx is the transaction's own (§17.1.1.3) and goes out in the `Outcome`; a 2xx
    is the TU's to ACK (§13.2.2.4), so every copy of one is delivered.
    """

    def __init__(self, request: Request, data: bytes, flow: Flow, timers: TimerConfig, now: float):
        branch = request.top_via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError("our requests need an RFC 3261 branch (§8.1.1.7)")
        if request.method != "INVITE":
            raise LocalProtocolError(f"a client INVITE transaction cannot carry {request.method}")
        self.branch = branch
        self.request = request
        self.flow = flow
        self.state = ClientInviteState.CALLING
        self._config = timers
        # What a RESEND sends: the INVITE while Calling, our ACK once Completed.
        self._resend = data
        self._timers = _Timers((_CII.TIMER_B, _CII.TIMER_D, _CII.TIMER_M, _CII.TIMER_A))
        self._timer_a_s = timers.t1_s
        self._timers.arm(_CII.TIMER_B, now + timers.timeout_s)
        if not flow.reliable:
            self._timers.arm(_CII.TIMER_A, now + self._timer_a_s)

    @property
    def terminated(self) -> bool:
        return self.state is ClientInviteState.TERMINATED

    def receive_response(self, response: Response, now: float) -> Outcome:
        """Handle a response matched to this transaction; a 3xx-6xx gets our ACK."""
        status = response.status
        _check_status(status)
        if status < 200:
            input_ = _CII.PROVISIONAL_RECEIVED
        elif status < 300:
            input_ = _CII.SUCCESS_RECEIVED
        else:
            input_ = _CII.FAILURE_RECEIVED
        return self._apply(input_, now, response).then(self.handle_timer(now))

    def handle_timer(self, now: float) -> Outcome:
        outcome = Outcome()
        while (timer := self._timers.pop_due(now)) is not None:
            outcome = outcome.then(self._apply(timer, now, None))
        return outcome

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def _apply(self, input_: ClientInviteInput, now: float, response: Response | None) -> Outcome:
        action, state = transition(CLIENT_INVITE_TABLE, self.state, input_)
        send: tuple[bytes, ...] = ()
        if action is Action.ACKNOWLEDGE and response is not None:
            self._resend = self._ack_for(response)
            send = (self._resend,)
        elif action is Action.RESEND:
            send = (self._resend,)
        if input_ is _CII.TIMER_A:
            # §17.1.1.2: Timer A doubles each time, with no T2 cap (unlike Timer E).
            self._timer_a_s *= 2
            self._timers.arm(_CII.TIMER_A, now + self._timer_a_s)
        if state is not self.state:
            self.state = state
            self._enter(state, now)
        delivered = action in (Action.DELIVER, Action.ACKNOWLEDGE)
        return Outcome(send, delivered, action is Action.TIME_OUT)

    def _enter(self, state: ClientInviteState, now: float) -> None:
        self._timers.cancel(*ClientInviteInput)
        if state is _CI.COMPLETED:
            delay_s = 0.0 if self.flow.reliable else self._config.timer_d_s
            self._timers.arm(_CII.TIMER_D, now + delay_s)
        elif state is _CI.ACCEPTED:
            self._timers.arm(_CII.TIMER_M, now + self._config.timeout_s)

    def _ack_for(self, response: Response) -> bytes:
        """Build the ACK for a 3xx-6xx (RFC 3261 §17.1.1.3).

        Same Request-URI, Call-ID, From, CSeq number and top Via (so the same branch) as
        the INVITE, To from the response (its tag included), and the INVITE's Route
        headers; it goes where the INVITE went.
        """
        invite = self.request
        headers = [("Via", invite.headers.get_list("Via")[0])]
        max_forwards = invite.headers.get("Max-Forwards")
        if max_forwards is not None:
            headers.append(("Max-Forwards", max_forwards))
        headers += [
            ("From", invite.headers.get("From") or ""),
            ("To", response.headers.get("To") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.number} ACK"),
        ]
        headers += [("Route", route) for route in invite.headers.get_all("Route")]
        return bytes(make_request("ACK", invite.uri, headers))


# -- Client non-INVITE transaction -----------------------------------------------------


class ClientNonInviteState(enum.Enum):
    TRYING = "trying"  # request sent, no response yet
    PROCEEDING = "proceeding"  # a provisional response arrived
    COMPLETED = "completed"  # the final response arrived; absorbing its retransmissions
    TERMINATED = "terminated"


class ClientNonInviteInput(enum.Enum):
    PROVISIONAL_RECEIVED = "1xx"
    FINAL_RECEIVED = "2xx-6xx"
    TIMER_E = "Timer E: retransmit the request"
    TIMER_F = "Timer F: give up"
    TIMER_K = "Timer K: stop absorbing response retransmissions"


_CN = ClientNonInviteState
_CNI = ClientNonInviteInput

# RFC 3261 §17.1.2.2 Figure 6:
#
#                  |Request from TU: send it; Timer F = 64*T1, Timer E = T1 (unreliable)
#                  V
#   Timer E: +-----------+
#   resend,  |  Trying   |-------------+ Timer F: tell TU
#   E doubles+-----------+             |
#   up to T2   1xx |   | 2xx-6xx       |
#   to TU          |   | to TU         |
#                  V   |               |
#   Timer E: +-----------+             |
#   resend,  |Proceeding |-------------+ Timer F: tell TU
#   E = T2   +-----------+             |
#   1xx: to TU     | 2xx-6xx: to TU    |
#                  V                   |
#            +-----------+             |
#   1xx-6xx: | Completed |             |
#   absorb   +-----------+             |
#                  | Timer K (T4; 0 on reliable transports)
#                  V                   V
#            +---------------------------+
#            |        Terminated         |
#            +---------------------------+
CLIENT_NON_INVITE_TABLE: Table[ClientNonInviteState, ClientNonInviteInput] = {
    (_CN.TRYING, _CNI.PROVISIONAL_RECEIVED): (Action.DELIVER, _CN.PROCEEDING),
    (_CN.TRYING, _CNI.FINAL_RECEIVED): (Action.DELIVER, _CN.COMPLETED),
    (_CN.TRYING, _CNI.TIMER_E): (Action.RESEND, _CN.TRYING),
    (_CN.TRYING, _CNI.TIMER_F): (Action.TIME_OUT, _CN.TERMINATED),
    (_CN.PROCEEDING, _CNI.PROVISIONAL_RECEIVED): (Action.DELIVER, _CN.PROCEEDING),
    (_CN.PROCEEDING, _CNI.FINAL_RECEIVED): (Action.DELIVER, _CN.COMPLETED),
    (_CN.PROCEEDING, _CNI.TIMER_E): (Action.RESEND, _CN.PROCEEDING),
    (_CN.PROCEEDING, _CNI.TIMER_F): (Action.TIME_OUT, _CN.TERMINATED),
    (_CN.COMPLETED, _CNI.PROVISIONAL_RECEIVED): (Action.ABSORB, _CN.COMPLETED),
    (_CN.COMPLETED, _CNI.FINAL_RECEIVED): (Action.ABSORB, _CN.COMPLETED),
    (_CN.COMPLETED, _CNI.TIMER_K): (Action.EXPIRE, _CN.TERMINATED),
}


class ClientNonInviteTransaction:
    """Our side of one BYE (or other non-INVITE request) we sent (RFC 3261 §17.1.2).

    Create it when the request is handed to the transport, with the bytes that were
    sent; responses match it by top Via branch and CSeq method (§17.1.3), which
    `branch` and `method` hold.
    """

    def __init__(self, request: Request, data: bytes, flow: Flow, timers: TimerConfig, now: float):
        branch = request.top_via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError("our requests need an RFC 3261 branch (§8.1.1.7)")
        self.branch = branch
        self.method = request.method
        self.request = request
        self.flow = flow
        self.state = ClientNonInviteState.TRYING
        self.final_status: int | None = None
        self._config = timers
        self._data = data
        self._timers = _Timers((_CNI.TIMER_F, _CNI.TIMER_K, _CNI.TIMER_E))
        self._timer_e_s = timers.t1_s
        self._timers.arm(_CNI.TIMER_F, now + timers.timeout_s)
        if not flow.reliable:
            self._timers.arm(_CNI.TIMER_E, now + self._timer_e_s)

    @property
    def terminated(self) -> bool:
        return self.state is ClientNonInviteState.TERMINATED

    def receive_response(self, status: int, now: float) -> Outcome:
        """Handle a response matched to this transaction."""
        _check_status(status)
        input_ = _CNI.PROVISIONAL_RECEIVED if status < 200 else _CNI.FINAL_RECEIVED
        outcome = self._apply(input_, now).then(self.handle_timer(now))
        if outcome.delivered and status >= 200:
            self.final_status = status
        return outcome

    def handle_timer(self, now: float) -> Outcome:
        outcome = Outcome()
        while (timer := self._timers.pop_due(now)) is not None:
            outcome = outcome.then(self._apply(timer, now))
        return outcome

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def _apply(self, input_: ClientNonInviteInput, now: float) -> Outcome:
        action, state = transition(CLIENT_NON_INVITE_TABLE, self.state, input_)
        send: tuple[bytes, ...] = (self._data,) if action is Action.RESEND else ()
        if input_ is _CNI.TIMER_E:
            # §17.1.2.2: E doubles up to T2 in Trying and is T2 in Proceeding.
            if state is _CN.TRYING:
                self._timer_e_s = min(2 * self._timer_e_s, self._config.t2_s)
            else:
                self._timer_e_s = self._config.t2_s
            self._timers.arm(_CNI.TIMER_E, now + self._timer_e_s)
        if state is not self.state:
            self.state = state
            if state is _CN.COMPLETED:
                self._timers.cancel(_CNI.TIMER_E, _CNI.TIMER_F)
                delay_s = 0.0 if self.flow.reliable else self._config.t4_s
                self._timers.arm(_CNI.TIMER_K, now + delay_s)
            elif state is _CN.TERMINATED:
                self._timers.cancel(*ClientNonInviteInput)
        return Outcome(send, action is Action.DELIVER, action is Action.TIME_OUT)


ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction
