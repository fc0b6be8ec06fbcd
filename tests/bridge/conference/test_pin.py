"""PIN entry: participant and moderator PINs, three tries, rooms with only a moderator PIN."""

from bridge.conference.pin import PinEntry, PinOutcome


def enter(entry: PinEntry, digits: str) -> PinOutcome | None:
    outcome = None
    for digit in digits:
        outcome = entry.press(digit)
    return outcome


def test_participant_and_moderator_pins() -> None:
    assert enter(PinEntry("4321", "9876"), "4321#") is PinOutcome.PARTICIPANT
    assert enter(PinEntry("4321", "9876"), "9876#") is PinOutcome.MODERATOR


def test_digits_before_hash_are_not_judged() -> None:
    assert enter(PinEntry("4321", None), "4321") is None


def test_three_wrong_pins_fail() -> None:
    entry = PinEntry("4321", "9876")
    assert enter(entry, "1111#") is PinOutcome.WRONG
    assert enter(entry, "2222#") is PinOutcome.WRONG
    assert enter(entry, "3333#") is PinOutcome.FAILED
    assert entry.attempts == 3


def test_right_pin_after_a_wrong_one() -> None:
    entry = PinEntry("4321", None)
    assert enter(entry, "12#") is PinOutcome.WRONG
    assert enter(entry, "4321#") is PinOutcome.PARTICIPANT


def test_empty_entry_is_wrong_when_the_room_has_a_pin() -> None:
    assert enter(PinEntry("4321", None), "#") is PinOutcome.WRONG


def test_moderator_only_room_admits_participants_on_empty_entry() -> None:
    assert enter(PinEntry(None, "9876"), "#") is PinOutcome.PARTICIPANT
    assert PinEntry(None, "9876").submit() is PinOutcome.PARTICIPANT
    assert enter(PinEntry(None, "9876"), "9876#") is PinOutcome.MODERATOR
    assert enter(PinEntry(None, "9876"), "1#") is PinOutcome.WRONG


def test_a_stuck_key_does_not_grow_without_bound() -> None:
    entry = PinEntry("4321", None)
    enter(entry, "1" * 10_000)
    assert enter(entry, "#") is PinOutcome.WRONG
