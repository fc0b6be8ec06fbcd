"""Gateway legs, trunks, room numbers and sip.allow_from load from YAML or are refused by line."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from bridge.config import (
    DEFAULT_PAYLOAD_TYPES,
    ConfigError,
    GatewayConfig,
    RtpLegConfig,
    SipLegConfig,
    TrunkConfig,
    load_config,
    parse_config,
)

ROOM = 'rooms: [{id: rakor, extension: "1000"}]\n'
# A room whose gateways follow as the lines of a block list, indented by six spaces.
GATEWAYS = "rooms:\n  - id: rakor\n    extension: '1000'\n    gateways:\n"

FULL = """\
sip:
  listen: ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
  allow_from: ["127.0.0.0/8", "10.20.0.0/16", "192.0.2.7", "2001:db8::/32"]
trunks:
  - id: provider
    registrar: "sip:127.0.0.1:5070"
    username: "0215551000"
    password: "rahasia-trunk"
  - id: pbx
    registrar: "sip:pbx.pemkab.example"
    username: "bridge@pemkab"
    password: 20240101
    aor: "sip:7000@pbx.pemkab.example"
    contact_user: "7000"
    expires_s: 10
    retry_min_s: 1
    retry_max_s: 5.5
rooms:
  - id: rakor
    extension: 1000
    numbers: ["0215551000", "+62215551000", 2000]
    gateways:
      - id: zoom
        sip:
          uri: "sip:123456@127.0.0.1:5080"
          proxy: "sip:127.0.0.2:5060;lr"
          username: telerapat
          password: "rahasia-zoom"
          from_user: rapat-kab
          digits: 123456#,,4321#
          digits_delay_s: 0
          codecs: [pcmu, opus]
          redial_min_s: 0.5
          redial_max_s: 3600
      - id: studio
        rtp:
          codec: opus
          payload_type: 96
          ptime_ms: 40
          remote: "[2001:db8::7]:40000"
          sdp_file: sdp/studio.sdp
          telephone_event_pt: 101
      - id: radio
        rtp: {codec: G722, remote_sdp: /srv/radio.sdp}
      - id: plain
        rtp: {codec: pcma}
"""


def problems_of(text: str) -> list[str]:
    """Parse `text` as "f.yaml", expect failure, return its lines without the file name."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml")
    return [line.removeprefix("f.yaml:") for line in str(caught.value).splitlines()]


def gateway_problems(*lines: str) -> list[str]:
    """Problems of a room whose `gateways:` list holds `lines` (the first is file line 5)."""
    return problems_of(GATEWAYS + "".join(f"      {line}\n" for line in lines))


def test_full_example_loads_every_key(tmp_path: Path) -> None:
    path = tmp_path / "dialplans" / "bridge.yaml"
    path.parent.mkdir()
    path.write_text(FULL)
    config = load_config(path)
    assert config.sip.allow_from == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("192.0.2.7/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert config.trunks == (
        TrunkConfig(id="provider", registrar="sip:127.0.0.1:5070", username="0215551000",
                    password="rahasia-trunk", aor="sip:0215551000@127.0.0.1",
                    contact_user="0215551000"),
        TrunkConfig(id="pbx", registrar="sip:pbx.pemkab.example", username="bridge@pemkab",
                    password="20240101", aor="sip:7000@pbx.pemkab.example", contact_user="7000",
                    expires_s=10, retry_min_s=1, retry_max_s=5.5),
    )
    (room,) = config.rooms
    assert room.numbers == ("0215551000", "+62215551000", "2000")
    assert room.gateways == (
        GatewayConfig(id="zoom", sip=SipLegConfig(
            uri="sip:123456@127.0.0.1:5080", proxy="sip:127.0.0.2:5060;lr", username="telerapat",
            password="rahasia-zoom", from_user="rapat-kab", digits="123456#,,4321#",
            digits_delay_s=0, codecs=("PCMU", "OPUS"), redial_min_s=0.5, redial_max_s=3600,
        )),
        GatewayConfig(id="studio", rtp=RtpLegConfig(
            codec="OPUS", payload_type=96, ptime_ms=40, remote=("2001:db8::7", 40000),
            sdp_file=path.parent / "sdp" / "studio.sdp", telephone_event_pt=101,
        )),
        GatewayConfig(id="radio", rtp=RtpLegConfig(
            codec="G722", payload_type=9, remote_sdp=Path("/srv/radio.sdp"),
        )),
        GatewayConfig(id="plain", rtp=RtpLegConfig(codec="PCMA", payload_type=8)),
    )


def test_passwords_are_kept_for_digest_but_never_in_a_repr() -> None:
    config = parse_config(FULL, "f.yaml")
    leg = config.rooms[0].gateways[0].sip
    assert leg is not None
    assert (config.trunks[0].password, leg.password) == ("rahasia-trunk", "rahasia-zoom")
    for shown in (repr(config), str(config), repr(config.trunks), repr(config.rooms[0])):
        assert "rahasia" not in shown
        assert "20240101" not in shown


