"""Configuration: one YAML file (dialplans/*.yaml) into frozen dataclasses.

Owns the schema of docs/internals.md "Config schema", its defaults and every check on it.
The whole document is walked before anything is refused, so an operator sees every problem
at once, each with file, line and field. Accounts' clear passwords are hashed into digest
HA1s here and never leave this module; the bridge's own client passwords (trunks, dial-out
legs) are kept, since each challenge names its own realm, but never shown in a message or
a repr. No clock and no sockets; `load_config` alone reads a file (a leg's remote_sdp is
read by the bridge when the leg starts).
"""

from __future__ import annotations

import difflib
import ipaddress
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Literal, NamedTuple, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bridge.sip.auth import compute_ha1
from bridge.sip.errors import SipParseError
from bridge.sip.sdp import STATIC_PAYLOAD_TYPES
from bridge.sip.uri import SipUri

Transport = Literal["udp", "tcp"]
Language = Literal["id", "en"]
RoomMode = Literal["meeting", "webinar", "hotline"]
RoomAccess = Literal["anyone", "accounts"]
EchoMode = Literal["auto", "on", "off"]
Announce = Literal["none", "chime", "name"]
GatewayCodec = Literal["PCMU", "PCMA", "G722", "OPUS"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_Choice = TypeVar("_Choice", bound=str)

TRANSPORTS: dict[str, Transport] = {"udp": "udp", "tcp": "tcp"}
LANGUAGES: dict[str, Language] = {"id": "id", "en": "en"}
# meeting: everyone may talk; webinar: members join muted and take the floor from a moderator;
# hotline: reporters queue for an operator on duty, or leave a recorded report.
ROOM_MODES: dict[str, RoomMode] = {
    "meeting": "meeting", "webinar": "webinar", "hotline": "hotline"
}
ROOM_ACCESS: dict[str, RoomAccess] = {"anyone": "anyone", "accounts": "accounts"}
# auto: the canceller runs for members whose line shows echo; on: for every member.
ECHO_MODES: dict[str, EchoMode] = {"auto": "auto", "on": "on", "off": "off"}
# What the room hears when a member joins or leaves: nothing, a chime, or their recorded name.
ANNOUNCEMENTS: dict[str, Announce] = {"none": "none", "chime": "chime", "name": "name"}
# Talkers mixed at once: more voices at a time are not understood, only add line noise.
DEFAULT_MAX_TALKERS = 3
MAX_TALKERS_LIMIT = 10
# Far above what one server carries (500 calls with the default rtp.ports): more is a typo.
MAX_MEMBERS_LIMIT = 10000
# The keypad of shared/PRODUCT.md, command -> keys, in the order the help prompt lists them.
# Explicit commands rather than toggles where a lost digit could flip the wrong way (## / 99).
DEFAULT_KEYMAP: Mapping[str, str] = MappingProxyType({
    "mute": "*6",
    "hand": "*9",
    "count": "*#",
    "volume_down": "*1",
    "volume_up": "*3",
    "help": "*0",
    "mute_all": "##",
    "unmute_all": "99",
    "floor": "*8",
    "lock": "*5",
    "record": "*7",
    "remove_last": "*2",
    "end": "*4",  # then "1" to confirm
})
KEYPAD_COMMANDS: tuple[str, ...] = tuple(DEFAULT_KEYMAP)
DEFAULT_KEYMAP_ITEMS: tuple[tuple[str, str], ...] = tuple(DEFAULT_KEYMAP.items())
KEY_SEQUENCE_MAX_KEYS = 4
# The codecs the bridge carries, by their RTP/AVP encoding names (RFC 3551 §4.5, RFC 7587),
# in the default order of preference: Opus and G.722 are wideband, G.711 the fallback.
SUPPORTED_CODECS: tuple[str, ...] = ("OPUS", "G722", "PCMU", "PCMA")
# Packet times we can send: whole numbers of 20 ms frames, up to Opus's 60 ms frame.
PTIMES_MS: tuple[int, ...] = (20, 40, 60)
# Opus bitrates we accept in `opus:`: 6 kbit/s is Opus's floor (RFC 6716 §2.1.1) and
# 64 kbit/s is far above what mono speech at 16 kHz gains from (RFC 7587 §3.1.1).
OPUS_BITRATE_MIN_BPS = 6000
OPUS_BITRATE_MAX_BPS = 64000
GATEWAY_CODECS: dict[str, GatewayCodec] = {
    "PCMU": "PCMU", "PCMA": "PCMA", "G722": "G722", "OPUS": "OPUS"
}
# A plain RTP leg's payload type when none is written: RFC 3551 §6's static numbers; Opus
# has none (RFC 7587 §7), so it takes 111, the number WebRTC and most SIP phones give it.
DEFAULT_PAYLOAD_TYPES: Mapping[str, int] = MappingProxyType(
    {"PCMU": 0, "PCMA": 8, "G722": 9, "OPUS": 111}
)
_DYNAMIC_PAYLOAD_TYPES = range(96, 128)  # RFC 3551 §3
# RFC 5761 §4: with RTP and RTCP on one port these read as RTCP packet types 200-204.
_RTCP_CLASHING_PAYLOAD_TYPES = range(72, 77)
_PAYLOAD_TYPE_MAX = 127  # 7 bits in the RTP header (RFC 3550 §5.1)
DEFAULT_LEG_PTIME_MS = 20  # RFC 3551 §4.5's default packet time, and the least delay
DEFAULT_FROM_USER = "telerapat"
# After the meeting answers, before its voice menu is ready for the meeting number.
DEFAULT_DIGITS_DELAY_S = 2.0
DIGITS_DELAY_S_MAX = 30
DEFAULT_REDIAL_MIN_S = 2.0
DEFAULT_REDIAL_MAX_S = 60.0
DEFAULT_EXPIRES_S = 600
# 10 s lets tests watch a refresh; over a day a restarted registrar forgets us for too long.
EXPIRES_S_MIN = 10
EXPIRES_S_MAX = 86400
DEFAULT_RETRY_MIN_S = 30.0
DEFAULT_RETRY_MAX_S = 600.0
# Bounds of every backoff delay (re-dial, re-register): below half a second a far end that
# refuses at once is hammered; over an hour a leg or trunk is as good as given up.
BACKOFF_S_MIN = 0.5
BACKOFF_S_MAX = 3600

DEFAULT_DOMAIN = "telerapat.local"
DEFAULT_USER_AGENT = "telerapat"
DEFAULT_RTP_PORT_MIN = 40000
DEFAULT_RTP_PORT_MAX = 40999
DEFAULT_RTP_TIMEOUT_S = 30.0
DEFAULT_STATS_INTERVAL_S = 60.0
DEFAULT_LANGUAGE: Language = "id"
DEFAULT_CODECS: tuple[str, ...] = SUPPORTED_CODECS
DEFAULT_PTIMES_MS: tuple[int, ...] = PTIMES_MS

# Values that name something on the roadmap get "not ... yet" rather than "unknown".
_LATER_TRANSPORTS = frozenset({"tls"})

_RTP_PORT_MIN = 1024  # below are privileged ports and well-known services
_PORT_MAX = 65535
_PIN_DIGITS_MAX = 16

_ROOM_ID = re.compile(r"[a-z0-9_-]+", re.ASCII)  # also gateway and trunk ids
_EXTENSION = re.compile(r"\+?[0-9]+", re.ASCII)
_PIN = re.compile(r"[0-9]+", re.ASCII)
# A time of day in `operator_hours`, 24-hour "HH:MM" (the hour may drop its leading zero).
_TIME_OF_DAY = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", re.ASCII)
# The keys of a phone keypad (RFC 4733 §3.2 events 0-11); A-D are missing from most phones.
_KEY_SEQUENCE = re.compile(rf"[0-9*#]{{1,{KEY_SEQUENCE_MAX_KEYS}}}", re.ASCII)
# What a dial-out leg types after the answer: RFC 4733 §3.2 events 0-15 (A-D included, for
# the voice menus that use them), and "," for a one-second pause as in phone dial strings.
_DIAL_STRING = re.compile(r"[0-9*#A-Da-d,]+", re.ASCII)
# An unquoted *6 is a YAML alias: the text of one, up to where YAML stops reading it.
_ALIAS_KEYS = re.compile(r"\*[0-9*#]*(?=[\s,\]}\x00]|$)", re.ASCII)
# An unquoted ## after "key: " is a YAML comment: its first word, then the rest of the line.
# (PyYAML ends its buffer with a NUL.)
_COMMENT = re.compile(r"[ \t]*(#[^\s\x00]*)([^\r\n\x00]*)", re.ASCII)
_HA1_HEX_DIGITS = {"ha1": 32, "ha1_sha256": 64}
_HEX = re.compile(r"[0-9a-fA-F]+", re.ASCII)
_RTP_PORTS = re.compile(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*", re.ASCII)
_LISTEN = re.compile(r"(?P<transport>[^:]*):(?P<host>\[[^\]]*\]|[^:\[\]]*):(?P<port>[^:]*)")
_REMOTE = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]*):(?P<port>[^:]*)")
# The password of a "sip:user:password@host" URI, hidden from messages.
_URI_PASSWORD = re.compile(r"^(\s*[A-Za-z][A-Za-z0-9+.\-]*:[^:@]*):[^@]*@")
# RFC 3261 §25.1, without escapes: the account name is compared as written.
#   user             =  1*( unreserved / escaped / user-unreserved )
#   unreserved       =  alphanum / mark
#   mark             =  "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
#   user-unreserved  =  "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
_SIP_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]+", re.ASCII)
# RFC 3261 §25.1:
#   hostname         =  *( domainlabel "." ) toplabel [ "." ]
#   domainlabel      =  alphanum / alphanum *( alphanum / "-" ) alphanum
#   toplabel         =  ALPHA / ALPHA *( alphanum / "-" ) alphanum
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?",
    re.ASCII,
)
# RFC 3261 §20.41: User-Agent = server-val *(LWS server-val); server-val = product / comment;
# product = token [SLASH product-version]. Comments are taken without nesting.
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_SERVER_VAL = rf"(?:{_TOKEN}(?:/{_TOKEN})?|\([^()\\\x00-\x1f\x7f]*\))"
_USER_AGENT = re.compile(rf"{_SERVER_VAL}(?:[ \t]+{_SERVER_VAL})*", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_YAML = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _MERGE, _TIMESTAMP = (
    _YAML + name for name in ("str", "int", "float", "bool", "null", "merge", "timestamp")
)
# YAML 1.1 ints that do not print back as written: 0123 is octal 83, 0x1F, 1_000, 1:30.
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)", re.ASCII)
_OCTAL = re.compile(r"[-+]?0[0-7_]+", re.ASCII)
# What YAML made of an unquoted password, said without showing it.
_SECRET_READ_AS = {_INT: "a number", _FLOAT: "a number", _BOOL: "a boolean", _TIMESTAMP: "a date"}

_TOP_KEYS = (
    "sip", "rtp", "language", "codecs", "ptime_ms", "opus", "accounts", "trunks", "recording",
    "rooms",
)
_SIP_KEYS = (
    "listen", "domain", "external_address", "user_agent", "digest_algorithms", "allow_from",
)
# Offered in this order; MD5 alone by default because baresip 1.0.0 (libre) refuses a
# whole challenge that lists SHA-256 (see bridge.sip.auth).
DIGEST_ALGORITHMS = ("SHA-256", "MD5")
DEFAULT_DIGEST_ALGORITHMS: tuple[str, ...] = ("MD5",)
_RTP_KEYS = ("ports", "timeout_s", "stats_interval_s")
_OPUS_KEYS = ("bitrate_bps", "min_bitrate_bps", "max_bitrate_bps", "fec", "dtx")
# The bitrates in the order they must keep: min <= start <= max.
_OPUS_BITRATE_KEYS = ("min_bitrate_bps", "bitrate_bps", "max_bitrate_bps")
_ACCOUNT_KEYS = ("password", "ha1", "ha1_sha256", "display")
_RECORDING_KEYS = ("directory", "reports_directory")
# Room keys that shape a meeting, which a hotline does not hold.
_MEETING_ONLY_KEYS = (
    "record", "announce", "wait_for_moderator", "end_when_moderator_leaves", "max_talkers",
    "gateways",
)
DEFAULT_RECORDING_DIRECTORY = "recordings"
# Hotline reports go here, inside the recordings folder, unless reports_directory says.
DEFAULT_REPORTS_SUBDIRECTORY = "reports"
_ROOM_KEYS = (
    "id", "extension", "numbers", "name", "pin", "moderator_pin", "mode", "access", "language",
    "codecs", "max_talkers", "voice_detection", "agc", "echo_cancellation", "wait_for_moderator",
    "end_when_moderator_leaves", "max_members", "announce", "record", "keypad", "gateways",
    "operator_extension", "operator_hours", "report_max_s", "transfer_room",
)
_GATEWAY_KEYS = ("id", "rtp", "sip")
_RTP_LEG_KEYS = (
    "codec", "payload_type", "ptime_ms", "remote", "remote_sdp", "sdp_file", "telephone_event_pt",
)
_SIP_LEG_KEYS = (
    "uri", "proxy", "username", "password", "from_user", "digits", "digits_delay_s", "codecs",
    "redial_min_s", "redial_max_s",
)
_TRUNK_KEYS = (
    "id", "registrar", "username", "password", "aor", "contact_user", "expires_s", "retry_min_s",
    "retry_max_s",
)
# Room keys that only a hotline has.
_HOTLINE_KEYS = ("operator_extension", "operator_hours", "report_max_s", "transfer_room")
_OPERATOR_HOURS_KEYS = ("days", "from", "to")
# Day names in `operator_hours.days`, in datetime.weekday() order (0 = Monday).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVERY_DAY: frozenset[int] = frozenset(range(len(WEEKDAYS)))
# The longest report a hotline caller may leave: under 10 s is too short to say where and
# what; over an hour is a line left open, not a report.
DEFAULT_REPORT_MAX_S = 180.0
REPORT_MAX_S_MIN = 10
REPORT_MAX_S_MAX = 3600
# Room options that act on the moderator, so a room without a moderator_pin cannot use them.
_NEEDS_MODERATOR = {
    "wait_for_moderator": "or nobody could start the meeting",
    "end_when_moderator_leaves": "or nobody could join as moderator",
}


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """One `sip.listen` entry: where the bridge binds and what it advertises for it."""

    transport: Transport
    host: str  # an IP address, IPv6 without brackets; a wildcard only with external_address
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


