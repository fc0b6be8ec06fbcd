"""SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760): challenges and checks.

Owns the Authorization grammar, stateless nonces, response verification and nc replay
tracking. The server side knows accounts only as username plus HA1 hashes (never
passwords), and it does not know what is being authorised: the registrar and the call
controller decide that from the `Authenticated` username. The client side
(`answer_challenge`) answers the 401/407 challenges met by the bridge's own requests
(trunk registration, dial-out) with `ClientCredentials`. Time is the `now` argument;
randomness comes from an injected `random.Random` (client cnonces from the caller).
"""

# Interop findings, read from each client's own source and then run against this module
# on loopback (baresip 1.0.0, pyVoIP 1.6.8, SIPp 3.6.1); they decide the defaults here:
#
# pyVoIP 1.6.8 (pyVoIP/SIP.py). `SIPMessage.parse_raw_header` keeps only the FIRST
#   header line of each name, so of several WWW-Authenticate lines it sees the first
#   one only; it reads realm and nonce from it with a regex and ignores `algorithm`,
#   `qop`, `opaque` and `stale`. `gen_authorization` always answers RFC 2069 style:
#   MD5, no qop/nc/cnonce, no opaque, `algorithm=MD5`, and it signs the digest-uri
#   `sip:<server>;transport=UDP` whatever the Request-URI is (REGISTER goes to
#   `sip:<server>`, INVITE to `sip:<number>@<server>`). Consequences: the first
#   challenge must be one it can answer with MD5 (one nonce serves every challenge of a
#   response, as in RFC 7616 §3.9.1, so an MD5 answer to the first header verifies);
#   no-qop answers are accepted with single-use nonces; and the exact digest-uri check
#   rejects it unless `accept_host_only_digest_uri=True` (see `Authenticator`): live, it
#   never registers without that flag and registers at once with it.
#   It answers 401 only: 407 is logged as "TODO: implement".
# baresip 1.0.0 / libre 1.1.0 (Debian; re `src/sip/auth.c`). `auth_handler` walks every
#   WWW-Authenticate and Proxy-Authenticate header and fails the whole request with
#   ENOSYS if ANY carries an algorithm other than MD5, so one SHA-256 challenge, first
#   or last, makes registration impossible (seen live: "Function not implemented"). It
#   answers qop=auth with `nc=%08x` counting up whenever it reuses a nonce, `cnonce` 16 hex
#   digits, echoes opaque, sends no `algorithm` (so MD5 is the default here); seen live,
#   its re-REGISTER starts without credentials and takes a fresh challenge. A second
#   challenge for a realm it already answered fails with EAUTH unless it says
#   `stale=true`, so an expired or already-counted nonce with a correct response must
#   be re-challenged with stale=true. Its 200-OK parser finds its own binding by exact
#   text comparison of the Contact URI (`src/sipreg/reg.c`).
# libre >= 3.11 (2024, re PR #1103) adds SHA-256 and answers EVERY challenge, one
#   Authorization line per header; `authenticate` therefore tries all lines in our
#   preference order.
# SIPp 3.6.1 (used by tests/integration) answers MD5 only (SHA-256 came in SIPp #676);
#   `[authentication]` on a later request reuses the nonce with nc=00000002.
#
# So the default `algorithms` is ("MD5",): every client above can answer it. Offering
# ("SHA-256", "MD5") per RFC 8760 §2.4 locks out baresip 1.0.0 entirely.

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import heapq
import hmac
import random
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.sip.errors import SipParseError
from bridge.sip.message import Request, Response, split_header_list
from bridge.sip.uri import SipUri

MD5 = "MD5"
SHA256 = "SHA-256"
DEFAULT_ALGORITHMS: tuple[str, ...] = (MD5,)

_HASH_NAMES = {MD5: "md5", SHA256: "sha256"}
# RFC 7616 §3.4.2: the "-sess" variants hash HA1 once more with nonce and cnonce.
_CANONICAL_ALGORITHMS = {
    "md5": MD5,
    "md5-sess": "MD5-sess",
    "sha-256": SHA256,
    "sha-256-sess": "SHA-256-sess",
}
_SESS_SUFFIX = "-sess"

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# Unquoted parameter values are tokens by the grammar; some UAs send a bare digest-uri
# (`uri=sip:a@b`), so anything up to the next comma or blank is taken.
_BARE_VALUE = re.compile(r"[^\s,\"]+")
_NC = re.compile(r"^[0-9A-Fa-f]{8}$")
_REQUIRED_PARAMS = ("username", "realm", "nonce", "uri", "response")