def test_nothing_is_read_from_disk_at_load(tmp_path: Path) -> None:
    """remote_sdp is read when the leg starts, so a file made later is fine."""
    path = tmp_path / "f.yaml"
    path.write_text(GATEWAYS + "      - {id: a, rtp: {codec: PCMU, remote_sdp: later.sdp}}\n")
    (gateway,) = load_config(path).rooms[0].gateways
    assert gateway.rtp is not None and gateway.rtp.remote_sdp == tmp_path / "later.sdp"
    assert not gateway.rtp.remote_sdp.exists()


def test_sections_left_out_mean_no_trunks_gateways_numbers_or_filter() -> None:
    config = parse_config(ROOM + "trunks: []\n", "f.yaml")
    assert (config.trunks, config.sip.allow_from) == ((), None)
    assert (config.rooms[0].numbers, config.rooms[0].gateways) == ((), ())
    config = parse_config(ROOM + "trunks:\nsip: {allow_from: null}\n", "f.yaml")
    assert (config.trunks, config.sip.allow_from) == ((), None)


@pytest.mark.parametrize(("codec", "payload_type"), sorted(DEFAULT_PAYLOAD_TYPES.items()))
def test_rtp_leg_payload_type_defaults_to_the_codecs_own(codec: str, payload_type: int) -> None:
    config = parse_config(GATEWAYS + f"      - {{id: a, rtp: {{codec: {codec.lower()}}}}}\n", "f")
    assert config.rooms[0].gateways[0].rtp == RtpLegConfig(codec=codec, payload_type=payload_type)


def test_sip_leg_defaults() -> None:
    config = parse_config(GATEWAYS + "      - {id: a, sip: {uri: 'sip:meeting.example'}}\n", "f")
    assert config.rooms[0].gateways[0].sip == SipLegConfig(uri="sip:meeting.example")
    leg = SipLegConfig(uri="sip:x")
    assert (leg.from_user, leg.digits, leg.digits_delay_s, leg.codecs) == ("telerapat", "", 2, None)
    assert (leg.redial_min_s, leg.redial_max_s) == (2, 60)


def test_digits_are_upper_case_and_null_or_empty_means_none() -> None:
    config = parse_config(
        GATEWAYS
        + "      - {id: a, sip: {uri: 'sip:m.example', digits: '*9ab,#'}}\n"
        + "      - {id: b, sip: {uri: 'sip:m.example', digits: ''}}\n"
        + "      - id: c\n        sip:\n          uri: sip:m.example\n          digits: # none\n"
        + "      - {id: d, sip: {uri: 'sip:m.example', digits: 12345}}\n",
        "f",
    )
    digits = [gateway.sip.digits for gateway in config.rooms[0].gateways if gateway.sip]
    assert digits == ["*9AB,#", "", "", "12345"]


def test_trunk_defaults_take_aor_and_contact_user_from_username_and_registrar_host() -> None:
    config = parse_config(
        ROOM + "trunks: [{id: t, registrar: 'sip:[::1]:5070', username: '62215551000',"
        " password: p}]\nsip: {listen: ['udp:[::1]:5060']}\n",
        "f",
    )
    (trunk,) = config.trunks
    assert (trunk.aor, trunk.contact_user) == ("sip:62215551000@[::1]", "62215551000")
    assert (trunk.expires_s, trunk.retry_min_s, trunk.retry_max_s) == (600, 30, 600)


def test_host_names_are_not_judged_against_sip_listen() -> None:
    """A host name is resolved when the request is sent; the loopback listener may reach it."""
    config = parse_config(
        ROOM + "trunks: [{id: t, registrar: 'sip:trunk.example', username: u, password: p}]\n",
        "f",
    )
    assert config.trunks[0].aor == "sip:u@trunk.example"


def test_requests_may_leave_from_a_wildcard_or_a_matching_first_udp_entry() -> None:
    config = parse_config(
        "sip: {listen: ['tcp:127.0.0.1:5060', 'udp:0.0.0.0:5060', 'udp:[::1]:5060'],"
        " external_address: 192.0.2.1}\n"
        "trunks: [{id: t, registrar: 'sip:192.0.2.9', username: u, password: p}]\n" + ROOM,
        "f",
    )
    assert config.trunks[0].registrar == "sip:192.0.2.9"


# -- refusals ------------------------------------------------------------------------------


def test_bad_allow_from_entries_are_refused_one_by_one() -> None:
    assert problems_of(
        "sip:\n  allow_from:\n    - 10.20.0.1/16\n    - intranet.example\n    - 192.0.2.7\n"
        "    - 192.0.2.7/32\n    - 10.0.0.0/33\n    - [a]\n" + ROOM
    ) == [
        '3: sip.allow_from[0]: "10.20.0.1/16" has bits set after its /16 prefix; did you mean '
        '"10.20.0.0/16"?',
        '4: sip.allow_from[1]: "intranet.example" is not an IP address or network such as '
        '"10.20.0.0/16"',
        "6: sip.allow_from[3]: 192.0.2.7/32 is listed twice",
        '7: sip.allow_from[4]: "10.0.0.0/33" is not an IP address or network such as '
        '"10.20.0.0/16"',
        "8: sip.allow_from[5]: expected text, got a list",
    ]
    assert problems_of("sip: {allow_from: []}\n" + ROOM) == [
        '1: sip.allow_from: needs at least one network, e.g. ["127.0.0.0/8"]; leave allow_from '
        "out to let anyone call",
    ]
    assert problems_of("sip: {allow_from: 10.0.0.0/8}\n" + ROOM) == [
        '1: sip.allow_from: expected a list, got the text "10.0.0.0/8"',
    ]