DEFAULT_LISTEN: tuple[ListenAddress, ...] = (
    ListenAddress("udp", "127.0.0.1", 5060), ListenAddress("tcp", "127.0.0.1", 5060)
)


@dataclass(frozen=True, slots=True)
class SipConfig:
    listen: tuple[ListenAddress, ...]
    domain: str  # digest realm (RFC 3261 §22.1) and our own From/Contact domain
    external_address: str | None  # put in SDP and Contact instead of the local address (NAT)
    user_agent: str
    digest_algorithms: tuple[str, ...] = DEFAULT_DIGEST_ALGORITHMS  # offered, strongest first
    # Who may call or register: None, anyone; else only these networks, and the trunks'
    # registrars (the refusal is a 403, made by the controller).
    allow_from: tuple[IpNetwork, ...] | None = None


@dataclass(frozen=True, slots=True)
class RtpConfig:
    port_min: int  # even: RTP on even ports, RTCP on the next odd one (RFC 3550 §11)
    port_max: int  # inclusive
    timeout_s: float  # no RTP for this long and the member is removed with a BYE
    # The media clock logs its timing (ticks, late ticks, lateness percentiles) this often;
    # 0: never.
    stats_interval_s: float = DEFAULT_STATS_INTERVAL_S


@dataclass(frozen=True, slots=True)
class OpusConfig:
    """How our Opus encoder runs; the far end's fmtp may lower the bitrate (RFC 7587 §6.1)."""

    bitrate_bps: int = 20000  # where the encoder starts, and stays while the link is clean
    min_bitrate_bps: int = 6000  # the floor when the link loses packets
    max_bitrate_bps: int = 20000  # the ceiling, also our maxaveragebitrate in SDP
    fec: bool = True  # in-band FEC (RFC 6716 §2.1.7), so the far end can hide single losses
    dtx: bool = True  # discontinuous transmission in silence; also our usedtx in SDP


DEFAULT_OPUS = OpusConfig()


@dataclass(frozen=True, slots=True)
class Account:
    """A SIP digest account: HA1s for realm `sip.domain` (RFC 7616 §3.4.2), never a password."""

    username: str
    display: str | None
    ha1_md5: str | None = field(repr=False)  # password-equivalent for this realm: keep out of logs
    ha1_sha256: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class OperatorHours:
    """When a hotline has operators on duty: a shift on some days of the week.

    A shift whose end is before its start runs overnight (22:00-06:00), and belongs to the
    day it starts on: a Friday night shift still covers Saturday 05:00.
    """

    days: frozenset[int]  # the days a shift starts on, 0 = Monday as in datetime.weekday()
    start: time  # inclusive
    end: time  # exclusive

    def covers(self, moment: datetime) -> bool:
        """Whether `moment`, in the local time the hours are written in, is on duty."""
        time_of_day = moment.time()
        if self.start < self.end:
            return moment.weekday() in self.days and self.start <= time_of_day < self.end
        if time_of_day >= self.start:
            return moment.weekday() in self.days
        if time_of_day < self.end:
            return (moment.weekday() - 1) % 7 in self.days  # the shift began yesterday
        return False


@dataclass(frozen=True, slots=True)
class RtpLegConfig:
    """A plain RTP leg: both sides' addresses and codec fixed up front (no signalling)."""

    codec: str  # one of GATEWAY_CODECS, upper case
    payload_type: int  # DEFAULT_PAYLOAD_TYPES[codec] when none is written
    ptime_ms: int = DEFAULT_LEG_PTIME_MS  # 20, 40 or 60
    # The far side's (IP address, port), IPv6 without brackets; None: answer to where its
    # packets come from (symmetric RTP), or to what remote_sdp says.
    remote: tuple[str, int] | None = None
    # The far side's SDP, read each time the leg starts; never with `remote`.
    remote_sdp: Path | None = None  # absolute once loaded, like recording_dir
    sdp_file: Path | None = None  # where the bridge writes its own side's SDP at start
    telephone_event_pt: int | None = None  # the far side's RFC 4733 payload type, if any


@dataclass(frozen=True, slots=True)
class SipLegConfig:
    """A SIP dial-out leg: the bridge calls a video meeting's SIP address."""

    uri: str  # a sip: URI, as written
    proxy: str | None = None  # outbound proxy (next hop, loose routing), a sip: URI
    username: str | None = None  # digest credentials as a client: both or neither
    password: str | None = field(default=None, repr=False)
    from_user: str = DEFAULT_FROM_USER  # our From and Contact user
    # Sent as RFC 4733 events after the answer, upper case; "," is a one-second pause.
    digits: str = ""
    digits_delay_s: float = DEFAULT_DIGITS_DELAY_S  # from the answer to the first digit
    codecs: tuple[str, ...] | None = None  # offered, in order; None: the room's codecs
    redial_min_s: float = DEFAULT_REDIAL_MIN_S  # the first re-dial after a failure or hang-up
    redial_max_s: float = DEFAULT_REDIAL_MAX_S  # the delay doubles up to this


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """A leg from a room to somewhere else (a video meeting): exactly one of rtp and sip."""

    id: str  # unique within its room
    rtp: RtpLegConfig | None = None
    sip: SipLegConfig | None = None


@dataclass(frozen=True, slots=True)
class TrunkConfig:
    """An upstream SIP trunk or PBX the bridge registers to so PSTN callers reach rooms."""

    id: str
    registrar: str  # a sip: URI without user: the REGISTER Request-URI and next hop
    username: str
    password: str = field(repr=False)
    aor: str  # a sip: URI; default "sip:<username>@<registrar host>"
    contact_user: str  # the user of our Contact, which the trunk's INVITEs name; default username
    expires_s: int = DEFAULT_EXPIRES_S  # asked for; the registrar may shorten it
    retry_min_s: float = DEFAULT_RETRY_MIN_S  # backoff after a failed registration
    retry_max_s: float = DEFAULT_RETRY_MAX_S  # ... doubling up to this


@dataclass(frozen=True, slots=True)
class RoomConfig:
    id: str
    extension: str  # digits with an optional leading "+"
    name: str | None
    pin: str | None
    moderator_pin: str | None
    mode: RoomMode
    access: RoomAccess
    language: Language  # the global `language` when the room sets none
    codecs: tuple[str, ...]  # the global `codecs` when the room sets none
    max_talkers: int = DEFAULT_MAX_TALKERS  # the loudest this many talkers are mixed
    # False: every line above -60 dBFS is a talker, speech or not (music, a mixed room).
    voice_detection: bool = True
    agc: bool = True  # automatic gain control of every member towards one speech level
    echo_cancellation: EchoMode = "auto"
    # (command, keys) in KEYPAD_COMMANDS order: DEFAULT_KEYMAP with the room's `keypad:`
    # over it; a command the room disabled is left out.
    keymap: tuple[tuple[str, str], ...] = DEFAULT_KEYMAP_ITEMS
    wait_for_moderator: bool = False  # members hold until a moderator joins
    end_when_moderator_leaves: bool = False  # the last moderator's leaving ends the meeting
    max_members: int | None = None  # None: no limit
    announce: Announce = "none"  # joins and leaves, heard by the room
    record: bool = False  # recording starts when the first member joins
    # Hotline rooms only. Callers to `extension` are reporters and are never asked for a
    # PIN; operators dial operator_extension and type moderator_pin.
    operator_extension: str | None = None  # digits with an optional leading "+"
    operator_hours: OperatorHours | None = None  # None: on duty whenever an operator is in
    report_max_s: float = DEFAULT_REPORT_MAX_S  # the longest report a caller may leave
    transfer_room: str | None = None  # the room an operator may bring a caller into
    # More dialled numbers reaching the room (DIDs of a trunk), as written like extension.
    numbers: tuple[str, ...] = ()
    gateways: tuple[GatewayConfig, ...] = ()  # meeting and webinar rooms only


@dataclass(frozen=True, slots=True)
class Config:
    sip: SipConfig
    rtp: RtpConfig
    language: Language
    codecs: tuple[str, ...]
    ptimes_ms: tuple[int, ...]  # packet times we may send, each 20, 40 or 60
    opus: OpusConfig
    accounts: tuple[Account, ...]
    rooms: tuple[RoomConfig, ...]
    source: str  # the file it came from, for messages on reload
    # Where meeting recordings go; absolute once loaded (relative paths in the file are
    # taken from the file's directory).
    recording_dir: Path = Path(DEFAULT_RECORDING_DIRECTORY)
    # Where hotline reports go; absolute once loaded, like recording_dir.
    reports_dir: Path = Path(DEFAULT_RECORDING_DIRECTORY) / DEFAULT_REPORTS_SUBDIRECTORY
    trunks: tuple[TrunkConfig, ...] = ()  # upstream registrations, ids unique


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file; `line` is 1-based, `field` a dotted path."""

    filename: str
    line: int
    field: str  # e.g. "rooms[1].pin"; empty for problems of the YAML text itself
    message: str

    def __str__(self) -> str:
        if not self.field:
            return f"{self.filename}:{self.line}: {self.message}"
        return f"{self.filename}:{self.line}: {self.field}: {self.message}"


class ConfigError(ValueError):
    """A config that cannot be used, with every problem found in it, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def load_config(path: str | Path) -> Config:
    """Read and check a config file; OSError (missing, unreadable) passes through."""
    filename = str(path)
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        raise ConfigError(
            [ConfigProblem(filename, line, "", f"not UTF-8 text: byte 0x{byte:02x} is invalid")]
        ) from None
    return parse_config(text, filename)


def parse_config(text: str, filename: str) -> Config:
    """Check a config document and return it, or raise ConfigError listing every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(exc, filename)]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        message = f"invalid YAML: control character U+{exc.character:04X} is not allowed"
        raise ConfigError([ConfigProblem(filename, line, "", message)]) from None
    reader = _ConfigReader(filename)
    config = reader.read(root)
    if reader.problems:
        ordered = sorted(dict.fromkeys(reader.problems), key=lambda problem: problem.line)
        raise ConfigError(ordered)
    return config


def _syntax_problem(exc: yaml.MarkedYAMLError, filename: str) -> ConfigProblem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.context == "expected a single document in the stream":
        message = "invalid YAML: a config is a single document, but another one starts here"
    elif exc.problem and exc.context:
        where = f" at line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
        message += f" ({exc.context}{where})"
    return ConfigProblem(filename, line, "", message + _alias_hint(exc))


def _alias_hint(exc: yaml.MarkedYAMLError) -> str:
    """Say to quote keys when an error comes from an unquoted sequence such as *6 or *#."""
    if exc.context == "while scanning an alias":
        mark = exc.context_mark
    elif (exc.problem or "").startswith("found undefined alias"):
        mark = exc.problem_mark
    else:
        return ""
    if mark is None or not isinstance(mark.buffer, str):
        return ""
    keys = _ALIAS_KEYS.match(mark.buffer, mark.pointer)
    if keys is None or not _KEY_SEQUENCE.fullmatch(keys[0]):
        return ""
    return f'; YAML reads a leading * as an alias: write key sequences in quotes, "{keys[0]}"'


def _show(text: str) -> str:
    """Quote text from the file for a one-line message, escaping control characters."""
    return json.dumps(text, ensure_ascii=False)