_NONCE_PAYLOAD = struct.Struct(">q8s")  # issue time in ms, 64 random bits
_NONCE_MAC_BYTES = 16
_NONCE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of 16 + 16 bytes, unpadded
_OPAQUE_MAC_BYTES = 12
# A no-qop answer has no nonce count; it spends the nonce (RFC 2069 has no replay check).
_NONCE_SPENT = 1 << 32
_MIN_SECRET_BYTES = 16


@dataclass(frozen=True, slots=True)
class AccountSecrets:
    """What the configuration gives per account: HA1 hashes, never the password."""

    username: str
    ha1_md5: str | None  # hex MD5(username:realm:password)
    ha1_sha256: str | None  # hex SHA-256(username:realm:password)

    def ha1(self, algorithm: str) -> str | None:
        """Return the HA1 for a base algorithm ("MD5" or "SHA-256"), None if not held."""
        if algorithm == MD5:
            return self.ha1_md5
        if algorithm == SHA256:
            return self.ha1_sha256
        return None


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """One parsed Authorization / Proxy-Authorization value (RFC 7616 §3.4).

    `algorithm` is canonical ("MD5", "SHA-256", "MD5-sess", ...; "MD5" when absent, as
    RFC 2617 §3.2.2 says), `qop` lower case or None for RFC 2069 clients, `response`
    lower-case hex. `nc` is kept as its 8 hex digits.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = MD5
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @property
    def base_algorithm(self) -> str:
        """The hash without the "-sess" suffix: which HA1 the response was built on."""
        return self.algorithm.removesuffix(_SESS_SUFFIX)


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The request carried a correct, fresh digest response for this account."""

    username: str


@dataclass(frozen=True, slots=True)
class Challenge:
    """Answer with this: 401 + WWW-Authenticate, or 407 + Proxy-Authenticate lines."""

    status: int
    headers: tuple[tuple[str, str], ...]


AuthOutcome = Authenticated | Challenge


def _hash_hex(algorithm: str, text: str) -> str:
    return hashlib.new(_HASH_NAMES[algorithm], text.encode("utf-8")).hexdigest()


def compute_ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """Return hex H(username:realm:password) for "MD5" or "SHA-256" (RFC 7616 §3.4.2)."""
    canonical = _CANONICAL_ALGORITHMS.get(algorithm.lower())
    if canonical not in _HASH_NAMES:
        raise ValueError(f"unsupported digest algorithm: {algorithm!r}")
    return _hash_hex(canonical, f"{username}:{realm}:{password}")


