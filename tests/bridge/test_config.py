"""Config YAML loads into frozen dataclasses; every problem is reported as file:line: field."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import (
    DEFAULT_KEYMAP,
    DEFAULT_KEYMAP_ITEMS,
    KEYPAD_COMMANDS,
    Account,
    Config,
    ConfigError,
    ConfigProblem,
    ListenAddress,
    OperatorHours,
    OpusConfig,
    RoomConfig,
    load_config,
    parse_config,
)
from tests.conftest import FIXTURES

CONFIG_FIXTURES = FIXTURES / "config"
REPO = Path(__file__).resolve().parents[2]
ROOM = 'rooms: [{id: rakor, extension: "1000"}]\n'
ALL_CODECS = ("OPUS", "G722", "PCMU", "PCMA")

# Each bad fixture and the exact lines `str(ConfigError)` prints for it, without the
# "<path>:" prefix every line carries.
EXPECTED_PROBLEMS: dict[str, list[str]] = {
    "empty.yaml": [
        "1: the file is empty; a config needs at least a rooms: list",
    ],
    "bad_syntax_mapping.yaml": [
        "6: invalid YAML: mapping values are not allowed here",
    ],
    "bad_syntax_quote.yaml": [
        "4: invalid YAML: expected <block end>, but found '<scalar>' "
        "(while parsing a block mapping at line 2)",
    ],
    "bad_syntax_tab.yaml": [
        "2: invalid YAML: found character '\\t' that cannot start any token "
        "(while scanning for the next token)",
    ],
    "bad_two_documents.yaml": [
        "2: invalid YAML: a config is a single document, but another one starts here",
    ],
    "bad_top_level.yaml": [
        "1: expected a mapping with keys sip, rtp, language, codecs, ptime_ms, opus, accounts, "
        "trunks, recording, rooms, got a list",
    ],
    "bad_no_rooms.yaml": [
        '1: rooms: required: a list of rooms, e.g. - {id: rakor, extension: "1000"}',
    ],
    "bad_duplicate_keys.yaml": [
        '3: sip.domain: duplicate key "domain" (first at line 2); '
        "YAML would silently keep only the last one",
        '6: accounts.dinkes: duplicate key "dinkes" (first at line 5); '
        "YAML would silently keep only the last one",
        '11: rooms[0].pin: duplicate key "pin" (first at line 10); '
        "YAML would silently keep only the last one",
        '12: rooms: duplicate key "rooms" (first at line 7); '
        "YAML would silently keep only the last one",
    ],
    "bad_unknown_keys.yaml": [
        '2: sip.listne: unknown key "listne"; did you mean "listen"?',
        '5: rtp.timeout: unknown key "timeout"; did you mean "timeout_s"?',
        '6: langauge: unknown key "langauge"; did you mean "language"?',
        '7: room: unknown key "room"; did you mean "rooms"?',
        '10: rooms[0].extension: required: the number callers dial to reach the room, e.g. "1000"',
        '11: rooms[0].extention: unknown key "extention"; did you mean "extension"?',
        '12: rooms[0].moderator_pn: unknown key "moderator_pn"; did you mean "moderator_pin"?',
        '13: rooms[0].colour: unknown key "colour"; expected one of: id, extension, numbers, '
        "name, pin, moderator_pin, mode, access, language, codecs, max_talkers, "
        "voice_detection, agc, echo_cancellation, wait_for_moderator, end_when_moderator_leaves, "
        "max_members, announce, record, keypad, gateways, operator_extension, operator_hours, "
        "report_max_s, transfer_room",
        '15: accounts.dinkes.pasword: unknown key "pasword"; did you mean "password"?',
        '15: accounts.dinkes: needs password, or ha1 and/or ha1_sha256 (hex digests of '
        '"dinkes:pemkab.example:password")',
    ],
    "bad_types.yaml": [
        "1: sip: expected a mapping with keys listen, domain, external_address, user_agent, "
        "digest_algorithms, allow_from, got a list",
        '2: rtp: expected a mapping with keys ports, timeout_s, stats_interval_s, got the text '
        '"40000-40999"',
        "3: language: expected text, got a list",
        '4: codecs: expected a list, got the text "PCMU"',
        "5: accounts: expected a mapping of username: {password: ...}, got a list",
        "6: rooms: expected a list, got a mapping",
    ],
    "bad_listen.yaml": [
        "4: sip.listen[1]: udp:127.0.0.1:5060 is listed twice (also sip.listen[0])",
        "5: sip.listen[2]: transport tls is not supported in this version; use udp or tcp",
        '6: sip.listen[3]: "sctp:127.0.0.1:5062": unknown transport "sctp"; use udp or tcp',
        '7: sip.listen[4]: "http:127.0.0.1:80": unknown transport "http"; use udp or tcp',
        '8: sip.listen[5]: "udp:::1:5060": write an IPv6 address in brackets, '
        'e.g. "udp:127.0.0.1:5060" or "udp:[::1]:5060"',
        '9: sip.listen[6]: "udp:[127.0.0.1]:5060": brackets are for IPv6 addresses only, '
        'e.g. "udp:127.0.0.1:5060" or "udp:[::1]:5060"',
        '10: sip.listen[7]: "udp:localhost:5060": "localhost" is not an IP address; the bridge '
        "binds to it and advertises it, so give the address itself, not a host name",
        '11: sip.listen[8]: "udp:127.0.0.1:0": port must be a number from 1 to 65535',
        '12: sip.listen[9]: "udp:127.0.0.1:65536": port must be a number from 1 to 65535',
        '13: sip.listen[10]: "udp:127.0.0.1" is not transport:address:port, '
        'e.g. "udp:127.0.0.1:5060" or "udp:[::1]:5060"',
        '14: sip.listen[11]: "5060" is not transport:address:port, '
        'e.g. "udp:127.0.0.1:5060" or "udp:[::1]:5060"',
        "15: sip.listen[12]: 0.0.0.0 listens on every interface, so the bridge cannot tell which "
        "address to advertise in SDP and Contact; list each concrete address, or set "
        "sip.external_address",
        "16: sip.listen[13]: :: listens on every interface, so the bridge cannot tell which "
        "address to advertise in SDP and Contact; list each concrete address, or set "
        "sip.external_address",
    ],
    "bad_listen_wildcard_overlap.yaml": [
        "2: sip.listen[1]: udp:192.0.2.10:5060 overlaps udp:0.0.0.0:5060 (sip.listen[0]): "
        "a wildcard address already takes that port on every interface",
    ],
    "bad_sip_values.yaml": [
        '2: sip.listen: needs at least one address, e.g. "udp:127.0.0.1:5060"',
        '3: sip.domain: "pemkab example" is not a host name or IP address (RFC 3261 §25.1); '
        "it is the digest realm and the domain of our SIP URIs",
        '4: sip.external_address: "nat.pemkab.example" is not an IP address; it is written '
        "into SDP c= lines and Contact headers, where phones expect an address (RFC 4566 §5.7)",
        '5: sip.user_agent: "telerapat\\t/ 0.1" is not a User-Agent value: product tokens such '
        'as "telerapat/0.1", optionally with (comments) (RFC 3261 §20.41)',
    ],
    "bad_external_unspecified.yaml": [
        '2: sip.listen: expected a list, got the text "udp:127.0.0.1:5060"',
        "3: sip.external_address: 0.0.0.0 cannot be advertised: callers would send their "
        "audio nowhere",
        '5: sip.user_agent: expected text, got "yes", which YAML reads as the boolean true; '
        "quote it for text",
    ],
    "bad_rtp.yaml": [
        "4: rtp.ports: the range must start on an even port, not 40001: RTP takes even ports "
        "and RTCP the odd one above (RFC 3550 §11)",
        "4: rtp.ports: 40001-40000 holds no RTP/RTCP port pair; the first port must be below "
        "the last",
        "5: rtp.timeout_s: must be more than 0 seconds, got 0",
        "6: rtp.stats_interval_s: must be 0 (no report) or at least 1 second, got 0.5",
    ],
    "bad_rtp_range.yaml": [
        "2: rtp.ports: port 1000 is outside 1024-65535",
        "2: rtp.ports: port 70000 is outside 1024-65535",
        "2: rtp.ports: 1000-70000 includes SIP port 5060 (udp:127.0.0.1:5060)",
        '3: rtp.timeout_s: expected a number, got the text "30"',
    ],
    "bad_rtp_format.yaml": [
        '2: rtp.ports: expected a range "first-last" such as "40000-40999", got "40000"',
        "3: rtp.timeout_s: must be a finite number, got .inf",
    ],
    "bad_language_codecs.yaml": [
        '1: language: unknown value "jv"; expected id or en',
        '2: codecs[3]: unknown codec "G729"; supported: OPUS, G722, PCMU, PCMA',
        "2: codecs[4]: pcmu is listed twice",
        "6: rooms[0].language: write en in lower case",
        "7: rooms[0].codecs: needs at least one codec; supported: OPUS, G722, PCMU, PCMA",
        '10: rooms[1].codecs: expected a list, got the text "PCMU"',
    ],
    "bad_accounts.yaml": [
        '4: accounts.bad user: "bad user" is not a SIP user name (RFC 3261 §25.1): use letters, '
        "digits and - _ . ! ~ * ' ( ) & = + $ , ; ? /",
        '5: accounts.al@ice: "al@ice" is not a SIP user name (RFC 3261 §25.1): use letters, '
        "digits and - _ . ! ~ * ' ( ) & = + $ , ; ? /",
        "6: accounts.empty.password: must not be empty",
        "7: accounts.both: give either password or ha1, not both: the hashes are computed from "
        "the password",
        "8: accounts.nothing: needs password, or ha1 and/or ha1_sha256 (hex digests of "
        '"nothing:pemkab.example:password")',
        '9: accounts.short.ha1: must be 32 hex digits, the MD5 of "username:realm:password" '
        "with realm = sip.domain",
        '10: accounts.longsha.ha1_sha256: must be 64 hex digits, the SHA-256 of '
        '"username:realm:password" with realm = sip.domain',
        '11: accounts.nothex.ha1: must be 32 hex digits, the MD5 of "username:realm:password" '
        "with realm = sip.domain",
        "12: accounts.0123: YAML reads 0123 as the octal number 83; write it in quotes to keep "
        'the leading zero: "0123"',
        "13: accounts.plain: expected a mapping such as {password: ..., display: ...}, "
        'got the text "rahasia"',
        "14: accounts.nulled: expected a mapping such as {password: ..., display: ...}, "
        "got nothing (null)",
        "15: accounts.octal.password: YAML reads 0755 as the octal number 493; write it in "
        'quotes to keep the leading zero: "0755"',
    ],
    "bad_rooms.yaml": [
        '3: rooms[0].id: "Rakor" must be lowercase letters, digits, "_" or "-"',
        "4: rooms[0].extension: YAML reads 0123 as the octal number 83; write it in quotes to "
        'keep the leading zero: "0123"',
        '5: rooms[0].pin: "12a4" must be 1 to 16 digits (0-9), typed on the keypad',
        '6: rooms[0].moderator_pin: "12345678901234567" must be 1 to 16 digits (0-9), typed on '
        "the keypad",
        '8: rooms[0].access: unknown value "everyone"; expected anyone or accounts',
        "12: rooms[1].moderator_pin: must differ from pin, or every participant would join as "
        "moderator",
        "14: rooms[1].access: accounts admits only callers who authenticate with an account, "
        "but accounts: lists none",
        '15: rooms[2].id: room id "rakor" is already used by rooms[1]',
        '16: rooms[2].extension: extension "+1000" matches the same calls as "1000", already '
        "used by rooms[1]",
        '17: rooms[2].mode: unknown value "meting"; expected meeting or webinar or hotline',
        '19: rooms[3].extension: extension "1000" is already used by rooms[1]',
        '21: rooms[4].extension: "10-00" must be digits, optionally after a leading "+"',
        "22: rooms[4].name: must be one line of printable text",
        "23: rooms[5].id: required: a short name such as rakor, used in logs",
        "23: rooms[5].extension: YAML reads 1_000 as the number 1000; write it in quotes if you "
        'mean the text "1_000"',
        '24: rooms[6].extension: required: the number callers dial to reach the room, e.g. "1000"',
        '25: rooms[7]: expected a room mapping with id and extension, got the text "rakor"',
        '26: rooms[8].id: expected text, got "no", which YAML reads as the boolean false; '
        "quote it for text",
        "27: rooms[8].extension: YAML reads 0x10 as the number 16; write it in quotes if you "
        'mean the text "0x10"',
        "28: rooms[8].pin: YAML reads 12:30 as the number 750; write it in quotes if you mean "
        'the text "12:30"',
    ],
    "bad_hotline.yaml": [
        "5: rooms[0].operator_extension: operator_extension is for hotline rooms (mode: hotline)",
        "6: rooms[0].operator_hours: operator_hours is for hotline rooms (mode: hotline)",
        "7: rooms[0].report_max_s: report_max_s is for hotline rooms (mode: hotline)",
        "8: rooms[0].transfer_room: transfer_room is for hotline rooms (mode: hotline)",
        "11: rooms[1].mode: hotline needs operator_extension: the number operators dial",
        "11: rooms[1].mode: hotline needs a moderator_pin: the operators' PIN",
        "12: rooms[1].pin: a hotline asks reporters for no PIN; operators dial "
        "operator_extension and type moderator_pin",
        '17: rooms[2].operator_extension: operator_extension "+1000" matches the same calls as '
        '"1000", already used by rooms[0]',
        '19: rooms[2].operator_hours.days[2]: unknown day "monday"; did you mean "mon"?',
        "19: rooms[2].operator_hours.days[3]: tue is listed twice",
        '19: rooms[2].operator_hours.days[4]: unknown day "3"; expected one of: mon, tue, wed, '
        "thu, fri, sat, sun",
        "20: rooms[2].operator_hours.from: YAML reads 16:00 as the base-60 number 960; write the "
        'time in quotes: "16:00"',
        '21: rooms[2].operator_hours.to: "25:00" is not a time of day; write "HH:MM", 24-hour, '
        'e.g. "07:30"',
        "22: rooms[2].report_max_s: must be 10 to 3600 seconds, got 5",
        '23: rooms[2].transfer_room: "pengaduan" (rooms[1]) is a hotline too; name the meeting '
        "or webinar room operators bring callers into",
        '29: rooms[3].operator_hours.until: unknown key "until"; expected one of: days, from, to',
        "29: rooms[3].operator_hours.days: needs at least one day, e.g. [mon, tue, wed, thu, "
        "fri]; leave days out for every day",
        '29: rooms[3].operator_hours.from: required: when the shift starts, e.g. "07:30"',
        '29: rooms[3].operator_hours.to: "8" is not a time of day; write "HH:MM", 24-hour, '
        'e.g. "07:30"',
        "30: rooms[3].report_max_s: must be 10 to 3600 seconds, got 3601",
        '31: rooms[3].transfer_room: "aduan" is this hotline; name the meeting or webinar room '
        "operators bring callers into",
        '36: rooms[4].operator_extension: operator_extension "6300" is already used by this '
        "room's extension",
        '37: rooms[4].operator_hours.to: "08:00" is the same as from: the shift would last no '
        "time or all day; leave operator_hours out to be on duty round the clock",
        '38: rooms[4].report_max_s: expected a number, got the text "180"',
        '39: rooms[4].transfer_room: no room has the id "rakr"; did you mean "rakor"?',
        '41: rooms[5].extension: extension "6201" is already used by rooms[3].operator_extension',
    ],
    "bad_merge.yaml": [
        '5: rooms[1]: << merges a mapping or a list of mappings, got the text "text"',
        "8: rooms[2]: << merges a mapping or a list of mappings, got the number 5",
    ],
}


def problems_of(text: str) -> list[str]:
    """Parse `text` as "f.yaml", expect failure, return its lines without the file name."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml")
    lines = str(caught.value).splitlines()
    assert all(line.startswith("f.yaml:") for line in lines)
    return [line.removeprefix("f.yaml:") for line in lines]


