"""Serial-number arithmetic for RTP sequence numbers (16 bit) and timestamps (32 bit).

RTP counters wrap around (RFC 3550 §5.1), so "greater" means "ahead by less than half the
number space" (the RFC 1982 idea). Every wrap-around comparison in this package goes through
these functions so that call sites read as `uint16_gt(seq, max_seq)`.
"""

UINT16_MOD = 1 << 16
_UINT16_HALF = 1 << 15
_UINT32_HALF = 1 << 31


def uint16_add(a: int, b: int) -> int:
    """Return a + b (mod 2**16)."""
    return (a + b) & 0xFFFF


def uint16_diff(a: int, b: int) -> int:
    """Return the signed shortest distance a - b (mod 2**16), in [-2**15, 2**15)."""
    return ((a - b + _UINT16_HALF) & 0xFFFF) - _UINT16_HALF


def uint16_gt(a: int, b: int) -> bool:
    """Return a > b (mod 2**16)."""
    return uint16_diff(a, b) > 0


def uint16_gte(a: int, b: int) -> bool:
    """Return a >= b (mod 2**16)."""
    return uint16_diff(a, b) >= 0


def uint32_add(a: int, b: int) -> int:
    """Return a + b (mod 2**32)."""
    return (a + b) & 0xFFFFFFFF


def uint32_diff(a: int, b: int) -> int:
    """Return the signed shortest distance a - b (mod 2**32), in [-2**31, 2**31)."""
    return ((a - b + _UINT32_HALF) & 0xFFFFFFFF) - _UINT32_HALF


def uint32_gt(a: int, b: int) -> bool:
    """Return a > b (mod 2**32)."""
    return uint32_diff(a, b) > 0