def compute_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
) -> str:
    """Return the hex request-digest (RFC 7616 §3.4.1; without qop, RFC 2069 §2.1.2).

    `algorithm` is canonical; for a "-sess" one, `ha1` is the plain H(user:realm:pw)
    and the session HA1 is derived here (RFC 7616 §3.4.2). Only qop=auth is defined
    here: A2 = method ":" uri.
    """
    if qop is not None and (nc is None or cnonce is None):
        raise ValueError("a qop response needs nc and cnonce")
    base = algorithm.removesuffix(_SESS_SUFFIX)
    if algorithm.endswith(_SESS_SUFFIX):
        if cnonce is None:
            raise ValueError(f"{algorithm} needs a cnonce")
        ha1 = _hash_hex(base, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _hash_hex(base, f"{method}:{uri}")
    if qop is None:
        return _hash_hex(base, f"{ha1}:{nonce}:{ha2}")
    return _hash_hex(base, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _skip(text: str, index: int, chars: str) -> int:
    while index < len(text) and text[index] in chars:
        index += 1
    return index


def _read_quoted(text: str, index: int) -> tuple[str, int]:
    """Read a quoted-string starting at the opening quote (RFC 3261 §25.1 quoted-pair)."""
    chars: list[str] = []
    index += 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            chars.append(text[index + 1])
            index += 2
        elif char == '"':
            return "".join(chars), index + 1
        else:
            chars.append(char)
            index += 1
    raise SipParseError("unterminated quoted string in digest credentials")


def _parse_auth_params(text: str) -> dict[str, str]:
    """Parse `name=value, name="value"` pairs; names are folded to lower case."""
    params: dict[str, str] = {}
    index = 0
    while True:
        index = _skip(text, index, " \t,")
        if index >= len(text):
            return params
        name_match = _TOKEN.match(text, index)
        if name_match is None:
            raise SipParseError(f"invalid digest parameter at: {text[index : index + 20]!r}")
        name = name_match.group().lower()
        index = _skip(text, name_match.end(), " \t")
        if index >= len(text) or text[index] != "=":
            raise SipParseError(f"digest parameter {name!r} without a value")
        index = _skip(text, index + 1, " \t")
        if index < len(text) and text[index] == '"':
            value, index = _read_quoted(text, index)
        else:
            value_match = _BARE_VALUE.match(text, index)
            if value_match is None:
                raise SipParseError(f"digest parameter {name!r} without a value")
            value, index = value_match.group(), value_match.end()
        if name in params:
            raise SipParseError(f"duplicate digest parameter {name!r}")
        params[name] = value
        index = _skip(text, index, " \t")
        if index < len(text) and text[index] != ",":
            raise SipParseError(f"expected ',' after digest parameter {name!r}")


def parse_credentials(value: str) -> DigestCredentials:
    """Parse a Digest Authorization / Proxy-Authorization value (RFC 3261 §25.1).

    Raises `SipParseError` (status_hint 400) for another scheme, bad grammar, a missing
    required parameter, or qop without a well-formed nc and a cnonce (RFC 7616 §3.4).
    """
    text = value.strip()
    scheme_match = _TOKEN.match(text)
    if scheme_match is None or scheme_match.group().lower() != "digest":
        raise SipParseError(f"not Digest credentials: {text[:20]!r}")
    rest = text[scheme_match.end() :]
    if rest and rest[0] not in " \t":
        raise SipParseError(f"not Digest credentials: {text[:20]!r}")
    params = _parse_auth_params(rest)
    for name in _REQUIRED_PARAMS:
        if name not in params:
            raise SipParseError(f"digest credentials without {name}")
    algorithm_text = params.get("algorithm", MD5)
    algorithm = _CANONICAL_ALGORITHMS.get(algorithm_text.lower(), algorithm_text)
    qop = params["qop"].lower() if "qop" in params else None
    nc = params.get("nc")
    cnonce = params.get("cnonce")
    if qop is not None:
        if nc is None or _NC.match(nc) is None:
            raise SipParseError("digest credentials with qop need nc as 8 hex digits")
        if cnonce is None:
            raise SipParseError("digest credentials with qop need a cnonce")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"].lower(),
        algorithm=algorithm,
        qop=qop,
        nc=nc.lower() if nc is not None else None,
        cnonce=cnonce,
        opaque=params.get("opaque"),
    )


class _Verdict(enum.Enum):
    ACCEPTED = "accepted"
    STALE = "stale"  # right digest, but the nonce is too old or its count already used
    REJECTED = "rejected"


class Authenticator:
    """Challenge requests and check their digest responses for one realm.

    Nonces are stateless (RFC 7616 §5.4): base64url(issue time, 64 random bits,
    HMAC-SHA-256(secret, realm, both)), so any worker holding `secret` can check them.
    One nonce goes in every challenge line of a response (as RFC 7616 §3.9.1 does).
    A nonce older than `nonce_lifetime_s` with an otherwise correct response gets
    `stale=true` (§3.3). Replay protection keeps, per nonce that was used successfully,
    the highest nc seen (a no-qop answer spends the nonce); at most `max_tracked_nonces`
    are kept, evicting by issue time and treating every nonce issued at or before an
    evicted one as stale, so memory stays bounded without reopening replays. That state
    is per process: a deployment that spreads one client over several workers needs
    sticky routing for replay protection to hold.

    The digest-uri must equal the Request-URI after stripping blanks (RFC 7616 §3.4.6,
    RFC 3261 §22.4). `accept_host_only_digest_uri=True` also accepts a digest-uri with
    no user part that names the Request-URI's host and port and has no parameter but
    `transport`: what pyVoIP 1.6.8 signs for every request. With single-use or counted
    nonces this only lets an on-path attacker who withholds the original request reuse
    its response for another Request-URI at the same server.
    """

    def __init__(
        self,
        realm: str,
        accounts: Mapping[str, AccountSecrets],
        secret: bytes,
        *,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        nonce_lifetime_s: float = 300.0,
        rng: random.Random | None = None,
        max_tracked_nonces: int = 65_536,
        accept_host_only_digest_uri: bool = False,
    ) -> None:
        if not realm or any(c in realm for c in '"\\') or not realm.isprintable():
            raise ValueError(f"realm must be printable text without quotes: {realm!r}")
        if len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"nonce secret must have at least {_MIN_SECRET_BYTES} bytes")
        canonical = [_CANONICAL_ALGORITHMS.get(a.lower(), a) for a in algorithms]
        if not canonical or len(set(canonical)) != len(canonical):
            raise ValueError(f"algorithms must be distinct and not empty: {algorithms!r}")
        for algorithm in canonical:
            if algorithm not in _HASH_NAMES:
                raise ValueError(f"unsupported digest algorithm: {algorithm!r}")
        if nonce_lifetime_s <= 0 or max_tracked_nonces < 1:
            raise ValueError("nonce_lifetime_s and max_tracked_nonces must be positive")
        self._realm = realm
        self._accounts = accounts
        self._secret = secret
        self._algorithms = tuple(canonical)
        self._nonce_lifetime_ms = round(nonce_lifetime_s * 1000)
        self._rng = rng if rng is not None else random.SystemRandom()
        self._max_tracked_nonces = max_tracked_nonces
        self._accept_host_only_digest_uri = accept_host_only_digest_uri
        self._highest_nc: dict[str, int] = {}
        self._tracked: list[tuple[int, str]] = []  # heap of (issued_ms, nonce)
        self._replay_floor_ms: int | None = None

    def authenticate(self, request: Request, now: float, *, proxy: bool = False) -> AuthOutcome:
        """Return who sent `request`, or the challenge to answer it with.

        Reads Authorization (Proxy-Authorization when `proxy`, answered with 407). Lines
        that do not parse, name another realm or an algorithm not offered are ignored;
        the rest are tried strongest first. Every failure (unknown user, wrong password,
        uri, nonce) gets the same fresh challenge, so a prober cannot tell which part
        was wrong; only a correct response on an expired or used nonce says stale=true.
        """
        now_ms = round(now * 1000)
        self._forget_expired(now_ms)
        header = "Proxy-Authorization" if proxy else "Authorization"
        candidates: list[DigestCredentials] = []
        for value in request.headers.get_all(header):
            try:
                credentials = parse_credentials(value)
            except SipParseError:
                continue
            if credentials.realm == self._realm and credentials.base_algorithm in self._algorithms:
                candidates.append(credentials)
        candidates.sort(key=lambda c: self._algorithms.index(c.base_algorithm))
        stale = False
        for credentials in candidates:
            verdict = self._verify(credentials, request, now_ms)
            if verdict is _Verdict.ACCEPTED:
                return Authenticated(credentials.username)
            stale = stale or verdict is _Verdict.STALE
        hint = candidates[0].username if candidates else self._from_user(request)
        return self._challenge(hint, now_ms, proxy=proxy, stale=stale)

    # -- verification ---------------------------------------------------------------

    def _verify(self, credentials: DigestCredentials, request: Request, now_ms: int) -> _Verdict:
        issued_ms = self._nonce_issued_ms(credentials.nonce)
        if issued_ms is None:
            return _Verdict.REJECTED
        if credentials.opaque is not None and not hmac.compare_digest(
            credentials.opaque.encode("utf-8"), self._opaque(credentials.nonce).encode("ascii")
        ):
            return _Verdict.REJECTED
        if not self._uri_matches(credentials.uri, request.uri):
            return _Verdict.REJECTED
        if credentials.qop not in (None, "auth"):
            return _Verdict.REJECTED
        if credentials.algorithm.endswith(_SESS_SUFFIX) and credentials.cnonce is None:
            return _Verdict.REJECTED
        account = self._accounts.get(credentials.username)
        ha1 = account.ha1(credentials.base_algorithm) if account is not None else None
        # Unknown users and missing hashes are compared against a dummy, so the work
        # done does not tell an unknown username from a wrong password.
        expected = compute_response(
            algorithm=credentials.algorithm,
            ha1=ha1 if ha1 is not None else "0" * 64,
            nonce=credentials.nonce,
            method=request.method,
            uri=credentials.uri,
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
        )
        matched = hmac.compare_digest(
            expected.encode("ascii"), credentials.response.encode("utf-8")
        )
        if not matched or ha1 is None:
            return _Verdict.REJECTED
        too_old = now_ms - issued_ms > self._nonce_lifetime_ms
        evicted = self._replay_floor_ms is not None and issued_ms <= self._replay_floor_ms
        if too_old or issued_ms > now_ms or evicted:
            return _Verdict.STALE
        nc = int(credentials.nc, 16) if credentials.nc is not None else None
        if not self._record_use(credentials.nonce, issued_ms, nc):
            return _Verdict.STALE
        return _Verdict.ACCEPTED

    def _uri_matches(self, digest_uri: str, request_uri: str) -> bool:
        """RFC 7616 §3.4.6: the digest-uri names the resource of the Request-Line."""
        if digest_uri.strip() == request_uri.strip():
            return True
        if not self._accept_host_only_digest_uri:
            return False
        try:
            signed = SipUri.parse(digest_uri)
            target = SipUri.parse(request_uri)
        except SipParseError:
            return False
        return (
            signed.user is None
            and signed.scheme == target.scheme
            and signed.host == target.host
            and signed.port == target.port
            and all(name == "transport" for name, _ in signed.params)
            and not signed.headers
        )

    def _record_use(self, nonce: str, issued_ms: int, nc: int | None) -> bool:
        """Remember a successful use; False if this nonce count was already seen."""
        highest = self._highest_nc.get(nonce)
        if nc is None:
            if highest is not None:
                return False
            used = _NONCE_SPENT
        else:
            if nc == 0 or (highest is not None and nc <= highest):
                return False
            used = nc
        self._highest_nc[nonce] = used
        if highest is None:
            heapq.heappush(self._tracked, (issued_ms, nonce))
            while len(self._tracked) > self._max_tracked_nonces:
                evicted_ms, evicted = heapq.heappop(self._tracked)
                del self._highest_nc[evicted]
                if self._replay_floor_ms is None or evicted_ms > self._replay_floor_ms:
                    self._replay_floor_ms = evicted_ms
        return True

    def _forget_expired(self, now_ms: int) -> None:
        """Drop counts of nonces past their lifetime: those are refused as stale anyway."""
        while self._tracked and now_ms - self._tracked[0][0] > self._nonce_lifetime_ms:
            _, nonce = heapq.heappop(self._tracked)
            del self._highest_nc[nonce]

    # -- nonces and challenges --------------------------------------------------------

    def _mac(self, label: bytes, data: bytes) -> bytes:
        message = label + b"\0" + self._realm.encode("utf-8") + b"\0" + data
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def _make_nonce(self, now_ms: int) -> str:
        payload = _NONCE_PAYLOAD.pack(now_ms, self._rng.getrandbits(64).to_bytes(8, "big"))
        token = payload + self._mac(b"nonce", payload)[:_NONCE_MAC_BYTES]
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")

    def _nonce_issued_ms(self, nonce: str) -> int | None:
        """Return the issue time of a nonce this realm and secret made, else None."""
        if _NONCE.match(nonce) is None:
            return None
        try:
            token = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return None
        if base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii") != nonce:
            return None  # non-canonical spelling of the last character
        payload, mac = token[: _NONCE_PAYLOAD.size], token[_NONCE_PAYLOAD.size :]
        if not hmac.compare_digest(mac, self._mac(b"nonce", payload)[:_NONCE_MAC_BYTES]):
            return None
        issued_ms: int = _NONCE_PAYLOAD.unpack(payload)[0]
        return issued_ms

    def _opaque(self, nonce: str) -> str:
        mac = self._mac(b"opaque", nonce.encode("utf-8"))[:_OPAQUE_MAC_BYTES]
        return base64.urlsafe_b64encode(mac).decode("ascii")

    def _offered(self, username: str | None) -> tuple[str, ...]:
        """Algorithms to offer: for a known account, only those it has an HA1 for."""
        account = self._accounts.get(username) if username is not None else None
        if account is None:
            return self._algorithms
        held = tuple(a for a in self._algorithms if account.ha1(a) is not None)
        return held or self._algorithms

    def _challenge(
        self, username: str | None, now_ms: int, *, proxy: bool, stale: bool
    ) -> Challenge:
        """Build one challenge line per algorithm, strongest first (RFC 8760 §2.4)."""
        nonce = self._make_nonce(now_ms)
        opaque = self._opaque(nonce)
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        suffix = ", stale=true" if stale else ""
        lines = tuple(
            (
                name,
                f'Digest realm="{self._realm}", nonce="{nonce}", opaque="{opaque}", '
                f'algorithm={algorithm}, qop="auth"{suffix}',
            )
            for algorithm in self._offered(username)
        )
        return Challenge(407 if proxy else 401, lines)

    @staticmethod
    def _from_user(request: Request) -> str | None:
        try:
            return request.from_address.sip_uri.user_unescaped
        except SipParseError:
            return None


