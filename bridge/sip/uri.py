"""SIP and tel URIs (RFC 3261 §19.1, RFC 3966): parse, compare parts, print back.

Only what a conference bridge needs to route and answer calls: scheme, user, host,
port, parameters and the raw header part. Escaped user parts are decoded for matching
(`user`), printed back as received.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from urllib.parse import unquote

from bridge.sip.errors import SipParseError

# hostport = host [ ":" port ];  host = hostname / IPv4address / IPv6reference
_HOSTPORT = re.compile(
    r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?$", re.ASCII
)
# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )   (RFC 3261 §25.1, absoluteURI)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$", re.ASCII)
# A parameter name: token (header parameters) or pname (URI parameters, which add
# "[" "]" "/" ":" "&" "$" and escapes); anything that would make the list ambiguous is out.
_PARAM_NAME = re.compile(r'^[^\s"<>,;=?@\\]+$')
# gen-value = token / host / quoted-string; unquoted values must not carry separators.
_PARAM_VALUE = re.compile(r'^(?:"(?:[^"\\]|\\.)*"|[^\s"<>,;\\]*)$', re.DOTALL)
_WHITESPACE = re.compile(r"\s")
# The common case in one match: a name, and a value that needs no further checks.
_SIMPLE_PARAM = re.compile(r'^\s*([^\s"<>,;=?@\\]+)\s*(?:=\s*([^\s"<>,;\\]*)\s*)?$')

UriParams = tuple[tuple[str, str | None], ...]


def _split_unquoted(text: str, separator: str) -> list[str]:
    """Split at `separator` except inside double quotes (quoted-pair aware)."""
    if '"' not in text:
        return text.split(separator)
    items: list[str] = []
    start = 0
    in_quote = False
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif in_quote and char == "\\":
            escaped = True
        elif char == '"':
            in_quote = not in_quote
        elif not in_quote and char == separator:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def parse_params(text: str) -> UriParams:
    """Parse `;name=value;flag` parameter lists (the text after the first `;`).

    Names are lower-cased (RFC 3261 §7.3.1: parameter names are case-insensitive);
    values are kept as received, quotes included. LWS around `=` and `;` is allowed
    (§25.1 EQUAL, SEMI); an empty parameter (`;;`, RFC 4475 §3.1.2.1) is not, except
    that one trailing `;` is tolerated because it is unambiguous.
    """
    items = _split_unquoted(text, ";")
    if not items[-1].strip():
        items.pop()
    params: list[tuple[str, str | None]] = []
    for item in items:
        simple = _SIMPLE_PARAM.match(item)
        if simple is not None:
            params.append((simple.group(1).lower(), simple.group(2)))
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not name:
            raise SipParseError(f"empty parameter in {text[:60]!r}")
        if not _PARAM_NAME.match(name):
            raise SipParseError(f"invalid parameter name: {name[:40]!r}")
        if not sep:
            params.append((name.lower(), None))
            continue
        value = value.strip()
        if not _PARAM_VALUE.match(value):
            raise SipParseError(f"invalid parameter value: {value[:40]!r}")
        params.append((name.lower(), value))
    return tuple(params)


def format_params(params: UriParams) -> str:
    """Print parameters back as `;name=value;flag`."""
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def split_hostport(text: str) -> tuple[str, int | None]:
    """Split `host[:port]`, checking both (RFC 3261 §25.1 hostport, RFC 5118 IPv6)."""
    match = _HOSTPORT.match(text.strip())
    if match is None:
        raise SipParseError(f"invalid host and port: {text[:60]!r}")
    host = match.group("host")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise SipParseError(f"invalid IPv6 reference: {host[:60]!r}") from None
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise SipParseError(f"port out of range: {port}")
    return host.lower(), int(port) if port is not None else None


def check_absolute_uri(text: str) -> str:
    """Return the scheme of `scheme:rest`, raising when it is not an absolute URI.

    RFC 3261 §25.1 absoluteURI has no whitespace and no enclosing `<>` (RFC 4475
    §3.1.2.7 and §3.1.2.8 show both as errors).
    """
    scheme, colon, rest = text.partition(":")
    if not colon or not rest or not _SCHEME.match(scheme) or _WHITESPACE.search(text):
        raise SipParseError(f"invalid URI: {text[:60]!r}")
    return scheme.lower()


@dataclass(frozen=True, slots=True)
class SipUri:
    """A `sip:`, `sips:` or `tel:` URI.

    For `tel:` URIs the subscriber number is `user` and `host` is empty.
    """

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: UriParams = ()
    headers: str = ""
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a URI, raising `SipParseError` when it is not a SIP, SIPS or tel URI.

        A syntactically valid URI of another scheme gets `status_hint` 416 (RFC 3261
        §8.2.2.1); a malformed one gets 400.
        """
        text = text.strip()
        scheme = check_absolute_uri(text)
        if scheme not in ("sip", "sips", "tel"):
            raise SipParseError(f"unsupported URI scheme: {text[:40]!r}", status_hint=416)
        rest = text.partition(":")[2]
        if scheme == "tel":
            number, _, param_text = rest.partition(";")
            if not number:
                raise SipParseError("tel URI without a number")
            return cls(scheme, number, "", None, parse_params(param_text))
        # userinfo may hold ";", "?" and ":" (§25.1 user-unreserved, RFC 4475 §3.1.1.2),
        # but never an unescaped "@", so the first "@" ends it.
        userinfo, at, hostpart = rest.partition("@")
        if not at:
            userinfo, hostpart = "", rest
        hostpart, _, headers = hostpart.partition("?")
        hostport, _, param_text = hostpart.partition(";")
        host, port = split_hostport(hostport)
        user: str | None = None
        password: str | None = None
        if at:
            user, colon, pw = userinfo.partition(":")
            password = pw if colon else None
            if not user:
                raise SipParseError(f"empty user part in URI: {text[:60]!r}")
        return cls(scheme, user, host, port, parse_params(param_text), headers, password)

    def param(self, name: str) -> str | None:
        """Return a parameter's value (`""` for a flag), or None when absent."""
        for key, value in self.params:
            if key == name:
                return "" if value is None else value
        return None

    @property
    def user_unescaped(self) -> str | None:
        """The user part with %-escapes decoded, for matching against extensions."""
        return unquote(self.user) if self.user is not None else None

    @property
    def transport(self) -> str:
        """The `transport` parameter, lower case; `udp` when absent (RFC 3263 default)."""
        return (self.param("transport") or "udp").lower()

    def with_params(self, params: UriParams) -> SipUri:
        """Return a copy with other parameters."""
        return replace(self, params=params)

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        userinfo = ""
        if self.user is not None:
            password = f":{self.password}" if self.password is not None else ""
            userinfo = f"{self.user}{password}@"
        port = f":{self.port}" if self.port is not None else ""
        headers = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{format_params(self.params)}{headers}"