def test_numbers_are_claimed_like_extensions_across_rooms() -> None:
    assert problems_of(
        "rooms:\n"
        "  - {id: a, extension: '1000', numbers: ['0215551000', '+0215551000', '1000']}\n"
        "  - {id: b, extension: '0215551000', numbers: [0123, '02-15', '+1000']}\n"
        "  - {id: h, extension: '6000', mode: hotline, operator_extension: '6001',\n"
        "     moderator_pin: '1', numbers: ['6001', '+62215556000']}\n"
        "  - {id: c, extension: '+62215556000', numbers: '7000'}\n"
    ) == [
        '2: rooms[0].numbers[1]: number "+0215551000" matches the same calls as "0215551000", '
        "already used by this room's numbers[0]",
        "2: rooms[0].numbers[2]: number \"1000\" is already used by this room's extension",
        '3: rooms[1].extension: extension "0215551000" is already used by rooms[0].numbers[0]',
        "3: rooms[1].numbers[0]: YAML reads 0123 as the octal number 83; write it in quotes to "
        'keep the leading zero: "0123"',
        '3: rooms[1].numbers[1]: "02-15" must be digits, optionally after a leading "+"',
        '3: rooms[1].numbers[2]: number "+1000" matches the same calls as "1000", already used '
        "by rooms[0]",
        "5: rooms[2].numbers[0]: number \"6001\" is already used by this room's "
        "operator_extension",
        '6: rooms[3].extension: extension "+62215556000" is already used by '
        "rooms[2].numbers[1]",
        '6: rooms[3].numbers: expected a list, got the text "7000"',
    ]


def test_hotline_may_have_numbers_but_no_gateways() -> None:
    hotline = ("rooms: [{id: h, extension: '6000', mode: hotline, operator_extension: '6001', "
               "moderator_pin: '1', numbers: ['02155560']")
    assert parse_config(hotline + "}]", "f").rooms[0].numbers == ("02155560",)
    gateways = ",\n  gateways: [{id: g, rtp: {codec: PCMU, ptime_ms: 30}}]}]"
    assert problems_of(hotline + gateways) == [
        "2: rooms[0].gateways: gateways is for meeting and webinar rooms, not a hotline",
        "2: rooms[0].gateways[0].rtp.ptime_ms: 30 ms is not a packet time we send; use 20, 40 "
        "or 60",
    ]


def test_gateway_needs_an_id_and_exactly_one_leg() -> None:
    assert gateway_problems(
        "- {id: zoom, rtp: {codec: PCMU}}",
        "- {id: zoom, rtp: {codec: PCMU}}",
        "- {id: Zoom, sip: {uri: 'sip:m.example'}}",
        "- {rtp: {codec: PCMU}}",
        "- {id: both, rtp: {codec: PCMU}, sip: {uri: 'sip:m.example'}}",
        "- {id: none}",
        "- {id: nulls, rtp: null, sip: ~}",
        "- {id: typo, rpt: {codec: PCMU}}",
        "- zoom",
        "- {id: listed, rtp: [codec, PCMU]}",
    ) == [
        '6: rooms[0].gateways[1].id: gateway id "zoom" is already used by rooms[0].gateways[0]',
        '7: rooms[0].gateways[2].id: "Zoom" must be lowercase letters, digits, "_" or "-"',
        "8: rooms[0].gateways[3].id: required: a short name such as zoom, used in logs",
        "9: rooms[0].gateways[4].sip: a gateway is one leg: give rtp: or sip:, not both (list "
        "two gateways for two legs)",
        "10: rooms[0].gateways[5]: a gateway needs rtp: (a plain RTP stream) or sip: (a call "
        "the bridge places)",
        "11: rooms[0].gateways[6]: a gateway needs rtp: (a plain RTP stream) or sip: (a call "
        "the bridge places)",
        '12: rooms[0].gateways[7].rpt: unknown key "rpt"; did you mean "rtp"?',
        "12: rooms[0].gateways[7]: a gateway needs rtp: (a plain RTP stream) or sip: (a call "
        "the bridge places)",
        '13: rooms[0].gateways[8]: expected a gateway mapping with id and rtp: or sip:, got the '
        'text "zoom"',
        "14: rooms[0].gateways[9].rtp: expected a mapping with keys codec, payload_type, "
        "ptime_ms, remote, remote_sdp, sdp_file, telephone_event_pt, got a list",
    ]


def test_gateway_ids_are_per_room() -> None:
    config = parse_config(
        "rooms:\n  - {id: a, extension: '1', gateways: [{id: zoom, rtp: {codec: PCMU}}]}\n"
        "  - {id: b, extension: '2', gateways: [{id: zoom, rtp: {codec: PCMU}}]}\n",
        "f",
    )
    assert [room.gateways[0].id for room in config.rooms] == ["zoom", "zoom"]