def _join(path: str, name: str) -> str:
    if _CONTROL.search(name):
        name = _show(name)
    return f"{path}.{name}" if path else name


def _closest(word: str, choices: Sequence[str]) -> str:
    """Return a `; did you mean "x"?` hint, or the list of choices when nothing is close."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), by_lower, n=1)
    if close:
        return f'; did you mean "{by_lower[close[0]]}"?'
    return f"; expected one of: {', '.join(choices)}"


def _as_written(node: Node) -> str:
    """Return a checked scalar's text as the operator wrote it (a URI, for logs)."""
    return str(node.value).strip()


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _keys_read_as_comment(node: Node, keys: re.Pattern[str] = _KEY_SEQUENCE) -> str | None:
    """Return the keys of `mute_all: ##`, which YAML reads as an empty value and a comment.

    Only a comment that starts with a sequence of two or more `keys`, or is one "#" alone,
    counts: "# off" after a key is an ordinary comment.
    """
    mark = node.start_mark
    if not _is_null(node) or node.value != "" or not isinstance(mark.buffer, str):
        return None
    comment = _COMMENT.match(mark.buffer, mark.pointer)
    if comment is None or not keys.fullmatch(comment[1]):
        return None
    if len(comment[1]) == 1 and comment[2].strip():
        return None
    return comment[1]


class _Hotline(NamedTuple):
    """The keys only a hotline room has, with their defaults for every other room."""

    operator_extension: str | None = None
    operator_hours: OperatorHours | None = None
    report_max_s: float = DEFAULT_REPORT_MAX_S
    transfer_room: str | None = None


class _Transfer(NamedTuple):
    """A hotline's transfer_room as written, checked once every room is read."""

    node: Node
    path: str  # e.g. "rooms[4].transfer_room"
    room_id: str | None  # the hotline's own id; None when it could not be read
    target: str


@dataclass(slots=True)
class _Seen:
    """What the rooms read so far have claimed, which later rooms must not claim again."""

    ids: dict[str, str] = field(default_factory=dict)  # room id -> "rooms[1]"
    # What the dialplan matches -> (owner, number as written); see claim_number.
    extensions: dict[str, tuple[str, str]] = field(default_factory=dict)
    transfers: list[_Transfer] = field(default_factory=list)  # checked once all are read
    sdp_files: dict[Path, str] = field(default_factory=dict)  # -> "rooms[0].gateways[1]..."


