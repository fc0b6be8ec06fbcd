"""The registrar (RFC 3261 §10.3): REGISTER requests in, responses and bindings out.

Owns the in-memory location service: which contacts each account has bound, until
when, and over which `Flow` the registration came (so a registered phone behind NAT
can be called back over it). Authentication is the `Authenticator`'s; transactions,
retransmissions and sending are the core's. Time is the `now` argument.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from bridge.sip.auth import Authenticator, Challenge
from bridge.sip.errors import LocalProtocolError, SipParseError
from bridge.sip.flow import Flow
from bridge.sip.message import NameAddress, Request, Response, response_to
from bridge.sip.uri import SipUri

# RFC 3261 §20.19 / §25.1 delta-seconds are 32-bit; anything longer is nonsense.
_MAX_DELTA_DIGITS = 10


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact bound to an address-of-record (RFC 3261 §10.3 step 7).

    `contact` is the Contact URI exactly as the UA sent it: baresip finds its own
    binding in the 200 by comparing this text. `call_id` and `cseq` order refreshes;
    `flow` is where the latest REGISTER for it came from.
    """

    aor: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    flow: Flow


def _parse_delta_seconds(text: str, what: str) -> int:
    """Parse delta-seconds (RFC 3261 §25.1), raising `SipParseError` (400) otherwise."""
    value = text.strip()
    if not value.isdigit() or not value.isascii() or len(value) > _MAX_DELTA_DIGITS:
        raise SipParseError(f"invalid {what}: {value[:20]!r}")
    return int(value)


def _contact_key(uri: str) -> str:
    """Return a comparison key for a Contact URI (RFC 3261 §19.1.4, simplified).

    Scheme and host compare case-insensitively (the URI parser folds them), parameter
    names too, parameter order does not matter, and the `transport` value is folded.
    """
    parsed = SipUri.parse(uri)
    params = sorted(
        (name, value.lower() if name == "transport" and value is not None else value)
        for name, value in parsed.params
    )
    return str(replace(parsed, params=tuple(params)))


