"""A REGISTER client for one registration (RFC 3261 §10.2, §22; RFC 5626 §4.5).

The bridge registers to an upstream SIP trunk or PBX with it. Sans-I/O in the aioquic
shape: API calls (`start`, `stop`), `receive_response(response, now)` and
`handle_timer(now)` drive it; `requests_to_send()`, `next_deadline()` and `next_event()`
are its outputs. Transactions, retransmissions, Via and the 408 on timeout are the core's
(`SipCore.send_request`); this module decides what to send and when.

Rules kept here:
- One Call-ID and From tag for every REGISTER of a client, CSeq up by one per request
  (§10.2.4: "a UA SHOULD use the same Call-ID for all registrations during a single boot
  cycle").
- Every attempt (first registration, refresh, retry, unregistration) starts without
  credentials and answers the challenges it meets (§22.2, §22.3), as baresip does: a
  registrar that restarted or rotated its nonce secret challenges afresh either way.
  Within an attempt every challenge answered so far is answered again on each request,
  with the nonce count going up (RFC 7616 §3.4). A second challenge for the same realm
  right after our answer means the password is wrong, unless it says stale=true.
- Failures back off as RFC 5626 §4.5 describes (see `RegistrationSettings`), and a
  success resets the back-off.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass

from bridge.sip.auth import ClientCredentials, DigestChallenge, select_challenge
from bridge.sip.errors import LocalProtocolError, SipParseError
from bridge.sip.message import Request, Response, make_request
from bridge.sip.uri import SipUri

MAX_FORWARDS = 70  # RFC 3261 §8.1.1.6
# Refresh this long before the granted registration runs out: room for a whole
# non-INVITE transaction (Timer F is 64*T1 = 32 s) plus a challenge round trip. Short
# grants refresh at half their time instead, so a 10 s registration does not refresh
# continuously: 10 s -> after 5 s, 600 s -> after 540 s, 3600 s -> after 3540 s.
REFRESH_MARGIN_S = 60.0
# Challenges answered in one attempt before giving up: a proxy and a registrar, each
# possibly once more with stale=true.
MAX_CHALLENGES_PER_ATTEMPT = 4
# RFC 3261 §25.1 delta-seconds; more digits than 2**32 has is nonsense.
_MAX_DELTA_DIGITS = 10


@dataclass(frozen=True, slots=True)
class RegistrationSettings:
    """What to register where, and how to back off.

    After the k-th failure in a row (k = 0 for the first) the retry waits
    min(retry_max_s, retry_base_s * 2**k) times a uniform factor in [0.5, 1.0]: RFC 5626
    §4.5's formula (whose base is 30 s or 90 s and maximum 1800 s), the jitter spreading
    the bridges a restarted registrar lost so they do not all come back at once.
    """

    registrar_uri: str  # Request-URI, e.g. "sip:trunk.example:5060"
    aor: str  # To and From, e.g. "sip:telerapat@127.0.0.1"
    contact: str  # our Contact URI, e.g. "sip:telerapat@127.0.0.1:5060"
    credentials: ClientCredentials | None
    expires_s: int = 3600  # what we ask for
    retry_base_s: float = 30.0  # upper bound of the first retry's wait
    retry_max_s: float = 600.0  # the wait never exceeds this

    def __post_init__(self) -> None:
        for uri in (self.registrar_uri, self.aor, self.contact):
            try:
                SipUri.parse(uri)
            except SipParseError as exc:
                raise ValueError(f"not a SIP URI: {uri!r}") from exc
        if self.expires_s < 1:
            raise ValueError("expires_s must be at least 1")
        if not 0 < self.retry_base_s <= self.retry_max_s:
            raise ValueError("need 0 < retry_base_s <= retry_max_s")


class RegistrationState(enum.Enum):
    UNREGISTERED = "unregistered"  # not started yet
    REGISTERING = "registering"  # a REGISTER is out and we hold no binding
    REGISTERED = "registered"  # the registrar holds our contact (refreshes happen here)
    RETRY_WAIT = "retry_wait"  # the last attempt failed; a retry is scheduled
    UNREGISTERING = "unregistering"  # stop(): the Expires: 0 REGISTER is out
    STOPPED = "stopped"  # stopped; nothing more is sent


@dataclass(frozen=True, slots=True)
class RegistrationChanged:
    """The registration changed state, or a refresh was granted (state REGISTERED again).

    `reason` is for logs: "200 OK, expires in 600 s", "403 Forbidden", "timeout",
    "authentication failed", ... `expires_s` is the granted time when REGISTERED.
    """

    state: RegistrationState
    reason: str
    expires_s: int | None = None


def _parse_delta_seconds(text: str) -> int | None:
    """delta-seconds (RFC 3261 §25.1), tolerating quotes; None when it is not one."""
    value = text.strip().strip('"')
    if not value.isascii() or not value.isdigit() or len(value) > _MAX_DELTA_DIGITS:
        return None
    return int(value)


# RFC 3261 §19.1.4: these URI parameters must appear in both URIs or in neither.
_PARAMS_THAT_MUST_MATCH = frozenset({"user", "ttl", "method", "maddr", "transport"})


def _same_uri(first: str, second: str) -> bool:
    """Compare two SIP URIs as RFC 3261 §19.1.4 says (headers not compared).

    User and password compare case-sensitively after unescaping, host case-insensitively,
    and a port or one of `user`, `ttl`, `method`, `maddr`, `transport` present in only
    one of them makes them differ; other parameters count only when both carry them.
    """
    try:
        a, b = SipUri.parse(first), SipUri.parse(second)
    except SipParseError:
        return False
    if (a.scheme, a.user_unescaped, a.password, a.host, a.port) != (
        b.scheme,
        b.user_unescaped,
        b.password,
        b.host,
        b.port,
    ):
        return False
    a_params = {name: (value or "").lower() for name, value in a.params}
    b_params = {name: (value or "").lower() for name, value in b.params}
    for name in a_params.keys() | b_params.keys():
        if name in a_params and name in b_params:
            if a_params[name] != b_params[name]:
                return False
        elif name in _PARAMS_THAT_MUST_MATCH:
            return False
    return True


class RegistrationClient:
    """Keep one contact registered at one registrar (RFC 3261 §10.2).

    `rng` draws the cnonces and the back-off jitter; `call_id` and `from_tag` are fixed
    for the client's life. Nothing here reads a clock or a socket.
    """

    def __init__(
        self,
        settings: RegistrationSettings,
        *,
        rng: random.Random,
        call_id: str,
        from_tag: str,
    ) -> None:
        self._settings = settings
        self._rng = rng
        self._call_id = call_id
        self._from_tag = from_tag
        self._state = RegistrationState.UNREGISTERED
        self._last_reason = ""
        self._cseq = 0
        self._requested_expires_s = settings.expires_s  # raised by a 423's Min-Expires
        self._failures = 0  # in a row, for the back-off
        self._expires_at: float | None = None
        self._refresh_at: float | None = None
        self._retry_at: float | None = None
        # The attempt under way: the Expires we send (0 to unregister), whether a
        # request awaits its final response and when it left, and the challenges
        # answered so far: (answer header, realm) -> (challenge, nonce count used).
        self._attempt_expires_s = settings.expires_s
        self._in_flight = False
        self._sent_at = 0.0
        self._challenges: dict[tuple[str, str], tuple[DigestChallenge, int]] = {}
        self._challenges_answered = 0
        self._outbox: list[Request] = []
        self._events: deque[RegistrationChanged] = deque()

    # -- API ------------------------------------------------------------------------------

    @property
    def state(self) -> RegistrationState:
        return self._state

    @property
    def expires_at(self) -> float | None:
        """When the last granted registration runs out (possibly past, after a failed
        refresh); None before the first success and once stopped."""
        return self._expires_at

    @property
    def last_reason(self) -> str:
        """The reason of the last state change, for status pages and logs."""
        return self._last_reason

    def start(self, now: float) -> None:
        """Send the first REGISTER at once."""
        if self._state is not RegistrationState.UNREGISTERED:
            raise LocalProtocolError(f"cannot start a registration that is {self._state.value}")
        self._begin_attempt(self._requested_expires_s, now)
        self._enter(RegistrationState.REGISTERING, "registering")

    def stop(self, now: float) -> None:
        """Unregister (Expires: 0, RFC 3261 §10.2.2) if we may hold a binding, else stop.

        A REGISTER still out may have registered us, so it counts as holding one; its
        answer is then ignored (its CSeq is no longer our last).
        """
        if self._state in (RegistrationState.STOPPED, RegistrationState.UNREGISTERING):
            return
        may_be_bound = self._state in (
            RegistrationState.REGISTERED,
            RegistrationState.REGISTERING,
        ) or (self._expires_at is not None and self._expires_at > now)
        if not may_be_bound:
            self._stopped("stopped")
            return
        self._begin_attempt(0, now)
        self._enter(RegistrationState.UNREGISTERING, "unregistering")

    def receive_response(self, response: Response, now: float) -> None:
        """Take the final response to our last REGISTER (a 408 stands for a timeout).

        Responses to earlier requests, provisional ones and strangers are ignored.
        """
        if not self._in_flight or response.status < 200 or not self._is_ours(response):
            return
        self._in_flight = False
        status = response.status
        reason = "timeout" if status == 408 else f"{status} {response.reason}".strip()
        if status in (401, 407):
            self._answer_challenge(response, reason, now)
        elif self._state is RegistrationState.UNREGISTERING:
            self._stopped("unregistered" if 200 <= status < 300 else f"unregister: {reason}")
        elif 200 <= status < 300:
            self._registered(response, reason, now)
        elif status == 423:
            self._raise_expires(response, reason, now)
        else:
            self._fail(reason, now)

    def handle_timer(self, now: float) -> None:
        """Refresh, retry, or notice that a registration ran out while refreshing."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return
        if self._state is RegistrationState.RETRY_WAIT:
            self._begin_attempt(self._requested_expires_s, now)
            self._enter(RegistrationState.REGISTERING, "retrying")
        elif self._in_flight:  # REGISTERED, the refresh unanswered at expiry
            self._enter(RegistrationState.REGISTERING, "registration expired while refreshing")
        else:  # REGISTERED, time to refresh
            self._begin_attempt(self._requested_expires_s, now)

    def next_deadline(self) -> float | None:
        """When `handle_timer` wants to run next; None when nothing is scheduled."""
        if self._state is RegistrationState.RETRY_WAIT:
            return self._retry_at
        if self._state is RegistrationState.REGISTERED:
            return self._expires_at if self._in_flight else self._refresh_at
        return None

    def requests_to_send(self) -> list[Request]:
        """REGISTERs to send, oldest first, without Via (the core adds it)."""
        requests, self._outbox = self._outbox, []
        return requests

    def next_event(self) -> RegistrationChanged | None:
        return self._events.popleft() if self._events else None

    # -- responses ------------------------------------------------------------------------

    def _is_ours(self, response: Response) -> bool:
        try:
            cseq = response.cseq
            call_id = response.call_id
        except SipParseError:
            return False
        return cseq.number == self._cseq and cseq.method == "REGISTER" and call_id == self._call_id

    def _answer_challenge(self, response: Response, reason: str, now: float) -> None:
        """Answer a 401/407 once per challenge (RFC 3261 §22.2, §22.3)."""
        credentials = self._settings.credentials
        if credentials is None:
            self._fail(f"{reason}: no credentials configured", now)
            return
        challenge = select_challenge(response)
        if challenge is None:
            self._fail(f"{reason}: no challenge we can answer", now)
            return
        key = (challenge.answer_header, challenge.realm)
        repeated = key in self._challenges and not challenge.stale
        if repeated or self._challenges_answered >= MAX_CHALLENGES_PER_ATTEMPT:
            self._fail("authentication failed", now)
            return
        self._challenges[key] = (challenge, 0)
        self._challenges_answered += 1
        self._send(now)

    def _registered(self, response: Response, reason: str, now: float) -> None:
        granted = self._granted_expires_s(response)
        if granted is None or granted == 0:
            what = "without our Contact" if granted is None else "granting 0 s"
            self._fail(f"{reason} {what}", now)
            return
        # The registrar counts from when it got the request; counting from when it left
        # keeps our idea of the expiry on the safe side.
        self._expires_at = self._sent_at + granted
        self._refresh_at = self._expires_at - min(granted / 2, REFRESH_MARGIN_S)
        self._failures = 0
        self._enter(RegistrationState.REGISTERED, f"{reason}, expires in {granted} s", granted)

    def _granted_expires_s(self, response: Response) -> int | None:
        """Our contact's expires parameter, else Expires, else what we asked (§10.2.4).

        None when our contact is not among the bindings the 2xx lists.
        """
        try:
            contacts = response.contacts
        except SipParseError:
            return None
        for contact in contacts:
            if not _same_uri(contact.uri, self._settings.contact):
                continue
            for name, value in contact.params:
                if name == "expires" and value is not None:
                    granted = _parse_delta_seconds(value)
                    if granted is not None:
                        return granted
            header = response.headers.get("Expires")
            granted = _parse_delta_seconds(header) if header is not None else None
            return granted if granted is not None else self._attempt_expires_s
        return None

    def _raise_expires(self, response: Response, reason: str, now: float) -> None:
        """423: ask again at once for the registrar's Min-Expires (RFC 3261 §10.2.8)."""
        header = response.headers.get("Min-Expires")
        minimum = _parse_delta_seconds(header) if header is not None else None
        if minimum is None or minimum <= self._attempt_expires_s:
            self._fail(f"{reason} without a usable Min-Expires", now)
            return
        self._requested_expires_s = minimum
        self._attempt_expires_s = minimum
        self._send(now)

    # -- requests and state ---------------------------------------------------------------

    def _begin_attempt(self, expires_s: int, now: float) -> None:
        self._attempt_expires_s = expires_s
        self._challenges = {}
        self._challenges_answered = 0
        self._send(now)

    def _send(self, now: float) -> None:
        """Queue the attempt's next REGISTER (RFC 3261 §10.2), answering its challenges."""
        settings = self._settings
        self._cseq += 1
        headers = [
            ("Max-Forwards", str(MAX_FORWARDS)),
            ("To", f"<{settings.aor}>"),
            ("From", f"<{settings.aor}>;tag={self._from_tag}"),
            ("Call-ID", self._call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", f"<{settings.contact}>"),
            ("Expires", str(self._attempt_expires_s)),
        ]
        if settings.credentials is not None:
            for key, (challenge, count) in self._challenges.items():
                self._challenges[key] = (challenge, count + 1)
                value = challenge.answer(
                    "REGISTER",
                    settings.registrar_uri,
                    settings.credentials,
                    cnonce=f"{self._rng.getrandbits(64):016x}",
                    nonce_count=count + 1,
                )
                headers.append((challenge.answer_header, value))
        self._outbox.append(make_request("REGISTER", settings.registrar_uri, headers))
        self._in_flight = True
        self._sent_at = now

    def _fail(self, reason: str, now: float) -> None:
        """Schedule a retry with back-off (RFC 5626 §4.5); stopping just stops."""
        if self._state is RegistrationState.UNREGISTERING:
            self._stopped(f"unregister: {reason}")
            return
        settings = self._settings
        # The exponent is capped so the float stays finite however long the outage.
        ceiling = min(settings.retry_max_s, settings.retry_base_s * 2 ** min(self._failures, 64))
        self._retry_at = now + ceiling * self._rng.uniform(0.5, 1.0)
        self._failures += 1
        self._enter(RegistrationState.RETRY_WAIT, reason)

    def _stopped(self, reason: str) -> None:
        self._expires_at = None
        self._in_flight = False
        self._enter(RegistrationState.STOPPED, reason)

    def _enter(self, state: RegistrationState, reason: str, expires_s: int | None = None) -> None:
        self._state = state
        self._last_reason = reason
        self._events.append(RegistrationChanged(state, reason, expires_s))
