"""Sans-I/O SIP (RFC 3261): messages, transactions, dialogs, offer/answer, digest auth.

Nothing in this package opens a socket or reads the clock: bytes and `now` come in,
bytes, events and the next deadline go out. Twisted lives in `bridge.net`.
"""