@pytest.mark.parametrize("name", sorted(EXPECTED_PROBLEMS))
def test_bad_fixture_reports_every_problem_exactly(name: str) -> None:
    path = CONFIG_FIXTURES / name
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    expected = [f"{path}:{line}" for line in EXPECTED_PROBLEMS[name]]
    assert str(caught.value).splitlines() == expected


def test_every_bad_fixture_has_expectations() -> None:
    on_disk = {path.name for path in CONFIG_FIXTURES.glob("*.yaml")} - {"valid_full.yaml"}
    assert on_disk == set(EXPECTED_PROBLEMS)


def test_config_error_holds_problems_in_file_order() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('rooms: [{id: "A", extension: "1"}]\nlanguage: xx\nsip: {domain: "a b"}\n',
                      "f.yaml")
    problems = caught.value.problems
    assert problems == (
        ConfigProblem("f.yaml", 1, "rooms[0].id", '"A" must be lowercase letters, digits, "_" '
                      'or "-"'),
        ConfigProblem("f.yaml", 2, "language", 'unknown value "xx"; expected id or en'),
        ConfigProblem("f.yaml", 3, "sip.domain", '"a b" is not a host name or IP address '
                      "(RFC 3261 §25.1); it is the digest realm and the domain of our SIP URIs"),
    )
    assert str(problems[1]) == 'f.yaml:2: language: unknown value "xx"; expected id or en'
    assert isinstance(caught.value, ValueError)


def test_problem_without_field_prints_file_and_line_only() -> None:
    assert str(ConfigProblem("a.yaml", 3, "", "invalid YAML: x")) == "a.yaml:3: invalid YAML: x"


# -- the shipped files ---------------------------------------------------------------------


def test_shipped_default_runs_on_loopback_with_three_rooms_and_demo_account() -> None:
    config = load_config(REPO / "dialplans" / "default.yaml")
    assert config.sip.listen == (
        ListenAddress("udp", "127.0.0.1", 5060),
        ListenAddress("tcp", "127.0.0.1", 5060),
    )
    assert config.sip.external_address is None
    assert [(r.id, r.extension, r.pin, r.moderator_pin) for r in config.rooms] == [
        ("terbuka", "2000", None, None),
        ("rakor", "1000", "4321", "9876"),
        ("pengaduan", "6000", None, "8080"),
    ]
    hotline = config.rooms[2]
    assert (hotline.mode, hotline.operator_extension, hotline.operator_hours) == (
        "hotline", "6001", None)
    assert (hotline.report_max_s, hotline.transfer_room) == (180, "rakor")
    assert config.reports_dir == REPO / "dialplans" / "recordings" / "reports"
    assert [a.username for a in config.accounts] == ["demo"]
    realm_text = f"demo:{config.sip.domain}:demo1234".encode()
    assert config.accounts[0].ha1_md5 == hashlib.md5(realm_text).hexdigest()


