"""A gateway leg is wanted while its room has people, and re-dialled with backoff."""

import pytest

from bridge.conference.gateway import STABLE_S, GatewayLeg, LegState


def _leg() -> GatewayLeg:
    return GatewayLeg("rakor", "zoom", retry_min_s=2.0, retry_max_s=10.0)


def test_connects_when_the_room_starts_and_hangs_up_when_it_ends() -> None:
    leg = _leg()
    assert leg.state is LegState.IDLE
    assert leg.room_started(1.0)
    assert not leg.room_started(2.0)  # already connecting: no second call
    leg.connected(3.0)
    assert leg.status.state is LegState.UP and leg.status.since == 3.0
    assert leg.room_ended("room empty", 9.0)
    assert leg.status.state is LegState.IDLE and leg.status.reason == "room empty"
    assert not leg.room_ended("again", 10.0)


def test_failures_in_a_row_double_the_delay_up_to_the_ceiling() -> None:
    leg = _leg()
    leg.room_started(0.0)
    now = 0.0
    delays = []
    for _ in range(5):
        leg.dropped("486 Busy Here", now)
        next_at = leg.next_deadline()
        assert next_at is not None
        delays.append(next_at - now)
        assert not leg.due(next_at - 0.001)
        now = next_at
        assert leg.due(now)
        assert leg.state is LegState.CONNECTING
    assert delays == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert leg.status.attempts == 5


def test_a_leg_that_stayed_up_starts_again_from_the_shortest_delay() -> None:
    leg = _leg()
    leg.room_started(0.0)
    leg.dropped("timeout", 0.0)
    assert leg.due(2.0)
    leg.dropped("timeout", 2.0)
    assert leg.due(6.0)
    leg.connected(6.0)
    leg.dropped("far end hung up", 6.0 + STABLE_S)
    assert leg.next_deadline() == pytest.approx(6.0 + STABLE_S + 2.0)
    assert leg.status.attempts == 1


def test_a_short_lived_answer_keeps_backing_off() -> None:
    """A far end that answers and hangs up at once is not called 50 times a minute."""
    leg = _leg()
    leg.room_started(0.0)
    leg.connected(0.5)
    leg.dropped("far end hung up", 1.0)
    assert leg.due(3.0)
    leg.connected(3.1)
    leg.dropped("far end hung up", 3.5)
    assert leg.next_deadline() == pytest.approx(7.5)


def test_no_redial_once_the_room_has_ended() -> None:
    leg = _leg()
    leg.room_started(0.0)
    leg.dropped("503", 1.0)
    assert leg.room_ended("meeting ended", 1.5) is False  # nothing live to hang up
    assert leg.next_deadline() is None and not leg.due(100.0)
    leg.dropped("late failure", 2.0)  # a failure arriving after the end changes nothing
    assert leg.state is LegState.IDLE and leg.next_deadline() is None
    assert leg.room_started(5.0)  # the next meeting dials at once, from the shortest delay
    assert leg.status.attempts == 0


def test_refuses_nonsense_delays() -> None:
    with pytest.raises(ValueError):
        GatewayLeg("r", "l", retry_min_s=0.0, retry_max_s=1.0)
    with pytest.raises(ValueError):
        GatewayLeg("r", "l", retry_min_s=5.0, retry_max_s=1.0)
