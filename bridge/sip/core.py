"""The UA core (RFC 3261 §8, §12-§17, §22.2; RFC 3581; RFC 6026): bytes and `now` in,
datagrams, events and one next deadline out (the aioquic shape).

It owns the transactions, dialogs and INVITE sessions of a bridge that answers calls and
places them, and does by itself what needs no decision: 100 Trying, retransmissions,
CANCEL, BYE, OPTIONS, the 4xx/5xx for requests it cannot take, the ACKs of the calls it
places and their retries with digest credentials. Everything else goes up as an event;
the application answers INVITEs with `respond_invite` and other requests with `respond`,
places calls with `invite`, sends other requests (REGISTER, OPTIONS) with
`send_request`, and ends calls with `hangup`. It checks no credentials (that is
`bridge.sip.auth`'s server side, used by the application), and does no SDP or routing.
Nothing here reads a clock, draws from a global random source or touches a socket.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import random
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from bridge.sip.auth import ClientCredentials, select_challenge
from bridge.sip.dialog import (
    MAX_FORWARDS,
    AnswerRetransmitter,
    AnswerTimer,
    AttemptInput,
    AttemptState,
    CallAttempt,
    Dialog,
    InviteSession,
    SessionInput,
    SessionState,
    parse_remote_target,
    parse_route_set,
)
from bridge.sip.errors import LocalProtocolError, RemoteProtocolError, SipParseError
from bridge.sip.events import (
    AckTimedOut,
    ByeReceived,
    CallAnswered,
    CallCancelled,
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
from bridge.sip.message import (
    Headers,
    NameAddress,
    Request,
    Response,
    Via,
    make_request,
    response_to,
    split_header_list,
)
from bridge.sip.parser import PartialMessage, parse_message
from bridge.sip.transaction import (
    MAGIC_COOKIE,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Outcome,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    ServerTransaction,
    TimerConfig,
    TransactionKey,
)
from bridge.sip.uri import SipUri

__all__ = ["CoreStats", "SipCore", "TimerConfig"]

# Methods RFC 3261 and its common extensions define: a method we do not allow gets 405
# if it is one of these (we know what it is and refuse it), 501 otherwise (§8.2.1).
KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "UPDATE", "PRACK",
    }
)
# Option tags (§19.2) we implement: none yet, so any Require gets 420 (§8.2.2.3).
SUPPORTED_OPTION_TAGS: tuple[str, ...] = ()
DEFAULT_TIMERS = TimerConfig()
DEFAULT_CONTACT_USER = "telerapat"  # the user part of our Contact in calls we place
# Challenges one placed call answers at most: a proxy's 407, the far end's 401 and a
# stale nonce; more means a server that never accepts us.
MAX_CHALLENGES_ANSWERED = 3
_DIGITS = re.compile(r"^[0-9]{1,10}$", re.ASCII)
_AUTHORIZATION_HEADERS = ("Authorization", "Proxy-Authorization")


@dataclass(frozen=True, slots=True)
class CoreStats:
    """How much state the core holds: for logs, metrics and leak tests."""

    server_transactions: int
    client_transactions: int
    calls: int
    timers: int  # entries in the deadline heap, stale ones included


@dataclass(frozen=True, slots=True)
class _Rejection:
    """A response the core gives instead of handling a request."""

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _ClientEntry:
    """A non-INVITE request we sent, and whom its final response (or timeout) concerns.

    `call` is None for `send_request` (the response goes up as `ResponseReceived`);
    `ends_call` marks the BYE of the call's own dialog, whose completion ends the call.
    A CANCEL, or a BYE to another fork's dialog, concerns nobody once sent.
    """

    transaction: ClientNonInviteTransaction
    call: CallRef | None
    ends_call: bool = False


class _TimerOwner(Protocol):
    def next_deadline(self) -> float | None: ...


def _uri_host(host: str) -> str:
    """Bracket an IPv6 address for use in a URI or Via (RFC 3261 §25.1, RFC 5118)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _check_uri(uri: str, role: str) -> None:
    """Refuse a URI the application gave us that a peer could not parse."""
    try:
        SipUri.parse(uri)
    except SipParseError as exc:
        raise ValueError(f"invalid {role}: {exc}") from None


def _loose_route_set(route: Sequence[str]) -> tuple[str, ...]:
    """Check a pre-loaded route set (RFC 3261 §8.1.2) and print it as Route values.

    Entries are `<sip:proxy;lr>` or bare `sip:proxy;lr` (whose `;lr` is a URI parameter
    here). A first route without `lr` is a strict router (§16.4), which would take the
    Request-URI's place: not supported, so ValueError.
    """
    entries: list[NameAddress] = []
    for value in route:
        text = value.strip()
        try:
            address = NameAddress.parse(text) if "<" in text else NameAddress(text)
            scheme = SipUri.parse(address.uri).scheme
        except SipParseError as exc:
            raise ValueError(f"invalid route {value!r}: {exc}") from None
        if scheme not in ("sip", "sips"):
            raise ValueError(f"route is not a SIP URI: {value!r}")
        entries.append(address)
    if entries and SipUri.parse(entries[0].uri).param("lr") is None:
        raise ValueError(f"strict routing is not supported: {route[0]!r} has no ;lr")
    return tuple(str(address) for address in entries)


def _add_to_tag(response: Response, tag: str) -> None:
    """Give a response's To a tag when it has none, keeping the rest as the peer sent it."""
    to_value = response.headers.get("To")
    if to_value is not None and NameAddress.parse(to_value).tag is None:
        response.headers.set("To", f"{to_value.rstrip().rstrip(';').rstrip()};tag={tag}")


def _stamp_via(request: Request, flow: Flow) -> None:
    """Record where the request really came from in its top Via (RFC 3261 §18.2.1, RFC 3581 §4).

    With `rport`, set it to the source port and add `received` even when the address
    matches; without, add `received` when the sent-by host is not the source address.
    Responses copy this Via, and go back to the source whatever it says.
    """
    items = list(request.headers)
    for index, (name, value) in enumerate(items):
        if name != "Via":
            continue
        elements = split_header_list(value)
        if not elements:
            continue
        via = Via.parse(elements[0])
        source = flow.remote_host
        if via.param("rport") is not None:
            stamped = via.with_param("rport", str(flow.remote_port))
            stamped = stamped.with_param("received", source)
        elif via.host.strip("[]").lower() != source.lower():
            stamped = via.with_param("received", source)
        else:
            return
        elements[0] = str(stamped)
        items[index] = (name, ", ".join(elements))
        request.headers = Headers(items)
        return
    raise SipParseError("missing Via header")