def test_shipped_example_loads() -> None:
    config = load_config(REPO / "dialplans" / "example.yaml")
    assert config.sip.external_address == "203.0.113.5"
    bpbd = next(a for a in config.accounts if a.username == "bpbd")
    realm_text = f"bpbd:{config.sip.domain}:ganti-sandi-ini".encode()
    assert bpbd.ha1_md5 == hashlib.md5(realm_text).hexdigest()
    assert bpbd.ha1_sha256 == hashlib.sha256(realm_text).hexdigest()
    assert {r.access for r in config.rooms} == {"anyone", "accounts"}
    assert config.codecs == ("OPUS", "G722", "PCMA", "PCMU")
    assert config.ptimes_ms == (20, 40, 60)
    assert config.opus == OpusConfig()
    assert config.recording_dir == REPO / "dialplans" / "recordings"
    webinar = next(r for r in config.rooms if r.mode == "webinar")
    assert (webinar.id, webinar.extension, webinar.moderator_pin) == ("webinar", "4000", "1357")
    assert (webinar.wait_for_moderator, webinar.end_when_moderator_leaves) == (True, True)
    assert (webinar.max_members, webinar.announce, webinar.record) == (500, "none", True)
    keymap = dict(webinar.keymap)
    assert "unmute_all" not in keymap and "count" not in keymap
    assert keymap["lock"] == "*55"
    assert {r.keymap for r in config.rooms if r.id != "webinar"} == {DEFAULT_KEYMAP_ITEMS}
    assert config.reports_dir == REPO / "dialplans" / "recordings" / "reports"
    hotline = next(r for r in config.rooms if r.mode == "hotline")
    assert (hotline.id, hotline.extension, hotline.operator_extension, hotline.pin,
            hotline.moderator_pin) == ("pengaduan", "6000", "6001", None, "8080")
    assert hotline.operator_hours == OperatorHours(
        days=frozenset({0, 1, 2, 3, 4}), start=time(7, 30), end=time(16, 0))
    assert (hotline.report_max_s, hotline.transfer_room) == (180, "rakor")


# -- values ----------------------------------------------------------------------------------


def test_defaults_fill_everything_but_rooms() -> None:
    config = parse_config(ROOM, "f.yaml")
    assert config == Config(
        sip=config.sip,
        rtp=config.rtp,
        language="id",
        codecs=ALL_CODECS,
        ptimes_ms=(20, 40, 60),
        opus=OpusConfig(bitrate_bps=20000, min_bitrate_bps=6000, max_bitrate_bps=20000,
                        fec=True, dtx=True),
        accounts=(),
        rooms=(RoomConfig(id="rakor", extension="1000", name=None, pin=None, moderator_pin=None,
                          mode="meeting", access="anyone", language="id",
                          codecs=ALL_CODECS),),
        source="f.yaml",
        recording_dir=Path("recordings").resolve(),
        reports_dir=Path("recordings/reports").resolve(),
    )
    assert [str(a) for a in config.sip.listen] == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert (config.sip.domain, config.sip.user_agent) == ("telerapat.local", "telerapat")
    assert (config.rtp.port_min, config.rtp.port_max, config.rtp.timeout_s) == (40000, 40999, 30)


def test_null_values_mean_the_default() -> None:
    config = parse_config("sip: {external_address: null, domain: ~}\nlanguage:\n" + ROOM, "f")
    assert config.sip.external_address is None
    assert config.sip.domain == "telerapat.local"
    assert config.language == "id"


def test_full_fixture_normalises_values() -> None:
    config = load_config(CONFIG_FIXTURES / "valid_full.yaml")
    assert config.sip.listen == (
        ListenAddress("udp", "192.0.2.10", 5070),
        ListenAddress("tcp", "192.0.2.10", 5070),
        ListenAddress("udp", "2001:db8::10", 5070),
    )
    assert str(config.sip.listen[2]) == "udp:[2001:db8::10]:5070"
    assert config.sip.external_address == "2001:db8::99"
    assert config.sip.user_agent == "telerapat/0.1 (Pemkab Contoh)"
    assert (config.rtp.port_min, config.rtp.port_max, config.rtp.timeout_s) == (20000, 20099, 12.5)
    assert config.rtp.stats_interval_s == 300
    assert config.codecs == ("PCMA", "PCMU")
    assert [a.username for a in config.accounts] == ["dinkes", "bpbd", "1001", "0042"]
    assert config.accounts[1].ha1_md5 == "7595f0fdcd1a7cac6fcbd9ca613f8e39"
    assert config.accounts[1].ha1_sha256 is None
    assert config.accounts[2].ha1_md5 is None
    assert config.accounts[3].ha1_md5 == hashlib.md5(b"0042:pemkab.example:1234").hexdigest()
    rakor, rakor_2, a_1 = config.rooms
    assert rakor == RoomConfig(id="rakor", extension="1000", name="Rapat Koordinasi",
                               pin="4321", moderator_pin="0987", mode="meeting",
                               access="accounts", language="en", codecs=("PCMA", "PCMU"))
    # The merge key brings rakor's settings; explicit keys override them.
    assert rakor_2 == dataclasses.replace(rakor, id="rakor-2", extension="+6221555",
                                          language="id", codecs=("PCMU",))
    assert (a_1.extension, a_1.pin, a_1.moderator_pin) == ("0", None, "1234567890123456")


def test_password_becomes_both_ha1s_for_the_realm_and_is_not_kept() -> None:
    config = parse_config(
        "sip: {domain: pemkab.example}\n"
        'accounts: {dinkes: {password: "Rahasia-99", display: "Dinas Kesehatan"}}\n' + ROOM,
        "f.yaml",
    )
    (account,) = config.accounts
    secret = b"dinkes:pemkab.example:Rahasia-99"
    assert account == Account(
        username="dinkes",
        display="Dinas Kesehatan",
        ha1_md5=hashlib.md5(secret).hexdigest(),
        ha1_sha256=hashlib.sha256(secret).hexdigest(),
    )
    assert "Rahasia-99" not in repr(config)
    assert account.ha1_md5 is not None and account.ha1_md5 not in repr(account)
    assert "Rahasia-99" not in str(dataclasses.asdict(config))


def test_config_objects_are_frozen() -> None:
    config = parse_config(ROOM, "f.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rooms[0].pin = "1"  # type: ignore[misc]
    assert isinstance(config.rooms, tuple) and isinstance(config.codecs, tuple)


@pytest.mark.parametrize(
    ("yaml_value", "extension"),
    [("1000", "1000"), ('"0123"', "0123"), ("+6221555", "+6221555"), ("0", "0"), ("08", "08")],
)
def test_extension_accepts_yaml_ints_and_quoted_digits(yaml_value: str, extension: str) -> None:
    config = parse_config(f"rooms: [{{id: r, extension: {yaml_value}}}]", "f.yaml")
    assert config.rooms[0].extension == extension


def test_wildcard_listen_is_allowed_with_external_address() -> None:
    config = parse_config(
        'sip: {listen: ["udp:0.0.0.0:5060", "tcp:[::]:5060"], external_address: 198.51.100.7}\n'
        + ROOM,
        "f.yaml",
    )
    assert [a.host for a in config.sip.listen] == ["0.0.0.0", "::"]


def test_same_port_on_udp_and_tcp_and_other_addresses_is_fine() -> None:
    config = parse_config(
        'sip: {listen: ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "udp:127.0.0.2:5060", '
        '"udp:[::1]:5060"]}\n' + ROOM,
        "f.yaml",
    )
    assert len(config.sip.listen) == 4


def test_rtp_range_of_one_pair_is_the_smallest() -> None:
    config = parse_config('rtp: {ports: "1024-1025"}\n' + ROOM, "f.yaml")
    assert (config.rtp.port_min, config.rtp.port_max) == (1024, 1025)


def test_room_with_only_a_moderator_pin() -> None:
    config = parse_config('rooms: [{id: r, extension: "1", moderator_pin: "77"}]', "f.yaml")
    assert (config.rooms[0].pin, config.rooms[0].moderator_pin) == (None, "77")


def test_merge_keys_override_in_yaml_order() -> None:
    config = parse_config(
        "rooms:\n"
        "  - &a {id: a, extension: '1', language: en, pin: '11'}\n"
        "  - &b {id: b, extension: '2', language: id, name: B}\n"
        "  - {<<: [*a, *b], id: c, extension: '3'}\n",
        "f.yaml",
    )
    room_c = config.rooms[2]
    assert (room_c.language, room_c.pin, room_c.name) == ("en", "11", "B")


def test_merge_into_itself_is_reported_not_looped() -> None:
    assert problems_of("&a {<<: *a, rooms: [{id: x, extension: '1'}]}") == [
        "1: << merges a mapping into itself",
    ]


def test_recursive_alias_in_a_list_is_a_type_problem() -> None:
    assert problems_of("codecs: &c [PCMU, *c]\n" + ROOM) == [
        "1: codecs[1]: expected text, got a list",
    ]


def test_keys_must_be_scalars() -> None:
    assert problems_of("? [a, b]\n: 1\n" + ROOM) == ["1: keys must be names, got a list"]


def test_unknown_key_with_control_characters_is_quoted_in_the_field() -> None:
    assert problems_of('"a\\x01": 1\n' + ROOM) == [
        '1: "a\\u0001": unknown key "a\\u0001"; expected one of: sip, rtp, language, codecs, '
        "ptime_ms, opus, accounts, trunks, recording, rooms",
    ]


def test_field_paths_name_list_items_and_nested_keys() -> None:
    assert problems_of(
        "rooms:\n"
        "  - {id: a, extension: '1'}\n"
        "  - {id: b, extension: '2', codecs: [PCMU, G729]}\n"
    ) == ['3: rooms[1].codecs[1]: unknown codec "G729"; supported: OPUS, G722, PCMU, PCMA']


def test_media_settings_per_room() -> None:
    config = parse_config(
        "rooms: [{id: a, extension: '1'},\n"
        "        {id: b, extension: '2', max_talkers: 5, voice_detection: false, agc: false,\n"
        "         echo_cancellation: off}]",
        "f",
    )
    a, b = config.rooms
    assert (a.max_talkers, a.voice_detection, a.agc, a.echo_cancellation) == (
        3, True, True, "auto")
    assert (b.max_talkers, b.voice_detection, b.agc, b.echo_cancellation) == (
        5, False, False, "off")


def test_bad_media_settings_are_refused_with_line_and_field() -> None:
    assert problems_of(
        "rooms: [{id: a, extension: '1', max_talkers: 0, agc: maybe,\n"
        "         echo_cancellation: always}]"
    ) == [
        "1: rooms[0].max_talkers: must be 1 to 10, got 0",
        '1: rooms[0].agc: expected true or false, got the text "maybe"',
        '2: rooms[0].echo_cancellation: unknown value "always"; expected auto or on or off',
    ]


def test_access_accounts_with_accounts_is_fine() -> None:
    config = parse_config(
        "accounts: {a: {password: x}}\nrooms: [{id: r, extension: '1', access: accounts}]",
        "f.yaml",
    )
    assert config.rooms[0].access == "accounts"


def test_invalid_account_is_not_also_blamed_on_rooms_that_need_accounts() -> None:
    assert problems_of("accounts: {a: {pasword: x}}\n"
                       "rooms: [{id: r, extension: '1', access: accounts}]") == [
        '1: accounts.a.pasword: unknown key "pasword"; did you mean "password"?',
        '1: accounts.a: needs password, or ha1 and/or ha1_sha256 (hex digests of '
        '"a:telerapat.local:password")',
    ]


def test_invalid_external_address_is_not_also_blamed_on_a_wildcard_listen() -> None:
    assert problems_of('sip: {listen: ["udp:0.0.0.0:5060"], external_address: nat}\n' + ROOM) == [
        '1: sip.external_address: "nat" is not an IP address; it is written into SDP c= lines '
        "and Contact headers, where phones expect an address (RFC 4566 §5.7)",
    ]


def test_timeout_too_large_for_a_float_is_refused() -> None:
    assert problems_of(f"rtp: {{timeout_s: {'9' * 400}}}\n" + ROOM) == [
        f"1: rtp.timeout_s: must be a finite number, got {'9' * 400}",
    ]


def test_accounts_may_be_empty() -> None:
    assert parse_config("accounts: {}\n" + ROOM, "f.yaml").accounts == ()
    assert parse_config("accounts:\n" + ROOM, "f.yaml").accounts == ()


def test_syntax_error_is_one_problem_with_its_line() -> None:
    assert problems_of("rooms:\n  - id: a\n   extension: 1\n") == [
        "3: invalid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection at line 2)",
    ]


def test_control_character_is_a_problem_with_its_line() -> None:
    assert problems_of(ROOM + "language: en\x07\n") == [
        "2: invalid YAML: control character U+0007 is not allowed",
    ]


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + ROOM.encode())
    assert load_config(path).rooms[0].id == "rakor"


