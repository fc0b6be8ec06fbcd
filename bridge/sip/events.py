"""What the SIP core tells the application: frozen, past-tense events, drained FIFO.

Each event says what already happened on the wire or in the core; the application
answers through `SipCore` methods (`respond_invite`, `respond`, `hangup`). Events carry
no behaviour and know nothing of rooms, SDP or accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from bridge.sip.flow import Flow
from bridge.sip.message import Request
from bridge.sip.transaction import TransactionKey


@dataclass(frozen=True, slots=True)
class CallRef:
    """Identifies one call the bridge answered: the caller's Call-ID and From tag.

    Our own To tag is left out: a UAS that never forks has one dialog per caller
    INVITE, and a second INVITE with the same pair is refused as merged (§8.2.2.2).
    """

    call_id: str
    remote_tag: str  # the From tag of the caller; "" for RFC 2543 peers that send none


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
    | CallEnded
    | RequestReceived
    | MessageDropped
)