class Registrar:
    """Process REGISTER requests for the accounts of one domain (RFC 3261 §10.3).

    Only the account itself may change its bindings: the To user must be the
    authenticated username (third-party registration is refused with 403), and the
    address-of-record is `sip:<username>@<domain>` whatever host the phone used in the
    Request-URI and To (phones register to our IP address as often as to a name).
    Each account keeps at most `max_contacts_per_aor` bindings; a new one beyond that
    replaces the one refreshed longest ago.
    """

    def __init__(
        self,
        authenticator: Authenticator,
        domain: str,
        *,
        min_expires_s: int = 60,
        max_expires_s: int = 3600,
        default_expires_s: int = 3600,
        max_contacts_per_aor: int = 10,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < min_expires_s <= default_expires_s <= max_expires_s:
            raise ValueError("need 0 < min_expires_s <= default_expires_s <= max_expires_s")
        if max_contacts_per_aor < 1:
            raise ValueError("max_contacts_per_aor must be at least 1")
        self._authenticator = authenticator
        self._domain = domain
        self._min_expires_s = min_expires_s
        self._max_expires_s = max_expires_s
        self._default_expires_s = default_expires_s
        self._max_contacts = max_contacts_per_aor
        self._rng = rng if rng is not None else random.SystemRandom()
        # username -> contact key -> binding; dict order is refresh order, oldest first.
        self._bindings: dict[str, dict[str, Binding]] = {}

    def handle(self, request: Request, flow: Flow, now: float) -> Response:
        """Answer one REGISTER, updating bindings only when the answer is 200.

        Follows RFC 3261 §10.3 steps 1-8; a malformed header is answered with the
        parse error's status_hint (400, or 416 for a non-SIP URI).
        """
        if request.method != "REGISTER":
            raise LocalProtocolError(f"the registrar cannot handle {request.method}")
        try:
            return self._handle(request, flow, now)
        except SipParseError as exc:
            return self._respond(request, exc.status_hint)

    def bindings(self, username: str, now: float) -> list[Binding]:
        """Return the account's current (unexpired) bindings, oldest refresh first."""
        return [b for b in self._bindings.get(username, {}).values() if b.expires_at > now]

    def expire(self, now: float) -> None:
        """Drop every binding whose expiry has passed."""
        for username in list(self._bindings):
            self._expire_account(username, now)

    # -- RFC 3261 §10.3 -----------------------------------------------------------------

    def _handle(self, request: Request, flow: Flow, now: float) -> Response:
        SipUri.parse(request.uri)  # step 1: a SIP Request-URI (416 otherwise)
        required = request.headers.get_list("Require")
        if required:  # step 2: we support no extension a UA may require
            return self._respond(request, 420, headers=[("Unsupported", ", ".join(required))])
        outcome = self._authenticator.authenticate(request, now)  # step 3
        if isinstance(outcome, Challenge):
            return self._respond(request, outcome.status, headers=outcome.headers)
        username = outcome.username
        if request.to_address.sip_uri.user_unescaped != username:  # steps 4 and 5
            return self._respond(request, 403, "Only the account itself may register")
        self._expire_account(username, now)
        call_id = request.call_id
        cseq = request.cseq.number
        contacts = request.headers.get_list("Contact")
        if not contacts:  # a query: list the bindings, change nothing
            return self._ok(request, username, now)
        expires_header = request.headers.get("Expires")
        header_expires_s = (
            _parse_delta_seconds(expires_header, "Expires") if expires_header is not None else None
        )
        current = self._bindings.get(username, {})
        if any(c.strip() == "*" for c in contacts):  # step 6: remove all
            if len(contacts) != 1 or header_expires_s != 0:
                return self._respond(request, 400, "Contact * needs Expires: 0 and no other")
            if any(b.call_id == call_id and cseq <= b.cseq for b in current.values()):
                return self._respond(request, 500, "Out of order REGISTER")
            self._bindings.pop(username, None)
            return self._ok(request, username, now)
        updated = dict(current)
        aor = f"sip:{username}@{self._domain}"
        for value in contacts:  # step 7, committed only if every contact is acceptable
            contact = NameAddress.parse(value)
            key = _contact_key(contact.uri)
            expires_s = self._requested_expires_s(contact, header_expires_s)
            if 0 < expires_s < self._min_expires_s:
                return self._respond(
                    request, 423, headers=[("Min-Expires", str(self._min_expires_s))]
                )
            existing = current.get(key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                return self._respond(request, 500, "Out of order REGISTER")
            updated.pop(key, None)
            if expires_s > 0:
                updated[key] = Binding(
                    aor=aor,
                    contact=contact.uri,
                    expires_at=now + min(expires_s, self._max_expires_s),
                    call_id=call_id,
                    cseq=cseq,
                    flow=flow,
                )
        while len(updated) > self._max_contacts:
            del updated[next(iter(updated))]
        if updated:
            self._bindings[username] = updated
        else:
            self._bindings.pop(username, None)
        return self._ok(request, username, now)

    def _requested_expires_s(self, contact: NameAddress, header_expires_s: int | None) -> int:
        """The contact's `expires` parameter, else the Expires header, else our default."""
        for name, value in contact.params:
            if name == "expires":
                return _parse_delta_seconds(value or "", "Contact expires parameter")
        return header_expires_s if header_expires_s is not None else self._default_expires_s

    def _expire_account(self, username: str, now: float) -> None:
        current = self._bindings.get(username)
        if current is None:
            return
        alive = {k: b for k, b in current.items() if b.expires_at > now}
        if alive:
            self._bindings[username] = alive
        else:
            del self._bindings[username]

    def _ok(self, request: Request, username: str, now: float) -> Response:
        """200 listing every current binding with its remaining time (step 8)."""
        headers = [
            ("Contact", f"<{b.contact}>;expires={max(1, round(b.expires_at - now))}")
            for b in self.bindings(username, now)
        ]
        return self._respond(request, 200, headers=headers)

    def _respond(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    ) -> Response:
        # RFC 3261 §8.2.6.2: every final response carries a To tag the UAS chose.
        to_tag = f"{self._rng.getrandbits(64):016x}"
        return response_to(request, status, reason, to_tag=to_tag, headers=headers)