def test_rtp_leg_codec_and_packet_time_are_checked() -> None:
    assert gateway_problems(
        "- {id: a, rtp: {payload_type: 0}}",
        "- {id: b, rtp: {codec: G729}}",
        "- {id: c, rtp: {codec: PCMU, ptime_ms: 10, payload_typ: 0}}",
        "- {id: d, rtp: {codec: PCMU, ptime_ms: '20'}}",
    ) == [
        "5: rooms[0].gateways[0].rtp.codec: required: the codec both sides send, one of PCMU, "
        "PCMA, G722, OPUS",
        '6: rooms[0].gateways[1].rtp.codec: unknown codec "G729"; supported: PCMU, PCMA, G722, '
        "OPUS",
        '7: rooms[0].gateways[2].rtp.payload_typ: unknown key "payload_typ"; did you mean '
        '"payload_type"?',
        "7: rooms[0].gateways[2].rtp.ptime_ms: 10 ms is not a packet time we send; use 20, 40 "
        "or 60",
        '8: rooms[0].gateways[3].rtp.ptime_ms: expected a whole number, got the text "20"',
    ]


def test_payload_types_are_the_codecs_static_one_or_dynamic() -> None:
    assert gateway_problems(
        "- {id: a, rtp: {codec: PCMU, payload_type: 8}}",
        "- {id: b, rtp: {codec: OPUS, payload_type: 0}}",
        "- {id: c, rtp: {codec: OPUS, payload_type: 72}}",
        "- {id: d, rtp: {codec: G722, payload_type: 128}}",
        "- {id: e, rtp: {codec: PCMA, payload_type: 35}}",
        "- {id: f, rtp: {codec: PCMA, payload_type: -1}}",
        "- {id: g, rtp: {codec: G729, payload_type: 18}}",
        "- {id: h, rtp: {codec: G729, payload_type: 76}}",
    ) == [
        "5: rooms[0].gateways[0].rtp.payload_type: payload_type 8 is PCMA's static number "
        "(RFC 3551 §6); PCMU takes 0 or a dynamic one, 96 to 127",
        "6: rooms[0].gateways[1].rtp.payload_type: payload_type 0 is PCMU's static number "
        "(RFC 3551 §6); OPUS takes a dynamic one, 96 to 127",
        "7: rooms[0].gateways[2].rtp.payload_type: 72 cannot be used: payload types 72 to 76 "
        "read as RTCP packet types 200 to 204 where RTP and RTCP share a port (RFC 5761 §4)",
        "8: rooms[0].gateways[3].rtp.payload_type: must be 0 to 127 (7 bits in the RTP header, "
        "RFC 3550 §5.1), got 128",
        "9: rooms[0].gateways[4].rtp.payload_type: payload_type 35 is unassigned (RFC 3551 §6); "
        "PCMA takes 8 or a dynamic one, 96 to 127",
        "10: rooms[0].gateways[5].rtp.payload_type: must be 0 to 127 (7 bits in the RTP header, "
        "RFC 3550 §5.1), got -1",
        '11: rooms[0].gateways[6].rtp.codec: unknown codec "G729"; supported: PCMU, PCMA, G722, '
        "OPUS",
        '12: rooms[0].gateways[7].rtp.codec: unknown codec "G729"; supported: PCMU, PCMA, G722, '
        "OPUS",
        "12: rooms[0].gateways[7].rtp.payload_type: 76 cannot be used: payload types 72 to 76 "
        "read as RTCP packet types 200 to 204 where RTP and RTCP share a port (RFC 5761 §4)",
    ]


@pytest.mark.parametrize("codec", sorted(DEFAULT_PAYLOAD_TYPES))
def test_every_payload_type_is_taken_exactly_when_static_for_the_codec_or_dynamic(
    codec: str,
) -> None:
    lines = "".join(f"      - {{id: g{number}, rtp: {{codec: {codec}, payload_type: {number}}}}}\n"
                    for number in range(128))
    with pytest.raises(ConfigError) as caught:
        parse_config(GATEWAYS + lines, "f")
    refused = {int(problem.field.split("[")[2].split("]")[0]) for problem in caught.value.problems}
    own = {DEFAULT_PAYLOAD_TYPES[codec]} if codec != "OPUS" else set()
    assert set(range(128)) - refused == own | set(range(96, 128))


def test_telephone_event_payload_type_is_dynamic_and_its_own() -> None:
    assert gateway_problems(
        "- {id: a, rtp: {codec: PCMU, telephone_event_pt: 13}}",
        "- {id: b, rtp: {codec: OPUS, telephone_event_pt: 111}}",
        "- {id: c, rtp: {codec: PCMU, payload_type: 100, telephone_event_pt: 100}}",
        "- {id: d, rtp: {codec: PCMU, payload_type: 100, telephone_event_pt: 101}}",
    ) == [
        "5: rooms[0].gateways[0].rtp.telephone_event_pt: 13 is not a dynamic payload type: "
        "telephone-event has no static one (RFC 4733 §7.1), so use 96 to 127, e.g. 101",
        "6: rooms[0].gateways[1].rtp.telephone_event_pt: must differ from payload_type 111: "
        "each payload type names one format (RFC 3550 §5.1)",
        "7: rooms[0].gateways[2].rtp.telephone_event_pt: must differ from payload_type 100: "
        "each payload type names one format (RFC 3550 §5.1)",
    ]


