"""The dialplan routes a dialled number to a room by Request-URI user, then by To user."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import RoomConfig, parse_config
from bridge.dialplan import Dialplan, Route, dialled_digits


def room(room_id: str, extension: str) -> RoomConfig:
    return RoomConfig(
        id=room_id, extension=extension, name=None, pin=None, moderator_pin=None,
        mode="meeting", access="anyone", language="id", codecs=("PCMU", "PCMA"),
    )


def hotline(room_id: str, extension: str, operator_extension: str) -> RoomConfig:
    return dataclasses.replace(room(room_id, extension), mode="hotline", moderator_pin="8080",
                               operator_extension=operator_extension)


DIALPLAN = Dialplan([
    room("rakor", "1000"), room("terbuka", "2000"), room("trunk", "+62211234"),
    hotline("pengaduan", "6000", "6001"),
])


@pytest.mark.parametrize(
    ("request_user", "room_id"),
    [
        ("1000", "rakor"),
        ("2000", "terbuka"),
        ("+1000", "rakor"),  # a leading "+" is not part of the match
        ("62211234", "trunk"),
        ("+62211234", "trunk"),
        ("+62-21-1234", "trunk"),  # RFC 3966 visual separators
        ("+62.21.1234", "trunk"),
        ("+62 (21) 1234", "trunk"),
        ("1000;phone-context=example.com", "rakor"),  # user=phone parameters (RFC 3261 §19.1.6)
        ("+62211234;isub=1", "trunk"),
    ],
)
def test_request_uri_user_reaches_room(request_user: str, room_id: str) -> None:
    assert DIALPLAN.match(request_user, None) == Route(room_id)


@pytest.mark.parametrize(
    "request_user",
    [None, "", "1001", "100", "10000", "rakor", "1000#", "*1000", "+", "-", "١٠٠٠", "1000@x"],
)
def test_unknown_number_has_no_route(request_user: str | None) -> None:
    assert DIALPLAN.match(request_user, None) is None
    assert DIALPLAN.match(request_user, request_user) is None


def test_to_user_is_tried_when_request_uri_matches_no_room() -> None:
    # A trunk that sends INVITE sip:pilot@bridge with the dialled DID only in To.
    assert DIALPLAN.match("pilot", "+62 21 1234") == Route("trunk")
    assert DIALPLAN.match(None, "2000") == Route("terbuka")
    assert DIALPLAN.match("9999", "1000") == Route("rakor")


def test_request_uri_wins_over_to_user() -> None:
    # After a redirect or call forward the To still names the original target.
    assert DIALPLAN.match("2000", "1000") == Route("terbuka")


def test_hotline_extension_routes_reporters_and_operator_extension_routes_operators() -> None:
    assert DIALPLAN.match("6000", None) == Route("pengaduan", operator=False)
    assert DIALPLAN.match("6001", None) == Route("pengaduan", operator=True)
    assert DIALPLAN.match("+60-01;phone-context=example.com", None) == Route("pengaduan",
                                                                             operator=True)
    assert DIALPLAN.match("pilot", "6001") == Route("pengaduan", operator=True)
    assert DIALPLAN.match("6000", "6001") == Route("pengaduan")  # the Request-URI decides
    assert DIALPLAN.room("pengaduan").operator_extension == "6001"


def test_operator_extension_that_matches_another_number_is_refused() -> None:
    with pytest.raises(ValueError, match="room 'pengaduan': operator_extension '\\+1000' is "
                                         "already room 'rakor'$"):
        Dialplan([room("rakor", "1000"), hotline("pengaduan", "6000", "+1000")])
    with pytest.raises(ValueError, match="room 'pengaduan': operator_extension '6000' is already "
                                         "room 'pengaduan'$"):
        Dialplan([hotline("pengaduan", "6000", "6000")])
    with pytest.raises(ValueError, match="room 'rakor': extension '60-01' is already room "
                                         "'pengaduan' \\(operators\\)$"):
        Dialplan([hotline("pengaduan", "6000", "6001"), room("rakor", "60-01")])


def test_room_numbers_reach_the_room_like_its_extension() -> None:
    dialplan = Dialplan([
        dataclasses.replace(room("rakor", "1000"), numbers=("0215551000", "+62215551000")),
        dataclasses.replace(hotline("pengaduan", "6000", "6001"), numbers=("112",)),
    ])
    assert dialplan.match("0215551000", None) == Route("rakor")
    assert dialplan.match("+62 21 555-1000", None) == Route("rakor")
    assert dialplan.match("62215551000;phone-context=+62", None) == Route("rakor")
    # A trunk's INVITE to our Contact user (the pilot) carries the DID only in To.
    assert dialplan.match("telerapat", "+62215551000") == Route("rakor")
    assert dialplan.match("112", None) == Route("pengaduan", operator=False)
    assert dialplan.match("0215551001", "215551000") is None


def test_room_number_that_matches_another_number_is_refused() -> None:
    with pytest.raises(ValueError, match=r"room 'lain': number '\+1000' is already room "
                                         "'rakor'$"):
        Dialplan([room("rakor", "1000"), dataclasses.replace(room("lain", "2000"),
                                                             numbers=("+1000",))])
    with pytest.raises(ValueError, match="room 'h': number '6001' is already room 'h' "
                                         r"\(operators\)$"):
        Dialplan([dataclasses.replace(hotline("h", "6000", "6001"), numbers=("6001",))])
    with pytest.raises(ValueError, match="room 'r': number 'x' is not a number$"):
        Dialplan([dataclasses.replace(room("r", "1"), numbers=("x",))])


def test_non_numeric_operator_extension_is_refused() -> None:
    with pytest.raises(ValueError, match="room 'h': operator_extension 'x' is not a number"):
        Dialplan([hotline("h", "6000", "x")])


def test_route_names_its_room_and_the_operators_line() -> None:
    assert str(Route("rakor")) == "room 'rakor'"
    assert str(Route("pengaduan", operator=True)) == "room 'pengaduan' (operators)"


def test_room_returns_its_config_and_raises_for_unknown_ids() -> None:
    assert DIALPLAN.room("rakor").extension == "1000"
    with pytest.raises(KeyError):
        DIALPLAN.room("nothing")


def test_extensions_that_match_the_same_calls_are_refused() -> None:
    with pytest.raises(ValueError, match="extension '\\+1000' is already room 'rakor'"):
        Dialplan([room("rakor", "1000"), room("lain", "+1000")])


def test_duplicate_room_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="room id 'rakor' is used twice"):
        Dialplan([room("rakor", "1000"), room("rakor", "2000")])


def test_non_numeric_extension_is_refused() -> None:
    with pytest.raises(ValueError, match="extension 'abc' is not a number"):
        Dialplan([room("x", "abc")])


def test_dialplan_from_a_loaded_config() -> None:
    config = parse_config(
        "rooms:\n  - {id: rakor, extension: 1000}\n  - {id: dprd, extension: '+62274555'}\n"
        "  - {id: lapor, extension: 112233, mode: hotline, operator_extension: '+62274556',\n"
        "     moderator_pin: '1', numbers: ['0274557', '+62274557']}\n",
        "f.yaml",
    )
    dialplan = Dialplan(config.rooms)
    assert dialplan.match("62274555", None) == Route("dprd")
    assert dialplan.match("112233", None) == Route("lapor")
    assert dialplan.match("62274556", None) == Route("lapor", operator=True)
    assert dialplan.match("pilot", "0274557") == Route("lapor")
    assert dialplan.match("62274557", None) == Route("lapor")
    assert dialplan.room("rakor") is config.rooms[0]


def test_dialled_digits_strips_only_what_rfc_3966_allows() -> None:
    assert dialled_digits("+62 (21) 123-4.5") == "622112345"
    assert dialled_digits("12a") is None
    assert dialled_digits("1/2") is None
    assert dialled_digits("") is None


SEPARATORS = st.sampled_from(["", "", "", "-", ".", " ", "(", ")"])


@st.composite
def dialled_forms(draw: st.DrawFn, number: str) -> str:
    """A way a person or a trunk might write `number`: "+", separators, a parameter."""
    text = "+" if draw(st.booleans()) else ""
    for digit in number:
        text += digit + draw(SEPARATORS)
    if draw(st.booleans()):
        text += ";phone-context=" + draw(st.sampled_from(["example.com", "+6221"]))
    return text


@settings(max_examples=200, deadline=None)
@given(st.data(), st.lists(st.from_regex(r"[0-9]{1,15}", fullmatch=True), min_size=1,
                           max_size=8, unique=True))
def test_every_written_form_of_an_extension_reaches_its_room(
    data: st.DataObject, numbers: list[str]
) -> None:
    rooms = [room(f"r{index}", number) for index, number in enumerate(numbers)]
    dialplan = Dialplan(rooms)
    for index, number in enumerate(numbers):
        dialled = data.draw(dialled_forms(number))
        assert dialplan.match(dialled, None) == Route(f"r{index}")
        assert dialplan.match("not-a-number", dialled) == Route(f"r{index}")
    unknown = data.draw(st.from_regex(r"[0-9]{1,16}", fullmatch=True))
    if unknown not in numbers:
        assert dialplan.match(unknown, unknown) is None
