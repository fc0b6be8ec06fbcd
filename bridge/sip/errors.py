"""Errors raised by the SIP core, each saying whose fault it was and what to answer.

Modelled on h11's LocalProtocolError/RemoteProtocolError: the edge turns a
`RemoteProtocolError` into a response with `status_hint` (when it can still tell whom
to answer) or drops the message and logs it.
"""


class SipError(Exception):
    """Base of all SIP errors raised by this package."""


class RemoteProtocolError(SipError):
    """The peer sent something that breaks the protocol."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class SipParseError(RemoteProtocolError):
    """Bytes that are not a SIP message we accept (RFC 3261 §7, §25)."""


class LocalProtocolError(SipError):
    """Our own code asked for something the protocol does not allow."""