def test_rtp_leg_remote_is_an_ip_literal_and_port() -> None:
    assert gateway_problems(
        "- {id: a, rtp: {codec: PCMU, remote: 'media.example:40000'}}",
        "- {id: b, rtp: {codec: PCMU, remote: '2001:db8::7:40000'}}",
        "- {id: c, rtp: {codec: PCMU, remote: '[192.0.2.7]:40000'}}",
        "- {id: d, rtp: {codec: PCMU, remote: '192.0.2.7:0'}}",
        "- {id: e, rtp: {codec: PCMU, remote: '192.0.2.7:65536'}}",
        "- {id: f, rtp: {codec: PCMU, remote: '192.0.2.7'}}",
        "- {id: g, rtp: {codec: PCMU, remote: '0.0.0.0:40000'}}",
        "- {id: h, rtp: {codec: PCMU, remote: 40000}}",
    ) == [
        '5: rooms[0].gateways[0].rtp.remote: "media.example:40000": "media.example" is not an IP '
        "address; RTP is sent to the address itself, so give it rather than a host name",
        '6: rooms[0].gateways[1].rtp.remote: "2001:db8::7:40000": write an IPv6 address in '
        'brackets, e.g. "192.0.2.7:40000" or "[2001:db8::7]:40000"',
        '7: rooms[0].gateways[2].rtp.remote: "[192.0.2.7]:40000": brackets are for IPv6 '
        'addresses only, e.g. "192.0.2.7:40000" or "[2001:db8::7]:40000"',
        '8: rooms[0].gateways[3].rtp.remote: "192.0.2.7:0": port must be a number from 1 to '
        "65535",
        '9: rooms[0].gateways[4].rtp.remote: "192.0.2.7:65536": port must be a number from 1 '
        "to 65535",
        '10: rooms[0].gateways[5].rtp.remote: "192.0.2.7" is not address:port, e.g. '
        '"192.0.2.7:40000" or "[2001:db8::7]:40000"',
        '11: rooms[0].gateways[6].rtp.remote: "0.0.0.0:40000": 0.0.0.0 is no address to send '
        "RTP to",
        '12: rooms[0].gateways[7].rtp.remote: "40000" is not address:port, e.g. '
        '"192.0.2.7:40000" or "[2001:db8::7]:40000"',
    ]


def test_sdp_files_are_exclusive_and_named() -> None:
    assert problems_of(
        "rooms:\n"
        "  - id: a\n    extension: '1'\n    gateways:\n"
        "      - {id: a, rtp: {codec: PCMU, remote: '192.0.2.7:4000', remote_sdp: far.sdp}}\n"
        "      - {id: b, rtp: {codec: PCMU, remote_sdp: ./b.sdp, sdp_file: b.sdp}}\n"
        "      - {id: c, rtp: {codec: PCMU, sdp_file: c.sdp, remote_sdp: ''}}\n"
        "  - id: b\n    extension: '2'\n    gateways:\n"
        "      - {id: c, rtp: {codec: PCMU, sdp_file: sub/../c.sdp}}\n"
        "      - {id: d, rtp: {codec: PCMU, sdp_file: \"c\\x01.sdp\"}}\n"
    ) == [
        "5: rooms[0].gateways[0].rtp.remote_sdp: give remote or remote_sdp, not both: the far "
        "side's address comes from one of them",
        "6: rooms[0].gateways[1].rtp.sdp_file: must differ from remote_sdp, or the bridge would "
        "overwrite the far side's SDP with its own",
        '7: rooms[0].gateways[2].rtp.remote_sdp: must name a file, e.g. "zoom-far.sdp"',
        f"11: rooms[1].gateways[0].rtp.sdp_file: {Path('c.sdp').resolve()} is already written "
        "by rooms[0].gateways[2].rtp.sdp_file",
        "12: rooms[1].gateways[1].rtp.sdp_file: must be one line of printable text",
    ]


