"""What the SIP core tells the application: frozen, past-tense events, drained FIFO.

Each event says what already happened on the wire or in the core; the application
answers through `SipCore` methods (`respond_invite`, `respond`, `hangup`). Events carry
no behaviour and know nothing of rooms, SDP or accounts.

A call we place (`SipCore.invite`) gets `CallProgress` for each 1xx, then exactly one of
`CallAnswered` or `CallFailed`; from then on it is like a call we answered
(`ByeReceived`, `ReinviteReceived`, `RequestReceived`), and `CallEnded` comes once at
the end, right after `CallFailed` when there is no dialog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from bridge.sip.flow import Flow
from bridge.sip.message import Request, Response
from bridge.sip.transaction import TransactionKey


@dataclass(frozen=True, slots=True)
class CallRef:
    """Identifies one call: its Call-ID and the From tag of the side that called.

    For a call the bridge answered that is the caller's Call-ID and From tag; our own To
    tag is left out, since a UAS that never forks has one dialog per caller INVITE and
    a second INVITE with the same pair is refused as merged (§8.2.2.2). For a call the
    bridge placed it is our own Call-ID and our own From tag (so `remote_tag` then names
    our tag, not the peer's). Our Call-IDs are fresh random values with our host, so
    the two kinds cannot clash.
    """

    call_id: str
    remote_tag: str  # the caller's From tag; "" for RFC 2543 callers that send none


@dataclass(frozen=True, slots=True)
class InviteReceived:
    """A new INVITE outside any dialog; the core sent 100 Trying.

    The application must answer it with `respond_invite(call, ...)`.
    """

    call: CallRef
    request: Request
    flow: Flow


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    """The ACK for our 2xx (to the INVITE or a re-INVITE) arrived (RFC 3261 §13.3.1.4).

    When our 2xx carried the offer, `ack.body` is the SDP answer.
    """

    call: CallRef
    ack: Request


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    """Our 2xx went unacknowledged for 64*T1; the application should hang up (§13.3.1.4)."""

    call: CallRef


@dataclass(frozen=True, slots=True)
class CallCancelled:
    """CANCEL arrived before the final answer; the core sent 200 (CANCEL) and 487 (INVITE)."""

    call: CallRef


@dataclass(frozen=True, slots=True)
class ReinviteReceived:
    """An INVITE inside a confirmed dialog; answer it with `respond_invite(call, ...)`."""

    call: CallRef
    request: Request


@dataclass(frozen=True, slots=True)
class ByeReceived:
    """The caller hung up; the core already answered 200 OK."""

    call: CallRef


@dataclass(frozen=True, slots=True)
class CallProgress:
    """A 1xx arrived for a call we placed (100 Trying, 180 Ringing, 183...), for the log."""

    call: CallRef
    status: int


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """A 2xx answered a call we placed; the core sent its ACK (RFC 3261 §13.2.2.4).

    `response.body` is the SDP answer to our offer. The core re-ACKs retransmissions of
    this 2xx by itself, and ACKs and BYEs a 2xx from any other fork.
    """

    call: CallRef
    response: Response


@dataclass(frozen=True, slots=True)
class CallFailed:
    """A call we placed ended before it was answered; `CallEnded` follows.

    `status` is the final response's (after at most one answer per digest challenge;
    a repeated one gives 401/407 "authentication failed"; a 2xx we cannot use, without
    a SIP Contact, 502), 408 when nothing answered before Timer B, and 487 when we hung
    up first and no other final response crossed our CANCEL (a 2xx coming anyway was
    ACKed and BYEd; `CallEnded` then waits for the BYE).
    """

    call: CallRef
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The final response to a request sent with `SipCore.send_request`.

    `branch` is what `send_request` returned. When no final response came within 64*T1
    (Timer F), `response` is a 408 the core made up from the request itself: it copies
    Via, From, To, Call-ID and CSeq, and has no To tag.
    """

    branch: str
    response: Response


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call and its dialog are gone, for whatever reason; sent exactly once per call."""

    call: CallRef
    reason: str


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A request the core does not handle itself (REGISTER, INFO, ...).

    `call` is set when the request came inside one of our dialogs. The application
    answers with `respond(key, response)`, building the response from `request`.
    """

    request: Request
    flow: Flow
    key: TransactionKey
    call: CallRef | None


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """Input the core could not use (malformed, unmatched), for the log."""

    reason: str
    flow: Flow


SipEvent: TypeAlias = (
    InviteReceived
    | CallConfirmed
    | AckTimedOut
    | CallCancelled
    | ReinviteReceived
    | ByeReceived
    | CallProgress
    | CallAnswered
    | CallFailed
    | CallEnded
    | RequestReceived
    | ResponseReceived
    | MessageDropped
)