class SipCore:
    """A SIP UA core for a conference bridge: answers and places calls, keeps dialogs."""

    def __init__(
        self,
        *,
        rng: random.Random,
        user_agent: str = "telerapat",
        timers: TimerConfig = DEFAULT_TIMERS,
        external_address: str | None = None,
        allow: tuple[str, ...] = (
            "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "REGISTER",
        ),
        accept: tuple[str, ...] = ("application/sdp", "application/dtmf-relay"),
    ) -> None:
        self._rng = rng
        self._user_agent = user_agent
        self._timers = timers
        self._external_address = external_address
        self._allow = allow
        self._accept = tuple(media_type.lower() for media_type in accept)
        self._server_transactions: dict[TransactionKey, ServerTransaction] = {}
        # Non-INVITE client transactions by (branch, method), INVITE ones by branch; an
        # INVITE's CANCEL shares its branch (§9.1), so the method tells them apart.
        self._client_transactions: dict[tuple[str, str], _ClientEntry] = {}
        self._invite_transactions: dict[str, tuple[ClientInviteTransaction, CallAttempt]] = {}
        self._sessions: dict[CallRef, InviteSession] = {}
        # Calls we placed, until their last INVITE transaction ends (a 2xx is re-ACKed
        # until then); once answered, the call's InviteSession is in `_sessions` too.
        self._attempts: dict[CallRef, CallAttempt] = {}
        # Deadlines of transactions and sessions; an entry is stale once its owner's
        # next deadline differs, and is skipped when popped.
        self._deadlines: list[tuple[float, int, _TimerOwner]] = []
        self._deadline_order = itertools.count()
        self._outgoing: list[tuple[bytes, Flow]] = []
        self._events: deque[SipEvent] = deque()

    # -- inputs --------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, flow: Flow, now: float) -> None:
        """Take one UDP datagram or one framed stream message that arrived on `flow`.

        Bad input never raises: it is answered when a response can reach its sender,
        and reported as `MessageDropped` either way.
        """
        try:
            message = parse_message(data, stream=flow.reliable)
        except PartialMessage as exc:
            self._answer_unparsable(exc, flow)
            return
        except SipParseError as exc:
            self._drop(f"unparsable message: {exc}", flow)
            return
        try:
            if isinstance(message, Request):
                self._receive_request(message, flow, now)
            else:
                self._receive_response(message, flow, now)
        except SipParseError as exc:
            # A header view only parsed on use (a second Via, a Route...) was malformed.
            self._drop(f"malformed {_describe(message)}: {exc}", flow)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due by `now`."""
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, owner = heapq.heappop(self._deadlines)
            if owner.next_deadline() == deadline:
                self._fire(owner, now)

    # -- outputs -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """Return when `handle_timer` must next run, or None when no timer is armed."""
        while self._deadlines and self._deadlines[0][2].next_deadline() != self._deadlines[0][0]:
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def datagrams_to_send(self) -> list[tuple[bytes, Flow]]:
        """Drain the messages to send, each with the flow to send it on, in order."""
        out, self._outgoing = self._outgoing, []
        return out

    def next_event(self) -> SipEvent | None:
        """Pop the oldest event, or None."""
        return self._events.popleft() if self._events else None

    # -- application answers ---------------------------------------------------------------

    def respond_invite(
        self,
        call: CallRef,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        body: bytes = b"",
        content_type: str = "application/sdp",
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Answer the call's pending INVITE or re-INVITE (RFC 3261 §13.3.1).

        A 101-199 makes the dialog early; a 2xx is retransmitted until its ACK; a final
        non-2xx to the initial INVITE ends the call, to a re-INVITE keeps it. Ignored
        when the call has ended or its INVITE already has a final answer from the core
        (a CANCEL or BYE can overtake the application's answer).
        """
        if not 101 <= status <= 699:
            raise LocalProtocolError(f"cannot answer an INVITE with {status}")
        session = self._sessions.get(call)
        if session is None or session.pending_invite is None:
            return
        transaction = session.pending_invite
        initial = session.state in (SessionState.INCOMING, SessionState.EARLY)
        data = self._send_invite_response(
            session, transaction, status, now,
            reason=reason, body=body, content_type=content_type, headers=headers,
        )
        if status < 200:
            session.apply(SessionInput.PROVISIONAL_SENT)
            return
        session.pending_invite = None
        if status < 300:
            if not initial:
                session.dialog.refresh_target(transaction.request)
            session.answer = AnswerRetransmitter(
                transaction, status, data, now=now, timers=self._timers
            )
            session.apply(SessionInput.SUCCESS_SENT)
            self._schedule(session)
        elif session.apply(SessionInput.FAILURE_SENT) is SessionState.TERMINATED:
            self._end(session, f"rejected with {status}")

    def hangup(self, call: CallRef, now: float, *, status: int = 480) -> None:
        """End a call from our side (RFC 3261 §15).

        Confirmed: send BYE. Our 2xx not yet acknowledged: the BYE waits for the ACK or
        for the 2xx to time out (§15). Not answered yet: answer the INVITE with `status`.
        A call we placed and that has no final response yet is cancelled (§9.1): CANCEL
        at once after a 1xx, else when the first 1xx arrives, or the call ends on Timer
        B. It then fails with 487 (or with the final response that crossed our CANCEL;
        `status` is not used), and a 2xx arriving anyway is ACKed and BYEd. A BYE or
        CANCEL already sent, or an ended call, makes this a no-op.
        """
        if not 300 <= status <= 699:
            raise LocalProtocolError(f"cannot refuse an INVITE with {status}")
        session = self._sessions.get(call)
        if session is None:
            attempt = self._attempts.get(call)
            if attempt is not None and attempt.state in (
                AttemptState.CALLING, AttemptState.PROCEEDING
            ):
                self._cancel(attempt, now)
            return
        if session.state in (SessionState.INCOMING, SessionState.EARLY):
            self.respond_invite(call, status, now)
        elif session.answer is not None:
            session.bye_pending = True
        elif session.state is SessionState.CONFIRMED:
            self._send_bye(session, now)

    def respond(self, key: TransactionKey, response: Response, now: float) -> None:
        """Answer a request from a `RequestReceived` event.

        The core adds a To tag when a response above 100 lacks one (§8.2.6.2) and a
        Server header; the response goes to where the request came from.
        """
        transaction = self._server_transactions.get(key)
        if not isinstance(transaction, ServerNonInviteTransaction):
            raise LocalProtocolError(f"no request awaits an answer under {key}")
        response = replace(response, headers=response.headers.copy())
        if response.status > 100:
            _add_to_tag(response, self._new_tag())
        self._add_server(response)
        self._run(transaction, transaction.send_response(response.status, bytes(response), now))

    # -- requests we originate -------------------------------------------------------------

    def invite(
        self,
        *,
        request_uri: str,
        from_uri: str,
        flow: Flow,
        body: bytes,
        now: float,
        from_display: str | None = None,
        to_uri: str | None = None,
        credentials: ClientCredentials | None = None,
        route: Sequence[str] = (),
        contact_user: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> CallRef:
        """Place a call: send an INVITE with the SDP offer `body` over `flow` (§8.1.1, §13.2.1).

        To is `to_uri` (the Request-URI by default) without a tag, From is `from_uri`
        with a new tag, the Call-ID is new; `headers` go in as given. `route` is a
        pre-loaded route set (an outbound proxy, §8.1.2) of loose routers only. With
        `credentials`, each digest challenge (401/407) is answered once (§22.2). The
        outcome comes back as events (`CallProgress`, then `CallAnswered` or
        `CallFailed`). The CallRef is our Call-ID and our From tag. A call that rings
        forever stays until `hangup`: how long to let it ring is the application's call.
        Raises ValueError for an empty offer (no delayed offer here), an unparsable URI,
        or a strict router first in `route`.
        """
        if not body:
            raise ValueError("the INVITE must carry the SDP offer (no delayed offer)")
        routes = _loose_route_set(route)
        _check_uri(request_uri, "Request-URI")
        _check_uri(from_uri, "From URI")
        _check_uri(to_uri or request_uri, "To URI")
        call = CallRef(f"{self._rng.getrandbits(128):032x}@{flow.local_host}", self._new_tag())
        _, via = self._new_via(flow)
        from_address = NameAddress(from_uri, from_display, (("tag", call.remote_tag),))
        invite = make_request(
            "INVITE",
            request_uri,
            [
                ("Via", via),
                ("Max-Forwards", str(MAX_FORWARDS)),
                *(("Route", entry) for entry in routes),
                ("From", str(from_address)),
                ("To", str(NameAddress(to_uri or request_uri))),
                ("Call-ID", call.call_id),
                ("CSeq", "1 INVITE"),
                ("Contact", self._contact_uri(contact_user or DEFAULT_CONTACT_USER, flow)),
                *self._capabilities(),
                ("User-Agent", self._user_agent),
                *headers,
                ("Content-Type", "application/sdp"),
            ],
            body,
        )
        data = bytes(invite)
        transaction = ClientInviteTransaction(invite, data, flow, self._timers, now)
        attempt = CallAttempt(call, invite, transaction, flow, credentials)
        self._attempts[call] = attempt
        self._start_invite(attempt, data)
        return call

    def send_request(self, request: Request, flow: Flow, now: float) -> str:
        """Send a non-INVITE request outside any dialog (REGISTER, OPTIONS); return its branch.

        The core puts a top Via (a new branch, `rport`) on a copy of `request`, and
        Max-Forwards and User-Agent unless present, and retransmits it (§17.1.2). Its
        final response comes back as `ResponseReceived(branch, response)`; when none
        comes within 64*T1 (Timer F), that event carries a 408 the core made up.
        """
        if request.method in ("INVITE", "ACK", "CANCEL"):
            raise LocalProtocolError(f"send_request cannot send {request.method}: use invite")
        branch, via = self._new_via(flow)
        outgoing = replace(request, headers=Headers([("Via", via), *request.headers]))
        if "Max-Forwards" not in outgoing.headers:
            outgoing.headers.add("Max-Forwards", str(MAX_FORWARDS))
        self._send_client_request(outgoing, flow, now, call=None)
        return branch

    # -- queries -------------------------------------------------------------------------

    def call_flow(self, call: CallRef) -> Flow:
        """Return the flow the call's INVITE came in on or went out on, which its requests reuse."""
        session = self._sessions.get(call)
        if session is not None:
            return session.flow
        attempt = self._attempts.get(call)
        if attempt is None:
            raise LocalProtocolError(f"unknown call {call}")
        return attempt.flow

    def is_active(self, call: CallRef) -> bool:
        """True until the call's `CallEnded` event is queued."""
        attempt = self._attempts.get(call)
        return call in self._sessions or (attempt is not None and attempt.live)

    def stats(self) -> CoreStats:
        return CoreStats(
            server_transactions=len(self._server_transactions),
            client_transactions=len(self._client_transactions) + len(self._invite_transactions),
            calls=len(self._sessions.keys() | self._attempts.keys()),
            timers=len(self._deadlines),
        )

    # -- requests --------------------------------------------------------------------------

    def _receive_request(self, request: Request, flow: Flow, now: float) -> None:
        _stamp_via(request, flow)
        key = TransactionKey.for_request(request)
        if request.method == "ACK":
            self._receive_ack(request, key, flow, now)
            return
        existing = self._server_transactions.get(key)
        if existing is not None:
            self._run(existing, existing.receive_request(flow, now))
            return
        rejection = self._screen(request)
        if rejection is not None:
            self._reject(request, key, flow, now, rejection)
            return
        if request.method == "CANCEL":
            self._receive_cancel(request, key, flow, now)
            return
        to_tag = request.to_address.tag
        # REGISTER never belongs to a dialog (§10.2), whatever its To says.
        if to_tag is None or request.method == "REGISTER":
            call = CallRef(request.call_id, request.from_address.tag or "")
            self._receive_out_of_dialog(request, key, flow, now, call)
            return
        session = self._session_of(request)
        if session is None or session.dialog.local_tag != to_tag:
            # §12.2.2: a To tag matching no dialog (we may have restarted, or it ended).
            self._reject(request, key, flow, now, _Rejection(481))
            return
        try:
            session.dialog.receive_cseq(request.cseq.number)
        except RemoteProtocolError as exc:
            self._reject(request, key, flow, now, _Rejection(exc.status_hint, str(exc)))
            return
        if request.method == "INVITE":
            self._receive_reinvite(session, request, key, flow, now)
        elif request.method == "BYE":
            self._receive_bye(session, request, key, flow, now)
        elif request.method == "OPTIONS":
            self._answer_options(request, key, flow, now)
        else:
            self._pass_up(request, key, flow, session.call)

    def _session_of(self, request: Request) -> InviteSession | None:
        """Find the call a request from the peer belongs to, by its dialog IDs (§12.2.2).

        A call we answered is named by the peer's From tag; the To tag is checked by the
        caller (not at all for ACK, see `_receive_ack`). A call we placed is named by our
        tag, which the peer puts in To, and its From tag must be the dialog's remote tag.
        """
        from_tag = request.from_address.tag or ""
        session = self._sessions.get(CallRef(request.call_id, from_tag))
        if session is not None and not session.placed:
            return session
        to_tag = request.to_address.tag
        if to_tag is None:
            return None
        session = self._sessions.get(CallRef(request.call_id, to_tag))
        if session is not None and session.placed and session.dialog.remote_tag == from_tag:
            return session
        return None

    def _screen(self, request: Request) -> _Rejection | None:
        """Return the response a request gets before any handling, in RFC 3261 §8.2 order."""
        method = request.method
        allow = ("Allow", ", ".join(self._allow))
        if method not in self._allow:
            return _Rejection(405 if method in KNOWN_METHODS else 501, headers=(allow,))
        max_forwards = request.headers.get("Max-Forwards")
        if max_forwards is not None:
            if not _DIGITS.match(max_forwards.strip()):
                return _Rejection(400, f"Invalid Max-Forwards: {max_forwards[:20]!r}")
            # §16.3 is the proxy's rule, but a request that spent its hops is a loop;
            # except OPTIONS, which §11 lets a server answer at Max-Forwards 0 whatever
            # its Request-URI: monitors ping the first hop that way.
            if int(max_forwards) == 0 and method != "OPTIONS":
                return _Rejection(483)
        if method != "CANCEL":
            required = request.headers.get_list("Require")
            unsupported = [tag for tag in required if tag not in SUPPORTED_OPTION_TAGS]
            if unsupported:
                return _Rejection(420, headers=(("Unsupported", ", ".join(unsupported)),))
        content_type = request.content_type
        if (
            request.body
            and content_type
            and method not in ("BYE", "CANCEL")
            and content_type not in self._accept
        ):
            # §8.2.3: a body we cannot read; Accept says what we can.
            return _Rejection(415, headers=(("Accept", ", ".join(self._accept)),))
        if method == "INVITE":
            try:
                parse_remote_target(request)
                parse_route_set(request)
            except SipParseError as exc:
                return _Rejection(400, str(exc))
        return None

    def _receive_out_of_dialog(
        self, request: Request, key: TransactionKey, flow: Flow, now: float, call: CallRef
    ) -> None:
        if request.method == "INVITE":
            self._receive_invite(request, key, flow, now, call)
        elif request.method == "BYE":
            self._reject(request, key, flow, now, _Rejection(481))  # §15.1.2
        elif request.method == "OPTIONS":
            self._answer_options(request, key, flow, now)
        else:
            self._pass_up(request, key, flow, None)

    def _receive_invite(
        self, request: Request, key: TransactionKey, flow: Flow, now: float, call: CallRef
    ) -> None:
        if call in self._sessions:
            # §8.2.2.2 merged request: same Call-ID and From tag, another transaction
            # (a forked INVITE reaching us twice).
            self._reject(request, key, flow, now, _Rejection(482))
            return
        dialog = Dialog.for_uas(
            request, local_tag=self._new_tag(), local_cseq=self._rng.randrange(1, 2**16),
            flow=flow,
        )
        transaction = ServerInviteTransaction(key, request, flow, self._timers)
        self._server_transactions[key] = transaction
        session = InviteSession(call, dialog, pending_invite=transaction)
        self._sessions[call] = session
        self._send_trying(transaction, now)
        self._events.append(InviteReceived(call, request, flow))

    def _receive_reinvite(
        self, session: InviteSession, request: Request, key: TransactionKey, flow: Flow,
        now: float,
    ) -> None:
        if session.state is SessionState.TERMINATING:
            self._reject(request, key, flow, now, _Rejection(481, "Call Is Ending"))
            return
        if session.pending_invite is not None:
            # §14.2: the first INVITE is still unanswered, so the second gets 500 with a
            # random Retry-After of 0-10 s (a 491 is for INVITEs crossing each other).
            retry_after = str(self._rng.randrange(0, 11))
            self._reject(request, key, flow, now,
                         _Rejection(500, "Previous INVITE Pending",
                                    (("Retry-After", retry_after),)))
            return
        if session.answer is not None:
            # Our 2xx is out but its ACK is not in, so its offer/answer is still open:
            # 491 makes the peer retry after a random delay (§14.1, RFC 6337 §3.2).
            self._reject(request, key, flow, now, _Rejection(491))
            return
        transaction = ServerInviteTransaction(key, request, flow, self._timers)
        self._server_transactions[key] = transaction
        session.pending_invite = transaction
        self._send_trying(transaction, now)
        self._events.append(ReinviteReceived(session.call, request))

    def _receive_bye(
        self, session: InviteSession, request: Request, key: TransactionKey, flow: Flow,
        now: float,
    ) -> None:
        transaction = ServerNonInviteTransaction(key, request, flow, self._timers)
        self._server_transactions[key] = transaction
        response = response_to(request, 200)
        self._add_server(response)
        self._run(transaction, transaction.send_response(200, bytes(response), now))
        if session.pending_invite is not None:
            # §15.1.2: pending requests of the dialog still get a response, 487.
            self._send_invite_response(session, session.pending_invite, 487, now)
            session.pending_invite = None
        session.answer = None
        session.apply(SessionInput.BYE_RECEIVED)
        self._events.append(ByeReceived(session.call))
        self._end(session, "remote hung up")

    def _receive_cancel(
        self, request: Request, key: TransactionKey, flow: Flow, now: float
    ) -> None:
        """CANCEL (RFC 3261 §9.2): 200 when it matches an INVITE, 487 if still unanswered."""
        invite = self._server_transactions.get(key.for_method("INVITE"))
        if not isinstance(invite, ServerInviteTransaction):
            self._reject(request, key, flow, now, _Rejection(481))
            return
        session = self._session_of(invite.request)
        # §9.2: the 200 to CANCEL SHOULD carry the To tag of the INVITE's responses.
        to_tag = session.dialog.local_tag if session is not None else self._new_tag()
        transaction = ServerNonInviteTransaction(key, request, flow, self._timers)
        self._server_transactions[key] = transaction
        response = response_to(request, 200, to_tag=to_tag)
        self._add_server(response)
        self._run(transaction, transaction.send_response(200, bytes(response), now))
        if session is None or session.pending_invite is not invite:
            return  # already finally answered: the CANCEL has no effect
        session.pending_invite = None
        initial = session.state in (SessionState.INCOMING, SessionState.EARLY)
        self._send_invite_response(session, invite, 487, now)
        session.apply(SessionInput.CANCEL_RECEIVED)
        if initial:
            self._events.append(CallCancelled(session.call))
            self._end(session, "cancelled")

    def _receive_ack(self, request: Request, key: TransactionKey, flow: Flow, now: float) -> None:
        transaction = self._server_transactions.get(key)
        if isinstance(transaction, ServerInviteTransaction):
            outcome = transaction.receive_ack(now)
            self._run(transaction, outcome)
            if not outcome.delivered:
                return  # the ACK of our non-2xx final: the transaction's business alone
        # An ACK for a 2xx is its own transaction (§17.1.1.3), or reaches the TU through
        # an Accepted transaction when the peer reused the INVITE's branch (RFC 6026 §8.7).
        session = self._session_of(request)
        number = request.cseq.number
        if session is None:
            self._drop("ACK matches no transaction or call", flow)
            return
        answer = session.answer
        if answer is None or answer.cseq != number:
            if session.acked_cseq != number:
                self._drop(f"ACK (CSeq {number}) matches no 2xx awaiting one", flow)
            return  # else a copy of an ACK already taken: the peer saw our 2xx again
        # Matching is by Call-ID, From tag and CSeq number, not by our To tag: pyVoIP
        # 1.6.8 ACKs our 2xx with a fresh random To tag of its own. An ACK cannot be
        # answered, so taking it is the only way such a call gets confirmed.
        session.answer = None
        session.acked_cseq = number
        session.apply(SessionInput.ACK_RECEIVED)
        self._events.append(CallConfirmed(session.call, request))
        if session.bye_pending:
            self._send_bye(session, now)

    def _answer_options(
        self, request: Request, key: TransactionKey, flow: Flow, now: float
    ) -> None:
        """OPTIONS (RFC 3261 §11.2): say what we allow, accept and support."""
        transaction = ServerNonInviteTransaction(key, request, flow, self._timers)
        self._server_transactions[key] = transaction
        response = response_to(request, 200, to_tag=self._new_tag(), headers=self._capabilities())
        response.headers.add("Accept", ", ".join(self._accept))
        self._add_server(response)
        self._run(transaction, transaction.send_response(200, bytes(response), now))

    def _pass_up(
        self, request: Request, key: TransactionKey, flow: Flow, call: CallRef | None
    ) -> None:
        transaction = ServerNonInviteTransaction(key, request, flow, self._timers)
        self._server_transactions[key] = transaction
        self._events.append(RequestReceived(request, flow, key, call))

    def _reject(
        self, request: Request, key: TransactionKey, flow: Flow, now: float, rejection: _Rejection
    ) -> None:
        """Answer a request with a final response through a new transaction of its own."""
        response = response_to(
            request, rejection.status, rejection.reason, to_tag=self._new_tag(),
            headers=rejection.headers,
        )
        self._add_server(response)
        transaction: ServerTransaction
        if request.method == "INVITE":
            transaction = ServerInviteTransaction(key, request, flow, self._timers)
        else:
            transaction = ServerNonInviteTransaction(key, request, flow, self._timers)
        self._server_transactions[key] = transaction
        self._run(transaction, transaction.send_response(rejection.status, bytes(response), now))

    def _answer_unparsable(self, exc: PartialMessage, flow: Flow) -> None:
        """Answer a request whose head parsed but which is invalid, statelessly.

        The response can only find its transaction at the peer through the top Via
        (§17.1.3), so without a usable Via, or for an ACK, the message is dropped;
        whichever of From, To, Call-ID and CSeq exist are copied (§8.2.6.2).
        """
        request = exc.partial
        if not isinstance(request, Request) or request.method == "ACK":
            self._drop(f"unanswerable message: {exc}", flow)
            return
        try:
            _stamp_via(request, flow)
        except SipParseError:
            self._drop(f"unanswerable request without a usable Via: {exc}", flow)
            return
        try:
            response = response_to(request, exc.status_hint, str(exc), to_tag=self._new_tag())
        except SipParseError:
            response = response_to(request, exc.status_hint, str(exc))  # To unreadable
        self._add_server(response)
        self._send(bytes(response), flow)
        self._drop(f"rejected with {exc.status_hint}: {exc}", flow)

    # -- responses to our requests ---------------------------------------------------------

    def _receive_response(self, response: Response, flow: Flow, now: float) -> None:
        branch = response.top_via.branch or ""
        method = response.cseq.method
        if method == "INVITE" and branch in self._invite_transactions:
            self._receive_invite_response(response, now)
            return
        entry = self._client_transactions.get((branch, method))
        if entry is None:
            self._drop(f"{response.status} response matches no transaction", flow)
            return
        outcome = entry.transaction.receive_response(response.status, now)
        self._run_client(entry.transaction, outcome)
        if outcome.delivered and response.status >= 200:
            self._client_request_done(entry, response)

    def _client_request_done(self, entry: _ClientEntry, response: Response | None) -> None:
        """A non-INVITE request of ours got its final response, or timed out (None)."""
        transaction = entry.transaction
        if entry.call is None:
            if response is None:
                response = response_to(transaction.request, 408, "Request Timeout (no response)")
            self._events.append(ResponseReceived(transaction.branch, response))
        elif entry.ends_call:
            outcome = "timed out" if response is None else f"answered {response.status}"
            self._bye_completed(entry.call, f"hung up, BYE {outcome}")

    def _receive_invite_response(self, response: Response, now: float) -> None:
        """A response to one of our INVITEs: ACK, retry with credentials, or report it."""
        transaction, attempt = self._invite_transactions[response.top_via.branch or ""]
        # Read the To tag first: a malformed To drops the response before any change.
        to_tag = response.to_address.tag or ""
        outcome = transaction.receive_response(response, now)
        self._run_invite(transaction, outcome)
        if outcome.delivered:
            status = response.status
            if status < 200:
                self._attempt_progress(attempt, status, now)
            elif status < 300:
                self._attempt_answered(attempt, response, to_tag, now)
            else:
                self._attempt_rejected(attempt, response, now)
        self._forget_attempt_if_done(attempt)

    def _attempt_progress(self, attempt: CallAttempt, status: int, now: float) -> None:
        if attempt.apply(AttemptInput.PROVISIONAL_RECEIVED) is AttemptState.CANCELLING:
            if not attempt.cancel_sent:
                self._send_cancel(attempt, now)  # §9.1: the 1xx we waited for
        self._events.append(CallProgress(attempt.call, status))

    def _attempt_answered(
        self, attempt: CallAttempt, response: Response, to_tag: str, now: float
    ) -> None:
        """A 2xx: ACK it (§13.2.2.4); the first makes the call, any other fork's is ended."""
        ack = attempt.acks.get(to_tag)
        if ack is not None:  # a retransmission: our ACK was lost
            session = self._sessions.get(attempt.call)
            self._send(ack, session.flow if session is not None else attempt.flow)
            return
        try:
            dialog = Dialog.for_uac(attempt.invite, response, attempt.flow)
            dialog.flow = _next_hop(dialog)
        except SipParseError as exc:
            # No usable Contact or Record-Route (§12.1.2), so no way to ACK or BYE it.
            if attempt.live:
                self._fail_attempt(
                    attempt, AttemptInput.FAILURE_RECEIVED, 502, f"unusable 2xx: {exc}"
                )
            else:
                self._drop(f"unusable 2xx: {exc}", attempt.flow)
            return
        attempt.acks[to_tag] = self._send_ack(attempt, dialog)
        if attempt.answered_tag is not None:
            # Forking (§13.2.2.4): only the first 2xx makes our call; end this dialog.
            request = dialog.make_request("BYE", self._new_via(attempt.flow)[1])
            self._send_client_request(request, attempt.flow, now, call=attempt.call)
            return
        attempt.answered_tag = to_tag
        session = InviteSession(
            attempt.call, dialog, state=SessionState.CONFIRMED, placed=True
        )
        self._sessions[attempt.call] = session
        if attempt.apply(AttemptInput.SUCCESS_RECEIVED) is AttemptState.ANSWERED:
            self._events.append(CallAnswered(attempt.call, response))
        else:  # we had hung up: the CANCEL lost the race (§9.1), so BYE (§15)
            self._events.append(CallFailed(attempt.call, 487, "cancelled; answered anyway"))
            self._send_bye(session, now)

    def _attempt_rejected(self, attempt: CallAttempt, response: Response, now: float) -> None:
        """A 3xx-6xx, already ACKed by its transaction: retry with credentials, or fail."""
        status = response.status
        reason = response.reason
        if (
            status in (401, 407)
            and attempt.credentials is not None
            and attempt.state is not AttemptState.CANCELLING
        ):
            failure = self._answer_challenge(attempt, attempt.credentials, response, now)
            if failure is None:
                return
            reason = failure
        self._fail_attempt(attempt, AttemptInput.FAILURE_RECEIVED, status, reason)

    def _answer_challenge(
        self, attempt: CallAttempt, credentials: ClientCredentials, response: Response,
        now: float,
    ) -> str | None:
        """Send the INVITE again answering a 401/407 (RFC 3261 §22.2); else say why not.

        The retry has CSeq + 1, a new branch, the same Call-ID and tags, and every
        answer so far (a proxy's and the far end's challenges both stand). A second
        challenge for a realm already answered means the credentials were refused,
        unless it says stale=true (RFC 7616 §3.3: the nonce, not the password, failed).
        """
        challenge = select_challenge(response)
        if challenge is None:
            return "no digest challenge we can answer"
        key = (challenge.answer_header, challenge.realm)
        repeated = key in attempt.challenges and not challenge.stale
        previous = attempt.invite
        # Our CSeq counts the challenges answered so far: 1 on the first INVITE.
        if repeated or previous.cseq.number > MAX_CHALLENGES_ANSWERED:
            return "authentication failed"
        attempt.challenges[key] = (challenge, 0)
        answers = []
        for answered, (known, count) in attempt.challenges.items():
            attempt.challenges[answered] = (known, count + 1)
            answers.append((known.answer_header, known.answer(
                "INVITE", previous.uri, credentials, cnonce=self._new_tag(),
                nonce_count=count + 1,
            )))
        _, via = self._new_via(attempt.flow)
        kept = [
            (name, value) for name, value in previous.headers
            if name not in ("Via", *_AUTHORIZATION_HEADERS)
        ]
        invite = make_request(
            "INVITE", previous.uri, [("Via", via), *kept, *answers], previous.body,
        )
        invite.headers.set("CSeq", f"{previous.cseq.number + 1} INVITE")
        data = bytes(invite)
        attempt.invite = invite
        attempt.transaction = ClientInviteTransaction(
            invite, data, attempt.flow, self._timers, now
        )
        attempt.apply(AttemptInput.CHALLENGE_ANSWERED)
        self._start_invite(attempt, data)
        return None

    def _start_invite(self, attempt: CallAttempt, data: bytes) -> None:
        """Send the attempt's current INVITE and track its transaction."""
        transaction = attempt.transaction
        self._invite_transactions[transaction.branch] = (transaction, attempt)
        self._send(data, attempt.flow)
        self._schedule(transaction)

    def _send_ack(self, attempt: CallAttempt, dialog: Dialog) -> bytes:
        """ACK a 2xx in its dialog (§13.2.2.4): a new branch, the INVITE's CSeq number and
        credentials, no body (our INVITE made the offer); over the call's flow."""
        invite = attempt.invite
        ack = dialog.make_request(
            "ACK", self._new_via(attempt.flow)[1], cseq=invite.cseq.number
        )
        for name in _AUTHORIZATION_HEADERS:
            for value in invite.headers.get_all(name):
                ack.headers.add(name, value)
        ack.headers.add("User-Agent", self._user_agent)
        data = bytes(ack)
        self._send(data, dialog.flow)
        return data

    def _cancel(self, attempt: CallAttempt, now: float) -> None:
        """Hang up a call we placed before its final response (RFC 3261 §9.1)."""
        provisional_seen = attempt.state is AttemptState.PROCEEDING
        attempt.apply(AttemptInput.HANGUP)
        if provisional_seen:
            self._send_cancel(attempt, now)
        # Otherwise no CANCEL before a provisional response: the first 1xx sends it.

    def _send_cancel(self, attempt: CallAttempt, now: float) -> None:
        """Send CANCEL for the current INVITE (§9.1): its Request-URI, top Via (so its
        branch), Call-ID, From, To, CSeq number and Route; then wait 64*T1 at most."""
        invite = attempt.invite
        headers = [
            ("Via", invite.headers.get_list("Via")[0]),
            ("Max-Forwards", str(MAX_FORWARDS)),
            *((name, invite.headers.get(name) or "") for name in ("From", "To", "Call-ID")),
            ("CSeq", f"{invite.cseq.number} CANCEL"),
            *(("Route", route) for route in invite.headers.get_all("Route")),
        ]
        request = make_request("CANCEL", invite.uri, headers)
        self._send_client_request(request, attempt.flow, now, call=attempt.call)
        attempt.cancel_sent = True
        attempt.give_up_at = now + self._timers.timeout_s
        self._schedule(attempt)

    def _fail_attempt(
        self, attempt: CallAttempt, input_: AttemptInput, status: int, reason: str
    ) -> None:
        attempt.apply(input_)
        self._events.append(CallFailed(attempt.call, status, reason))
        self._events.append(CallEnded(attempt.call, f"call failed: {status} {reason}"))

    def _forget_attempt_if_done(self, attempt: CallAttempt) -> None:
        """Forget an attempt that has ended once its INVITE transaction has too."""
        if (
            not attempt.live
            and attempt.transaction.terminated
            and self._attempts.get(attempt.call) is attempt
        ):
            del self._attempts[attempt.call]

    def _send_bye(self, session: InviteSession, now: float) -> None:
        """Send BYE over the dialog's flow (RFC 3261 §15.1.1) and start its transaction."""
        session.bye_pending = False
        if session.pending_invite is not None:
            # A re-INVITE still awaiting the application: the BYE ends it (§15.1.2 spirit).
            self._send_invite_response(session, session.pending_invite, 487, now)
            session.pending_invite = None
            session.apply(SessionInput.FAILURE_SENT)
        request = session.dialog.make_request("BYE", self._new_via(session.flow)[1])
        self._send_client_request(request, session.flow, now, call=session.call, ends_call=True)
        session.apply(SessionInput.BYE_SENT)

    def _send_client_request(
        self, request: Request, flow: Flow, now: float, *, call: CallRef | None,
        ends_call: bool = False,
    ) -> None:
        """Send a non-INVITE request of ours and start its transaction (§17.1.2)."""
        if "User-Agent" not in request.headers:
            request.headers.add("User-Agent", self._user_agent)
        data = bytes(request)
        transaction = ClientNonInviteTransaction(request, data, flow, self._timers, now)
        self._client_transactions[(transaction.branch, transaction.method)] = _ClientEntry(
            transaction, call, ends_call
        )
        self._send(data, flow)
        self._schedule(transaction)

    def _bye_completed(self, call: CallRef, reason: str) -> None:
        session = self._sessions.get(call)
        if session is None or session.state is not SessionState.TERMINATING:
            return  # ended meanwhile, e.g. the peer's own BYE crossed ours
        session.apply(SessionInput.BYE_COMPLETED)
        self._end(session, reason)

    # -- timers ----------------------------------------------------------------------------

    def _fire(self, owner: _TimerOwner, now: float) -> None:
        if isinstance(owner, InviteSession):
            self._answer_timer(owner, now)
        elif isinstance(owner, CallAttempt):
            self._cancel_expired(owner)
        elif isinstance(owner, ClientInviteTransaction):
            _, attempt = self._invite_transactions[owner.branch]
            outcome = owner.handle_timer(now)
            self._run_invite(owner, outcome)
            if outcome.timed_out:
                if attempt.state is AttemptState.CANCELLING:
                    status, reason = 487, "cancelled before any response"
                else:
                    status, reason = 408, "no response to the INVITE (Timer B)"
                self._fail_attempt(attempt, AttemptInput.TIMED_OUT, status, reason)
            self._forget_attempt_if_done(attempt)
        elif isinstance(owner, ClientNonInviteTransaction):
            entry = self._client_transactions[(owner.branch, owner.method)]
            outcome = owner.handle_timer(now)
            self._run_client(owner, outcome)
            if outcome.timed_out:
                self._client_request_done(entry, None)
        elif isinstance(owner, ServerInviteTransaction | ServerNonInviteTransaction):
            # Timer H timing out needs no news: the call ended with the non-2xx already.
            self._run(owner, owner.handle_timer(now))

    def _cancel_expired(self, attempt: CallAttempt) -> None:
        """No final response 64*T1 after our CANCEL: give the INVITE up (RFC 3261 §9.1)."""
        attempt.give_up_at = None
        transaction = attempt.transaction
        del self._invite_transactions[transaction.branch]  # in Proceeding: no timer of its own
        self._fail_attempt(
            attempt, AttemptInput.TIMED_OUT, 487, "cancelled; no final response to the INVITE"
        )
        del self._attempts[attempt.call]

    def _answer_timer(self, session: InviteSession, now: float) -> None:
        """Retransmit our 2xx, or stop waiting for its ACK (RFC 3261 §13.3.1.4)."""
        answer = session.answer
        if answer is None:
            return
        action = answer.handle_timer(now)
        if action is AnswerTimer.RETRANSMIT:
            # Through the Accepted transaction, which lives exactly as long (RFC 6026 §8.7).
            transaction = answer.transaction
            self._run(transaction, transaction.send_response(answer.status, answer.response, now))
        elif action is AnswerTimer.GIVE_UP:
            session.answer = None
            session.apply(SessionInput.ACK_TIMED_OUT)
            self._events.append(AckTimedOut(session.call))
            if session.bye_pending:
                self._send_bye(session, now)
        self._schedule(session)

    def _schedule(self, owner: _TimerOwner) -> None:
        deadline = owner.next_deadline()
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, next(self._deadline_order), owner))

    # -- plumbing --------------------------------------------------------------------------

    def _send_trying(self, transaction: ServerInviteTransaction, now: float) -> None:
        """Send 100 Trying at once (§17.2.1); pyVoIP waits for a 1xx before anything else."""
        response = response_to(transaction.request, 100)
        self._add_server(response)
        self._run(transaction, transaction.send_response(100, bytes(response), now))

    def _send_invite_response(
        self,
        session: InviteSession,
        transaction: ServerInviteTransaction,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        body: bytes = b"",
        content_type: str = "application/sdp",
        headers: Sequence[tuple[str, str]] = (),
    ) -> bytes:
        """Build and send a response to an INVITE of the session; return its bytes.

        Responses that create or refresh the dialog (101-299) copy Record-Route and carry
        our Contact (§12.1.1); all carry our To tag, so 180, 200 and 487 agree.
        """
        request = transaction.request
        response = response_to(request, status, reason, to_tag=session.dialog.local_tag)
        if 100 < status < 300:
            for value in request.headers.get_all("Record-Route"):
                response.headers.add("Record-Route", value)
            response.headers.add("Contact", self._contact(request, session.flow))
            for name, value in self._capabilities():
                response.headers.add(name, value)
        self._add_server(response)
        for name, value in headers:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", content_type)
            response.body = body
        data = bytes(response)
        self._run(transaction, transaction.send_response(status, data, now))
        return data

    def _contact(self, request: Request, flow: Flow) -> str:
        """Our Contact in answers: the dialled user at the address the peer reached us on."""
        return self._contact_uri(SipUri.parse(request.uri).user, flow)

    def _contact_uri(self, user: str | None, flow: Flow) -> str:
        userinfo = f"{user}@" if user else ""
        transport = "" if flow.transport == "udp" else f";transport={flow.transport}"
        return f"<sip:{userinfo}{self._sent_by(flow)}{transport}>"

    def _sent_by(self, flow: Flow) -> str:
        return f"{_uri_host(self._external_address or flow.local_host)}:{flow.local_port}"

    def _new_via(self, flow: Flow) -> tuple[str, str]:
        """Return a new branch (§8.1.1.7) and the top Via of a request of ours carrying it."""
        branch = f"{MAGIC_COOKIE}{self._rng.getrandbits(64):016x}"
        via = f"SIP/2.0/{flow.transport.upper()} {self._sent_by(flow)};branch={branch};rport"
        return branch, via

    def _capabilities(self) -> list[tuple[str, str]]:
        return [
            ("Allow", ", ".join(self._allow)),
            ("Supported", ", ".join(SUPPORTED_OPTION_TAGS)),
        ]

    def _add_server(self, response: Response) -> None:
        if "Server" not in response.headers:
            response.headers.add("Server", self._user_agent)

    def _run(self, transaction: ServerTransaction, outcome: Outcome) -> None:
        for data in outcome.send:
            self._send(data, transaction.flow)
        if transaction.terminated:
            if self._server_transactions.get(transaction.key) is transaction:
                del self._server_transactions[transaction.key]
        else:
            self._schedule(transaction)

    def _run_client(self, transaction: ClientNonInviteTransaction, outcome: Outcome) -> None:
        for data in outcome.send:
            self._send(data, transaction.flow)
        if transaction.terminated:
            del self._client_transactions[(transaction.branch, transaction.method)]
        else:
            self._schedule(transaction)

    def _run_invite(self, transaction: ClientInviteTransaction, outcome: Outcome) -> None:
        for data in outcome.send:
            self._send(data, transaction.flow)
        if transaction.terminated:
            del self._invite_transactions[transaction.branch]
        else:
            self._schedule(transaction)

    def _end(self, session: InviteSession, reason: str) -> None:
        """Forget an ended call and say so, once."""
        session.answer = None
        del self._sessions[session.call]
        self._events.append(CallEnded(session.call, reason))

    def _send(self, data: bytes, flow: Flow) -> None:
        self._outgoing.append((data, flow))

    def _drop(self, reason: str, flow: Flow) -> None:
        self._events.append(MessageDropped(reason, flow))

    def _new_tag(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"


def _next_hop(dialog: Dialog) -> Flow:
    """Where requests in a dialog we created go (RFC 3261 §12.2.1.1, §8.1.2): to the first
    route, else to the remote target, when it names an IP address over UDP; a host name
    (no resolver here) or a connection-bound flow keeps the INVITE's next hop."""
    flow = dialog.flow
    if flow.reliable:
        return flow
    target = NameAddress.parse(dialog.route_set[0]).uri if dialog.route_set else (
        dialog.remote_target)
    uri = SipUri.parse(target)
    host = uri.host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return flow
    return replace(flow, remote_host=host, remote_port=uri.port or 5060)


def _describe(message: Request | Response) -> str:
    if isinstance(message, Request):
        return f"{message.method} request"
    return f"{message.status} response"