def test_non_utf8_file_is_a_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(ROOM.encode() + b"rooms_name: Rapat \xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:2: not UTF-8 text: byte 0xe9 is invalid"


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "absent.yaml")


def test_source_is_the_path_given(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(ROOM)
    assert load_config(path).source == str(path)
    assert load_config(str(path)).source == str(path)


# -- properties ------------------------------------------------------------------------------

YAML_ALPHABET = st.sampled_from(list("abcdeiklmnoprstu0123456789:-[]{},'\"&*!|>#@ \n\t+._<?%"))
KEYWORDS = st.sampled_from([
    "rooms:", "sip:", "rtp:", "accounts:", "codecs:", "language:", "listen:", "id:", "ptime_ms:",
    "opus:", "dtx:", "bitrate_bps:", "keypad:", "mute:", "*6", "##", "recording:", "directory:",
    "extension:", "pin:", "<<: *a", "&a", "- ", "\n  ", "0123", "udp:127.0.0.1:5060", "yes",
    "mode: hotline", "operator_extension:", "operator_hours:", "from: 7:30", "to:", "days:",
    "transfer_room:", "gateways:", "trunks:", "numbers:", "allow_from:", "codec: opus",
    "uri: sip:1@127.0.0.1", "registrar: sip:t.example", "digits: #1", "password:",
    "payload_type:", "remote:",
])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(YAML_ALPHABET, KEYWORDS), max_size=60).map("".join))
def test_any_text_gives_a_config_or_config_error(text: str) -> None:
    try:
        config = parse_config(text, "f.yaml")
    except ConfigError as exc:
        assert exc.problems
        assert all(problem.line >= 1 for problem in exc.problems)
        assert [p.line for p in exc.problems] == sorted(p.line for p in exc.problems)
    else:
        assert config.rooms


ROOM_IDS = st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True)
PINS = st.none() | st.from_regex(r"[0-9]{1,16}", fullmatch=True)


@st.composite
def room_dicts(draw: st.DrawFn) -> list[dict[str, object]]:
    ids = draw(st.lists(ROOM_IDS, min_size=1, max_size=6, unique=True))
    numbers = draw(st.lists(st.integers(1, 10**12), min_size=len(ids), max_size=len(ids),
                            unique=True))
    rooms = []
    for room_id, number in zip(ids, numbers, strict=True):
        room: dict[str, object] = {"id": room_id}
        # Unquoted ints and quoted strings must give the same extension.
        room["extension"] = number if draw(st.booleans()) else str(number)
        pin, moderator_pin = draw(PINS), draw(PINS)
        if pin is not None:
            room["pin"] = pin
        if moderator_pin is not None and moderator_pin != pin:
            room["moderator_pin"] = moderator_pin
        if draw(st.booleans()):
            room["language"] = draw(st.sampled_from(["id", "en"]))
        if draw(st.booleans()):
            room["codecs"] = draw(st.permutations(ALL_CODECS))
        rooms.append(room)
    return rooms


@settings(max_examples=100, deadline=None)
@given(room_dicts(), st.sampled_from(["id", "en"]))
def test_generated_rooms_load_as_written(rooms: list[dict[str, object]], language: str) -> None:
    text = yaml.safe_dump({"language": language, "rooms": rooms}, sort_keys=False)
    config = parse_config(text, "f.yaml")
    assert [room.id for room in config.rooms] == [room["id"] for room in rooms]
    for loaded, written in zip(config.rooms, rooms, strict=True):
        assert loaded.extension == str(written["extension"])
        assert loaded.pin == written.get("pin")
        assert loaded.moderator_pin == written.get("moderator_pin")
        assert loaded.language == written.get("language", language)
        assert list(loaded.codecs) == written.get("codecs", list(ALL_CODECS))


SCHEMA_KEYS = st.sampled_from([
    "sip", "listen", "domain", "external_address", "user_agent", "rtp", "ports", "timeout_s",
    "stats_interval_s", "language", "codecs", "accounts", "password", "ha1", "ha1_sha256",
    "display", "rooms", "id",
    "extension", "name", "pin", "moderator_pin", "mode", "access", "dinkes", "1001", "ptime_ms",
    "opus", "bitrate_bps", "min_bitrate_bps", "max_bitrate_bps", "fec", "dtx", "recording",
    "directory", "keypad", "mute", "hand", "unmute_all", "wait_for_moderator", "max_members",
    "announce", "record", "reports_directory", "operator_extension", "operator_hours", "days",
    "from", "to", "report_max_s", "transfer_room", "numbers", "gateways", "trunks", "allow_from",
    "rtp", "sip", "codec", "payload_type", "remote", "remote_sdp", "sdp_file",
    "telephone_event_pt", "uri", "proxy", "username", "from_user", "digits", "digits_delay_s",
    "redial_min_s", "redial_max_s", "registrar", "aor", "contact_user", "expires_s",
    "retry_min_s", "retry_max_s",
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=True),
    st.sampled_from([20, 40, 60, 6000, 16000, 64000, "OPUS", "g722"]),
    st.sampled_from(["udp:127.0.0.1:5060", "udp:0.0.0.0:1", "40000-40999", "en", "PCMU",
                     "meeting", "accounts", "0123", "x" * 40, "a b", "+62", "", "webinar",
                     "chime", "*6", "*", "##", "99", "hotline", "07:30", "16:00", "mon",
                     "Fri", "sip:1@127.0.0.1:5080", "sip:trunk.example", "sips:x",
                     "127.0.0.1:40000", "[::1]:4000", "10.0.0.0/8", "192.0.2.7", "123#,,4#",
                     "x.sdp"]),
    st.text(max_size=8),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(SCHEMA_KEYS, children,
                                                                      max_size=5),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(SCHEMA_KEYS, TREES, max_size=6))
def test_any_yaml_data_gives_a_config_or_config_error(data: dict[str, object]) -> None:
    try:
        parse_config(yaml.safe_dump(data), "f.yaml")
    except ConfigError as exc:
        assert exc.problems


def test_digest_algorithms_default_to_md5_and_accept_sha256() -> None:
    base = 'rooms: [{id: a, extension: "1"}]\n'
    assert parse_config(base, "c.yaml").sip.digest_algorithms == ("MD5",)
    config = parse_config("sip: {digest_algorithms: [sha-256, MD5]}\n" + base, "c.yaml")
    assert config.sip.digest_algorithms == ("SHA-256", "MD5")


def test_unknown_digest_algorithm_is_refused_with_its_line() -> None:
    text = 'sip:\n  digest_algorithms: [MD5, SHA-1]\nrooms: [{id: a, extension: "1"}]\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml")
    assert str(caught.value) == (
        'c.yaml:2: sip.digest_algorithms[1]: "SHA-1" is not a digest algorithm we offer; '
        "use SHA-256 or MD5"
    )


# -- media: codecs, ptime_ms, opus -----------------------------------------------------------


def test_codecs_take_opus_and_g722_in_any_case() -> None:
    config = parse_config(
        "codecs: [g722, Opus, pcma]\nrooms: [{id: r, extension: '1', codecs: [opus, PCMU]}]",
        "f.yaml",
    )
    assert config.codecs == ("G722", "OPUS", "PCMA")
    assert config.rooms[0].codecs == ("OPUS", "PCMU")


def test_ptime_ms_and_opus_load_as_written() -> None:
    config = parse_config(
        "ptime_ms: [60, 20]\n"
        "opus: {bitrate_bps: 20000, min_bitrate_bps: 8000, max_bitrate_bps: 32000, fec: false,"
        " dtx: no}\n" + ROOM,
        "f.yaml",
    )
    assert config.ptimes_ms == (60, 20)
    assert config.opus == OpusConfig(
        bitrate_bps=20000, min_bitrate_bps=8000, max_bitrate_bps=32000, fec=False, dtx=False
    )


