"""SIP and tel URIs (RFC 3261 §19.1, RFC 3966): parse, compare parts, print back.

Only what a conference bridge needs to route and answer calls: scheme, user, host,
port, parameters and the raw header part. Escaped user parts are decoded for matching
(`user`), printed back as received.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import unquote

from bridge.sip.errors import SipParseError

# hostport = host [ ":" port ];  host = hostname / IPv4address / IPv6reference
_HOSTPORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?$")

UriParams = tuple[tuple[str, str | None], ...]


def parse_params(text: str) -> UriParams:
    """Parse `;name=value;flag` parameter lists (the text after the first `;`)."""
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        params.append((name.strip().lower(), value.strip() if sep else None))
    return tuple(params)


def format_params(params: UriParams) -> str:
    """Print parameters back as `;name=value;flag`."""
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def split_hostport(text: str) -> tuple[str, int | None]:
    """Split `host[:port]`, checking both (RFC 3261 §25.1 hostport)."""
    match = _HOSTPORT.match(text.strip())
    if match is None:
        raise SipParseError(f"invalid host and port: {text!r}")
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise SipParseError(f"port out of range: {port}")
    return match.group("host").lower(), int(port) if port is not None else None


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
        """Parse a URI, raising `SipParseError` when it is not a SIP, SIPS or tel URI."""
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips", "tel"):
            raise SipParseError(f"unsupported URI scheme: {text[:40]!r}", status_hint=416)
        if scheme == "tel":
            number, _, param_text = rest.partition(";")
            if not number:
                raise SipParseError("tel URI without a number")
            return cls(scheme, number, "", None, parse_params(param_text))
        rest, _, headers = rest.partition("?")
        userinfo, at, hostpart = rest.rpartition("@")
        if not at:
            userinfo, hostpart = "", rest
        hostport, _, param_text = hostpart.partition(";")
        host, port = split_hostport(hostport)
        user: str | None = None
        password: str | None = None
        if at:
            user, _, pw = userinfo.partition(":")
            password = pw or None
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
            userinfo = self.user + (f":{self.password}" if self.password else "") + "@"
        port = f":{self.port}" if self.port is not None else ""
        headers = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{format_params(self.params)}{headers}"