# -- client side: answering a 401 / 407 (RFC 3261 §22.2-22.4, RFC 7616 §3.4) ------------

# Preference among the algorithms we answer, strongest first (RFC 8760 §2.4); the
# "-sess" variants rank with their hash and need qop (their HA1 takes the cnonce,
# which only a qop answer carries).
_CLIENT_PREFERENCE = (SHA256, MD5)
_CHALLENGE_HEADERS = {401: "WWW-Authenticate", 407: "Proxy-Authenticate"}
# RFC 7235 §2.1: a challenge is `auth-scheme [ 1*SP ( token68 / #auth-param ) ]`, and
# several of them may share one header line, so a list item that is not `name=value`
# starts the next challenge.
_AUTH_PARAM_START = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+[ \t]*=")
_CHALLENGE_START = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+)(?:[ \t]+(.*))?", re.DOTALL)
_MAX_NONCE_COUNT = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """The username and password the bridge answers challenges with (a trunk account)."""

    username: str
    password: str

    def __post_init__(self) -> None:
        # A line break would end the header line early (Message._serialize refuses it).
        if not self.username or any(c in self.username for c in "\r\n"):
            raise ValueError("username must be non-empty and on one line")


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """One Digest challenge of a 401 / 407 (RFC 7616 §3.3), as the client reads it.

    `algorithm` is canonical ("MD5" when the challenge names none, RFC 7616 §3.3);
    `algorithm_text` is the token as received, echoed back, or None when absent.
    `qop_options` are the offered qop values, lower case. `proxy` is True for a
    Proxy-Authenticate (answered with Proxy-Authorization).
    """

    realm: str
    nonce: str
    algorithm: str = MD5
    algorithm_text: str | None = None
    qop_options: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False

    @property
    def answer_header(self) -> str:
        """The header that carries the answer (RFC 3261 §22.2, §22.3)."""
        return "Proxy-Authorization" if self.proxy else "Authorization"

    @property
    def answerable(self) -> bool:
        """We know its hash, and its qop (if any) offers "auth"; auth-int alone is not."""
        base = self.algorithm.removesuffix(_SESS_SUFFIX)
        if base not in _CLIENT_PREFERENCE:
            return False
        if self.algorithm.endswith(_SESS_SUFFIX) or self.qop_options:
            return "auth" in self.qop_options
        return True

    def answer(
        self,
        method: str,
        uri: str,
        credentials: ClientCredentials,
        *,
        cnonce: str,
        nonce_count: int = 1,
    ) -> str:
        """Return the Authorization value answering this challenge (RFC 7616 §3.4).

        `uri` is the Request-URI (RFC 3261 §22.4). With qop, `nonce_count` counts the
        requests sent with this nonce (1 for the first); without qop, `cnonce` and
        `nonce_count` are not sent (RFC 2069).
        """
        if not self.answerable:
            raise ValueError(f"cannot answer {self.algorithm} with qop {self.qop_options}")
        if not 1 <= nonce_count <= _MAX_NONCE_COUNT:
            raise ValueError(f"nonce_count out of range: {nonce_count}")
        qop = "auth" if self.qop_options else None
        nc = f"{nonce_count:08x}" if qop is not None else None
        ha1 = compute_ha1(
            credentials.username,
            self.realm,
            credentials.password,
            self.algorithm.removesuffix(_SESS_SUFFIX),
        )
        response = compute_response(
            algorithm=self.algorithm,
            ha1=ha1,
            nonce=self.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce if qop is not None else None,
        )
        # RFC 7616 §3.4: username, realm, nonce, uri, response, cnonce and opaque are
        # quoted-strings; algorithm, qop and nc are tokens.
        parts = [
            f"username={_quoted(credentials.username)}",
            f"realm={_quoted(self.realm)}",
            f"nonce={_quoted(self.nonce)}",
            f"uri={_quoted(uri)}",
            f'response="{response}"',
        ]
        if self.algorithm_text is not None:
            parts.append(f"algorithm={self.algorithm_text}")
        if qop is not None:
            parts += [f"cnonce={_quoted(cnonce)}", f"qop={qop}", f"nc={nc}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quoted(self.opaque)}")
        return "Digest " + ", ".join(parts)