class _ConfigReader:
    """Walk one composed YAML document along the schema, collecting every problem.

    Each reader returns a usable value even after a problem (the default, or what could be
    salvaged), so the walk goes on and later problems are found too; `parse_config` raises
    before any of those stand-in values can escape.
    """

    def __init__(self, filename: str) -> None:
        self._filename = filename
        self._constructor = SafeConstructor()
        self.problems: list[ConfigProblem] = []

    def report(self, node: Node, path: str, message: str) -> None:
        line = node.start_mark.line + 1
        self.problems.append(ConfigProblem(self._filename, line, path, message))

    # -- the document ------------------------------------------------------------------

    def read(self, root: Node | None) -> Config:
        top = self.fields(root, "", _TOP_KEYS) if root is not None else {}
        sip, senders = self.read_sip(top.get("sip"))
        rtp = self.read_rtp(top.get("rtp"), sip.listen)
        language = DEFAULT_LANGUAGE
        if "language" in top:
            language = self.language(top["language"], "language") or DEFAULT_LANGUAGE
        codecs = DEFAULT_CODECS
        if "codecs" in top:
            codecs = self.codecs(top["codecs"], "codecs") or DEFAULT_CODECS
        ptimes_ms = DEFAULT_PTIMES_MS
        if "ptime_ms" in top:
            ptimes_ms = self.ptimes_ms(top["ptime_ms"]) or DEFAULT_PTIMES_MS
        opus = self.read_opus(top.get("opus"))
        accounts = self.read_accounts(top.get("accounts"), sip.domain)
        trunks: tuple[TrunkConfig, ...] = ()
        if "trunks" in top:
            trunks = self.read_trunks(top["trunks"], senders)
        recording_dir, reports_dir = self.read_recording(top.get("recording"))
        # Judged on what is listed, so a mistyped account is not blamed on the rooms too.
        listed = top.get("accounts")
        has_accounts = isinstance(listed, MappingNode) and bool(listed.value)
        rooms: tuple[RoomConfig, ...] = ()
        if "rooms" in top:
            rooms = self.read_rooms(top["rooms"], language, codecs, has_accounts=has_accounts,
                                    senders=senders)
        elif root is None:
            message = "the file is empty; a config needs at least a rooms: list"
            self.problems.append(ConfigProblem(self._filename, 1, "", message))
        elif isinstance(root, MappingNode):
            self.report(root, "rooms", "required: a list of rooms, e.g. - {id: rakor, extension: "
                        '"1000"}')
        return Config(
            sip=sip,
            rtp=rtp,
            language=language,
            codecs=codecs,
            ptimes_ms=ptimes_ms,
            opus=opus,
            accounts=accounts,
            rooms=rooms,
            source=self._filename,
            recording_dir=recording_dir,
            reports_dir=reports_dir,
            trunks=trunks,
        )

    # -- sip ---------------------------------------------------------------------------

    def read_sip(self, node: Node | None) -> tuple[SipConfig, tuple[ListenAddress, ...] | None]:
        """Return `sip:` and the udp entries of sip.listen the bridge's own requests leave from.

        Those entries (for REGISTER and dial-out INVITEs) are None when sip.listen has a
        problem, so trunks and gateways are not blamed for it too.
        """
        values = self.fields(node, "sip", _SIP_KEYS) if node is not None else {}
        external_address = None
        if "external_address" in values:
            external_address = self.external_address(values["external_address"])
        listen = DEFAULT_LISTEN
        listen_readable = True
        if "listen" in values:
            problems = len(self.problems)
            # An invalid external_address is reported on its own; do not also blame a wildcard.
            listen = self.listen(values["listen"], has_external="external_address" in values)
            listen_readable = len(self.problems) == problems
        domain = DEFAULT_DOMAIN
        if "domain" in values:
            domain = self.domain(values["domain"]) or DEFAULT_DOMAIN
        user_agent = DEFAULT_USER_AGENT
        if "user_agent" in values:
            user_agent = self.user_agent(values["user_agent"]) or DEFAULT_USER_AGENT
        digest_algorithms = DEFAULT_DIGEST_ALGORITHMS
        if "digest_algorithms" in values:
            digest_algorithms = (
                self.digest_algorithms(values["digest_algorithms"]) or DEFAULT_DIGEST_ALGORITHMS
            )
        allow_from = None
        if "allow_from" in values:
            allow_from = self.allow_from(values["allow_from"])
        senders = tuple(address for address in listen if address.transport == "udp")
        sip = SipConfig(
            listen=listen,
            domain=domain,
            external_address=external_address,
            user_agent=user_agent,
            digest_algorithms=digest_algorithms,
            allow_from=allow_from,
        )
        return sip, senders if listen_readable else None

    def allow_from(self, node: Node) -> tuple[IpNetwork, ...] | None:
        """Read `sip.allow_from`: IP networks, or single addresses (a /32 or /128)."""
        path = "sip.allow_from"
        items = self.sequence(node, path)
        if items is None:
            return None
        if not items:
            self.report(node, path, 'needs at least one network, e.g. ["127.0.0.0/8"]; leave '
                        "allow_from out to let anyone call")
            return None
        networks: list[IpNetwork] = []
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            text = self.text(item, item_path)
            if text is None:
                continue
            network = _parse_network(text)
            if isinstance(network, str):
                self.report(item, item_path, network)
            elif network in networks:
                self.report(item, item_path, f"{network} is listed twice")
            else:
                networks.append(network)
        return tuple(networks)

    def digest_algorithms(self, node: Node) -> tuple[str, ...] | None:
        path = "sip.digest_algorithms"
        items = self.sequence(node, path)
        if items is None:
            return None
        names: list[str] = []
        for index, item in enumerate(items):
            text = self.text(item, f"{path}[{index}]")
            if text is None:
                continue
            name = text.upper()
            if name not in DIGEST_ALGORITHMS:
                self.report(item, f"{path}[{index}]",
                            f"{_show(text)} is not a digest algorithm we offer; use "
                            + " or ".join(DIGEST_ALGORITHMS))
            elif name in names:
                self.report(item, f"{path}[{index}]", f"{name} is listed twice")
            else:
                names.append(name)
        if not items:
            self.report(node, path, "needs at least one algorithm, e.g. [MD5]")
        return tuple(names) or None

    def listen(self, node: Node, *, has_external: bool) -> tuple[ListenAddress, ...]:
        items = self.sequence(node, "sip.listen")
        if items is not None and not items:
            self.report(node, "sip.listen", 'needs at least one address, e.g. "udp:127.0.0.1:5060"')
        addresses: list[ListenAddress] = []
        seen: dict[ListenAddress, str] = {}
        for index, item in enumerate(items or ()):
            path = f"sip.listen[{index}]"
            text = self.text(item, path)
            if text is None:
                continue
            address = _parse_listen(text)
            if isinstance(address, str):
                self.report(item, path, address)
                continue
            if ipaddress.ip_address(address.host).is_unspecified and not has_external:
                self.report(
                    item, path,
                    f"{address.host} listens on every interface, so the bridge cannot tell which "
                    "address to advertise in SDP and Contact; list each concrete address, or "
                    "set sip.external_address",
                )
            clash = self.listen_clash(address, seen)
            if clash:
                self.report(item, path, clash)
            else:
                seen[address] = path
            addresses.append(address)
        return tuple(addresses)

    @staticmethod
    def listen_clash(address: ListenAddress, seen: dict[ListenAddress, str]) -> str | None:
        """Say why `address` cannot be bound beside the ones already listed, if it cannot."""
        ip = ipaddress.ip_address(address.host)
        for other, other_path in seen.items():
            if (other.transport, other.port) != (address.transport, address.port):
                continue
            other_ip = ipaddress.ip_address(other.host)
            if other_ip == ip:
                return f"{address} is listed twice (also {other_path})"
            if other_ip.version == ip.version and (other_ip.is_unspecified or ip.is_unspecified):
                return (f"{address} overlaps {other} ({other_path}): a wildcard address already "
                        "takes that port on every interface")
        return None

    def external_address(self, node: Node) -> str | None:
        text = self.text(node, "sip.external_address")
        if text is None:
            return None
        try:
            ip = ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
        except ValueError:
            self.report(node, "sip.external_address",
                        f'{_show(text)} is not an IP address; it is written into SDP c= lines and '
                        "Contact headers, where phones expect an address (RFC 4566 §5.7)")
            return None
        if ip.is_unspecified:
            self.report(node, "sip.external_address",
                        f"{ip} cannot be advertised: callers would send their audio nowhere")
            return None
        return str(ip)

    def domain(self, node: Node) -> str | None:
        text = self.text(node, "sip.domain")
        if text is None:
            return None
        if _HOSTNAME.fullmatch(text) or _is_ip_address(text):
            return text
        self.report(node, "sip.domain",
                    f'{_show(text)} is not a host name or IP address (RFC 3261 §25.1); it is the '
                    "digest realm and the domain of our SIP URIs")
        return None

    def user_agent(self, node: Node) -> str | None:
        text = self.text(node, "sip.user_agent")
        if text is None:
            return None
        if _USER_AGENT.fullmatch(text):
            return text
        self.report(node, "sip.user_agent",
                    f'{_show(text)} is not a User-Agent value: product tokens such as '
                    '"telerapat/0.1", optionally with (comments) (RFC 3261 §20.41)')
        return None

    # -- rtp ---------------------------------------------------------------------------

    def read_rtp(self, node: Node | None, listen: Sequence[ListenAddress]) -> RtpConfig:
        values = self.fields(node, "rtp", _RTP_KEYS) if node is not None else {}
        port_min, port_max = DEFAULT_RTP_PORT_MIN, DEFAULT_RTP_PORT_MAX
        if "ports" in values:
            ports = self.rtp_ports(values["ports"], listen)
            if ports is not None:
                port_min, port_max = ports
        timeout_s = DEFAULT_RTP_TIMEOUT_S
        if "timeout_s" in values:
            timeout_node = values["timeout_s"]
            number = self.number(timeout_node, "rtp.timeout_s")
            if number is not None and number <= 0:
                self.report(timeout_node, "rtp.timeout_s",
                            f"must be more than 0 seconds, got {timeout_node.value}")
            elif number is not None:
                timeout_s = number
        stats_interval_s = DEFAULT_STATS_INTERVAL_S
        if "stats_interval_s" in values:
            interval_node = values["stats_interval_s"]
            number = self.number(interval_node, "rtp.stats_interval_s")
            if number is not None and (number < 0 or 0 < number < 1):
                self.report(interval_node, "rtp.stats_interval_s",
                            "must be 0 (no report) or at least 1 second, "
                            f"got {interval_node.value}")
            elif number is not None:
                stats_interval_s = number
        return RtpConfig(port_min=port_min, port_max=port_max, timeout_s=timeout_s,
                         stats_interval_s=stats_interval_s)

    def rtp_ports(self, node: Node, listen: Sequence[ListenAddress]) -> tuple[int, int] | None:
        text = self.text(node, "rtp.ports")
        if text is None:
            return None
        match = _RTP_PORTS.fullmatch(text)
        if match is None:
            self.report(node, "rtp.ports", f'expected a range "first-last" such as "40000-40999", '
                        f'got {_show(text)}')
            return None
        low, high = int(match[1]), int(match[2])
        problems = []
        for port in (low, high):
            if not _RTP_PORT_MIN <= port <= _PORT_MAX:
                problems.append(f"port {port} is outside {_RTP_PORT_MIN}-{_PORT_MAX}")
        if low % 2:
            problems.append(f"the range must start on an even port, not {low}: RTP takes even "
                            "ports and RTCP the odd one above (RFC 3550 §11)")
        if low >= high:
            problems.append(f"{low}-{high} holds no RTP/RTCP port pair; the first port must be "
                            "below the last")
        for address in listen:
            if address.transport == "udp" and low <= address.port <= high:
                problems.append(f"{low}-{high} includes SIP port {address.port} ({address})")
        for problem in problems:
            self.report(node, "rtp.ports", problem)
        return None if problems else (low, high)

    # -- media -------------------------------------------------------------------------

    def ptimes_ms(self, node: Node) -> tuple[int, ...] | None:
        """Read `ptime_ms`: the packet times we may send, 20, 40 and/or 60 ms."""
        path = "ptime_ms"
        items = self.sequence(node, path)
        if items is None:
            return None
        choices = ", ".join(map(str, PTIMES_MS[:-1])) + f" or {PTIMES_MS[-1]}"
        if not items:
            self.report(node, path, f"needs at least one packet time; use {choices}")
            return None
        ptimes_ms: list[int] = []
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            value = self.integer(item, item_path)
            if value is None:
                continue
            if value in ptimes_ms:
                self.report(item, item_path, f"{value} is listed twice")
            elif value in PTIMES_MS:
                ptimes_ms.append(value)
            else:
                self.report(item, item_path, f"{value} ms is not a packet time we send; use "
                            f"{choices} (whole 20 ms frames, at most one 60 ms Opus frame)")
        if len(ptimes_ms) != len(items):
            return None
        return tuple(ptimes_ms)

    def read_opus(self, node: Node | None) -> OpusConfig:
        values = self.fields(node, "opus", _OPUS_KEYS) if node is not None else {}
        bitrates: dict[str, int] = {}
        for key in _OPUS_BITRATE_KEYS:
            if key not in values:
                continue
            value = self.integer(values[key], f"opus.{key}")
            if value is not None and not OPUS_BITRATE_MIN_BPS <= value <= OPUS_BITRATE_MAX_BPS:
                self.report(values[key], f"opus.{key}",
                            f"must be from {OPUS_BITRATE_MIN_BPS} to {OPUS_BITRATE_MAX_BPS} "
                            f"bit/s, got {value}")
            elif value is not None:
                bitrates[key] = value
        invalid = {key for key in _OPUS_BITRATE_KEYS if key in values and key not in bitrates}
        self.opus_bitrate_order(values, bitrates, invalid)
        flags = {key: self.flag(values[key], f"opus.{key}")
                 for key in ("fec", "dtx") if key in values}
        fec, dtx = flags.get("fec"), flags.get("dtx")
        return OpusConfig(
            bitrate_bps=bitrates.get("bitrate_bps", DEFAULT_OPUS.bitrate_bps),
            min_bitrate_bps=bitrates.get("min_bitrate_bps", DEFAULT_OPUS.min_bitrate_bps),
            max_bitrate_bps=bitrates.get("max_bitrate_bps", DEFAULT_OPUS.max_bitrate_bps),
            fec=DEFAULT_OPUS.fec if fec is None else fec,
            dtx=DEFAULT_OPUS.dtx if dtx is None else dtx,
        )

    def opus_bitrate_order(
        self, values: dict[str, Node], given: dict[str, int], invalid: set[str]
    ) -> None:
        """Check min_bitrate_bps <= bitrate_bps <= max_bitrate_bps, defaults included.

        A bitrate already reported as invalid is left out rather than compared as a default.
        """
        bitrates = {
            "min_bitrate_bps": DEFAULT_OPUS.min_bitrate_bps,
            "bitrate_bps": DEFAULT_OPUS.bitrate_bps,
            "max_bitrate_bps": DEFAULT_OPUS.max_bitrate_bps,
        } | given
        for low_key, high_key in itertools.pairwise(_OPUS_BITRATE_KEYS):
            low, high = bitrates[low_key], bitrates[high_key]
            if low <= high or {low_key, high_key} & invalid:
                continue
            # Blamed on a key the operator wrote; the other one may be a default.
            if high_key in given:
                key, other_key, other, relation = high_key, low_key, low, "below"
            else:
                key, other_key, other, relation = low_key, high_key, high, "above"
            default = "" if other_key in given else " (the default)"
            self.report(values[key], f"opus.{key}",
                        f"{bitrates[key]} is {relation} {other_key} {other}{default}; keep "
                        "min_bitrate_bps <= bitrate_bps <= max_bitrate_bps")

    # -- accounts ----------------------------------------------------------------------

    def read_accounts(self, node: Node | None, realm: str) -> tuple[Account, ...]:
        if node is None:
            return ()
        if not isinstance(node, MappingNode):
            self.report(node, "accounts", "expected a mapping of username: {password: ...}, got "
                        f"{self.describe(node)}")
            return ()
        accounts = []
        for name, key_node, value_node in self.entries(node, "accounts"):
            path = _join("accounts", name)
            username = self.text(key_node, path)
            if username is None:
                continue
            if not _SIP_USER.fullmatch(username):
                self.report(key_node, path,
                            f"{_show(username)} is not a SIP user name (RFC 3261 §25.1): use "
                            "letters, digits and - _ . ! ~ * ' ( ) & = + $ , ; ? /")
                continue
            account = self.account(value_node, path, username, realm)
            if account is not None:
                accounts.append(account)
        return tuple(accounts)

    def account(self, node: Node, path: str, username: str, realm: str) -> Account | None:
        if not isinstance(node, MappingNode):
            self.report(node, path, "expected a mapping such as {password: ..., display: ...}, "
                        f"got {self.describe(node)}")
            return None
        values = self.fields(node, path, _ACCOUNT_KEYS)
        display = None
        if "display" in values:
            display = self.display_text(values["display"], _join(path, "display"))
        hashes = {
            key: self.ha1(values[key], _join(path, key), _HA1_HEX_DIGITS[key])
            for key in _HA1_HEX_DIGITS
            if key in values
        }
        if "password" in values:
            if hashes:
                self.report(node, path, f"give either password or {' and '.join(hashes)}, not "
                            "both: the hashes are computed from the password")
                return None
            password = self.text(values["password"], _join(path, "password"))
            if password == "":
                self.report(values["password"], _join(path, "password"), "must not be empty")
            if not password:
                return None
            return Account(
                username=username,
                display=display,
                ha1_md5=compute_ha1(username, realm, password, "MD5"),
                ha1_sha256=compute_ha1(username, realm, password, "SHA-256"),
            )
        if not hashes:
            self.report(node, path, "needs password, or ha1 and/or ha1_sha256 (hex digests of "
                        f'"{username}:{realm}:password")')
            return None
        if None in hashes.values():
            return None
        return Account(
            username=username,
            display=display,
            ha1_md5=hashes.get("ha1"),
            ha1_sha256=hashes.get("ha1_sha256"),
        )

    def ha1(self, node: Node, path: str, digits: int) -> str | None:
        text = self.text(node, path)
        if text is None:
            return None
        if len(text) != digits or not _HEX.fullmatch(text):
            algorithm = "MD5" if digits == 32 else "SHA-256"
            self.report(node, path, f"must be {digits} hex digits, the {algorithm} of "
                        '"username:realm:password" with realm = sip.domain')
            return None
        return text.lower()

    # -- recording ---------------------------------------------------------------------

    def read_recording(self, node: Node | None) -> tuple[Path, Path]:
        """Return the recordings and reports folders, relative to the config file's folder.

        Not to the working directory, which differs between a shell and a service manager.
        Nothing is created or checked on disk here; the recorder does that.
        """
        values = self.fields(node, "recording", _RECORDING_KEYS) if node is not None else {}
        directory = DEFAULT_RECORDING_DIRECTORY
        if "directory" in values:
            directory = self.path_text(values["directory"], "recording.directory",
                                       example=DEFAULT_RECORDING_DIRECTORY) or directory
        recording_dir = self.from_config_folder(directory)
        reports_dir = recording_dir / DEFAULT_REPORTS_SUBDIRECTORY
        if "reports_directory" in values:
            example = f"{DEFAULT_RECORDING_DIRECTORY}/{DEFAULT_REPORTS_SUBDIRECTORY}"
            reports = self.path_text(values["reports_directory"], "recording.reports_directory",
                                     example=example)
            if reports is not None:
                reports_dir = self.from_config_folder(reports)
                if reports_dir == recording_dir:
                    self.report(values["reports_directory"], "recording.reports_directory",
                                "must differ from recording.directory, or meeting "
                                "recordings would be listed and exported as reports")
        return recording_dir, reports_dir

    def path_text(
        self, node: Node, path: str, *, example: str, names: str = "a folder"
    ) -> str | None:
        text = self.display_text(node, path)
        if text == "":
            self.report(node, path, f'must name {names}, e.g. "{example}"')
            return None
        return text

    def from_config_folder(self, text: str) -> Path:
        """Return a path from the file, made absolute from the config file's folder.

        Not from the working directory, which differs between a shell and a service manager.
        """
        return (Path(self._filename).parent / text).resolve()

    # -- trunks ------------------------------------------------------------------------

    def read_trunks(
        self, node: Node, senders: tuple[ListenAddress, ...] | None
    ) -> tuple[TrunkConfig, ...]:
        items = self.sequence(node, "trunks")
        trunks = []
        ids: dict[str, str] = {}
        aors: dict[str, str] = {}
        for index, item in enumerate(items or ()):
            trunk = self.trunk(item, f"trunks[{index}]", senders, ids=ids, aors=aors)
            if trunk is not None:
                trunks.append(trunk)
        return tuple(trunks)

    def trunk(
        self,
        node: Node,
        path: str,
        senders: tuple[ListenAddress, ...] | None,
        *,
        ids: dict[str, str],
        aors: dict[str, str],
    ) -> TrunkConfig | None:
        """Read one trunk; `ids` and `aors` hold the earlier trunks' ones for uniqueness.

        The password is required: a registrar that takes REGISTER unauthenticated lets
        anyone who reaches it take over the trunk's calls by registering the same AOR, and
        none we target (Kamailio, Asterisk, FreeSWITCH, carriers) runs that way; a missing
        password is then a typo, better said here than as a loop of 401s at run time.
        """
        if not isinstance(node, MappingNode):
            self.report(node, path, "expected a trunk mapping with id, registrar, username and "
                        f"password, got {self.describe(node)}")
            return None
        values = self.fields(node, path, _TRUNK_KEYS)
        trunk_id = self.identifier(values, node, path, example="provider")
        if trunk_id is not None:
            self.claim_id(values["id"], f"{path}.id", "trunk", trunk_id, ids)
        registrar = None
        if "registrar" in values:
            registrar = self.registrar(values["registrar"], f"{path}.registrar", senders)
        else:
            self.report(node, f"{path}.registrar",
                        'required: the SIP URI the bridge registers to, e.g. "sip:trunk.example"')
        username = None
        if "username" in values:
            username = self.credential_user(values["username"], f"{path}.username")
        else:
            self.report(node, f"{path}.username",
                        "required: the user name the trunk gave for digest authentication")
        password = None
        if "password" in values:
            password = self.secret(values["password"], f"{path}.password")
        else:
            self.report(node, f"{path}.password", "required: the trunk's digest password")
        aor = None
        if "aor" in values:
            aor = self.aor(values["aor"], f"{path}.aor")
        elif username is not None and registrar is not None and _SIP_USER.fullmatch(username):
            aor = f"sip:{username}@{registrar.host}"
        if aor is not None and aor in aors:
            default = "" if "aor" in values else " (from username and registrar)"
            self.report(values.get("aor", node), f"{path}.aor",
                        f"{_show(aor)}{default} is already registered by {aors[aor]}; two "
                        "registrations of one address-of-record replace each other's binding")
        elif aor is not None:
            aors[aor] = path
        contact_user = username
        if "contact_user" in values:
            contact_user = self.sip_user(values["contact_user"], f"{path}.contact_user")
        missing = [key for key in ("aor", "contact_user") if key not in values]
        if username is not None and missing and not _SIP_USER.fullmatch(username):
            self.report(values["username"], f"{path}.username",
                        f"{_show(username)} is not a SIP user name (RFC 3261 §25.1), so it "
                        f"cannot stand in for {' and '.join(missing)}; set "
                        f"{'it' if len(missing) == 1 else 'them'}")
        expires_s = DEFAULT_EXPIRES_S
        if "expires_s" in values:
            expires_s = self.expires_s(values["expires_s"], f"{path}.expires_s")
        retry_min_s, retry_max_s = self.backoff(
            values, path, ("retry_min_s", "retry_max_s"), (DEFAULT_RETRY_MIN_S, DEFAULT_RETRY_MAX_S)
        )
        if (trunk_id is None or registrar is None or username is None or password is None
                or aor is None or contact_user is None):
            return None
        return TrunkConfig(
            id=trunk_id,
            registrar=_as_written(values["registrar"]),
            username=username,
            password=password,
            aor=aor,
            contact_user=contact_user,
            expires_s=expires_s,
            retry_min_s=retry_min_s,
            retry_max_s=retry_max_s,
        )

    def registrar(
        self, node: Node, path: str, senders: tuple[ListenAddress, ...] | None
    ) -> SipUri | None:
        uri = self.sip_uri(node, path, example='"sip:trunk.example" or "sip:192.0.2.5:5060"')
        if uri is None:
            return None
        if uri.user is not None:
            # RFC 3261 §10.2: "The "userinfo" and "@" components of the SIP URI MUST NOT be
            # present" in a REGISTER's Request-URI.
            self.report(node, path, f"a registrar URI names a domain, not a user (RFC 3261 "
                        f'§10.2); the user goes in username and aor, e.g. "sip:{uri.host}"')
            return None
        self.sent_to(node, path, uri, senders, what="REGISTER")
        return uri

    def aor(self, node: Node, path: str) -> str | None:
        uri = self.sip_uri(node, path, example='"sip:0215551000@trunk.example"')
        if uri is None:
            return None
        if uri.user is None:
            self.report(node, path, "an address-of-record names a user, e.g. "
                        f'"sip:0215551000@{uri.host}"')
            return None
        return _as_written(node)

    def expires_s(self, node: Node, path: str) -> int:
        number = self.integer(node, path)
        if number is not None and not EXPIRES_S_MIN <= number <= EXPIRES_S_MAX:
            self.report(node, path, f"must be {EXPIRES_S_MIN} to {EXPIRES_S_MAX} seconds, got "
                        f"{number}")
            return DEFAULT_EXPIRES_S
        return DEFAULT_EXPIRES_S if number is None else number

    # -- SIP client values: URIs, credentials, backoff ---------------------------------

    def sip_uri(self, node: Node, path: str, *, example: str) -> SipUri | None:
        """Read a sip: URI the bridge sends requests to, or names itself by.

        A password in it is refused (and never shown): it would go out in clear in every
        request (RFC 3261 §19.1.1 says not to use it); so are headers (?...), which a
        Request-URI cannot carry (RFC 3261 §19.1.1, Table 1).
        """
        text = self.text(node, path)
        if text is None:
            return None
        shown = _show(_URI_PASSWORD.sub(r"\1:…@", text))
        try:
            uri = SipUri.parse(text)
        except SipParseError:
            self.report(node, path, f"{shown} is not a SIP URI such as {example}")
            return None
        if uri.scheme == "sips":
            self.report(node, path, "sips is not supported yet: the bridge sends its own requests "
                        "over UDP; write sip:")
            return None
        if uri.scheme != "sip":
            self.report(node, path, f"{shown} is not a sip: URI such as {example}")
            return None
        problems = []
        if uri.password is not None:
            problems.append("put the password in password:, not in the URI, which goes out in "
                            "clear with every request")
        if uri.headers:
            problems.append(f"{shown} has URI headers (after ?), which a Request-URI cannot "
                            "carry (RFC 3261 §19.1.1)")
        host = uri.host.removeprefix("[").removesuffix("]")
        if not (_HOSTNAME.fullmatch(host) or _is_ip_address(host)):
            problems.append(f"{shown}: {_show(uri.host)} is not a host name or IP address "
                            "(RFC 3261 §25.1)")
        for problem in problems:
            self.report(node, path, problem)
        return None if problems else uri

    def sent_to(
        self,
        node: Node,
        path: str,
        uri: SipUri,
        senders: tuple[ListenAddress, ...] | None,
        *,
        what: str,
    ) -> None:
        """Refuse a next hop the bridge cannot send `what` to.

        The controller sends its own requests over UDP from the first udp entry of
        sip.listen, so the next hop must take UDP, and an IP address must be one that
        entry can reach. A host name is resolved when sending, and not judged here.
        """
        if uri.transport != "udp":
            self.report(node, path, f"transport={uri.transport}: the bridge sends {what} over UDP "
                        "only; TCP and TLS are not supported for it yet")
            return
        if senders is None:
            return
        if not senders:
            self.report(node, path, f"the bridge sends {what} over UDP, from a udp entry of "
                        'sip.listen, and it has none; add one, e.g. "udp:127.0.0.1:5060"')
            return
        try:
            target = ipaddress.ip_address(uri.host.removeprefix("[").removesuffix("]"))
        except ValueError:
            return
        sender = senders[0]
        source = ipaddress.ip_address(sender.host)
        if source.version != target.version:
            self.report(node, path, f"{target} is an IPv{target.version} address, but {what} "
                        f"leaves from {sender} (the first udp entry of sip.listen), an "
                        f"IPv{source.version} one")
        elif source.is_loopback and not target.is_loopback:
            self.report(node, path, f"{what} leaves from {sender} (the first udp entry of "
                        f"sip.listen), a loopback address, which cannot reach {target}")

    def credential_user(self, node: Node, path: str) -> str | None:
        """Read a digest username: any one line of text (RFC 7616 §3.4 quotes it)."""
        text = self.display_text(node, path)
        if text == "":
            self.report(node, path, "must not be empty")
            return None
        return text

    def sip_user(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        if text is not None and not _SIP_USER.fullmatch(text):
            self.report(node, path, f"{_show(text)} is not a SIP user name (RFC 3261 §25.1): use "
                        "letters, digits and - _ . ! ~ * ' ( ) & = + $ , ; ? /")
            return None
        return text

    def secret(self, node: Node, path: str) -> str | None:
        """Return a password as written, or None after saying why, never showing it."""
        if isinstance(node, ScalarNode) and node.tag == _STR:
            if node.value == "":
                self.report(node, path, "must not be empty")
                return None
            return str(node.value)
        if isinstance(node, ScalarNode) and node.tag == _INT and _DECIMAL.fullmatch(node.value):
            return str(node.value)
        if isinstance(node, ScalarNode):
            read_as = _SECRET_READ_AS.get(node.tag, "something other than text")
            self.report(node, path, f"YAML reads this unquoted password as {read_as}, which may "
                        "not be what was written; write it in quotes")
            return None
        self.report(node, path, f"expected the password as text, got {_describe(node)}")
        return None

    def backoff(
        self,
        values: dict[str, Node],
        path: str,
        keys: tuple[str, str],
        defaults: tuple[float, float],
    ) -> tuple[float, float]:
        """Read the first and the longest delay of a doubling backoff, defaults included.

        Each is BACKOFF_S_MIN to BACKOFF_S_MAX seconds, and first <= longest; the order is
        blamed on a key the operator wrote, and not judged beside an invalid one.
        """
        delays = dict(zip(keys, defaults, strict=True))
        given: dict[str, float] = {}
        for key in keys:
            if key not in values:
                continue
            number = self.number(values[key], f"{path}.{key}")
            if number is not None and not BACKOFF_S_MIN <= number <= BACKOFF_S_MAX:
                self.report(values[key], f"{path}.{key}", f"must be {BACKOFF_S_MIN:g} to "
                            f"{BACKOFF_S_MAX} seconds, got {values[key].value}")
            elif number is not None:
                given[key] = number
        delays |= given
        first_key, longest_key = keys
        first, longest = delays[first_key], delays[longest_key]
        if first > longest and not any(key in values and key not in given for key in keys):
            if longest_key in given:
                key, other_key, relation = longest_key, first_key, "below"
            else:
                key, other_key, relation = first_key, longest_key, "above"
            default = "" if other_key in given else " (the default)"
            other = f"{other_key} {delays[other_key]:g}{default}"
            self.report(values[key], f"{path}.{key}", f"{delays[key]:g} is {relation} {other}; "
                        f"keep {first_key} <= {longest_key}")
        return delays[first_key], delays[longest_key]

    # -- rooms -------------------------------------------------------------------------

    def read_rooms(
        self,
        node: Node,
        language: Language,
        codecs: tuple[str, ...],
        *,
        has_accounts: bool,
        senders: tuple[ListenAddress, ...] | None,
    ) -> tuple[RoomConfig, ...]:
        items = self.sequence(node, "rooms")
        if items is not None and not items:
            self.report(node, "rooms", 'needs at least one room, e.g. - {id: rakor, extension: '
                        '"1000"}')
        rooms = []
        seen = _Seen()
        for index, item in enumerate(items or ()):
            room = self.room(item, f"rooms[{index}]", language, codecs, has_accounts=has_accounts,
                             senders=senders, seen=seen)
            if room is not None:
                rooms.append(room)
        self.transfer_rooms(seen.transfers, rooms, seen.ids)
        return tuple(rooms)

    def transfer_rooms(
        self, transfers: Sequence[_Transfer], rooms: Sequence[RoomConfig], ids: dict[str, str]
    ) -> None:
        """Check each hotline's transfer_room once every room is known: a conference room.

        A target whose own room could not be read is already reported and is not judged.
        """
        modes = {room.id: room.mode for room in rooms}
        for node, path, room_id, target in transfers:
            if target == room_id:
                self.report(node, path, f"{_show(target)} is this hotline; name the meeting or "
                            "webinar room operators bring callers into")
            elif target not in ids:
                hint = _closest(target, list(ids)) if ids else ""
                self.report(node, path, f"no room has the id {_show(target)}{hint}")
            elif modes.get(target) == "hotline":
                self.report(node, path, f"{_show(target)} ({ids[target]}) is a hotline too; name "
                            "the meeting or webinar room operators bring callers into")

    def room(
        self,
        node: Node,
        path: str,
        language: Language,
        codecs: tuple[str, ...],
        *,
        has_accounts: bool,
        senders: tuple[ListenAddress, ...] | None,
        seen: _Seen,
    ) -> RoomConfig | None:
        """Read one room; `seen` holds what earlier rooms claimed, for uniqueness.

        A hotline's transfer_room is added to `seen.transfers`, to be checked after every
        room.
        """
        if not isinstance(node, MappingNode):
            self.report(node, path, f"expected a room mapping with id and extension, got "
                        f"{self.describe(node)}")
            return None
        values = self.fields(node, path, _ROOM_KEYS)
        room_id = self.identifier(values, node, path, example="rakor")
        if room_id is not None:
            self.claim_id(values["id"], f"{path}.id", "room", room_id, seen.ids)
        extension = self.extension(values, node, path)
        if extension is not None:
            self.claim_number(values["extension"], path, "extension", extension, seen.extensions)
        name = None
        if "name" in values:
            name = self.display_text(values["name"], f"{path}.name")
        mode = self.mode(values, path)
        pin_keys: tuple[str, ...] = ("pin", "moderator_pin")
        if mode == "hotline" and "pin" in values:
            self.report(values["pin"], f"{path}.pin",
                        "a hotline asks reporters for no PIN; operators dial operator_extension "
                        "and type moderator_pin")
            pin_keys = ("moderator_pin",)
        pins = {key: self.pin(values[key], f"{path}.{key}") for key in pin_keys if key in values}
        pin, moderator_pin = pins.get("pin"), pins.get("moderator_pin")
        if pin is not None and pin == moderator_pin:
            self.report(values["moderator_pin"], f"{path}.moderator_pin",
                        "must differ from pin, or every participant would join as moderator")
        hotline = self.hotline(values, path, mode, room_id, extensions=seen.extensions,
                               transfers=seen.transfers)
        numbers: tuple[str, ...] = ()
        if "numbers" in values:
            numbers = self.numbers(values["numbers"], path, seen.extensions)
        access: RoomAccess = "anyone"
        if "access" in values:
            access = self.choice(values["access"], f"{path}.access", ROOM_ACCESS) or access
            if access == "accounts" and not has_accounts:
                self.report(values["access"], f"{path}.access",
                            "accounts admits only callers who authenticate with an account, "
                            "but accounts: lists none")
        if "language" in values:
            language = self.language(values["language"], f"{path}.language") or language
        if "codecs" in values:
            codecs = self.codecs(values["codecs"], f"{path}.codecs") or codecs
        max_talkers = DEFAULT_MAX_TALKERS
        if "max_talkers" in values:
            max_talkers = self.count(values["max_talkers"], f"{path}.max_talkers",
                                     MAX_TALKERS_LIMIT) or max_talkers
        voice_detection, agc = (
            self.flag(values[key], f"{path}.{key}") is not False if key in values else True
            for key in ("voice_detection", "agc")
        )
        echo: EchoMode = "auto"
        if "echo_cancellation" in values:
            echo = self.echo_mode(values["echo_cancellation"], f"{path}.echo_cancellation") or echo
        wait_for_moderator, end_when_moderator_leaves = (
            self.moderator_option(values, path, key) for key in _NEEDS_MODERATOR
        )
        max_members = None
        if "max_members" in values:
            max_members = self.count(values["max_members"], f"{path}.max_members",
                                     MAX_MEMBERS_LIMIT)
        announce: Announce = "none"
        if "announce" in values:
            announce = self.choice(values["announce"], f"{path}.announce", ANNOUNCEMENTS) or (
                announce
            )
        record = "record" in values and self.flag(values["record"], f"{path}.record") is True
        keymap = DEFAULT_KEYMAP_ITEMS
        if "keypad" in values:
            keymap = self.keypad(values["keypad"], f"{path}.keypad")
        gateways: tuple[GatewayConfig, ...] = ()
        if "gateways" in values:
            gateways = self.gateways(values["gateways"], f"{path}.gateways", senders,
                                     seen.sdp_files)
        if room_id is None or extension is None:
            return None
        return RoomConfig(
            id=room_id,
            extension=extension,
            name=name,
            pin=pin,
            moderator_pin=moderator_pin,
            mode=mode or "meeting",
            access=access,
            language=language,
            codecs=codecs,
            max_talkers=max_talkers,
            voice_detection=voice_detection,
            agc=agc,
            echo_cancellation=echo,
            keymap=keymap,
            wait_for_moderator=wait_for_moderator,
            end_when_moderator_leaves=end_when_moderator_leaves,
            max_members=max_members,
            announce=announce,
            record=record,
            operator_extension=hotline.operator_extension,
            operator_hours=hotline.operator_hours,
            report_max_s=hotline.report_max_s,
            transfer_room=hotline.transfer_room,
            numbers=numbers,
            gateways=gateways,
        )

    def mode(self, values: dict[str, Node], path: str) -> RoomMode | None:
        """Read a room's mode and check the keys it needs; None when it cannot be read."""
        if "mode" not in values:
            return "meeting"
        node, mode_path = values["mode"], f"{path}.mode"
        mode = self.choice(node, mode_path, ROOM_MODES)
        # Judged on what is written, so an invalid moderator_pin is not blamed here too.
        if mode == "webinar" and "moderator_pin" not in values:
            self.report(node, mode_path, "webinar needs a moderator_pin: members join muted and "
                        "only a moderator can give them the floor")
        if mode == "hotline" and "operator_extension" not in values:
            self.report(node, mode_path, "hotline needs operator_extension: the number operators "
                        "dial")
        if mode == "hotline" and "moderator_pin" not in values:
            self.report(node, mode_path, "hotline needs a moderator_pin: the operators' PIN")
        return mode

    def hotline(
        self,
        values: dict[str, Node],
        path: str,
        mode: RoomMode | None,
        room_id: str | None,
        *,
        extensions: dict[str, tuple[str, str]],
        transfers: list[_Transfer],
    ) -> _Hotline:
        """Read the keys only a hotline has, and refuse them in a meeting or webinar.

        With a mode that could not be read they are still checked, so fixing the mode
        brings up no new problems.
        """
        if mode in ("meeting", "webinar"):
            for key in _HOTLINE_KEYS:
                if key in values:
                    self.report(values[key], f"{path}.{key}",
                                f"{key} is for hotline rooms (mode: hotline)")
            return _Hotline()
        if mode == "hotline":
            # A hotline is one-to-one calls and reports: no meeting around them.
            for key in _MEETING_ONLY_KEYS:
                if key in values:
                    self.report(values[key], f"{path}.{key}",
                                f"{key} is for meeting and webinar rooms, not a hotline")
        operator_extension = None
        if "operator_extension" in values:
            operator_extension = self.dialled_number(values["operator_extension"],
                                                     f"{path}.operator_extension")
        if operator_extension is not None:
            self.claim_number(values["operator_extension"], path, "operator_extension",
                              operator_extension, extensions)
        operator_hours = None
        if "operator_hours" in values:
            operator_hours = self.operator_hours(values["operator_hours"],
                                                 f"{path}.operator_hours")
        report_max_s = DEFAULT_REPORT_MAX_S
        if "report_max_s" in values:
            report_max_s = self.report_max_s(values["report_max_s"], f"{path}.report_max_s")
        transfer_room = None
        if "transfer_room" in values:
            transfer_room = self.text(values["transfer_room"], f"{path}.transfer_room")
        if transfer_room is not None:
            transfers.append(_Transfer(values["transfer_room"], f"{path}.transfer_room",
                                       room_id, transfer_room))
        return _Hotline(operator_extension, operator_hours, report_max_s, transfer_room)

    def operator_hours(self, node: Node, path: str) -> OperatorHours | None:
        values = self.fields(node, path, _OPERATOR_HOURS_KEYS)
        if not isinstance(node, MappingNode):
            return None
        days: frozenset[int] | None = EVERY_DAY
        if "days" in values:
            days = self.weekdays(values["days"], f"{path}.days")
        times: dict[str, time | None] = {}
        for key, meaning in (("from", "when the shift starts"), ("to", "when it ends")):
            if key in values:
                times[key] = self.time_of_day(values[key], f"{path}.{key}")
            else:
                self.report(node, f"{path}.{key}", f'required: {meaning}, e.g. "07:30"')
        start, end = times.get("from"), times.get("to")
        if start is not None and start == end:
            self.report(values["to"], f"{path}.to",
                        f'"{start:%H:%M}" is the same as from: the shift would last no time or '
                        "all day; leave operator_hours out to be on duty round the clock")
            return None
        if days is None or start is None or end is None:
            return None
        return OperatorHours(days=days, start=start, end=end)

    def weekdays(self, node: Node, path: str) -> frozenset[int] | None:
        """Read day names (mon..sun, any case) as datetime.weekday() numbers."""
        items = self.sequence(node, path)
        if items is None:
            return None
        if not items:
            self.report(node, path, "needs at least one day, e.g. [mon, tue, wed, thu, fri]; "
                        "leave days out for every day")
            return None
        days: list[int] = []
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            name = self.text(item, item_path)
            if name is None:
                continue
            if name.lower() not in WEEKDAYS:
                self.report(item, item_path, f"unknown day {_show(name)}{_closest(name, WEEKDAYS)}")
                continue
            day = WEEKDAYS.index(name.lower())
            if day in days:
                self.report(item, item_path, f"{name} is listed twice")
            else:
                days.append(day)
        if len(days) != len(items):
            return None
        return frozenset(days)

    def time_of_day(self, node: Node, path: str) -> time | None:
        # YAML 1.1 reads an unquoted 16:00 as the base-60 int 960 (07:30, with its leading
        # zero, stays text).
        if isinstance(node, ScalarNode) and node.tag == _INT and ":" in str(node.value):
            number = self._constructor.construct_object(node)
            self.report(node, path, f"YAML reads {node.value} as the base-60 number {number}; "
                        f'write the time in quotes: "{node.value}"')
            return None
        text = self.text(node, path)
        if text is None:
            return None
        match = _TIME_OF_DAY.fullmatch(text)
        if match is None:
            self.report(node, path, f'{_show(text)} is not a time of day; write "HH:MM", 24-hour, '
                        'e.g. "07:30"')
            return None
        return time(int(match[1]), int(match[2]))

    def report_max_s(self, node: Node, path: str) -> float:
        number = self.number(node, path)
        if number is not None and not REPORT_MAX_S_MIN <= number <= REPORT_MAX_S_MAX:
            self.report(node, path, f"must be {REPORT_MAX_S_MIN} to {REPORT_MAX_S_MAX} seconds, "
                        f"got {node.value}")
            return DEFAULT_REPORT_MAX_S
        return DEFAULT_REPORT_MAX_S if number is None else number

    def moderator_option(self, values: dict[str, Node], path: str, key: str) -> bool:
        """Read a room option that only a moderator makes work; refuse it without one."""
        if key not in values:
            return False
        enabled = self.flag(values[key], f"{path}.{key}") is True
        # Judged on what is written, so an invalid moderator_pin is not blamed here too.
        if enabled and "moderator_pin" not in values:
            self.report(values[key], f"{path}.{key}",
                        f"{key} needs a moderator_pin, {_NEEDS_MODERATOR[key]}")
        return enabled

    def keypad(self, node: Node, path: str) -> tuple[tuple[str, str], ...]:
        """Merge a room's `keypad:` over DEFAULT_KEYMAP; null or "" disables a command.

        Keys are matched as they are typed, so no two commands may share a sequence and none
        may be a prefix of another: the longer one could never be typed.
        """
        if not isinstance(node, MappingNode):
            self.report(node, path, 'expected a mapping of command: keys, such as {hand: "*9"}, '
                        f"got {self.describe(node)}")
            return DEFAULT_KEYMAP_ITEMS
        keymap = dict(DEFAULT_KEYMAP)
        written: dict[str, Node] = {}  # valid sequences the room sets, in file order
        for name, key_node, value_node in self.entries(node, path):
            command_path = _join(path, name)
            if name not in DEFAULT_KEYMAP:
                close = difflib.get_close_matches(name, KEYPAD_COMMANDS, n=1)
                guess = f' (did you mean "{close[0]}"?)' if close else ""
                self.report(key_node, command_path, f"unknown command {_show(name)}{guess}; "
                            f"the commands are {', '.join(KEYPAD_COMMANDS)}")
                continue
            keys = self.key_sequence(value_node, command_path)
            # Disabled, or invalid and already reported: either way out of the clash checks.
            keymap.pop(name)
            if keys:
                keymap[name] = keys
                written[name] = value_node
        # Each sequence the room sets is checked against the defaults it left alone and the
        # sequences set before it, so one clash is reported once, where it was written.
        checked = [name for name in KEYPAD_COMMANDS if name in keymap and name not in written]
        for name, value_node in written.items():
            for other in checked:
                clash = _keys_clash(keymap[name], keymap[other], other,
                                    is_default=other not in written)
                if clash:
                    self.report(value_node, _join(path, name), clash)
                    break
            checked.append(name)
        return tuple((name, keymap[name]) for name in KEYPAD_COMMANDS if name in keymap)

    def key_sequence(self, node: Node, path: str) -> str | None:
        """Return keys as written, "" for a disabled command, None after a problem."""
        commented = _keys_read_as_comment(node)
        if commented is not None:
            self.report(node, path, f"YAML reads {commented} after a space as a comment, which "
                        f'would disable the command; write it in quotes: "{commented}"')
            return None
        if _is_null(node):
            return ""
        text = self.text(node, path)
        if text and not _KEY_SEQUENCE.fullmatch(text):
            self.report(node, path, f"{_show(text)} must be 1 to {KEY_SEQUENCE_MAX_KEYS} keys "
                        "from 0-9, * and #")
            return None
        return text

    def echo_mode(self, node: Node, path: str) -> EchoMode | None:
        # YAML 1.1 reads a bare on/off as a boolean; take it as the operator meant it.
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return "on" if self._constructor.construct_object(node) else "off"
        return self.choice(node, path, ECHO_MODES)

    def count(self, node: Node, path: str, limit: int) -> int | None:
        number = self.integer(node, path)
        if number is not None and not 1 <= number <= limit:
            self.report(node, path, f"must be 1 to {limit}, got {number}")
            return None
        return number

    def identifier(
        self, values: dict[str, Node], owner: Node, path: str, *, example: str
    ) -> str | None:
        """Read the `id` of a room, gateway or trunk: a short lowercase name for logs."""
        if "id" not in values:
            self.report(owner, f"{path}.id",
                        f"required: a short name such as {example}, used in logs")
            return None
        text = self.text(values["id"], f"{path}.id")
        if text is not None and not _ROOM_ID.fullmatch(text):
            self.report(values["id"], f"{path}.id",
                        f'{_show(text)} must be lowercase letters, digits, "_" or "-"')
            return None
        return text

    def claim_id(self, node: Node, path: str, kind: str, name: str, owners: dict[str, str]) -> None:
        """Refuse the id `name` at `path` if an earlier `kind` has it; else record it."""
        if name in owners:
            self.report(node, path, f"{kind} id {_show(name)} is already used by {owners[name]}")
        else:
            owners[name] = path.removesuffix(".id")

    def extension(self, values: dict[str, Node], room: Node, path: str) -> str | None:
        if "extension" not in values:
            self.report(room, f"{path}.extension",
                        'required: the number callers dial to reach the room, e.g. "1000"')
            return None
        return self.dialled_number(values["extension"], f"{path}.extension")

    def dialled_number(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        if text is not None and not _EXTENSION.fullmatch(text):
            self.report(node, path, f'{_show(text)} must be digits, optionally after a leading "+"')
            return None
        return text

    def claim_number(
        self,
        node: Node,
        path: str,
        key: str,
        number: str,
        extensions: dict[str, tuple[str, str]],
    ) -> None:
        """Refuse room `path`'s number at `key` if an earlier number of any room has it.

        `key` is "extension", "operator_extension" or "numbers[2]". `extensions` maps what
        the dialplan matches to (owner, number as written). The owner of an extension is
        its room ("rooms[1]"); of another number, its field ("rooms[1].numbers[0]").
        """
        # The dialplan ignores a leading "+", so "+1000" and "1000" reach the same room.
        dialled = number.removeprefix("+")
        owner = path if key == "extension" else f"{path}.{key}"
        if dialled not in extensions:
            extensions[dialled] = (owner, number)
            return
        other_owner, other = extensions[dialled]
        same = "is" if other == number else f"matches the same calls as {_show(other)},"
        if other_owner == path:
            where = "this room's extension"
        elif other_owner.startswith(f"{path}."):
            where = f"this room's {other_owner.removeprefix(f'{path}.')}"
        else:
            where = other_owner
        kind = "number" if key.startswith("numbers[") else key
        self.report(node, f"{path}.{key}", f"{kind} {_show(number)} {same} already used by {where}")

    def numbers(
        self, node: Node, path: str, extensions: dict[str, tuple[str, str]]
    ) -> tuple[str, ...]:
        """Read a room's `numbers`: more dialled numbers (DIDs) that reach it, like extension."""
        numbers = []
        for index, item in enumerate(self.sequence(node, f"{path}.numbers") or ()):
            key = f"numbers[{index}]"
            number = self.dialled_number(item, f"{path}.{key}")
            if number is not None:
                self.claim_number(item, path, key, number, extensions)
                numbers.append(number)
        return tuple(numbers)

    def pin(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        if text is None:
            return None
        if not _PIN.fullmatch(text) or len(text) > _PIN_DIGITS_MAX:
            self.report(node, path, f'{_show(text)} must be 1 to {_PIN_DIGITS_MAX} digits (0-9), '
                        "typed on the keypad")
            return None
        return text

    # -- gateways ----------------------------------------------------------------------

    def gateways(
        self,
        node: Node,
        path: str,
        senders: tuple[ListenAddress, ...] | None,
        sdp_files: dict[Path, str],
    ) -> tuple[GatewayConfig, ...]:
        """Read a room's `gateways`; `sdp_files` holds every leg's sdp_file so far."""
        gateways = []
        ids: dict[str, str] = {}
        for index, item in enumerate(self.sequence(node, path) or ()):
            gateway = self.gateway(item, f"{path}[{index}]", senders, sdp_files, ids=ids)
            if gateway is not None:
                gateways.append(gateway)
        return tuple(gateways)

    def gateway(
        self,
        node: Node,
        path: str,
        senders: tuple[ListenAddress, ...] | None,
        sdp_files: dict[Path, str],
        *,
        ids: dict[str, str],
    ) -> GatewayConfig | None:
        if not isinstance(node, MappingNode):
            self.report(node, path, "expected a gateway mapping with id and rtp: or sip:, got "
                        f"{self.describe(node)}")
            return None
        values = self.fields(node, path, _GATEWAY_KEYS)
        gateway_id = self.identifier(values, node, path, example="zoom")
        if gateway_id is not None:
            self.claim_id(values["id"], f"{path}.id", "gateway", gateway_id, ids)
        rtp = None
        if "rtp" in values:
            rtp = self.rtp_leg(values["rtp"], f"{path}.rtp", sdp_files)
        sip = None
        if "sip" in values:
            sip = self.sip_leg(values["sip"], f"{path}.sip", senders)
        if "rtp" in values and "sip" in values:
            self.report(values["sip"], f"{path}.sip", "a gateway is one leg: give rtp: or sip:, "
                        "not both (list two gateways for two legs)")
            return None
        if "rtp" not in values and "sip" not in values:
            self.report(node, path, "a gateway needs rtp: (a plain RTP stream) or sip: (a call "
                        "the bridge places)")
            return None
        if gateway_id is None or (rtp is None and sip is None):
            return None
        return GatewayConfig(id=gateway_id, rtp=rtp, sip=sip)

    def rtp_leg(self, node: Node, path: str, sdp_files: dict[Path, str]) -> RtpLegConfig | None:
        """Read a plain RTP leg; its files are only named here, never opened."""
        values = self.fields(node, path, _RTP_LEG_KEYS)
        if not isinstance(node, MappingNode):
            return None
        codec = None
        if "codec" in values:
            codec = self.gateway_codec(values["codec"], f"{path}.codec")
        else:
            self.report(node, f"{path}.codec", "required: the codec both sides send, one of "
                        + ", ".join(GATEWAY_CODECS))
        payload_type = DEFAULT_PAYLOAD_TYPES.get(codec or "")
        if "payload_type" in values:
            payload_type = self.payload_type(values["payload_type"], f"{path}.payload_type",
                                             codec)
        ptime_ms = DEFAULT_LEG_PTIME_MS
        if "ptime_ms" in values:
            ptime_ms = self.leg_ptime_ms(values["ptime_ms"], f"{path}.ptime_ms") or ptime_ms
        remote = None
        if "remote" in values:
            remote = self.remote(values["remote"], f"{path}.remote")
        remote_sdp = sdp_file = None
        if "remote_sdp" in values:
            remote_sdp = self.file_path(values["remote_sdp"], f"{path}.remote_sdp",
                                        example="zoom-far.sdp")
            if "remote" in values:
                self.report(values["remote_sdp"], f"{path}.remote_sdp",
                            "give remote or remote_sdp, not both: the far side's address comes "
                            "from one of them")
        if "sdp_file" in values:
            sdp_file = self.sdp_file(values["sdp_file"], f"{path}.sdp_file", remote_sdp,
                                     sdp_files)
        telephone_event_pt = None
        if "telephone_event_pt" in values:
            telephone_event_pt = self.telephone_event_pt(
                values["telephone_event_pt"], f"{path}.telephone_event_pt", payload_type
            )
        if codec is None or payload_type is None:
            return None
        return RtpLegConfig(
            codec=codec,
            payload_type=payload_type,
            ptime_ms=ptime_ms,
            remote=remote,
            remote_sdp=remote_sdp,
            sdp_file=sdp_file,
            telephone_event_pt=telephone_event_pt,
        )

    def gateway_codec(self, node: Node, path: str) -> GatewayCodec | None:
        """Read one codec name, case-insensitive like `codecs` (RFC 4855 §3)."""
        name = self.text(node, path)
        if name is None:
            return None
        codec = GATEWAY_CODECS.get(name.upper())
        if codec is None:
            self.report(node, path, f"unknown codec {_show(name)}; supported: "
                        + ", ".join(GATEWAY_CODECS))
        return codec

    def payload_type(self, node: Node, path: str, codec: str | None) -> int | None:
        """Read a plain RTP leg's payload type for `codec` (None: unreadable, not judged)."""
        number = self.integer(node, path)
        if number is None:
            return None
        problem = _payload_type_problem(number, codec)
        if problem is not None:
            self.report(node, path, problem)
            return None
        return number

    def telephone_event_pt(self, node: Node, path: str, payload_type: int | None) -> int | None:
        number = self.integer(node, path)
        if number is None:
            return None
        if number not in _DYNAMIC_PAYLOAD_TYPES:
            self.report(node, path, f"{number} is not a dynamic payload type: telephone-event has "
                        "no static one (RFC 4733 §7.1), so use 96 to 127, e.g. 101")
            return None
        if number == payload_type:
            self.report(node, path, f"must differ from payload_type {payload_type}: each payload "
                        "type names one format (RFC 3550 §5.1)")
            return None
        return number

    def leg_ptime_ms(self, node: Node, path: str) -> int | None:
        value = self.integer(node, path)
        if value is not None and value not in PTIMES_MS:
            choices = ", ".join(map(str, PTIMES_MS[:-1])) + f" or {PTIMES_MS[-1]}"
            self.report(node, path, f"{value} ms is not a packet time we send; use {choices}")
            return None
        return value

    def remote(self, node: Node, path: str) -> tuple[str, int] | None:
        text = self.text(node, path)
        if text is None:
            return None
        remote = _parse_remote(text)
        if isinstance(remote, str):
            self.report(node, path, remote)
            return None
        return remote

    def file_path(self, node: Node, path: str, *, example: str) -> Path | None:
        text = self.path_text(node, path, example=example, names="a file")
        return None if text is None else self.from_config_folder(text)

    def sdp_file(
        self, node: Node, path: str, remote_sdp: Path | None, sdp_files: dict[Path, str]
    ) -> Path | None:
        """Read where a leg writes its own SDP: no file another leg writes or it reads."""
        sdp_file = self.file_path(node, path, example="zoom-bridge.sdp")
        if sdp_file is None:
            return None
        if sdp_file == remote_sdp:
            self.report(node, path, "must differ from remote_sdp, or the bridge would overwrite "
                        "the far side's SDP with its own")
            return None
        if sdp_file in sdp_files:
            self.report(node, path, f"{sdp_file} is already written by {sdp_files[sdp_file]}")
            return None
        sdp_files[sdp_file] = path
        return sdp_file

    def sip_leg(
        self, node: Node, path: str, senders: tuple[ListenAddress, ...] | None
    ) -> SipLegConfig | None:
        """Read a dial-out leg; its next hop must be reachable from `senders` (see sent_to)."""
        values = self.fields(node, path, _SIP_LEG_KEYS, nullable=("digits",))
        if not isinstance(node, MappingNode):
            return None
        uri = proxy = None
        if "uri" in values:
            uri = self.sip_uri(values["uri"], f"{path}.uri",
                               example='"sip:123456@gw.example" or "sip:meeting@192.0.2.9:5080"')
        else:
            self.report(node, f"{path}.uri",
                        'required: the meeting\'s SIP address, e.g. "sip:123456@gw.example"')
        if "proxy" in values:
            proxy = self.sip_uri(values["proxy"], f"{path}.proxy", example='"sip:192.0.2.1:5060"')
        # The INVITE goes to the proxy when there is one (RFC 3261 §8.1.2), else to the uri.
        next_hop = "proxy" if "proxy" in values else "uri"
        hop = proxy if "proxy" in values else uri
        if hop is not None:
            self.sent_to(values[next_hop], f"{path}.{next_hop}", hop, senders, what="the INVITE")
        username = password = None
        if "username" in values:
            username = self.credential_user(values["username"], f"{path}.username")
        if "password" in values:
            password = self.secret(values["password"], f"{path}.password")
        for key, other in (("username", "password"), ("password", "username")):
            if key in values and other not in values:
                self.report(values[key], f"{path}.{key}", f"{key} needs {other} too: digest "
                            "credentials are both (RFC 3261 §22.2), or neither when the far end "
                            "asks for none")
        from_user = DEFAULT_FROM_USER
        if "from_user" in values:
            from_user = self.sip_user(values["from_user"], f"{path}.from_user") or from_user
        digits = ""
        if "digits" in values:
            digits = self.dial_string(values["digits"], f"{path}.digits") or digits
        digits_delay_s = DEFAULT_DIGITS_DELAY_S
        if "digits_delay_s" in values:
            digits_delay_s = self.digits_delay_s(values["digits_delay_s"],
                                                 f"{path}.digits_delay_s")
        codecs = None
        if "codecs" in values:
            codecs = self.codecs(values["codecs"], f"{path}.codecs")
        redial_min_s, redial_max_s = self.backoff(
            values, path, ("redial_min_s", "redial_max_s"),
            (DEFAULT_REDIAL_MIN_S, DEFAULT_REDIAL_MAX_S),
        )
        if uri is None:
            return None
        return SipLegConfig(
            uri=_as_written(values["uri"]),
            proxy=_as_written(values["proxy"]) if proxy is not None else None,
            username=username,
            password=password,
            from_user=from_user,
            digits=digits,
            digits_delay_s=digits_delay_s,
            codecs=codecs,
            redial_min_s=redial_min_s,
            redial_max_s=redial_max_s,
        )

    def dial_string(self, node: Node, path: str) -> str | None:
        """Return digits to send, upper case; "" for none (null), None after a problem.

        Quoting follows the keypad's rules: an unquoted "#..." after a space is a YAML
        comment, and an unquoted "*..." an alias (reported with the syntax error).
        """
        commented = _keys_read_as_comment(node, _DIAL_STRING)
        if commented is not None:
            self.report(node, path, f"YAML reads {commented} after a space as a comment, which "
                        f'would send no digits; write it in quotes: "{commented}"')
            return None
        if _is_null(node):
            return ""
        text = self.text(node, path)
        if text and not _DIAL_STRING.fullmatch(text):
            self.report(node, path, f'{_show(text)} must be keys 0-9, *, # and A-D, with "," for '
                        "a one-second pause")
            return None
        return None if text is None else text.upper()

    def digits_delay_s(self, node: Node, path: str) -> float:
        number = self.number(node, path)
        if number is not None and not 0 <= number <= DIGITS_DELAY_S_MAX:
            self.report(node, path, f"must be 0 to {DIGITS_DELAY_S_MAX} seconds, got {node.value}")
            return DEFAULT_DIGITS_DELAY_S
        return DEFAULT_DIGITS_DELAY_S if number is None else number


    def language(self, node: Node, path: str) -> Language | None:
        return self.choice(node, path, LANGUAGES)

    def codecs(self, node: Node, path: str) -> tuple[str, ...] | None:
        """Read a codec preference list; encoding names are case-insensitive (RFC 4855 §3)."""
        items = self.sequence(node, path)
        if items is None:
            return None
        supported = ", ".join(SUPPORTED_CODECS)
        if not items:
            self.report(node, path, f"needs at least one codec; supported: {supported}")
            return None
        codecs: list[str] = []
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            name = self.text(item, item_path)
            if name is None:
                continue
            canonical = name.upper()
            if canonical in codecs:
                self.report(item, item_path, f"{name} is listed twice")
            elif canonical in SUPPORTED_CODECS:
                codecs.append(canonical)
            else:
                self.report(item, item_path, f'unknown codec {_show(name)}; supported: {supported}')
        if len(codecs) != len(items):
            return None
        return tuple(codecs)

    def choice(self, node: Node, path: str, choices: dict[str, _Choice]) -> _Choice | None:
        text = self.text(node, path)
        if text is None:
            return None
        if text in choices:
            return choices[text]
        expected = " or ".join(choices)
        if text.lower() in choices:
            self.report(node, path, f"write {text.lower()} in lower case")
        else:
            self.report(node, path, f"unknown value {_show(text)}; expected {expected}")
        return None

    def display_text(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        if text is not None and _CONTROL.search(text):
            self.report(node, path, "must be one line of printable text")
            return None
        return text

    def text(self, node: Node, path: str) -> str | None:
        """Return a scalar as the text the operator wrote, or None after saying why not.

        Unquoted digits are YAML ints; they are taken as written (`extension: 1000`) unless
        YAML changes them on the way (octal 0123 is 83), which would silently lose digits.
        """
        if isinstance(node, ScalarNode) and node.tag == _STR:
            return str(node.value)
        if isinstance(node, ScalarNode) and node.tag == _INT:
            raw = str(node.value)
            if _DECIMAL.fullmatch(raw):
                return raw
            number = self._constructor.construct_object(node)
            if _OCTAL.fullmatch(raw):
                self.report(node, path, f"YAML reads {raw} as the octal number {number}; write "
                            f'it in quotes to keep the leading zero: "{raw}"')
            else:
                self.report(node, path, f"YAML reads {raw} as the number {number}; write it in "
                            f'quotes if you mean the text "{raw}"')
            return None
        self.report(node, path, f"expected text, got {self.describe(node)}")
        return None

    def number(self, node: Node, path: str) -> float | None:
        if isinstance(node, ScalarNode) and node.tag in (_INT, _FLOAT):
            try:
                value = float(self._constructor.construct_object(node))
            except OverflowError:  # an int too large for a float
                value = math.inf
            if math.isfinite(value):
                return value
            self.report(node, path, f"must be a finite number, got {node.value}")
            return None
        self.report(node, path, f"expected a number, got {self.describe(node)}")
        return None

    def integer(self, node: Node, path: str) -> int | None:
        if isinstance(node, ScalarNode) and node.tag == _INT:
            try:
                return int(self._constructor.construct_object(node))
            except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
                self.report(node, path, f"{str(node.value)[:20]}... is far too large")
                return None
        self.report(node, path, f"expected a whole number, got {self.describe(node)}")
        return None

    def flag(self, node: Node, path: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return bool(self._constructor.construct_object(node))
        self.report(node, path, f"expected true or false, got {self.describe(node)}")
        return None

    def describe(self, node: Node) -> str:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            value = str(self._constructor.construct_object(node)).lower()
            return f'"{node.value}", which YAML reads as the boolean {value}; quote it for text'
        return _describe(node)

    # -- structure ---------------------------------------------------------------------

    def sequence(self, node: Node, path: str) -> list[Node] | None:
        if isinstance(node, SequenceNode):
            return list(node.value)
        self.report(node, path, f"expected a list, got {self.describe(node)}")
        return None

    def fields(
        self, node: Node, path: str, names: Sequence[str], *, nullable: Sequence[str] = ()
    ) -> dict[str, Node]:
        """Return the non-null values of a schema mapping; report unknown keys.

        Null values of the `nullable` keys are returned too, for readers that tell an
        empty value from one YAML read as a comment.
        """
        if not isinstance(node, MappingNode):
            what = f"a mapping with keys {', '.join(names)}"
            self.report(node, path, f"expected {what}, got {self.describe(node)}")
            return {}
        values: dict[str, Node] = {}
        for name, key_node, value_node in self.entries(node, path):
            if name not in names:
                self.report(key_node, _join(path, name),
                            f'unknown key {_show(name)}{_closest(name, names)}')
            elif name in nullable or not _is_null(value_node):
                values[name] = value_node
        return values

    def entries(
        self, node: MappingNode, path: str, merging: frozenset[int] = frozenset()
    ) -> list[tuple[str, Node, Node]]:
        """Return (name, key node, value node) for each key, YAML 1.1 merge keys applied.

        PyYAML keeps the last of two equal keys without a word; here the first is kept and
        the second reported, so no setting is silently dropped. Explicit keys override
        merged ones, and earlier merged mappings override later ones (yaml.org/type/merge).
        `merging` holds the mappings being merged into, so a merge loop ends.
        """
        explicit: dict[str, tuple[str, Node, Node]] = {}
        merged: list[tuple[str, Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(self.merge(value_node, path, merging | {id(node)}))
                continue
            if not isinstance(key_node, ScalarNode):
                self.report(key_node, path, f"keys must be names, got {self.describe(key_node)}")
                continue
            name = str(key_node.value)
            if name in explicit:
                first_line = explicit[name][1].start_mark.line + 1
                self.report(key_node, _join(path, name),
                            f'duplicate key {_show(name)} (first at line {first_line}); YAML would '
                            "silently keep only the last one")
                continue
            explicit[name] = (name, key_node, value_node)
        result = list(explicit.values())
        for entry in merged:
            if entry[0] not in explicit:
                explicit[entry[0]] = entry
                result.append(entry)
        return result

    def merge(
        self, node: Node, path: str, merging: frozenset[int]
    ) -> list[tuple[str, Node, Node]]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        entries = []
        for source in sources:
            if not isinstance(source, MappingNode):
                got = self.describe(source)
                self.report(source, path, f"<< merges a mapping or a list of mappings, got {got}")
            elif id(source) in merging:
                self.report(source, path, "<< merges a mapping into itself")
            else:
                entries.extend(self.entries(source, path, merging))
        return entries


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing (null)"
    if node.tag in (_INT, _FLOAT):
        return f"the number {node.value}"
    if node.tag == _STR:
        return f"the text {_show(str(node.value))}"
    if node.tag == _TIMESTAMP:
        return f"{node.value}, which YAML reads as a date"
    return f"a value tagged {node.tag}"


def _keys_clash(keys: str, other_keys: str, other: str, *, is_default: bool) -> str | None:
    """Say why `keys` cannot sit beside `other`'s sequence in one key map, if it cannot."""
    owner = f"{other}, its default" if is_default else other
    if keys == other_keys:
        default = " (its default)" if is_default else ""
        return f'"{keys}" is already the sequence of {other}{default}; give each its own keys'
    if other_keys.startswith(keys):
        return f'"{keys}" is a prefix of "{other_keys}" ({owner}), which could then never be typed'
    if keys.startswith(other_keys):
        return f'"{keys}" starts with "{other_keys}" ({owner}), so it could never be typed'
    return None


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_listen(text: str) -> ListenAddress | str:
    """Parse "transport:IPv4:port" or "transport:[IPv6]:port"; return why not as a str."""
    example = 'e.g. "udp:127.0.0.1:5060" or "udp:[::1]:5060"'
    match = _LISTEN.fullmatch(text)
    if match is None:
        if text.count(":") > 2 and "[" not in text:
            return f'{_show(text)}: write an IPv6 address in brackets, {example}'
        return f'{_show(text)} is not transport:address:port, {example}'
    transport_name, host, port_text = match["transport"].lower(), match["host"], match["port"]
    transport = TRANSPORTS.get(transport_name)
    if transport is None:
        if transport_name in _LATER_TRANSPORTS:
            return f"transport {transport_name} is not supported in this version; use udp or tcp"
        return f'{_show(text)}: unknown transport {_show(match["transport"])}; use udp or tcp'
    bracketed = host.startswith("[")
    try:
        ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        return (f"{_show(text)}: {_show(host)} is not an IP address; the bridge binds to it and "
                "advertises it, so give the address itself, not a host name")
    if bracketed != (ip.version == 6):
        return f'{_show(text)}: brackets are for IPv6 addresses only, {example}'
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= _PORT_MAX:
        return f'{_show(text)}: port must be a number from 1 to {_PORT_MAX}'
    return ListenAddress(transport=transport, host=str(ip), port=int(port_text))


def _parse_remote(text: str) -> tuple[str, int] | str:
    """Parse "IPv4:port" or "[IPv6]:port" into (address, port); return why not as a str."""
    example = 'e.g. "192.0.2.7:40000" or "[2001:db8::7]:40000"'
    match = _REMOTE.fullmatch(text)
    if match is None:
        if text.count(":") > 1 and "[" not in text:
            return f"{_show(text)}: write an IPv6 address in brackets, {example}"
        return f"{_show(text)} is not address:port, {example}"
    host, port_text = match["host"], match["port"]
    bracketed = host.startswith("[")
    try:
        ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        return (f"{_show(text)}: {_show(host)} is not an IP address; RTP is sent to the "
                "address itself, so give it rather than a host name")
    if bracketed != (ip.version == 6):
        return f"{_show(text)}: brackets are for IPv6 addresses only, {example}"
    if ip.is_unspecified:
        return f"{_show(text)}: {ip} is no address to send RTP to"
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= _PORT_MAX:
        return f"{_show(text)}: port must be a number from 1 to {_PORT_MAX}"
    return str(ip), int(port_text)


def _parse_network(text: str) -> IpNetwork | str:
    """Parse "10.20.0.0/16", "2001:db8::/32" or one address; return why not as a str."""
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f'{_show(text)} is not an IP address or network such as "10.20.0.0/16"'
    return (f"{_show(text)} has bits set after its /{network.prefixlen} prefix; did you mean "
            f'"{network}"?')


def _payload_type_problem(number: int, codec: str | None) -> str | None:
    """Say why a plain RTP leg cannot send `codec` as payload type `number`, if it cannot.

    It must be the codec's static number (RFC 3551 §6) or a dynamic one (RFC 3551 §3); a
    codec that could not be read is not judged beyond the ranges.
    """
    if not 0 <= number <= _PAYLOAD_TYPE_MAX:
        return (f"must be 0 to {_PAYLOAD_TYPE_MAX} (7 bits in the RTP header, RFC 3550 §5.1), "
                f"got {number}")
    if number in _RTCP_CLASHING_PAYLOAD_TYPES:
        return (f"{number} cannot be used: payload types 72 to 76 read as RTCP packet types "
                "200 to 204 where RTP and RTCP share a port (RFC 5761 §4)")
    if codec is None or number in _DYNAMIC_PAYLOAD_TYPES:
        return None
    static = STATIC_PAYLOAD_TYPES.get(number)
    if static is not None and static.encoding_name == codec:
        return None
    dynamic = "a dynamic one, 96 to 127"
    takes = dynamic if codec == "OPUS" else f"{DEFAULT_PAYLOAD_TYPES[codec]} or {dynamic}"
    if static is not None:
        return (f"payload_type {number} is {static.encoding_name}'s static number "
                f"(RFC 3551 §6); {codec} takes {takes}")
    return f"payload_type {number} is unassigned (RFC 3551 §6); {codec} takes {takes}"