def test_sip_leg_uris_are_sip_uris_without_password_or_headers() -> None:
    problems = gateway_problems(
        "- {id: a, sip: {uri: 'sips:m.example'}}",
        "- {id: b, sip: {uri: 'tel:+6221555'}}",
        "- {id: c, sip: {uri: 'meeting@m.example'}}",
        "- {id: d, sip: {uri: 'sip:123:topsecret@m.example?subject=x'}}",
        "- {id: e, sip: {uri: 'sip:123@m_example'}}",
        "- {id: f, sip: {uri: 'sip:123@m.example;transport=tcp'}}",
        "- {id: g, sip: {uri: 'sip:123@m.example;transport=tcp', proxy: 'sip:m.example'}}",
        "- {id: h, sip: {uri: 'sip:m.example', proxy: 'sip:p.example;transport=TLS'}}",
        "- {id: i, sip: {proxy: 'sip:p.example'}}",
        "- {id: j, sip: {uri: 'sip:123@:5060'}}",
    )
    assert problems == [
        "5: rooms[0].gateways[0].sip.uri: sips is not supported yet: the bridge sends its own "
        "requests over UDP; write sip:",
        '6: rooms[0].gateways[1].sip.uri: "tel:+6221555" is not a sip: URI such as '
        '"sip:123456@gw.example" or "sip:meeting@192.0.2.9:5080"',
        '7: rooms[0].gateways[2].sip.uri: "meeting@m.example" is not a SIP URI such as '
        '"sip:123456@gw.example" or "sip:meeting@192.0.2.9:5080"',
        "8: rooms[0].gateways[3].sip.uri: put the password in password:, not in the URI, which "
        "goes out in clear with every request",
        '8: rooms[0].gateways[3].sip.uri: "sip:123:…@m.example?subject=x" has URI headers '
        "(after ?), which a Request-URI cannot carry (RFC 3261 §19.1.1)",
        '9: rooms[0].gateways[4].sip.uri: "sip:123@m_example": "m_example" is not a host name or '
        "IP address (RFC 3261 §25.1)",
        "10: rooms[0].gateways[5].sip.uri: transport=tcp: the bridge sends the INVITE over UDP "
        "only; TCP and TLS are not supported for it yet",
        "12: rooms[0].gateways[7].sip.proxy: transport=tls: the bridge sends the INVITE over UDP "
        "only; TCP and TLS are not supported for it yet",
        "13: rooms[0].gateways[8].sip.uri: required: the meeting's SIP address, e.g. "
        '"sip:123456@gw.example"',
        '14: rooms[0].gateways[9].sip.uri: "sip:123@:5060" is not a SIP URI such as '
        '"sip:123456@gw.example" or "sip:meeting@192.0.2.9:5080"',
    ]
    assert not any("topsecret" in problem for problem in problems)


def test_sip_leg_credentials_come_in_pairs_and_passwords_are_never_shown() -> None:
    problems = gateway_problems(
        "- {id: a, sip: {uri: 'sip:m.example', username: zoom}}",
        "- {id: b, sip: {uri: 'sip:m.example', password: s3cret}}",
        "- {id: c, sip: {uri: 'sip:m.example', username: zoom, password: 0755}}",
        "- {id: d, sip: {uri: 'sip:m.example', username: zoom, password: yes}}",
        "- {id: e, sip: {uri: 'sip:m.example', username: zoom, password: ''}}",
        "- {id: f, sip: {uri: 'sip:m.example', username: '', password: 0x1F}}",
        "- {id: g, sip: {uri: 'sip:m.example', username: zoom, password: [s3cret]}}",
        "- {id: h, sip: {uri: 'sip:m.example', username: zoom, password: 1.50}}",
        "- {id: i, sip: {uri: 'sip:m.example', username: zoom, password: 2024-01-31}}",
    )
    assert problems == [
        "5: rooms[0].gateways[0].sip.username: username needs password too: digest credentials "
        "are both (RFC 3261 §22.2), or neither when the far end asks for none",
        "6: rooms[0].gateways[1].sip.password: password needs username too: digest credentials "
        "are both (RFC 3261 §22.2), or neither when the far end asks for none",
        "7: rooms[0].gateways[2].sip.password: YAML reads this unquoted password as a number, "
        "which may not be what was written; write it in quotes",
        "8: rooms[0].gateways[3].sip.password: YAML reads this unquoted password as a boolean, "
        "which may not be what was written; write it in quotes",
        "9: rooms[0].gateways[4].sip.password: must not be empty",
        "10: rooms[0].gateways[5].sip.username: must not be empty",
        "10: rooms[0].gateways[5].sip.password: YAML reads this unquoted password as a number, "
        "which may not be what was written; write it in quotes",
        "11: rooms[0].gateways[6].sip.password: expected the password as text, got a list",
        "12: rooms[0].gateways[7].sip.password: YAML reads this unquoted password as a number, "
        "which may not be what was written; write it in quotes",
        "13: rooms[0].gateways[8].sip.password: YAML reads this unquoted password as a date, "
        "which may not be what was written; write it in quotes",
    ]
    for secret in ("s3cret", "0755", "0x1F", "1.50", "2024-01-31"):
        assert not any(secret in problem for problem in problems)