def test_opus_keys_left_out_keep_their_defaults() -> None:
    config = parse_config("opus: {max_bitrate_bps: 64000, fec: ~}\nptime_ms:\n" + ROOM, "f.yaml")
    assert config.opus == OpusConfig(max_bitrate_bps=64000)
    assert config.ptimes_ms == (20, 40, 60)
    assert parse_config("opus: {bitrate_bps: 6000, min_bitrate_bps: 6000}\n" + ROOM,
                        "f.yaml").opus.bitrate_bps == 6000


def test_bad_ptime_ms_reports_every_item() -> None:
    assert problems_of(
        "ptime_ms:\n  - 20\n  - 30\n  - 20\n  - \"40\"\n  - 40.0\n  - yes\n  - 10\n" + ROOM
    ) == [
        "3: ptime_ms[1]: 30 ms is not a packet time we send; use 20, 40 or 60 (whole 20 ms "
        "frames, at most one 60 ms Opus frame)",
        "4: ptime_ms[2]: 20 is listed twice",
        '5: ptime_ms[3]: expected a whole number, got the text "40"',
        "6: ptime_ms[4]: expected a whole number, got the number 40.0",
        '7: ptime_ms[5]: expected a whole number, got "yes", which YAML reads as the boolean '
        "true; quote it for text",
        "8: ptime_ms[6]: 10 ms is not a packet time we send; use 20, 40 or 60 (whole 20 ms "
        "frames, at most one 60 ms Opus frame)",
    ]


def test_ptime_ms_must_be_a_non_empty_list() -> None:
    assert problems_of("ptime_ms: []\n" + ROOM) == [
        "1: ptime_ms: needs at least one packet time; use 20, 40 or 60",
    ]
    assert problems_of("ptime_ms: 20\n" + ROOM) == [
        "1: ptime_ms: expected a list, got the number 20",
    ]


def test_bad_opus_values_are_reported_with_their_lines() -> None:
    assert problems_of(
        "opus:\n"
        "  bitrate_bps: 5000\n"
        "  min_bitrate_bps: 8000\n"
        "  max_bitrate_bps: 128000\n"
        "  fec: 1\n"
        "  dtx: \"true\"\n"
        "  vbr: true\n" + ROOM
    ) == [
        "2: opus.bitrate_bps: must be from 6000 to 64000 bit/s, got 5000",
        "4: opus.max_bitrate_bps: must be from 6000 to 64000 bit/s, got 128000",
        "5: opus.fec: expected true or false, got the number 1",
        '6: opus.dtx: expected true or false, got the text "true"',
        '7: opus.vbr: unknown key "vbr"; expected one of: bitrate_bps, min_bitrate_bps, '
        "max_bitrate_bps, fec, dtx",
    ]


@pytest.mark.parametrize(
    ("opus", "problem"),
    [
        ("{bitrate_bps: 30000}",
         "opus.bitrate_bps: 30000 is above max_bitrate_bps 20000 (the default); keep "
         "min_bitrate_bps <= bitrate_bps <= max_bitrate_bps"),
        ("{max_bitrate_bps: 12000}",
         "opus.max_bitrate_bps: 12000 is below bitrate_bps 20000 (the default); keep "
         "min_bitrate_bps <= bitrate_bps <= max_bitrate_bps"),
        ("{min_bitrate_bps: 20500}",
         "opus.min_bitrate_bps: 20500 is above bitrate_bps 20000 (the default); keep "
         "min_bitrate_bps <= bitrate_bps <= max_bitrate_bps"),
        ("{min_bitrate_bps: 12000, bitrate_bps: 10000}",
         "opus.bitrate_bps: 10000 is below min_bitrate_bps 12000; keep "
         "min_bitrate_bps <= bitrate_bps <= max_bitrate_bps"),
    ],
)
def test_opus_bitrates_must_keep_their_order(opus: str, problem: str) -> None:
    assert problems_of(f"opus: {opus}\n" + ROOM) == [f"1: {problem}"]


def test_opus_must_be_a_mapping() -> None:
    assert problems_of("opus: [16000]\n" + ROOM) == [
        "1: opus: expected a mapping with keys bitrate_bps, min_bitrate_bps, max_bitrate_bps, "
        "fec, dtx, got a list",
    ]


def test_huge_opus_bitrate_is_a_problem_not_a_crash() -> None:
    (problem,) = problems_of(f"opus: {{bitrate_bps: {'9' * 5000}}}\n" + ROOM)
    assert problem == "1: opus.bitrate_bps: 99999999999999999999... is far too large"


# -- rooms: mode and moderation options (issue #4) ---------------------------------------------

ROOM_HEAD = "rooms:\n  - id: r\n    extension: '1'\n"


def test_new_room_options_default_to_off() -> None:
    (room,) = parse_config(ROOM, "f.yaml").rooms
    assert room.mode == "meeting"
    assert room.keymap == DEFAULT_KEYMAP_ITEMS
    assert (room.wait_for_moderator, room.end_when_moderator_leaves, room.record) == (
        False, False, False)
    assert (room.max_members, room.announce) == (None, "none")


def test_webinar_mode_is_accepted() -> None:
    config = parse_config(
        "rooms: [{id: r, extension: '1', mode: webinar, moderator_pin: '55'}]", "f.yaml"
    )
    assert config.rooms[0].mode == "webinar"


def test_webinar_without_a_moderator_pin_is_refused() -> None:
    assert problems_of("rooms: [{id: r, extension: '1', mode: webinar}]") == [
        "1: rooms[0].mode: webinar needs a moderator_pin: members join muted and "
        "only a moderator can give them the floor"
    ]


def test_room_options_load_as_written() -> None:
    config = parse_config(
        ROOM_HEAD
        + "    moderator_pin: '55'\n"
        "    wait_for_moderator: true\n"
        "    end_when_moderator_leaves: yes\n"
        "    max_members: 10000\n"
        "    announce: name\n"
        "    record: true\n"
        "  - {id: s, extension: '2', max_members: 1, announce: chime, wait_for_moderator: false,"
        " end_when_moderator_leaves: ~, record: false}\n",
        "f.yaml",
    )
    r, s = config.rooms
    assert (r.wait_for_moderator, r.end_when_moderator_leaves, r.max_members, r.announce,
            r.record) == (True, True, 10000, "name", True)
    assert (s.wait_for_moderator, s.end_when_moderator_leaves, s.max_members, s.announce,
            s.record) == (False, False, 1, "chime", False)


def test_bad_room_options_are_refused_with_line_and_field() -> None:
    assert problems_of(
        ROOM_HEAD
        + "    wait_for_moderator: true\n"
        "    end_when_moderator_leaves: true\n"
        "    max_members: 0\n"
        "    announce: loud\n"
        "    record: \"yes\"\n"
        "  - {id: s, extension: '2', max_members: 10001, announce: Chime, record: 1,\n"
        "     wait_for_moderator: sometimes}\n"
        "  - {id: t, extension: '3', max_members: many, announce: no}\n"
        "  - {id: u, extension: '4', mode: hotline}\n"
    ) == [
        "4: rooms[0].wait_for_moderator: wait_for_moderator needs a moderator_pin, or nobody "
        "could start the meeting",
        "5: rooms[0].end_when_moderator_leaves: end_when_moderator_leaves needs a moderator_pin, "
        "or nobody could join as moderator",
        "6: rooms[0].max_members: must be 1 to 10000, got 0",
        '7: rooms[0].announce: unknown value "loud"; expected none or chime or name',
        '8: rooms[0].record: expected true or false, got the text "yes"',
        "9: rooms[1].max_members: must be 1 to 10000, got 10001",
        "9: rooms[1].announce: write chime in lower case",
        "9: rooms[1].record: expected true or false, got the number 1",
        '10: rooms[1].wait_for_moderator: expected true or false, got the text "sometimes"',
        '11: rooms[2].max_members: expected a whole number, got the text "many"',
        '11: rooms[2].announce: expected text, got "no", which YAML reads as the boolean false; '
        "quote it for text",
        "12: rooms[3].mode: hotline needs operator_extension: the number operators dial",
        "12: rooms[3].mode: hotline needs a moderator_pin: the operators' PIN",
    ]


def test_moderator_options_are_not_also_blamed_on_an_invalid_moderator_pin() -> None:
    assert problems_of(
        ROOM_HEAD + "    moderator_pin: '12a'\n    wait_for_moderator: true\n"
    ) == ['4: rooms[0].moderator_pin: "12a" must be 1 to 16 digits (0-9), typed on the keypad']


# -- rooms: keypad -------------------------------------------------------------------------------


def keymap_of(keypad: str) -> dict[str, str]:
    """Load one room with `keypad: <keypad>` (YAML lines under it) and return its key map."""
    config = parse_config(ROOM_HEAD + "    keypad:" + keypad, "f.yaml")
    return dict(config.rooms[0].keymap)


def keypad_problems(keypad: str) -> list[str]:
    return problems_of(ROOM_HEAD + "    keypad:" + keypad)


def test_default_keymap_is_the_product_keypad_in_order() -> None:
    assert KEYPAD_COMMANDS == (
        "mute", "hand", "count", "volume_down", "volume_up", "help", "mute_all", "unmute_all",
        "floor", "lock", "record", "remove_last", "end",
    )
    assert DEFAULT_KEYMAP_ITEMS == (
        ("mute", "*6"), ("hand", "*9"), ("count", "*#"), ("volume_down", "*1"),
        ("volume_up", "*3"), ("help", "*0"), ("mute_all", "##"), ("unmute_all", "99"),
        ("floor", "*8"), ("lock", "*5"), ("record", "*7"), ("remove_last", "*2"), ("end", "*4"),
    )
    assert tuple(DEFAULT_KEYMAP.items()) == DEFAULT_KEYMAP_ITEMS
    with pytest.raises(TypeError):
        DEFAULT_KEYMAP["mute"] = "1"  # type: ignore[index]


def test_default_keymap_has_no_sequence_that_begins_another() -> None:
    sequences = list(DEFAULT_KEYMAP.values())
    for keys in sequences:
        assert [other for other in sequences if other.startswith(keys)] == [keys]