def _quoted(text: str) -> str:
    """Print a quoted-string, escaping `"` and `\\` (RFC 3261 §25.1 quoted-pair)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_challenges(value: str) -> list[tuple[str, list[str]]]:
    """Split one header value into (scheme, auth-param items) per challenge."""
    challenges: list[tuple[str, list[str]]] = []
    for item in split_header_list(value):
        if _AUTH_PARAM_START.match(item) is None:
            start = _CHALLENGE_START.fullmatch(item)
            if start is None:  # not a challenge: it and its parameters are skipped
                challenges.append(("", []))
                continue
            first = start.group(2)
            challenges.append((start.group(1), [first] if first else []))
        elif challenges:
            challenges[-1][1].append(item)
    return challenges


def _read_challenge(scheme: str, items: list[str], *, proxy: bool) -> DigestChallenge | None:
    """Read one Digest challenge's parameters; None for another scheme or bad grammar."""
    if scheme.lower() != "digest":
        return None
    try:
        params = _parse_auth_params(", ".join(items))
    except SipParseError:
        return None
    realm = params.get("realm")
    nonce = params.get("nonce")
    if realm is None or nonce is None:
        return None
    algorithm_text = params.get("algorithm")
    algorithm = MD5
    if algorithm_text is not None:
        algorithm = _CANONICAL_ALGORITHMS.get(algorithm_text.lower(), algorithm_text)
    qop_options = tuple(
        option.strip().lower() for option in params.get("qop", "").split(",") if option.strip()
    )
    return DigestChallenge(
        realm=realm,
        nonce=nonce,
        algorithm=algorithm,
        algorithm_text=algorithm_text,
        qop_options=qop_options,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        proxy=proxy,
    )


