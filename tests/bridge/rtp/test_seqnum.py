"""Serial-number arithmetic on 16-bit sequence numbers and 32-bit timestamps wraps correctly."""

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.rtp.seqnum import (
    uint16_add,
    uint16_diff,
    uint16_gt,
    uint16_gte,
    uint32_add,
    uint32_diff,
    uint32_gt,
)

uint16 = st.integers(0, 0xFFFF)
uint32 = st.integers(0, 0xFFFFFFFF)


def test_uint16_add_wraps_at_65536() -> None:
    assert uint16_add(65535, 1) == 0
    assert uint16_add(65000, 1000) == 464


def test_uint16_gt_across_the_wrap() -> None:
    assert uint16_gt(0, 65535)
    assert uint16_gt(100, 65000)
    assert not uint16_gt(65535, 0)
    assert not uint16_gt(5, 5)
    assert uint16_gte(5, 5)


def test_uint16_diff_is_the_signed_shortest_distance() -> None:
    assert uint16_diff(0, 65535) == 1
    assert uint16_diff(65535, 0) == -1
    assert uint16_diff(10, 3) == 7
    assert uint16_diff(0x8000, 0) == -0x8000


def test_uint16_half_way_is_neither_greater() -> None:
    assert not uint16_gt(0x8000, 0)
    assert not uint16_gt(0, 0x8000)


def test_uint32_functions_wrap_at_2_to_the_32() -> None:
    assert uint32_add(0xFFFFFFFF, 160) == 159
    assert uint32_gt(159, 0xFFFFFFFF)
    assert not uint32_gt(0xFFFFFFFF, 159)
    assert uint32_diff(159, 0xFFFFFFFF) == 160
    assert uint32_diff(0xFFFFFFFF, 159) == -160


@settings(max_examples=200, deadline=None)
@given(uint16, uint16)
def test_uint16_laws(a: int, b: int) -> None:
    diff = uint16_diff(a, b)
    assert -0x8000 <= diff < 0x8000
    assert uint16_add(b, diff) == a
    assert uint16_gt(a, b) == (diff > 0)
    assert uint16_gte(a, b) == (diff >= 0)
    assert not (uint16_gt(a, b) and uint16_gt(b, a))
    assert uint16_gt(a, b) or uint16_gt(b, a) or a == b or diff == -0x8000


@settings(max_examples=200, deadline=None)
@given(uint16, st.integers(1, 0x7FFF))
def test_uint16_stepping_forward_is_always_greater(a: int, step: int) -> None:
    later = uint16_add(a, step)
    assert uint16_gt(later, a)
    assert uint16_diff(later, a) == step


@settings(max_examples=200, deadline=None)
@given(uint32, uint32)
def test_uint32_laws(a: int, b: int) -> None:
    diff = uint32_diff(a, b)
    assert -(1 << 31) <= diff < 1 << 31
    assert uint32_add(b, diff) == a
    assert uint32_gt(a, b) == (diff > 0)
    assert not (uint32_gt(a, b) and uint32_gt(b, a))


@settings(max_examples=200, deadline=None)
@given(uint32, st.integers(1, (1 << 31) - 1))
def test_uint32_stepping_forward_is_always_greater(a: int, step: int) -> None:
    assert uint32_gt(uint32_add(a, step), a)