def test_keypad_overrides_merge_over_the_defaults_in_command_order() -> None:
    keymap = keymap_of('\n      lock: "*55"\n      mute: "0"\n')
    assert list(keymap) == list(KEYPAD_COMMANDS)
    assert keymap == dict(DEFAULT_KEYMAP) | {"lock": "*55", "mute": "0"}


def test_keypad_null_or_empty_disables_a_command() -> None:
    keymap = keymap_of('\n      mute: null\n      hand: ~\n      count: ""\n      end:\n')
    assert list(keymap) == [c for c in KEYPAD_COMMANDS if c not in ("mute", "hand", "count", "end")]


def test_keypad_null_or_empty_mapping_keeps_the_defaults() -> None:
    assert keymap_of(" null\n") == dict(DEFAULT_KEYMAP)
    assert keymap_of(" {}\n") == dict(DEFAULT_KEYMAP)


def test_keypad_swapping_two_commands_is_no_clash() -> None:
    keymap = keymap_of("\n      mute: '*9'\n      hand: '*6'\n")
    assert (keymap["mute"], keymap["hand"]) == ("*9", "*6")


def test_keypad_keys_freed_by_a_moved_command_can_be_reused() -> None:
    keymap = keymap_of("\n      lock: '*9'\n      hand: '*5'\n")
    assert (keymap["lock"], keymap["hand"]) == ("*9", "*5")


@pytest.mark.parametrize(
    ("value", "keys"),
    [("99", "99"), ("6", "6"), ("099", "099"), ("'077'", "077"), ('"*#"', "*#"), ("'#'", "#"),
     ("'1234'", "1234")],
)
def test_keypad_takes_digits_as_written(value: str, keys: str) -> None:
    """A bare 99 is a YAML int read back as its digits; 099 is no YAML int, so text already."""
    keypad = f" {{mute_all: null, count: null, unmute_all: {value}}}\n"
    assert keymap_of(keypad)["unmute_all"] == keys


def test_keypad_refuses_yaml_numbers_that_change_their_digits() -> None:
    assert keypad_problems("\n      unmute_all: 077\n      floor: 9_9\n      hand: 0x9\n") == [
        "5: rooms[0].keypad.unmute_all: YAML reads 077 as the octal number 63; write it in "
        'quotes to keep the leading zero: "077"',
        '6: rooms[0].keypad.floor: YAML reads 9_9 as the number 99; write it in quotes if you '
        'mean the text "9_9"',
        '7: rooms[0].keypad.hand: YAML reads 0x9 as the number 9; write it in quotes if you '
        'mean the text "0x9"',
    ]


def test_keypad_refuses_what_a_keypad_cannot_type() -> None:
    assert keypad_problems(
        "\n      mute: '*A'\n      hand: '12345'\n      count: '* #'\n      help: -1\n"
        "      lock: 1.5\n      end: [1]\n"
    ) == [
        '5: rooms[0].keypad.mute: "*A" must be 1 to 4 keys from 0-9, * and #',
        '6: rooms[0].keypad.hand: "12345" must be 1 to 4 keys from 0-9, * and #',
        '7: rooms[0].keypad.count: "* #" must be 1 to 4 keys from 0-9, * and #',
        '8: rooms[0].keypad.help: "-1" must be 1 to 4 keys from 0-9, * and #',
        "9: rooms[0].keypad.lock: expected text, got the number 1.5",
        "10: rooms[0].keypad.end: expected text, got a list",
    ]


def test_keypad_unknown_command_lists_the_commands() -> None:
    commands = ", ".join(KEYPAD_COMMANDS)
    assert keypad_problems("\n      lokc: '1'\n      teleport: '2'\n") == [
        f'5: rooms[0].keypad.lokc: unknown command "lokc" (did you mean "lock"?); the commands '
        f"are {commands}",
        f'6: rooms[0].keypad.teleport: unknown command "teleport"; the commands are {commands}',
    ]


def test_keypad_must_be_a_mapping() -> None:
    assert keypad_problems(' "*6"\n') == [
        '4: rooms[0].keypad: expected a mapping of command: keys, such as {hand: "*9"}, got the '
        'text "*6"',
    ]


def test_keypad_same_keys_as_a_default_is_refused_where_written() -> None:
    assert keypad_problems("\n      lock: '*6'\n") == [
        '5: rooms[0].keypad.lock: "*6" is already the sequence of mute (its default); give '
        "each its own keys",
    ]


def test_keypad_same_keys_twice_in_the_file_is_refused_at_the_second() -> None:
    assert keypad_problems("\n      lock: '1'\n      mute: '2'\n      end: '1'\n") == [
        '7: rooms[0].keypad.end: "1" is already the sequence of lock; give each its own keys',
    ]


def test_keypad_prefix_of_another_sequence_is_refused() -> None:
    assert keypad_problems("\n      hand: '*'\n      floor: '7'\n      lock: '77'\n") == [
        '5: rooms[0].keypad.hand: "*" is a prefix of "*6" (mute, its default), which could then '
        "never be typed",
        '7: rooms[0].keypad.lock: "77" starts with "7" (floor), so it could never be typed',
    ]


def test_keypad_sequence_that_starts_with_a_default_is_refused() -> None:
    assert keypad_problems("\n      record: '##7'\n") == [
        '5: rooms[0].keypad.record: "##7" starts with "##" (mute_all, its default), so it could '
        "never be typed",
    ]


def test_keypad_problems_name_the_room_and_command() -> None:
    (problem,) = problems_of(
        "rooms:\n  - {id: a, extension: '1'}\n  - {id: b, extension: '2'}\n"
        "  - {id: c, extension: '3', keypad: {hand: '*6'}}\n"
    )
    assert problem.startswith("4: rooms[2].keypad.hand: ")


def test_keypad_duplicate_command_is_a_duplicate_key() -> None:
    assert keypad_problems("\n      hand: '1'\n      hand: '2'\n") == [
        '6: rooms[0].keypad.hand: duplicate key "hand" (first at line 5); YAML would silently '
        "keep only the last one",
    ]


@pytest.mark.parametrize(("keys", "shown"), [("*6", "*6"), ("*#", "*#"), ("*", "*")])
def test_unquoted_star_keys_get_a_hint_to_quote_them(keys: str, shown: str) -> None:
    (problem,) = keypad_problems(f"\n      mute: {keys}\n")
    assert problem.startswith("5: invalid YAML: ")
    assert problem.endswith(
        f'; YAML reads a leading * as an alias: write key sequences in quotes, "{shown}"')


def test_undefined_alias_that_is_no_key_sequence_gets_no_hint() -> None:
    assert problems_of("language: *lang\n" + ROOM) == [
        "1: invalid YAML: found undefined alias 'lang'",
    ]


@pytest.mark.parametrize("comment", ["##", "#", "#9", "##   ", "## mute all"])
def test_unquoted_hash_keys_read_as_a_comment_are_refused(comment: str) -> None:
    keys = comment.split()[0]
    assert keypad_problems(f"\n      mute_all: {comment}\n") == [
        f"5: rooms[0].keypad.mute_all: YAML reads {keys} after a space as a comment, which would "
        f'disable the command; write it in quotes: "{keys}"',
    ]


@pytest.mark.parametrize("comment", ["# off", "# not in this room", "#####", "#x"])
def test_a_real_comment_after_an_empty_command_disables_it(comment: str) -> None:
    assert "mute_all" not in keymap_of(f"\n      mute_all: {comment}\n      hand: '1'\n")