def parse_challenges(response: Response) -> list[DigestChallenge]:
    """Return every Digest challenge of a 401 (WWW-Authenticate) or 407
    (Proxy-Authenticate), in order, answerable or not; other statuses have none.

    Several header lines and several challenges per line are read (RFC 7235 §4.1);
    challenges of other schemes and ones that do not parse are skipped.
    """
    header = _CHALLENGE_HEADERS.get(response.status)
    if header is None:
        return []
    proxy = response.status == 407
    challenges: list[DigestChallenge] = []
    for value in response.headers.get_all(header):
        for scheme, items in _split_challenges(value):
            challenge = _read_challenge(scheme, items, proxy=proxy)
            if challenge is not None:
                challenges.append(challenge)
    return challenges


def select_challenge(response: Response) -> DigestChallenge | None:
    """Return the challenge to answer: the strongest answerable one, first on ties."""
    answerable = [c for c in parse_challenges(response) if c.answerable]
    if not answerable:
        return None
    return min(
        answerable,
        key=lambda c: _CLIENT_PREFERENCE.index(c.algorithm.removesuffix(_SESS_SUFFIX)),
    )


def answer_challenge(
    response: Response,
    method: str,
    uri: str,
    credentials: ClientCredentials,
    *,
    cnonce: str,
    nonce_count: int = 1,
) -> tuple[str, str] | None:
    """Authorization (for a 401's WWW-Authenticate) or Proxy-Authorization (for a 407's
    Proxy-Authenticate) header (name, value) answering the response's challenge; None when
    it has no Digest challenge we can answer (RFC 3261 §22.2-22.4, RFC 7616: MD5, SHA-256,
    qop=auth or none, opaque echoed; prefer SHA-256 when offered and we support it).

    `uri` is the Request-URI of the request being retried; `cnonce` should be fresh
    randomness from the caller (sent only with qop).
    """
    challenge = select_challenge(response)
    if challenge is None:
        return None
    value = challenge.answer(method, uri, credentials, cnonce=cnonce, nonce_count=nonce_count)
    return challenge.answer_header, value