def test_sip_leg_digits_delays_codecs_and_from_user_are_checked() -> None:
    assert gateway_problems(
        "- {id: a, sip: {uri: 'sip:m.example', digits: '12E4', digits_delay_s: 31}}",
        "- {id: b, sip: {uri: 'sip:m.example', digits: 0123, digits_delay_s: -1}}",
        "- id: c\n        sip:\n          uri: sip:m.example\n          digits: #1234",
        "- {id: d, sip: {uri: 'sip:m.example', codecs: [PCMU, G729], from_user: 'rapat kab'}}",
        "- {id: e, sip: {uri: 'sip:m.example', redial_min_s: 0.1, redial_max_s: 7200}}",
        "- {id: f, sip: {uri: 'sip:m.example', redial_min_s: 90}}",
        "- {id: g, sip: {uri: 'sip:m.example', redial_max_s: 1}}",
        "- {id: h, sip: {uri: 'sip:m.example', redial_min_s: 30, redial_max_s: 10}}",
        "- {id: i, sip: {uri: 'sip:m.example', redial_min_s: 0, redial_max_s: 1}}",
        "- {id: j, sip: {uri: 'sip:m.example', digits_delay_s: '2', codecs: []}}",
    ) == [
        '5: rooms[0].gateways[0].sip.digits: "12E4" must be keys 0-9, *, # and A-D, with "," for '
        "a one-second pause",
        "5: rooms[0].gateways[0].sip.digits_delay_s: must be 0 to 30 seconds, got 31",
        "6: rooms[0].gateways[1].sip.digits: YAML reads 0123 as the octal number 83; write it in "
        'quotes to keep the leading zero: "0123"',
        "6: rooms[0].gateways[1].sip.digits_delay_s: must be 0 to 30 seconds, got -1",
        "10: rooms[0].gateways[2].sip.digits: YAML reads #1234 after a space as a comment, which "
        'would send no digits; write it in quotes: "#1234"',
        '11: rooms[0].gateways[3].sip.from_user: "rapat kab" is not a SIP user name (RFC 3261 '
        "§25.1): use letters, digits and - _ . ! ~ * ' ( ) & = + $ , ; ? /",
        '11: rooms[0].gateways[3].sip.codecs[1]: unknown codec "G729"; supported: OPUS, G722, '
        "PCMU, PCMA",
        "12: rooms[0].gateways[4].sip.redial_min_s: must be 0.5 to 3600 seconds, got 0.1",
        "12: rooms[0].gateways[4].sip.redial_max_s: must be 0.5 to 3600 seconds, got 7200",
        "13: rooms[0].gateways[5].sip.redial_min_s: 90 is above redial_max_s 60 (the default); "
        "keep redial_min_s <= redial_max_s",
        "14: rooms[0].gateways[6].sip.redial_max_s: 1 is below redial_min_s 2 (the default); "
        "keep redial_min_s <= redial_max_s",
        "15: rooms[0].gateways[7].sip.redial_max_s: 10 is below redial_min_s 30; keep "
        "redial_min_s <= redial_max_s",
        "16: rooms[0].gateways[8].sip.redial_min_s: must be 0.5 to 3600 seconds, got 0",
        '17: rooms[0].gateways[9].sip.digits_delay_s: expected a number, got the text "2"',
        "17: rooms[0].gateways[9].sip.codecs: needs at least one codec; supported: OPUS, G722, "
        "PCMU, PCMA",
    ]


def test_trunks_are_checked_field_by_field() -> None:
    problems = problems_of(
        ROOM + "trunks:\n"
        "  - {id: prov, registrar: 'sip:0215551000@trunk.example', username: u, password: p}\n"
        "  - {id: prov, registrar: 'sip:trunk.example', username: 0215, password: 0755}\n"
        "  - {id: b, registrar: 'sips:trunk.example', username: u, password: p, expires_s: 5}\n"
        "  - {id: c, registrar: 'sip:c.example', username: 'a b', password: p, expires_s: 86401}\n"
        "  - {id: d, registrar: 'sip:c.example', username: 'a b', password: p, aor: 'sip:x@c',\n"
        "     contact_user: 'x y'}\n"
        "  - {id: e, registrar: 'sip:e.example', username: u, password: p, aor: 'sip:e.example'}\n"
        "  - {id: f, registrar: 'sip:e.example', username: e, password: p, aor: 'sip:u:pw@x'}\n"
        "  - {id: g, registrar: 'sip:e.example', username: u, password: p, retry_min_s: 900}\n"
        "  - {id: h, registrar: 'sip:e.example', username: w, password: p, retry_max_s: 4000,\n"
        "     expires_s: '600', retri_min_s: 1}\n"
        "  - {}\n"
        "  - sip:trunk.example\n"
    )
    assert problems == [
        "3: trunks[0].registrar: a registrar URI names a domain, not a user (RFC 3261 §10.2); "
        'the user goes in username and aor, e.g. "sip:trunk.example"',
        '4: trunks[1].id: trunk id "prov" is already used by trunks[0]',
        "4: trunks[1].username: YAML reads 0215 as the octal number 141; write it in quotes to "
        'keep the leading zero: "0215"',
        "4: trunks[1].password: YAML reads this unquoted password as a number, which may not be "
        "what was written; write it in quotes",
        "5: trunks[2].registrar: sips is not supported yet: the bridge sends its own requests "
        "over UDP; write sip:",
        "5: trunks[2].expires_s: must be 10 to 86400 seconds, got 5",
        '6: trunks[3].username: "a b" is not a SIP user name (RFC 3261 §25.1), so it cannot '
        "stand in for aor and contact_user; set them",
        "6: trunks[3].expires_s: must be 10 to 86400 seconds, got 86401",
        '8: trunks[4].contact_user: "x y" is not a SIP user name (RFC 3261 §25.1): use letters, '
        "digits and - _ . ! ~ * ' ( ) & = + $ , ; ? /",
        '9: trunks[5].aor: an address-of-record names a user, e.g. "sip:0215551000@e.example"',
        "10: trunks[6].aor: put the password in password:, not in the URI, which goes out in "
        "clear with every request",
        "11: trunks[7].retry_min_s: 900 is above retry_max_s 600 (the default); keep "
        "retry_min_s <= retry_max_s",
        "12: trunks[8].retry_max_s: must be 0.5 to 3600 seconds, got 4000",
        '13: trunks[8].retri_min_s: unknown key "retri_min_s"; did you mean "retry_min_s"?',
        '13: trunks[8].expires_s: expected a whole number, got the text "600"',
        "14: trunks[9].id: required: a short name such as provider, used in logs",
        '14: trunks[9].registrar: required: the SIP URI the bridge registers to, e.g. '
        '"sip:trunk.example"',
        "14: trunks[9].username: required: the user name the trunk gave for digest "
        "authentication",
        "14: trunks[9].password: required: the trunk's digest password",
        "15: trunks[10]: expected a trunk mapping with id, registrar, username and password, got "
        'the text "sip:trunk.example"',
    ]
    assert not any("0755" in problem for problem in problems)
    assert problems_of(ROOM + "trunks: {id: t}\n") == [
        "2: trunks: expected a list, got a mapping"]


