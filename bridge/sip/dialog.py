"""Dialogs (RFC 3261 §12), the INVITE session that lives in one (§13-§15), and the call
attempt that precedes a dialog we create by calling out (§13.2).

A `Dialog` is the state two UAs share: Call-ID, tags, CSeq numbers, route set, remote
target and the flow it runs over; it checks the peer's CSeq order and builds our
in-dialog requests (§12.2). An `InviteSession` is the INVITE usage on top of it (pjsip's
split): answered or not, acknowledged or not, ending or not; which INVITE still awaits
the application's answer; which 2xx still awaits its ACK. A `CallAttempt` is a call we
place until its final response: ringing, cancelled, challenged, answered or failed; on a
2xx the core builds the dialog (`Dialog.for_uac`) and a confirmed `InviteSession`, so
in-dialog requests from the far end are handled alike whoever called whom. None of
them sends anything or knows the application: the core drives them and turns their
changes into datagrams.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from bridge.sip.auth import ClientCredentials, DigestChallenge
from bridge.sip.errors import LocalProtocolError, RemoteProtocolError, SipParseError
from bridge.sip.events import CallRef
from bridge.sip.flow import Flow
from bridge.sip.message import NameAddress, Request, Response, make_request
from bridge.sip.transaction import (
    ClientInviteTransaction,
    ServerInviteTransaction,
    TimerConfig,
)
from bridge.sip.uri import SipUri

MAX_FORWARDS = 70  # RFC 3261 §8.1.1.6


def parse_remote_target(message: Request | Response) -> str:
    """Return the Contact URI of a dialog-creating or target-refresh message (§12.1).

    A missing Contact, or one that is not a SIP or SIPS URI, leaves us no address for
    in-dialog requests; in a request both are a 400 (§8.1.1.8 requires a SIP URI in
    Contact, §12.1.1 the same of a dialog-creating response).
    """
    contacts = message.contacts
    if not contacts:
        raise SipParseError("missing Contact header")
    uri = contacts[0].uri
    if SipUri.parse(uri).scheme not in ("sip", "sips"):
        raise SipParseError(f"Contact is not a SIP URI: {uri[:60]!r}")
    return uri


def parse_route_set(message: Request | Response) -> tuple[str, ...]:
    """Return the Record-Route entries in order, as received (§12.1), checked to be SIP URIs."""
    entries = tuple(message.headers.get_list("Record-Route"))
    for entry in entries:
        uri = NameAddress.parse(entry).uri
        if SipUri.parse(uri).scheme not in ("sip", "sips"):
            raise SipParseError(f"Record-Route is not a SIP URI: {uri[:60]!r}")
    return entries


@dataclass(eq=False)
class Dialog:
    """One dialog, as the UAS (§12.1.1) or the UAC (§12.1.2) holds it.

    `local_address` is our From in requests we send (the INVITE's To when we answered,
    its From when we called) and `remote_address` their To, the peer's tag included.
    `local_cseq` is the last CSeq number we used; `remote_cseq` the highest the peer
    used (0 until it sends one on a dialog we created: §12.1.2 leaves it empty).
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_address: NameAddress
    remote_address: NameAddress
    remote_target: str
    route_set: tuple[str, ...]
    remote_cseq: int
    local_cseq: int
    flow: Flow

    @classmethod
    def for_uas(cls, invite: Request, *, local_tag: str, local_cseq: int, flow: Flow) -> Dialog:
        """Build the dialog a 2xx (or a 1xx with a To tag) to `invite` creates (§12.1.1).

        The initial `local_cseq` comes from the caller (chosen at random by the core,
        §8.1.1.5); the flow is the one the INVITE arrived on, which our in-dialog
        requests reuse (NAT and TCP friendly).
        """
        remote = invite.from_address
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag or "",
            local_address=invite.to_address,
            remote_address=remote,
            remote_target=parse_remote_target(invite),
            route_set=parse_route_set(invite),
            remote_cseq=invite.cseq.number,
            local_cseq=local_cseq,
            flow=flow,
        )

    @classmethod
    def for_uac(cls, invite: Request, response: Response, flow: Flow) -> Dialog:
        """Build the dialog a 2xx to our `invite` creates (RFC 3261 §12.1.2).

        The route set is the 2xx's Record-Route in reverse order, the remote target its
        Contact, the remote tag its To tag; our CSeq goes on from the INVITE's and the
        peer's starts empty. Raises `SipParseError` for a 2xx without a SIP Contact or
        with a Record-Route that is not a SIP URI.
        """
        remote = response.to_address
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_address.tag or "",
            remote_tag=remote.tag or "",
            local_address=invite.from_address,
            remote_address=remote,
            remote_target=parse_remote_target(response),
            route_set=tuple(reversed(parse_route_set(response))),
            remote_cseq=0,
            local_cseq=invite.cseq.number,
            flow=flow,
        )

    def receive_cseq(self, number: int) -> None:
        """Check and record the CSeq of an in-dialog request (RFC 3261 §12.2.2).

        Lower than the remote sequence number is out of order: 500. Gaps are fine.
        """
        if number < self.remote_cseq:
            raise RemoteProtocolError(
                f"CSeq {number} is lower than {self.remote_cseq} (out of order)", status_hint=500
            )
        self.remote_cseq = number

    def refresh_target(self, request: Request) -> None:
        """Take the new remote target of an accepted re-INVITE (§12.2.2 target refresh)."""
        self.remote_target = parse_remote_target(request)

    def make_request(self, method: str, via: str, *, cseq: int | None = None) -> Request:
        """Build our next in-dialog request (RFC 3261 §12.2.1.1); the caller adds the rest.

        To is the peer's address with its tag, From ours with our tag, CSeq is one more
        than the last we used, or `cseq` without counting (an ACK for a 2xx takes its
        INVITE's number, §13.2.2.4). With a loose-routing first route (`;lr`) the
        Request-URI is the remote target and Route is the route set; otherwise the
        first route is a strict router and becomes the Request-URI, and the remote
        target goes last in Route.
        """
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        uri, routes = self._target_and_routes()
        headers = [
            ("Via", via),
            ("Max-Forwards", str(MAX_FORWARDS)),
            ("From", str(self.local_address.with_tag(self.local_tag))),
            ("To", str(self.remote_address)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        headers += [("Route", route) for route in routes]
        return make_request(method, uri, headers)

    def _target_and_routes(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = SipUri.parse(NameAddress.parse(self.route_set[0]).uri)
        if first.param("lr") is not None:
            return self.remote_target, list(self.route_set)
        # §12.2.1.1 strict routing: the Request-URI loses parameters a Request-URI may
        # not carry (§19.1.1 table: `method`) and any URI headers.
        params = tuple((name, value) for name, value in first.params if name != "method")
        request_uri = str(first.with_params(params)).partition("?")[0]
        return request_uri, [*self.route_set[1:], f"<{self.remote_target}>"]


class SessionState(enum.Enum):
    INCOMING = "incoming"  # INVITE received, no answer from the application yet
    EARLY = "early"  # a 101-199 with our To tag was sent: an early dialog (§12.1)
    ACCEPTED = "accepted"  # our 2xx was sent; waiting for its ACK
    CONFIRMED = "confirmed"  # the ACK arrived (or stopped being waited for)
    TERMINATING = "terminating"  # our BYE is in flight
    TERMINATED = "terminated"  # the call is over; the core forgets the session


class SessionInput(enum.Enum):
    PROVISIONAL_SENT = "101-199 to an INVITE"
    SUCCESS_SENT = "2xx to an INVITE"
    FAILURE_SENT = "3xx-6xx to an INVITE"
    CANCEL_RECEIVED = "CANCEL of a pending INVITE"
    ACK_RECEIVED = "ACK for our 2xx"
    ACK_TIMED_OUT = "no ACK for our 2xx within 64*T1"
    BYE_RECEIVED = "BYE from the peer"
    BYE_SENT = "our BYE"
    BYE_COMPLETED = "final response to our BYE, or its timeout"


_S = SessionState
_I = SessionInput

# The UAS INVITE usage (RFC 3261 §13.3, §14.2, §15). re-INVITEs live in CONFIRMED: their
# answers and ACKs do not change the session state (a rejected re-INVITE keeps the call).
#
#            INVITE
#              |
#              V        1xx
#        +----------+ -----> +-------+ 1xx
#        | INCOMING |        | EARLY |<---+
#        +----------+        +-------+----+
#     2xx |   | 3xx-6xx,   2xx |   | 3xx-6xx, CANCEL, BYE
#         |   | CANCEL         |   |
#         V   +----------------|---+------------------------------+
#        +----------+ <--------+                                  |
#        | ACCEPTED |-- BYE ------------------------------------->|
#        +----------+                                             |
#    ACK, 64*T1 |                                                 |
#               V                                                 V
#        +-----------+ --- BYE received ------------------> +------------+
#        | CONFIRMED |                                      | TERMINATED |
#        +-----------+ --- BYE sent --> +-------------+ --> +------------+
#     re-INVITE: 1xx, 2xx,              | TERMINATING |  BYE answered or
#     3xx-6xx, CANCEL, ACK, 64*T1       +-------------+  timed out; BYE received
SESSION_TABLE: dict[tuple[SessionState, SessionInput], SessionState] = {
    (_S.INCOMING, _I.PROVISIONAL_SENT): _S.EARLY,
    (_S.INCOMING, _I.SUCCESS_SENT): _S.ACCEPTED,
    (_S.INCOMING, _I.FAILURE_SENT): _S.TERMINATED,
    (_S.INCOMING, _I.CANCEL_RECEIVED): _S.TERMINATED,
    (_S.EARLY, _I.PROVISIONAL_SENT): _S.EARLY,
    (_S.EARLY, _I.SUCCESS_SENT): _S.ACCEPTED,
    (_S.EARLY, _I.FAILURE_SENT): _S.TERMINATED,
    (_S.EARLY, _I.CANCEL_RECEIVED): _S.TERMINATED,
    (_S.EARLY, _I.BYE_RECEIVED): _S.TERMINATED,
    (_S.ACCEPTED, _I.ACK_RECEIVED): _S.CONFIRMED,
    (_S.ACCEPTED, _I.ACK_TIMED_OUT): _S.CONFIRMED,
    (_S.ACCEPTED, _I.BYE_RECEIVED): _S.TERMINATED,
    (_S.CONFIRMED, _I.PROVISIONAL_SENT): _S.CONFIRMED,
    (_S.CONFIRMED, _I.SUCCESS_SENT): _S.CONFIRMED,
    (_S.CONFIRMED, _I.FAILURE_SENT): _S.CONFIRMED,
    (_S.CONFIRMED, _I.CANCEL_RECEIVED): _S.CONFIRMED,
    (_S.CONFIRMED, _I.ACK_RECEIVED): _S.CONFIRMED,
    (_S.CONFIRMED, _I.ACK_TIMED_OUT): _S.CONFIRMED,
    (_S.CONFIRMED, _I.BYE_RECEIVED): _S.TERMINATED,
    (_S.CONFIRMED, _I.BYE_SENT): _S.TERMINATING,
    (_S.TERMINATING, _I.BYE_RECEIVED): _S.TERMINATED,
    (_S.TERMINATING, _I.BYE_COMPLETED): _S.TERMINATED,
}


class AnswerTimer(enum.Enum):
    IDLE = "nothing due"
    RETRANSMIT = "send the 2xx again"
    GIVE_UP = "64*T1 passed without an ACK"


class AnswerRetransmitter:
    """Retransmit our 2xx to an INVITE until its ACK arrives (RFC 3261 §13.3.1.4).

    The interval starts at T1 and doubles up to T2; after 64*T1 the dialog counts as
    confirmed but the session should end. On reliable transports the transport does
    the retransmitting, so only the 64*T1 limit applies. `transaction` is the INVITE's,
    in Accepted state, through which the copies go (RFC 6026 §8.7).
    """

    def __init__(
        self,
        transaction: ServerInviteTransaction,
        status: int,
        response: bytes,
        *,
        now: float,
        timers: TimerConfig,
    ) -> None:
        self.transaction = transaction
        self.cseq = transaction.request.cseq.number
        self.status = status
        self.response = response
        self._t2_s = timers.t2_s
        self._interval_s = timers.t1_s
        self._give_up_at: float | None = now + timers.timeout_s
        reliable = transaction.flow.reliable
        self._retransmit_at = None if reliable else now + self._interval_s

    def next_deadline(self) -> float | None:
        deadlines = [at for at in (self._give_up_at, self._retransmit_at) if at is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> AnswerTimer:
        """Say what is due at `now`; giving up wins over a retransmission due as well."""
        if self._give_up_at is not None and now >= self._give_up_at:
            self._give_up_at = self._retransmit_at = None
            return AnswerTimer.GIVE_UP
        if self._retransmit_at is not None and now >= self._retransmit_at:
            self._interval_s = min(2 * self._interval_s, self._t2_s)
            self._retransmit_at = now + self._interval_s
            return AnswerTimer.RETRANSMIT
        return AnswerTimer.IDLE


@dataclass(eq=False)
class InviteSession:
    """One call with a dialog: its dialog and where its INVITE usage stands.

    A call the bridge answers starts INCOMING; one it placed starts CONFIRMED (`placed`),
    made when the 2xx was ACKed. `pending_invite` is the INVITE (initial or re-INVITE)
    whose final answer the application still owes; `answer` is our 2xx awaiting its
    ACK. `acked_cseq` lets retransmitted ACKs be absorbed. `bye_pending` records a
    hangup that must wait for the ACK (§15: no BYE before the 2xx is acknowledged).
    """

    call: CallRef
    dialog: Dialog
    state: SessionState = SessionState.INCOMING
    pending_invite: ServerInviteTransaction | None = None
    answer: AnswerRetransmitter | None = None
    acked_cseq: int | None = None
    bye_pending: bool = False
    placed: bool = False

    @property
    def flow(self) -> Flow:
        return self.dialog.flow

    def apply(self, input_: SessionInput) -> SessionState:
        """Move along SESSION_TABLE; an input it does not list is our own bug."""
        state = SESSION_TABLE.get((self.state, input_))
        if state is None:
            raise LocalProtocolError(
                f"{input_.name} is not allowed in session state {self.state.name}"
            )
        self.state = state
        return state

    def next_deadline(self) -> float | None:
        return self.answer.next_deadline() if self.answer is not None else None


class AttemptState(enum.Enum):
    CALLING = "calling"  # our INVITE is out, no response to it yet
    PROCEEDING = "proceeding"  # a 1xx arrived, so a CANCEL may be sent (§9.1)
    CANCELLING = "cancelling"  # we hung up: CANCEL sent, or waiting for a 1xx to send it
    ANSWERED = "answered"  # a 2xx arrived and was ACKed: the call's InviteSession took over
    FAILED = "failed"  # a final non-2xx, a timeout, or our hangup ended the attempt


class AttemptInput(enum.Enum):
    PROVISIONAL_RECEIVED = "1xx to the INVITE"
    SUCCESS_RECEIVED = "first 2xx to the INVITE"
    FAILURE_RECEIVED = "3xx-6xx to the INVITE, not retried"
    CHALLENGE_ANSWERED = "401/407 answered: the INVITE went again with credentials"
    TIMED_OUT = "Timer B, or no final response 64*T1 after our CANCEL"
    HANGUP = "the application hung up before a final response"


_A = AttemptState
_AI = AttemptInput

# The UAC INVITE usage until a final response (RFC 3261 §13.2.2, §9.1, §22.2). A 2xx
# after our CANCEL still makes a dialog, which the core ACKs and BYEs (§15); for the
# application that attempt failed all the same.
#
#                  INVITE sent
#                      |    +-- 401/407 answered: the INVITE again, CALLING --+
#                      V    V                                                 |
#   +----------+ 2xx +---------+  1xx  +------------+  1xx (stays)            |
#   | ANSWERED |<----| CALLING |------>| PROCEEDING |-------------------------+
#   +----------+<-+  +---------+       +------------+
#                 |    |     | hangup    |   |   | hangup
#                 |    |     +-----------|---|---|----> +------------+  1xx: send the
#                 |    | 3xx-6xx,        |   |   +----> | CANCELLING |  CANCEL if it
#                 +----|----- 2xx -------+   |          +------------+  is not sent yet
#                      | Timer B             | 3xx-6xx       |
#                      V                     |               | any final response,
#                 +--------+ <---------------+               | Timer B, or 64*T1
#                 | FAILED | <-------------------------------+ after the CANCEL
#                 +--------+
ATTEMPT_TABLE: dict[tuple[AttemptState, AttemptInput], AttemptState] = {
    (_A.CALLING, _AI.PROVISIONAL_RECEIVED): _A.PROCEEDING,
    (_A.CALLING, _AI.SUCCESS_RECEIVED): _A.ANSWERED,
    (_A.CALLING, _AI.FAILURE_RECEIVED): _A.FAILED,
    (_A.CALLING, _AI.CHALLENGE_ANSWERED): _A.CALLING,
    (_A.CALLING, _AI.TIMED_OUT): _A.FAILED,
    (_A.CALLING, _AI.HANGUP): _A.CANCELLING,
    (_A.PROCEEDING, _AI.PROVISIONAL_RECEIVED): _A.PROCEEDING,
    (_A.PROCEEDING, _AI.SUCCESS_RECEIVED): _A.ANSWERED,
    (_A.PROCEEDING, _AI.FAILURE_RECEIVED): _A.FAILED,
    (_A.PROCEEDING, _AI.CHALLENGE_ANSWERED): _A.CALLING,
    (_A.PROCEEDING, _AI.HANGUP): _A.CANCELLING,
    (_A.CANCELLING, _AI.PROVISIONAL_RECEIVED): _A.CANCELLING,
    (_A.CANCELLING, _AI.SUCCESS_RECEIVED): _A.FAILED,
    (_A.CANCELLING, _AI.FAILURE_RECEIVED): _A.FAILED,
    (_A.CANCELLING, _AI.TIMED_OUT): _A.FAILED,
}
LIVE_ATTEMPT_STATES = frozenset({_A.CALLING, _A.PROCEEDING, _A.CANCELLING})


@dataclass(eq=False)
class CallAttempt:
    """One call we place, from our INVITE to its final response (RFC 3261 §13.2).

    `invite` and `transaction` are the latest INVITE and its client transaction (each
    answered challenge sends a new one, §22.2). `challenges` holds each challenge
    answered, by (header name, realm), with the requests that answered it, so a retry
    answers all of them again with the nonce count moved on (RFC 7616 §3.4) and a second
    challenge for one already answered is recognised. `acks` holds, per
    To tag, our ACK of that 2xx, resent for each retransmission (§13.2.2.4).
    `cancel_sent` and `give_up_at` follow §9.1: CANCEL only after a 1xx, and the INVITE
    is given up 64*T1 after the CANCEL if no final response came.
    """

    call: CallRef
    invite: Request
    transaction: ClientInviteTransaction
    flow: Flow
    credentials: ClientCredentials | None
    state: AttemptState = AttemptState.CALLING
    challenges: dict[tuple[str, str], tuple[DigestChallenge, int]] = field(
        default_factory=dict
    )
    answered_tag: str | None = None
    acks: dict[str, bytes] = field(default_factory=dict)
    cancel_sent: bool = False
    give_up_at: float | None = None

    @property
    def live(self) -> bool:
        """True until the attempt is answered or has failed."""
        return self.state in LIVE_ATTEMPT_STATES

    def apply(self, input_: AttemptInput) -> AttemptState:
        """Move along ATTEMPT_TABLE; an input it does not list is our own bug."""
        state = ATTEMPT_TABLE.get((self.state, input_))
        if state is None:
            raise LocalProtocolError(
                f"{input_.name} is not allowed in attempt state {self.state.name}"
            )
        self.state = state
        if state is not AttemptState.CANCELLING:
            self.give_up_at = None
        return state

    def next_deadline(self) -> float | None:
        return self.give_up_at