KEY_SEQUENCES = st.from_regex(r"[0-9*#]{1,4}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYPAD_COMMANDS), st.none() | KEY_SEQUENCES, max_size=6))
def test_generated_keypads_load_exactly_when_no_sequence_begins_another(
    keypad: dict[str, str | None],
) -> None:
    text = yaml.safe_dump({"rooms": [{"id": "r", "extension": "1", "keypad": keypad}]})
    merged = {name: keys for name, keys in (dict(DEFAULT_KEYMAP) | keypad).items() if keys}
    sequences = list(merged.values())
    prefix_free = all(
        [other for other in sequences if other.startswith(keys)] == [keys] for keys in sequences
    )
    try:
        config = parse_config(text, "f.yaml")
    except ConfigError as exc:
        assert not prefix_free
        assert all(p.field.startswith("rooms[0].keypad.") for p in exc.problems)
    else:
        assert prefix_free
        assert config.rooms[0].keymap == tuple(
            (name, merged[name]) for name in KEYPAD_COMMANDS if name in merged
        )


# -- recording -----------------------------------------------------------------------------------


def test_recording_dir_defaults_to_recordings_next_to_the_config(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "telerapat.yaml"
    path.parent.mkdir()
    path.write_text(ROOM)
    assert load_config(path).recording_dir == (tmp_path / "conf" / "recordings").resolve()
    path.write_text("recording: null\n" + ROOM)
    assert load_config(path).recording_dir == (tmp_path / "conf" / "recordings").resolve()


def test_recording_dir_relative_to_the_config_file_not_the_working_directory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "conf" / "telerapat.yaml"
    path.parent.mkdir()
    path.write_text("recording: {directory: ../rekaman/rapat}\n" + ROOM)
    config = load_config(path)
    assert config.recording_dir == (tmp_path / "rekaman" / "rapat").resolve()
    assert config.recording_dir.is_absolute()
    assert not config.recording_dir.exists()  # reading a config creates nothing


def test_recording_dir_absolute_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "var" / "recordings"
    config = parse_config(f'recording:\n  directory: "{target}"\n' + ROOM,
                          str(tmp_path / "x.yaml"))
    assert config.recording_dir == target.resolve()


def test_recording_dir_of_a_parsed_text_is_taken_from_the_filename_given() -> None:
    config = parse_config(ROOM, "dialplans/x.yaml")
    assert config.recording_dir == Path("dialplans/recordings").resolve()


def test_bad_recording_settings_are_refused_with_line_and_field() -> None:
    assert problems_of('recording:\n  directory: ""\n  folder: x\n' + ROOM) == [
        '2: recording.directory: must name a folder, e.g. "recordings"',
        '3: recording.folder: unknown key "folder"; expected one of: directory, '
        "reports_directory",
    ]
    assert problems_of('recording: {directory: "a\\nb"}\n' + ROOM) == [
        "1: recording.directory: must be one line of printable text",
    ]
    assert problems_of("recording: {directory: [a]}\n" + ROOM) == [
        "1: recording.directory: expected text, got a list",
    ]
    assert problems_of("recording: recordings\n" + ROOM) == [
        '1: recording: expected a mapping with keys directory, reports_directory, got the text '
        '"recordings"',
    ]


def test_reports_dir_defaults_to_reports_inside_the_recording_dir(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "telerapat.yaml"
    path.parent.mkdir()
    path.write_text(ROOM)
    assert load_config(path).reports_dir == (tmp_path / "conf" / "recordings" / "reports").resolve()
    path.write_text("recording: {directory: /srv/rekaman}\n" + ROOM)
    assert load_config(path).reports_dir == Path("/srv/rekaman/reports").resolve()
    path.write_text("recording: {directory: ../rekaman, reports_directory: null}\n" + ROOM)
    assert load_config(path).reports_dir == (tmp_path / "rekaman" / "reports").resolve()


def test_reports_dir_relative_to_the_config_file_not_the_recording_dir(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "telerapat.yaml"
    path.parent.mkdir()
    path.write_text("recording: {directory: rekaman, reports_directory: ../laporan}\n" + ROOM)
    config = load_config(path)
    assert config.recording_dir == (tmp_path / "conf" / "rekaman").resolve()
    assert config.reports_dir == (tmp_path / "laporan").resolve()
    assert not config.reports_dir.exists()  # reading a config creates nothing


def test_reports_dir_absolute_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "var" / "laporan"
    config = parse_config(f'recording:\n  reports_directory: "{target}"\n' + ROOM,
                          str(tmp_path / "x.yaml"))
    assert config.reports_dir == target.resolve()
    assert config.recording_dir == (tmp_path / "recordings").resolve()


def test_reports_dir_of_a_direct_constructor_has_a_default() -> None:
    config = parse_config(ROOM, "f.yaml")
    direct = Config(sip=config.sip, rtp=config.rtp, language="id", codecs=ALL_CODECS,
                    ptimes_ms=(20,), opus=OpusConfig(), accounts=(), rooms=config.rooms,
                    source="x")
    assert direct.reports_dir == Path("recordings/reports")


def test_bad_reports_directory_is_refused_with_line_and_field() -> None:
    assert problems_of('recording:\n  reports_directory: ""\n' + ROOM) == [
        '2: recording.reports_directory: must name a folder, e.g. "recordings/reports"',
    ]
    assert problems_of("recording: {reports_directory: [a]}\n" + ROOM) == [
        "1: recording.reports_directory: expected text, got a list",
    ]


# -- rooms: hotline ------------------------------------------------------------------------------

HOTLINE = (
    "rooms:\n"
    "  - {id: rakor, extension: '1000', moderator_pin: '9876'}\n"
    "  - id: pengaduan\n"
    "    extension: '6000'\n"
    "    mode: hotline\n"
    "    operator_extension: '6001'\n"
    "    moderator_pin: '8080'\n"
)


def hotline_of(extra: str) -> RoomConfig:
    """Load HOTLINE with `extra` (YAML lines of the hotline room) and return the hotline."""
    return parse_config(HOTLINE + extra, "f.yaml").rooms[1]


def hotline_problems(extra: str) -> list[str]:
    return problems_of(HOTLINE + extra)


def test_hotline_loads_with_its_defaults() -> None:
    hotline = hotline_of("")
    assert hotline == RoomConfig(
        id="pengaduan", extension="6000", name=None, pin=None, moderator_pin="8080",
        mode="hotline", access="anyone", language="id", codecs=ALL_CODECS,
        operator_extension="6001", operator_hours=None, report_max_s=180.0, transfer_room=None,
    )


def test_other_rooms_have_no_hotline_settings() -> None:
    (room,) = parse_config(ROOM, "f.yaml").rooms
    assert (room.operator_extension, room.operator_hours, room.report_max_s,
            room.transfer_room) == (None, None, 180.0, None)


def test_hotline_keys_load_as_written() -> None:
    hotline = hotline_of(
        "    operator_hours: {days: [MON, Wed, fri], from: '22:00', to: '06:00'}\n"
        "    report_max_s: 10\n"
        "    transfer_room: rakor\n"
    )
    assert hotline.operator_hours == OperatorHours(
        days=frozenset({0, 2, 4}), start=time(22, 0), end=time(6, 0))
    assert (hotline.report_max_s, hotline.transfer_room) == (10, "rakor")
    assert hotline_of("    report_max_s: 3600\n").report_max_s == 3600
    assert hotline_of("    report_max_s: 90.5\n").report_max_s == 90.5


@pytest.mark.parametrize(
    ("yaml_value", "extension"), [("6001", "6001"), ('"0601"', "0601"), ("+626001", "+626001")],
)
def test_operator_extension_is_written_like_extension(yaml_value: str, extension: str) -> None:
    text = HOTLINE.replace("operator_extension: '6001'", f"operator_extension: {yaml_value}")
    assert parse_config(text, "f.yaml").rooms[1].operator_extension == extension


def test_operator_extension_with_yaml_surprises_or_letters_is_refused() -> None:
    assert problems_of(HOTLINE.replace("'6001'", "0601")) == [
        "6: rooms[1].operator_extension: YAML reads 0601 as the octal number 385; write it in "
        'quotes to keep the leading zero: "0601"',
    ]
    assert problems_of(HOTLINE.replace("'6001'", "'60-01'")) == [
        '6: rooms[1].operator_extension: "60-01" must be digits, optionally after a leading "+"',
    ]


def test_operator_extension_clashes_with_any_extension_or_operator_extension() -> None:
    assert problems_of(
        HOTLINE
        + "  - {id: lapor, extension: '+6001', mode: hotline, operator_extension: '1000',\n"
        "     moderator_pin: '1'}\n"
        "  - {id: aduan, extension: '7000', mode: hotline, operator_extension: '+6000',\n"
        "     moderator_pin: '2'}\n"
    ) == [
        '8: rooms[2].extension: extension "+6001" matches the same calls as "6001", already '
        "used by rooms[1].operator_extension",
        '8: rooms[2].operator_extension: operator_extension "1000" is already used by rooms[0]',
        '10: rooms[3].operator_extension: operator_extension "+6000" matches the same calls as '
        '"6000", already used by rooms[1]',
    ]


@pytest.mark.parametrize("key", ["operator_extension", "operator_hours", "report_max_s",
                                 "transfer_room"])
@pytest.mark.parametrize("mode", ["", ", mode: meeting", ", mode: webinar"])
def test_hotline_keys_are_refused_in_other_rooms(key: str, mode: str) -> None:
    value = {"operator_extension": "'1001'", "operator_hours": "{from: '08:00', to: '16:00'}",
             "report_max_s": "60", "transfer_room": "b"}[key]
    assert problems_of(
        f"rooms:\n  - {{id: a, extension: '1', moderator_pin: '2'{mode}, {key}: {value}}}\n"
        "  - {id: b, extension: '3'}\n"
    ) == [f"2: rooms[0].{key}: {key} is for hotline rooms (mode: hotline)"]


def test_null_hotline_keys_mean_the_default_in_any_room() -> None:
    (room,) = parse_config(
        "rooms: [{id: r, extension: '1', operator_extension: null, operator_hours: ~,\n"
        "         report_max_s: null, transfer_room: null}]", "f.yaml"
    ).rooms
    assert (room.mode, room.operator_extension, room.operator_hours) == ("meeting", None, None)


def test_hotline_keys_under_an_unreadable_mode_are_checked_but_not_blamed_on_the_mode() -> None:
    assert problems_of(
        "rooms: [{id: r, extension: '1', mode: Hotline, operator_extension: '2',\n"
        "         report_max_s: 1, transfer_room: r}]"
    ) == [
        "1: rooms[0].mode: write hotline in lower case",
        "2: rooms[0].report_max_s: must be 10 to 3600 seconds, got 1",
        '2: rooms[0].transfer_room: "r" is this hotline; name the meeting or webinar room '
        "operators bring callers into",
    ]


def test_hotline_needs_operator_extension_and_moderator_pin_and_takes_no_pin() -> None:
    assert problems_of("rooms: [{id: h, extension: '6000', mode: hotline, pin: '1'}]") == [
        "1: rooms[0].mode: hotline needs operator_extension: the number operators dial",
        "1: rooms[0].mode: hotline needs a moderator_pin: the operators' PIN",
        "1: rooms[0].pin: a hotline asks reporters for no PIN; operators dial "
        "operator_extension and type moderator_pin",
    ]


@pytest.mark.parametrize("pin", ["'8080'", "'12a'", "'1'"])
def test_a_pin_in_a_hotline_is_reported_once_whatever_it_is(pin: str) -> None:
    assert hotline_problems(f"    pin: {pin}\n") == [
        "8: rooms[1].pin: a hotline asks reporters for no PIN; operators dial "
        "operator_extension and type moderator_pin",
    ]


def test_invalid_operator_keys_are_not_also_blamed_on_the_mode() -> None:
    assert problems_of(HOTLINE.replace("'8080'", "'80a'").replace("'6001'", "[6001]")) == [
        "6: rooms[1].operator_extension: expected text, got a list",
        '7: rooms[1].moderator_pin: "80a" must be 1 to 16 digits (0-9), typed on the keypad',
    ]


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ("{from: '07:30', to: '16:00'}", OperatorHours(frozenset(range(7)), time(7, 30),
                                                       time(16))),
        ("{from: 07:30, to: '16:00'}", OperatorHours(frozenset(range(7)), time(7, 30), time(16))),
        ("{from: '7:05', to: '23:59', days: [sun]}", OperatorHours(frozenset({6}), time(7, 5),
                                                                   time(23, 59))),
        ("{from: '18:00', to: '00:00', days: [SAT, sun]}",
         OperatorHours(frozenset({5, 6}), time(18), time(0))),
        ("{days: [mon, tue, wed, thu, fri, sat, sun], from: '00:00', to: '23:59'}",
         OperatorHours(frozenset(range(7)), time(0), time(23, 59))),
    ],
)
def test_operator_hours_load_as_written(hours: str, expected: OperatorHours) -> None:
    """An unquoted 07:30 stays text in YAML 1.1 (a leading zero is no base-60 int)."""
    assert hotline_of(f"    operator_hours: {hours}\n").operator_hours == expected


def test_operator_hours_refuse_base_60_numbers_and_non_times() -> None:
    assert hotline_problems(
        "    operator_hours:\n"
        "      from: 7:30\n"
        "      to: 22:00\n"
        "  - id: b\n    extension: '2'\n    mode: hotline\n    operator_extension: '3'\n"
        "    moderator_pin: '4'\n"
        "    operator_hours: {from: '07:30:00', to: 1600, days: mon}\n"
        "  - {id: c, extension: '5', mode: hotline, operator_extension: '6', moderator_pin: '7',\n"
        "     operator_hours: {from: '24:00', to: 7.30}}\n"
        "  - {id: d, extension: '8', mode: hotline, operator_extension: '9', moderator_pin: '7',\n"
        "     operator_hours: '07:30-16:00'}\n"
    ) == [
        '9: rooms[1].operator_hours.from: YAML reads 7:30 as the base-60 number 450; write the '
        'time in quotes: "7:30"',
        '10: rooms[1].operator_hours.to: YAML reads 22:00 as the base-60 number 1320; write the '
        'time in quotes: "22:00"',
        '16: rooms[2].operator_hours.days: expected a list, got the text "mon"',
        '16: rooms[2].operator_hours.from: "07:30:00" is not a time of day; write "HH:MM", '
        '24-hour, e.g. "07:30"',
        '16: rooms[2].operator_hours.to: "1600" is not a time of day; write "HH:MM", 24-hour, '
        'e.g. "07:30"',
        '18: rooms[3].operator_hours.from: "24:00" is not a time of day; write "HH:MM", 24-hour, '
        'e.g. "07:30"',
        '18: rooms[3].operator_hours.to: expected text, got the number 7.30',
        "20: rooms[4].operator_hours: expected a mapping with keys days, from, to, got the text "
        '"07:30-16:00"',
    ]


def test_operator_hours_need_from_and_to() -> None:
    assert hotline_problems("    operator_hours: {}\n") == [
        '8: rooms[1].operator_hours.from: required: when the shift starts, e.g. "07:30"',
        '8: rooms[1].operator_hours.to: required: when it ends, e.g. "07:30"',
    ]


def test_operator_hours_from_equal_to_to_is_refused_even_when_written_differently() -> None:
    assert hotline_problems("    operator_hours: {from: '7:00', to: '07:00'}\n") == [
        '8: rooms[1].operator_hours.to: "07:00" is the same as from: the shift would last no '
        "time or all day; leave operator_hours out to be on duty round the clock",
    ]


def test_report_max_s_is_a_number_within_bounds() -> None:
    assert hotline_problems("    report_max_s: 9.9\n") == [
        "8: rooms[1].report_max_s: must be 10 to 3600 seconds, got 9.9",
    ]
    assert hotline_problems("    report_max_s: .inf\n") == [
        "8: rooms[1].report_max_s: must be a finite number, got .inf",
    ]
    assert hotline_problems("    report_max_s: true\n") == [
        '8: rooms[1].report_max_s: expected a number, got "true", which YAML reads as the '
        "boolean true; quote it for text",
    ]


def test_transfer_room_may_name_a_meeting_or_webinar_defined_later() -> None:
    config = parse_config(
        HOTLINE + "    transfer_room: pleno\n"
        "  - {id: pleno, extension: '4000', mode: webinar, moderator_pin: '1'}\n",
        "f.yaml",
    )
    assert config.rooms[1].transfer_room == "pleno"


def test_transfer_room_must_name_an_existing_room() -> None:
    assert hotline_problems("    transfer_room: rakr\n") == [
        '8: rooms[1].transfer_room: no room has the id "rakr"; did you mean "rakor"?',
    ]
    assert hotline_problems("    transfer_room: zzz\n") == [
        '8: rooms[1].transfer_room: no room has the id "zzz"; expected one of: rakor, pengaduan',
    ]
    assert hotline_problems("    transfer_room: [rakor]\n") == [
        "8: rooms[1].transfer_room: expected text, got a list",
    ]


def test_transfer_room_must_not_be_the_hotline_itself_or_another_hotline() -> None:
    assert hotline_problems("    transfer_room: pengaduan\n") == [
        '8: rooms[1].transfer_room: "pengaduan" is this hotline; name the meeting or webinar '
        "room operators bring callers into",
    ]
    assert hotline_problems(
        "    transfer_room: lapor\n"
        "  - {id: lapor, extension: '7000', mode: hotline, operator_extension: '7001',\n"
        "     moderator_pin: '1'}\n"
    ) == [
        '8: rooms[1].transfer_room: "lapor" (rooms[2]) is a hotline too; name the meeting or '
        "webinar room operators bring callers into",
    ]


def test_transfer_to_a_room_with_its_own_problems_is_not_blamed_too() -> None:
    assert hotline_problems(
        "    transfer_room: rusak\n  - {id: rusak, mode: hotline}\n"
    ) == [
        '9: rooms[2].extension: required: the number callers dial to reach the room, e.g. "1000"',
        "9: rooms[2].mode: hotline needs operator_extension: the number operators dial",
        "9: rooms[2].mode: hotline needs a moderator_pin: the operators' PIN",
    ]


# -- OperatorHours.covers ------------------------------------------------------------------------

WEEKDAYS_0730_1600 = OperatorHours(frozenset(range(5)), time(7, 30), time(16, 0))
NIGHTS_FROM_FRIDAY_AND_SATURDAY = OperatorHours(frozenset({4, 5}), time(22, 0), time(6, 0))
# 2026-03-02 is a Monday.
MONDAY = datetime(2026, 3, 2)


def at(day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    """A moment `day` days after Monday 2026-03-02 (0 = that Monday, 5 = Saturday)."""
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute, seconds=second,
                              microseconds=micro)


@pytest.mark.parametrize(
    ("moment", "covered"),
    [
        (at(0, 7, 30), True),  # start is inclusive
        (at(0, 7, 29, 59, 999999), False),
        (at(0, 12), True),
        (at(4, 15, 59, 59, 999999), True),  # Friday, just before the end
        (at(4, 16), False),  # end is exclusive
        (at(0, 0), False),
        (at(5, 12), False),  # Saturday
        (at(6, 9), False),  # Sunday
        (at(7, 9), True),  # the next Monday
    ],
)
def test_day_shift_covers_weekdays_from_start_until_end(moment: datetime, covered: bool) -> None:
    assert WEEKDAYS_0730_1600.covers(moment) is covered


@pytest.mark.parametrize(
    ("moment", "covered"),
    [
        (at(4, 21, 59, 59), False),  # Friday evening, before the shift
        (at(4, 22), True),  # Friday's shift starts
        (at(4, 23, 59, 59, 999999), True),
        (at(5, 0), True),  # past midnight: still Friday's shift
        (at(5, 5, 59, 59), True),
        (at(5, 6), False),  # Friday's shift ends
        (at(5, 12), False),  # Saturday noon: between shifts
        (at(5, 22), True),  # Saturday's shift
        (at(6, 3), True),  # Sunday night is Saturday's shift
        (at(6, 22), False),  # no shift starts on Sunday
        (at(7, 3), False),  # so Monday early is off duty
        (at(3, 23), False),  # Thursday night: not listed
        (at(4, 3), False),  # Friday early belongs to Thursday's (absent) shift
    ],
)
def test_overnight_shift_belongs_to_the_day_it_starts(moment: datetime, covered: bool) -> None:
    assert NIGHTS_FROM_FRIDAY_AND_SATURDAY.covers(moment) is covered


def test_overnight_shift_ending_at_midnight_and_every_day() -> None:
    evenings = OperatorHours(frozenset(range(7)), time(18), time(0))
    assert [evenings.covers(at(2, hour)) for hour in (0, 17, 18, 23)] == [
        False, False, True, True]
    sunday_into_monday = OperatorHours(frozenset({6}), time(20), time(8))
    assert sunday_into_monday.covers(at(7, 7, 59))  # Monday morning wraps back to Sunday
    assert not sunday_into_monday.covers(at(0, 20))  # Monday evening: no shift


def test_covers_reads_the_wall_time_of_an_aware_moment() -> None:
    wib = timezone(timedelta(hours=7))
    assert WEEKDAYS_0730_1600.covers(datetime(2026, 3, 2, 8, 0, tzinfo=wib))
    assert not WEEKDAYS_0730_1600.covers(datetime(2026, 3, 2, 8, 0, tzinfo=wib).astimezone(UTC))



def test_reports_directory_must_not_be_the_recordings_folder() -> None:
    assert problems_of(
        "recording: {directory: rekaman, reports_directory: rekaman}\n" + ROOM
    ) == [
        "1: recording.reports_directory: must differ from recording.directory, or meeting "
        "recordings would be listed and exported as reports"
    ]


def test_meeting_keys_are_refused_on_a_hotline() -> None:
    text = (
        "rooms:\n  - {id: h, extension: '6', mode: hotline, operator_extension: '7',\n"
        "     moderator_pin: '55', record: true, announce: chime}\n"
    )
    assert problems_of(text) == [
        "3: rooms[0].record: record is for meeting and webinar rooms, not a hotline",
        "3: rooms[0].announce: announce is for meeting and webinar rooms, not a hotline",
    ]