def test_two_trunks_registering_one_aor_are_refused() -> None:
    assert problems_of(
        ROOM + "trunks:\n"
        "  - {id: a, registrar: 'sip:t.example', username: u, password: p}\n"
        "  - {id: b, registrar: 'sip:t.example:5080', username: u, password: q}\n"
        "  - {id: c, registrar: 'sip:s.example', username: v, password: p,\n"
        "     aor: 'sip:u@t.example'}\n"
    ) == [
        '4: trunks[1].aor: "sip:u@t.example" (from username and registrar) is already registered '
        "by trunks[0]; two registrations of one address-of-record replace each other's binding",
        '6: trunks[2].aor: "sip:u@t.example" is already registered by trunks[0]; two '
        "registrations of one address-of-record replace each other's binding",
    ]


@pytest.mark.parametrize(
    ("listen", "problem"),
    [
        ("['tcp:127.0.0.1:5060']",
         'the bridge sends {what} over UDP, from a udp entry of sip.listen, and it has none; '
         'add one, e.g. "udp:127.0.0.1:5060"'),
        ("['udp:127.0.0.1:5060', 'udp:192.0.2.1:5060']",
         "{what} leaves from udp:127.0.0.1:5060 (the first udp entry of sip.listen), a loopback "
         "address, which cannot reach 198.51.100.9"),
        ("['udp:[2001:db8::1]:5060', 'udp:192.0.2.1:5060']",
         "198.51.100.9 is an IPv4 address, but {what} leaves from udp:[2001:db8::1]:5060 (the "
         "first udp entry of sip.listen), an IPv6 one"),
    ],
)
def test_trunks_and_dial_out_need_a_udp_listener_that_reaches_them(
    listen: str, problem: str
) -> None:
    assert problems_of(
        f"sip: {{listen: {listen}}}\n"
        "trunks: [{id: t, registrar: 'sip:198.51.100.9', username: u, password: p}]\n"
        + GATEWAYS
        + "      - {id: a, sip: {uri: 'sip:m@198.51.100.9'}}\n"
        + "      - {id: b, sip: {uri: 'sip:m@[::1]', proxy: 'sip:198.51.100.9'}}\n"
        + "      - {id: c, rtp: {codec: PCMU, remote: '198.51.100.9:4000'}}\n"
    ) == [
        f"2: trunks[0].registrar: {problem.format(what='REGISTER')}",
        f"7: rooms[0].gateways[0].sip.uri: {problem.format(what='the INVITE')}",
        f"8: rooms[0].gateways[1].sip.proxy: {problem.format(what='the INVITE')}",
    ]


def test_a_bad_sip_listen_is_not_also_blamed_on_trunks_and_gateways() -> None:
    assert problems_of(
        "sip: {listen: ['udp:localhost:5060']}\n"
        "trunks: [{id: t, registrar: 'sip:198.51.100.9', username: u, password: p}]\n"
        + GATEWAYS + "      - {id: a, sip: {uri: 'sip:m@198.51.100.9'}}\n"
    ) == [
        '1: sip.listen[0]: "udp:localhost:5060": "localhost" is not an IP address; the bridge '
        "binds to it and advertises it, so give the address itself, not a host name",
    ]


def test_config_error_messages_hold_no_password_anywhere() -> None:
    text = FULL.replace('"rahasia-trunk"', "2024-01-31").replace(
        'uri: "sip:123456@127.0.0.1:5080"', 'uri: "sip:123456:rahasia@127.0.0.1:5080?a=b"')
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml")
    assert len(caught.value.problems) == 3
    assert "rahasia" not in str(caught.value) and "2024-01-31" not in str(caught.value)


def test_replacing_a_password_does_not_show_it_in_the_repr() -> None:
    trunk = TrunkConfig(id="t", registrar="sip:t", username="u", password="geheim", aor="sip:u@t",
                        contact_user="u")
    assert "geheim" not in repr(dataclasses.replace(trunk, password="noch-geheimer"))
    assert "geheim" not in repr(SipLegConfig(uri="sip:x", username="u", password="geheim"))
