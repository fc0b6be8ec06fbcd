"""One conference room: its members, what each hears, and what the keypad does.

Every 20 ms `tick(now)` reads one frame from each member's playout buffer into a
`(members, samples)` array at 16 kHz, picks the talkers, mixes once
(`dsp.mixer.mix_minus`) and hands what each member hears to `media.RoomEncoder`:
everyone who hears the plain room mix with the same codec, settings and ptime shares one
encode; talkers (who must not hear themselves) and members hearing a prompt get their own.

Members are integer ids chosen by the caller (the controller). The room never sends
anything itself: it returns payloads, and commands such as `HangUp` through
`pop_actions()`. A gateway member (`add_member(gateway=True)`) is a leg to a video
meeting, heard and mixed like a talker but not a person: `RoomStarted` and `RoomEmptied`
tell the controller when people are in the room to connect such legs to, and when not.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

import dsp.tones as tones
from bridge.conference.keypad import (
    CommandEntered,
    KeypadCommand,
    KeypadSequencer,
    SequenceRejected,
    keymap_for,
)
from bridge.conference.media import (
    FRAME_MS,
    ROOM_RATE_HZ,
    EchoWatch,
    EncodeJob,
    GatheredFrames,
    MemberMedia,
    OutgoingPacket,
    PayloadBatch,
    RoomEncoder,
    RoomFrames,
    gather_rooms,
    playout_bank,
)
from bridge.conference.numbers import spoken_number
from bridge.conference.pin import PinEntry, PinOutcome
from bridge.conference.prompts import Clip, PromptLibrary, PromptPlayer
from bridge.config import EchoMode, RoomConfig
from dsp.codecs.base import EncoderSettings
from dsp.frame import frame_samples
from dsp.jitter import JitterBank
from dsp.level import peak_dbfs
from dsp.mixer import MixResult, limit, mix_minus
from dsp.resample import resample
from dsp.vad import ENERGY_FLOOR_DBFS

log = logging.getLogger(__name__)

# Frames quieter than this are not looked at at all (no keypad or voice detection):
# digital silence, idle lines and DTX pauses. Speech sits 15-50 dB above it.
TALKER_FLOOR_RMS = 10 ** (ENERGY_FLOOR_DBFS / 20)
# Seconds a caller may stay silent at the PIN prompt before it counts as a try.
PIN_INPUT_TIMEOUT_S = 10.0
# Seconds of silence between a parting prompt's last frame and the hang-up. The caller's
# jitter buffer still holds the prompt's end when its last packet leaves (baresip keeps
# 100-200 ms), and a BYE right behind it makes the phone drop that audio: measured with
# baresip, "too many attempts, goodbye" lost its last 90 ms without this.
HANG_UP_DRAIN_S = 0.5
# A digit signalled (RFC 4733) and the same digit heard in-band this close together are
# one press: some gateways send both. RFC 4733 events and tones start within a few tens
# of ms of each other; two real presses of one key are at least ~100 ms apart.
SAME_PRESS_S = 0.3
# Seconds a moderator has to confirm "end the meeting" with its confirming key.
END_CONFIRM_S = 5.0
END_CONFIRM_KEY = "1"
# Listening volume: steps of VOLUME_STEP_DB either way from what the room sends, at most
# VOLUME_MAX_STEPS (+-12 dB): enough to lift a quiet handset, not enough to clip the room.
VOLUME_STEP_DB = 3.0
VOLUME_MAX_STEPS = 4
# A recorded name ("sebutkan nama Anda"): at most this long, ended early by "#", played
# to the room at NAME_PEAK_DBFS so a quiet line is as audible as a loud one.
NAME_MAX_S = 3.0
NAME_PEAK_DBFS = -6.0
# Hotline: the key that ends a report early, and how often a queued caller hears their
# place again (the hold music plays in between).
REPORT_END_KEY = "#"
# At a reporter's hang-up, what is still in their playout buffer (up to this much) is
# said already: it goes into the report.
REPORT_DRAIN_MAX_FRAMES = 50


@dataclass(frozen=True, slots=True)
class PreparedTick:
    """A room's tick between `Room.prepare_tick` and `Room.finish_tick`: its members, in
    the order of their rows, and what `gather_rooms` needs of it."""

    members: list[Member]
    frames: RoomFrames


class Phase(enum.Enum):
    PIN_ENTRY = "pin_entry"  # hears prompts only; not heard by the room
    NAMING = "naming"  # recording their name before entering; hears prompts only
    WAITING = "waiting"  # for a moderator: hears a prompt and music; not heard
    IN_ROOM = "in_room"
    # Hotline callers: waiting for an operator, talking to one, or leaving a report.
    QUEUED = "queued"
    WITH_OPERATOR = "with_operator"
    REPORTING = "reporting"


class Role(enum.Enum):
    PARTICIPANT = "participant"
    MODERATOR = "moderator"


class MuteState(enum.Enum):
    FREE = "free"
    SELF_MUTED = "self_muted"
    MODERATOR_MUTED = "moderator_muted"  # only a moderator lifts it


@dataclass(frozen=True, slots=True)
class HangUp:
    """Command: end this member's call (after their last prompt has played)."""

    member_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """Event: a member passed PIN entry (or needed none) and is now in the room."""

    member_id: int
    role: Role


@dataclass(frozen=True, slots=True)
class MuteChanged:
    member_id: int
    state: MuteState


@dataclass(frozen=True, slots=True)
class DigitHeard:
    """Event: a keypad tone was detected in a member's audio (logged by the controller)."""

    member_id: int
    digit: str


@dataclass(frozen=True, slots=True)
class TalkingChanged:
    """Event: a member became one of the room's mixed talkers, or stopped being one."""

    member_id: int
    talking: bool


@dataclass(frozen=True, slots=True)
class PinRejected:
    member_id: int
    attempts: int


@dataclass(frozen=True, slots=True)
class HandChanged:
    """Event: a member raised (at `position` in the queue) or lowered their hand."""

    member_id: int
    raised: bool
    position: int = 0


@dataclass(frozen=True, slots=True)
class FloorGiven:
    """Event: moderator `member_id` gave the floor to `to_member` (unmuted them)."""

    member_id: int
    to_member: int


@dataclass(frozen=True, slots=True)
class RoomLockChanged:
    member_id: int  # the moderator who pressed it
    locked: bool


@dataclass(frozen=True, slots=True)
class RecordingChanged:
    """Command: start or stop recording the room's mix (`pop_recorded` hands it out).
    `member_id` is the moderator who asked, or 0 when the room's config did."""

    member_id: int
    recording: bool


@dataclass(frozen=True, slots=True)
class MeetingEnded:
    """Event: the meeting ends for everyone (a moderator, or the last one left)."""

    member_id: int  # the moderator who ended it, or 0
    reason: str


@dataclass(frozen=True, slots=True)
class ReportStarted:
    """Command: a hotline caller starts leaving a report; their audio follows, at
    `rate_hz`, through `pop_captured`."""

    member_id: int
    rate_hz: int


@dataclass(frozen=True, slots=True)
class ReportEnded:
    """Command: finish a report (`ended_by`: "hash", "hang-up" or "limit")."""

    member_id: int
    ended_by: str


@dataclass(frozen=True, slots=True)
class OperatorConnected:
    """Event: hotline operator `member_id` talks to caller `caller` (0: to nobody now)."""

    member_id: int
    caller: int


@dataclass(frozen=True, slots=True)
class TransferToRoom:
    """Command: move hotline caller `member_id` into conference room `room_id`; the
    controller takes them out of this room and admits them there without a PIN."""

    member_id: int
    room_id: str


@dataclass(frozen=True, slots=True)
class RoomStarted:
    """Command: a person is in the room's audio (not just at the PIN prompt or waiting for
    a moderator), from the tick that sends it on; connect the room's gateway legs."""

    member_id: int  # a person in the room's audio at that tick


@dataclass(frozen=True, slots=True)
class RoomEmptied:
    """Command: the room's people are gone, or the meeting ended and they are going; hang
    up the room's gateway legs. Comes once after each `RoomStarted`."""

    member_id: int  # the last person to leave, or the moderator who ended the meeting, or 0
    reason: str


RoomAction = (
    HangUp | MemberJoined | MuteChanged | PinRejected | DigitHeard | TalkingChanged
    | HandChanged | FloorGiven | RoomLockChanged | RecordingChanged | MeetingEnded
    | ReportStarted | ReportEnded | OperatorConnected | TransferToRoom | RoomStarted
    | RoomEmptied
)


# Slots: read by every tick, member by member (see `MemberMedia`); the fields every tick
# reads (`Room._expire`, `Room.finish_tick`) first, so that they share a cache line or two.
@dataclass(eq=False, slots=True)
class Member:
    """A member's state in the room; media buffers included."""

    member_id: int
    media: MemberMedia
    phase: Phase
    keypad: KeypadSequencer
    label: str
    joined_at: float
    prompts: PromptPlayer = field(default_factory=PromptPlayer)
    hang_up_reason: str | None = None  # set: hang up once the prompt queue is empty
    end_confirm_deadline: float | None = None  # "*4" pressed: the confirming key is due
    capture_until: float | None = None  # recording a name or report until then
    volume_steps: int = 0  # listening volume, VOLUME_STEP_DB each
    mute: MuteState = MuteState.FREE
    on_hold: bool = False  # held members' music on hold must not reach the room
    gateway: bool = False  # a leg to a video meeting, not a person (see `Room.add_member`)
    role: Role = Role.PARTICIPANT
    pin: PinEntry | None = None
    pin_deadline: float | None = None
    hang_up_at: float | None = None  # set when the last prompt ended: HANG_UP_DRAIN_S on
    last_press: tuple[str, str, float] | None = None  # (digit, source, time) of the last key
    hand_raised: bool = False
    admitted: int = 0  # order of entry into the room, for "remove the last who joined"
    operator_line: bool = False  # a hotline's operator number: the PIN is required
    vouched: bool = False  # brought by an operator: no PIN, no lock, no member limit
    capture_rate_hz: int = 0  # the rate a report started at (a re-INVITE may change codec)
    name: Clip | None = None  # their recorded name at the room's rate
    name_frames: list[Clip] = field(default_factory=list)
    partner: int | None = None  # hotline: the operator or caller they talk to
    queued_at: float = 0.0  # hotline: when they joined the queue (its order)

    @property
    def present(self) -> bool:
        """Past PIN entry and naming: in the room, or waiting in it."""
        return self.phase not in (Phase.PIN_ENTRY, Phase.NAMING)

    @property
    def leaving(self) -> bool:
        return self.hang_up_reason is not None


class Room:
    """A conference room driven by `tick(now)` every 20 ms."""

    def __init__(
        self, config: RoomConfig, prompts: PromptLibrary, *,
        wall_clock: Callable[[], datetime] | None = None,
        jitter_bank: JitterBank | None = None,
    ) -> None:
        """`wall_clock` (local time) decides a hotline's operator hours; without one
        the hours are not enforced. `jitter_bank`: the bank that the G.711 members' 8 kHz
        playout buffers join, shared by the rooms of one bridge so that a sweep's packets
        go in with one push for all of them (None: a bank of the room's own)."""
        if prompts.rate_hz != ROOM_RATE_HZ:
            raise ValueError(
                f"prompts are at {prompts.rate_hz} Hz, the room mixes at {ROOM_RATE_HZ}"
            )
        self.config = config
        self._prompts = prompts
        self._samples = frame_samples(ROOM_RATE_HZ, FRAME_MS)
        # The G.711 members' playout buffers, pushed and popped together.
        self._jitter_bank = jitter_bank if jitter_bank is not None else playout_bank()
        self._silence = np.zeros(self._samples, dtype=np.float32)
        self._members: dict[int, Member] = {}
        self._actions: list[RoomAction] = []
        self._encoder = RoomEncoder()
        self._echo = EchoWatch()
        self._tones: dict[str, Clip] = {
            "error": tones.error_tone(ROOM_RATE_HZ),
            "muted": tones.muted_tone(ROOM_RATE_HZ),
            "unmuted": tones.unmuted_tone(ROOM_RATE_HZ),
            "join": tones.join_chime(ROOM_RATE_HZ),
            "leave": tones.leave_chime(ROOM_RATE_HZ),
            "hand": tones.hand_raised_cue(ROOM_RATE_HZ),
        }
        self._keymaps = {
            role: keymap_for(config.keymap, moderator=role is Role.MODERATOR) for role in Role
        }
        self._hands: list[int] = []  # raised hands, first come first served
        self._locked = False
        self._recording = False
        self._recording_stopped = False  # by a moderator: `record: true` must not undo it
        self._recorded: list[NDArray[np.float32]] = []
        self._admissions = 0
        self._missing_prompts: set[str] = set()
        self._wall_clock = wall_clock
        self._captured: dict[int, list[Clip]] = {}  # hotline reports, by member
        self._started = False  # RoomStarted sent, RoomEmptied not yet

    # -- membership ---------------------------------------------------------------

    @property
    def needs_pin(self) -> bool:
        return self.config.pin is not None or self.config.moderator_pin is not None

    @property
    def locked(self) -> bool:
        return self._locked

    @property
    def recording(self) -> bool:
        return self._recording

    @property
    def raised_hands(self) -> list[int]:
        """Member ids with a raised hand, in the order they will get the floor."""
        return list(self._hands)

    @property
    def hotline(self) -> bool:
        return self.config.mode == "hotline"

    def add_member(
        self, member_id: int, label: str, codec_name: str, now: float,
        settings: EncoderSettings | None = None, *, operator: bool = False,
        vouched: bool = False, gateway: bool = False,
    ) -> None:
        """Take a new caller: straight in, or to PIN entry if the room has a PIN.

        `operator`: they dialled a hotline's operator number, whose PIN (the moderator
        PIN) they must type; a hotline's other callers are never asked for one.
        `vouched`: an operator brought them here, so no PIN either.

        `gateway`: a leg to a video meeting (plain RTP, or a SIP call we placed). The room
        hears it as one talker (voice detection, talker choice, AGC as for anyone) and it
        hears the room minus itself, in its own codec, but it is not a person:
        - It is in the room at once: no PIN, name or moderator to wait for (nor is it ever
          a moderator), through a lock and past `max_members`, and its joining and leaving
          are not announced. Prompts meant for one person never reach it; what it does
          hear is what the whole room hears: joins and leaves of people (chime or name),
          "recording started/stopped", "meeting ended", and "recording started" when it
          joins a room that records (the video meeting is recorded too).
        - It has no keypad: its digits (signalled or in-band) are ignored, though in-band
          tones are kept out of the mix as anyone's are. The room never mutes it (webinar,
          mute-all) and never hangs it up: the controller does, on `RoomEmptied`.
        - It is not counted: not in `present_count` (so not in the head count, nor for
          "you are the only participant"), not towards `max_members`, not removable with
          the "remove last" key. A room holding only gateways is empty: it is reset
          (unlocked, recording stopped) and `RoomEmptied` goes out. Gateways joining and
          leaving never cause `RoomStarted` or `RoomEmptied`.
        - No echo cancellation: a digital path has no acoustic echo.
        A hotline takes no gateway (ValueError).
        """
        if gateway and self.hotline:
            raise ValueError(f"room {self.config.id} is a hotline: it takes no gateway")
        member = Member(
            member_id=member_id,
            label=label,
            media=MemberMedia(codec_name, settings or EncoderSettings(),
                              jitter_bank=self._jitter_bank),
            # A person is at PIN entry until admitted, even without a PIN.
            phase=Phase.IN_ROOM if gateway else Phase.PIN_ENTRY,
            joined_at=now,
            keypad=KeypadSequencer(self._keymaps[Role.PARTICIPANT]),
            vouched=vouched,
            gateway=gateway,
        )
        member.media.set_echo_mode("off" if gateway else self.config.echo_cancellation)
        self._members[member_id] = member
        if gateway:
            self._actions.append(MemberJoined(member_id, member.role))
            if self._recording:
                self._play(member, "recording_started")
        elif operator and self.hotline:
            member.operator_line = True
            # The operators' PIN is the only way in: no empty entry as a participant.
            pin = self.config.moderator_pin
            member.pin = PinEntry(pin, pin)
            self._play(member, "enter_pin")
        elif self.needs_pin and not self.hotline and not vouched:
            member.pin = PinEntry(self.config.pin, self.config.moderator_pin)
            self._play(member, "enter_pin")
        else:
            self._admit(member, Role.PARTICIPANT, now)

    def remove_member(self, member_id: int) -> None:
        """Forget a member (their call has ended)."""
        member = self._members.pop(member_id, None)
        if member is None:
            return
        if member.hand_raised:
            self._lower_hand(member)
        if member.capture_until is not None and member.phase is Phase.REPORTING:
            rate = member.media.sample_rate_hz
            self._captured.setdefault(member.member_id, []).extend(
                frame if rate == member.capture_rate_hz
                else resample(frame, rate, member.capture_rate_hz)
                for frame in self._drain_playout(member)
            )
            self._end_report(member, "hang-up")
        if not member.present or member.gateway:
            return
        if self.hotline:
            self._hotline_member_left(member)
            return
        if not any(m.present and not m.gateway for m in self._members.values()):
            self._emptied(member_id, "the last person left")
            self._reset()  # the meeting is over: the next one starts unlocked
            return
        if not member.leaving:
            self._announce(member, "has_left", "leave")
        if (
            member.role is Role.MODERATOR
            and self.config.end_when_moderator_leaves
            and not self._moderator_present()
        ):
            self._end_meeting(0, "the last moderator left")

    def _emptied(self, member_id: int, reason: str) -> None:
        """Send `RoomEmptied`, once per `RoomStarted`."""
        if self._started:
            self._started = False
            self._actions.append(RoomEmptied(member_id, reason))

    def _reset(self) -> None:
        """Forget the meeting's state when the last member has left."""
        self._locked = False
        self._hands.clear()
        self._recording_stopped = False
        if self._recording:
            self._set_recording(0, recording=False, announce=False)

    def set_codec(
        self, member_id: int, codec_name: str, settings: EncoderSettings | None = None
    ) -> None:
        """Switch a member's codec or packet time after a new offer or an answer in an ACK;
        a member not in the room (not yet joined, or hung up by the room) is left alone."""
        member = self._members.get(member_id)
        if member is None:
            return
        settings = settings or member.media.settings
        if member.media.codec != codec_name.upper():
            # Their voice, level and echo setting do not change with the codec.
            talker, echo_mode = member.media.talker, member.media.echo_mode
            member.media = MemberMedia(codec_name, settings, jitter_bank=self._jitter_bank)
            member.media.talker = talker
            member.media.set_echo_mode(echo_mode)
        elif member.media.settings != settings:
            member.media.set_settings(settings)

    def set_send_settings(self, member_id: int, settings: EncoderSettings) -> None:
        """Change how a member's audio is encoded (the link got better or worse)."""
        member = self._members.get(member_id)
        if member is not None:
            member.media.set_settings(settings)

    def set_echo_mode(self, member_id: int, mode: EchoMode) -> None:
        """Override the room's echo cancellation for one member (auto, on or off)."""
        member = self._members.get(member_id)
        if member is not None:
            member.media.set_echo_mode(mode)

    def set_on_hold(self, member_id: int, on_hold: bool) -> None:
        """Keep a member out of the mix while their side holds the call."""
        member = self._members.get(member_id)
        if member is not None:
            member.on_hold = on_hold

    def member(self, member_id: int) -> Member:
        return self._members[member_id]

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._members

    @property
    def member_ids(self) -> list[int]:
        return list(self._members)

    @property
    def present_count(self) -> int:
        """People past PIN entry (in the room, or waiting in it for a moderator), not
        leaving; gateways are not people."""
        return sum(
            1 for m in self._members.values() if m.present and not m.leaving and not m.gateway
        )

    def pop_actions(self) -> list[RoomAction]:
        actions, self._actions = self._actions, []
        return actions

    def recording_failed(self, member_id: int) -> None:
        """The recording could not be started (disk, folder): it is off, and whoever
        asked for it hears an error tone."""
        self._recording = False
        self._recorded.clear()
        member = self._members.get(member_id)
        if member is not None:
            member.prompts.play(self._tones["error"])

    def pop_captured(self) -> dict[int, list[Clip]]:
        """What each reporting hotline caller said since the last call, at their rate."""
        captured, self._captured = self._captured, {}
        return captured

    def pop_recorded(self) -> list[NDArray[np.float32]]:
        """The room mix of every tick since the last call while recording, at 16 kHz."""
        frames, self._recorded = self._recorded, []
        return frames

    # -- input ----------------------------------------------------------------------

    def push_audio(
        self, member_id: int, timestamp: int, payload: bytes, *, lost_before: bool = False,
        late: bool = False, arrival_s: float | None = None,
    ) -> None:
        """Decode a member's RTP payload into their playout buffer. `lost_before`: the
        packet before it never came, so in-band FEC may rebuild it; `late`: it comes after
        a later one (see `MemberMedia.push`); `arrival_s`: when it was received, so the
        playout delay follows the link's jitter (None: as if on time)."""
        batch = PayloadBatch()
        self.queue_audio(batch, member_id, timestamp, payload, lost_before=lost_before,
                         late=late, arrival_s=arrival_s)
        batch.push()

    def queue_audio(
        self, batch: PayloadBatch, member_id: int, timestamp: int, payload: bytes, *,
        lost_before: bool, late: bool, arrival_s: float | None,
    ) -> None:
        """`push_audio` through `batch`: decoded and placed at `batch.push()`, together with
        the rest of the sweep's packets (`PayloadBatch`)."""
        member = self._members.get(member_id)
        if member is None or not payload:
            return
        batch.add(member.media, timestamp, payload, lost_before=lost_before, late=late,
                  arrival_s=arrival_s)

    def queue_frames(
        self, batch: PayloadBatch, member_ids: list[int], timestamps: list[int],
        payloads: NDArray[np.uint8], arrivals: list[float],
    ) -> None:
        """`queue_audio` for packets that each follow on from their member's last one, or
        come after a gap in a stream of a codec without state (`STATELESS_CODECS`:
        nothing to rebuild), none late; their payloads the rows of `payloads`."""
        members = self._members
        batch.add_frames([member.media if (member := members.get(member_id)) else None
                          for member_id in member_ids], timestamps, payloads, arrivals)

    def press(self, member_id: int, digit: str, now: float, source: str = "signalled") -> None:
        """A keypad digit from a member: signalled (RFC 4733 event, SIP INFO) or heard
        in-band. A press that arrives both ways counts once: the same digit from the other
        source within SAME_PRESS_S is the same press."""
        member = self._members.get(member_id)
        if member is None or member.leaving or member.gateway:
            return
        last = member.last_press
        if last is not None and last[0] == digit and last[1] != source and (
            now - last[2] < SAME_PRESS_S
        ):
            return  # the other half of a press already counted
        member.last_press = (digit, source, now)
        if member.phase is Phase.PIN_ENTRY:
            self._press_pin(member, digit, now)
            return
        if member.phase is Phase.NAMING:
            if digit == REPORT_END_KEY and member.capture_until is not None:
                self._finish_name(member)
            return
        if member.phase is Phase.REPORTING:
            if digit == REPORT_END_KEY and member.capture_until is not None:
                self._end_report(member, "hash")
            return
        if member.phase in (Phase.WAITING, Phase.QUEUED):
            member.prompts.stop()  # the answer to a key, not after 25 s of music
        if member.end_confirm_deadline is not None:
            member.end_confirm_deadline = None
            member.prompts.stop()
            if digit != END_CONFIRM_KEY:
                member.prompts.play(self._tones["error"])
            elif self.hotline:
                self._end_caller(member)
            else:
                self._end_meeting(member.member_id, "ended by a moderator")
            return
        result = member.keypad.press(digit, now)
        if isinstance(result, CommandEntered):
            self._run(member, result.command, now)
        elif isinstance(result, SequenceRejected):
            member.prompts.play(self._tones["error"])

    def _press_pin(self, member: Member, digit: str, now: float) -> None:
        assert member.pin is not None
        member.prompts.stop()  # barge-in: typing cuts the prompt short
        outcome = member.pin.press(digit)
        member.pin_deadline = now + PIN_INPUT_TIMEOUT_S
        if outcome is not None:
            self._judge_pin(member, outcome, now)

    def _judge_pin(self, member: Member, outcome: PinOutcome, now: float) -> None:
        assert member.pin is not None
        member.pin_deadline = None
        if outcome is PinOutcome.MODERATOR:
            self._admit(member, Role.MODERATOR, now)
        elif outcome is PinOutcome.PARTICIPANT:
            self._admit(member, Role.PARTICIPANT, now)
        elif outcome is PinOutcome.WRONG:
            self._actions.append(PinRejected(member.member_id, member.pin.attempts))
            self._play(member, "wrong_pin")
        else:
            self._actions.append(PinRejected(member.member_id, member.pin.attempts))
            self._play(member, "too_many_attempts")
            member.hang_up_reason = "wrong PIN"

    def _admit(self, member: Member, role: Role, now: float) -> None:
        """Let a member in, or turn them away (locked, full) with a prompt; a member
        turned away stays out of the room's audio until the call ends.

        Moderators always get in: a locked or full room must not keep out the people
        who run it.
        """
        member.pin = None
        member.pin_deadline = None
        if role is Role.PARTICIPANT and not member.vouched:
            refusal = "room_locked" if self._locked else None
            most = self.config.max_members
            if refusal is None and most is not None and self._admitted_count() >= most:
                refusal = "room_full"
            if refusal is not None:
                self._play(member, refusal)
                member.hang_up_reason = refusal.replace("_", " ")
                return
        member.role = role
        member.keypad.set_keymap(self._keymaps[role])
        self._admissions += 1
        member.admitted = self._admissions
        if self.hotline:
            self._admit_to_hotline(member, now)
            return
        if self.needs_pin:
            self._play(member, "moderator" if role is Role.MODERATOR else "welcome")
        if self.config.announce == "name":
            member.phase = Phase.NAMING  # "say your name after the tone, then #"
            self._play(member, "say_your_name")
            member.prompts.play(self._tones["unmuted"])
            return
        self._enter(member)

    def _enter(self, member: Member) -> None:
        """Bring an admitted (and named) member into the room, or into its waiting."""
        role = member.role
        first = self.present_count == 0  # `member` is not present yet
        waiting_for_moderator = (
            self.config.wait_for_moderator and role is Role.PARTICIPANT
            and not self._moderator_present()
        )
        member.phase = Phase.WAITING if waiting_for_moderator else Phase.IN_ROOM
        self._actions.append(MemberJoined(member.member_id, role))
        if waiting_for_moderator:
            self._play(member, "wait_for_moderator")
            return
        if self.config.mode == "webinar" and role is Role.PARTICIPANT:
            self._set_mute(member, MuteState.MODERATOR_MUTED)
            self._play(member, "listen_only")
        if role is Role.MODERATOR:
            self._start_meeting()
        if first:
            self._play(member, "alone")
        else:
            self._announce(member, "has_joined", "join")
        if self.config.record and not self._recording and not self._recording_stopped:
            self._set_recording(0, recording=True)
        elif self._recording:
            self._play(member, "recording_started")  # everyone who joins is told

    def _announce(self, member: Member, prompt: str, chime: str) -> None:
        """Tell the room of a join or leave: a chime, or the member's recorded name."""
        if self.config.announce == "none":
            return
        for other in self._listeners():
            if other is member:
                continue
            if self.config.announce == "name" and member.name is not None:
                other.prompts.play(member.name)
                self._play(other, prompt)
            else:
                other.prompts.play(self._tones[chime])

    def _finish_name(self, member: Member) -> None:
        """Keep what they said as their name, at a level the room hears well."""
        member.capture_until = None
        frames, member.name_frames = member.name_frames, []
        if frames:
            said = resample(np.concatenate(frames), member.media.sample_rate_hz, ROOM_RATE_HZ)
            peak = peak_dbfs(said)
            if peak > -60.0:  # silence stays silence: no name is announced then
                member.name = (said * np.float32(10 ** ((NAME_PEAK_DBFS - peak) / 20))).astype(
                    np.float32
                )
        member.phase = Phase.PIN_ENTRY  # not present until _enter
        self._enter(member)

    def _admitted_count(self) -> int:
        """People let in (those still recording their name too), not leaving."""
        return sum(
            1 for m in self._members.values()
            if (m.present or m.phase is Phase.NAMING) and not m.leaving and not m.gateway
        )

    def _start_meeting(self) -> None:
        """A moderator is here: let in whoever waited for one."""
        for waiting in self._members.values():
            if waiting.phase is not Phase.WAITING:
                continue
            waiting.phase = Phase.IN_ROOM
            waiting.prompts.stop()  # the hold music
            if self.config.mode == "webinar" and waiting.role is Role.PARTICIPANT:
                self._set_mute(waiting, MuteState.MODERATOR_MUTED)
                self._play(waiting, "listen_only")
            waiting.prompts.play(self._tones["join"])

    def _moderator_present(self) -> bool:
        return any(
            m.role is Role.MODERATOR and m.present and not m.leaving
            for m in self._members.values()
        )

    def _listeners(self) -> list[Member]:
        """Members who hear the room (told of joins, recording, a mute of everyone)."""
        return [m for m in self._members.values() if m.phase is Phase.IN_ROOM and not m.leaving]

    # -- keypad commands ----------------------------------------------------------------

    def _run(self, member: Member, command: KeypadCommand, now: float) -> None:
        if command is KeypadCommand.MUTE:
            self._toggle_self_mute(member)
        elif command is KeypadCommand.HAND and self.hotline:
            member.prompts.play(self._tones["error"])  # no hands here: the queue is the order
        elif command is KeypadCommand.HAND:
            if member.hand_raised:
                self._lower_hand(member)
                self._play(member, "hand_lowered")
            else:
                self._raise_hand(member)
        elif command is KeypadCommand.COUNT and self.hotline:
            self._say_waiting(member)
        elif command is KeypadCommand.COUNT:
            if self.present_count == 1:
                self._play(member, "alone")  # not "there are one participants"
            else:
                self._play(member, "there_are")
                self._say_number(member, self.present_count)
                self._play(member, "participants")
        elif command in (KeypadCommand.VOLUME_DOWN, KeypadCommand.VOLUME_UP):
            step = 1 if command is KeypadCommand.VOLUME_UP else -1
            volume = member.volume_steps + step
            if abs(volume) > VOLUME_MAX_STEPS:
                self._play(member, "volume_limit")
            else:
                member.volume_steps = volume
                self._play(member, "volume_up" if step > 0 else "volume_down")
        elif command is KeypadCommand.HELP:
            self._play(member, "help")
            if member.role is Role.MODERATOR:
                self._play(member, "help_moderator")
        elif member.role is not Role.MODERATOR:
            member.prompts.play(self._tones["error"])  # a remapped key: not theirs to use
        elif self.hotline:
            self._run_operator(member, command, now)
        else:
            self._run_moderator(member, command, now)

    def _run_moderator(self, member: Member, command: KeypadCommand, now: float) -> None:
        if command is KeypadCommand.MUTE_ALL:
            for other in self._participants():
                if other.mute is not MuteState.MODERATOR_MUTED:
                    self._set_mute(other, MuteState.MODERATOR_MUTED)
                    self._play(other, "moderator_mute_hand")  # "... press *9 ..."
            self._play(member, "all_muted")
        elif command is KeypadCommand.UNMUTE_ALL:
            # A member's own mute is their choice; only the moderators' mute is lifted.
            for other in self._participants():
                if other.mute is MuteState.MODERATOR_MUTED:
                    self._set_mute(other, MuteState.FREE)
                    self._play(other, "all_unmuted")
            self._play(member, "all_unmuted")
        elif command is KeypadCommand.FLOOR:
            self._give_floor(member)
        elif command is KeypadCommand.LOCK:
            self._locked = not self._locked
            self._actions.append(RoomLockChanged(member.member_id, self._locked))
            self._play(member, "locked" if self._locked else "unlocked")
        elif command is KeypadCommand.RECORD:
            self._recording_stopped = self._recording
            self._set_recording(member.member_id, recording=not self._recording)
        elif command is KeypadCommand.REMOVE_LAST:
            candidates = [m for m in self._participants() if m is not member]
            if not candidates:
                member.prompts.play(self._tones["error"])
                return
            last = max(candidates, key=lambda m: m.admitted)
            last.prompts.stop()
            self._play(last, "removed")
            last.hang_up_reason = "removed by a moderator"
            if last.hand_raised:
                self._lower_hand(last)
            self._play(member, "member_removed")
        elif command is KeypadCommand.END:
            self._play(member, "end_confirm")
            member.end_confirm_deadline = now + END_CONFIRM_S

    # -- the hotline ------------------------------------------------------------------

    def _admit_to_hotline(self, member: Member, now: float) -> None:
        """An operator comes on duty; a caller queues for one, or leaves a report."""
        self._actions.append(MemberJoined(member.member_id, member.role))
        if member.role is Role.MODERATOR:
            member.phase = Phase.IN_ROOM
            self._play(member, "moderator")
            self._say_waiting(member)
            return
        self._play(member, "hotline_welcome")
        self._route_caller(member, now)

    def _on_duty(self) -> bool:
        """An operator is here, within the configured hours (when there are any)."""
        hours = self.config.operator_hours
        if hours is not None and self._wall_clock is not None:
            if not hours.covers(self._wall_clock()):
                return False
        return any(m.role is Role.MODERATOR and m.phase is Phase.IN_ROOM and not m.leaving
                   for m in self._members.values())

    def _route_caller(self, member: Member, now: float) -> None:
        """Queue a caller for an operator, or, with nobody on duty, take their report."""
        member.partner = None
        if self._on_duty():
            member.phase = Phase.QUEUED
            member.queued_at = now
            return  # _expire announces the place, then plays music, and again
        member.phase = Phase.REPORTING
        self._play(member, "leave_report")
        member.prompts.play(self._tones["unmuted"])  # speak after the tone

    def _queue_first(self, caller: Member) -> None:
        """Put a caller whose talk with an operator was cut short ahead of everyone who
        waits, and tell them they wait again."""
        queue = self._queue()
        caller.phase = Phase.QUEUED
        caller.queued_at = queue[0].queued_at - 1.0 if queue else caller.joined_at
        caller.prompts.stop()
        self._play(caller, "in_queue")

    def _part(self, operator: Member, caller: Member | None) -> None:
        """An operator and their caller no longer talk to each other."""
        operator.partner = None
        if caller is not None:
            caller.partner = None
        self._actions.append(OperatorConnected(operator.member_id, 0))

    def _queue(self) -> list[Member]:
        return sorted(
            (m for m in self._members.values() if m.phase is Phase.QUEUED and not m.leaving),
            key=lambda m: m.queued_at,
        )

    def _say_waiting(self, operator: Member) -> None:
        waiting = len(self._queue())
        if not waiting:
            self._play(operator, "no_callers")
            return
        self._play(operator, "there_are")
        self._say_number(operator, waiting)
        self._play(operator, "callers_waiting")

    def _run_operator(self, operator: Member, command: KeypadCommand, now: float) -> None:
        """A hotline's operator keys: the moderator keys, with a hotline's meaning."""
        if command is KeypadCommand.FLOOR:  # take the next caller
            if operator.partner is not None:
                self._end_caller(operator)
            queue = self._queue()
            if not queue:
                self._play(operator, "no_callers")
                return
            taken = queue[0]
            taken.prompts.stop()
            taken.phase = Phase.WITH_OPERATOR
            taken.partner, operator.partner = operator.member_id, taken.member_id
            self._play(taken, "operator_connected")
            self._play(operator, "next_caller")
            self._actions.append(OperatorConnected(operator.member_id, taken.member_id))
            return
        caller = self._members.get(operator.partner) if operator.partner is not None else None
        if command is KeypadCommand.END and caller is not None:
            self._play(operator, "end_confirm")
            operator.end_confirm_deadline = now + END_CONFIRM_S
        elif command is KeypadCommand.REMOVE_LAST and caller is not None:  # send them back
            # To the front of the queue, even outside the hours: an operator is here.
            self._part(operator, caller)
            self._queue_first(caller)
            operator.prompts.play(self._tones["muted"])
        elif command is KeypadCommand.LOCK and caller is not None and self.config.transfer_room:
            self._part(operator, caller)
            self._actions.append(TransferToRoom(caller.member_id, self.config.transfer_room))
            operator.prompts.play(self._tones["unmuted"])
        else:
            operator.prompts.play(self._tones["error"])

    def _end_caller(self, operator: Member) -> None:
        """The operator is done with their caller: thank them and hang up."""
        caller = self._members.get(operator.partner) if operator.partner is not None else None
        self._part(operator, caller)
        if caller is None:
            return
        caller.prompts.stop()
        self._play(caller, "call_ended")
        caller.hang_up_reason = "call ended by the operator"
        operator.prompts.play(self._tones["muted"])

    @staticmethod
    def _drain_playout(member: Member) -> list[Clip]:
        """The frames still waiting in a member's playout buffer, as they would have been
        played (already said, only not yet heard)."""
        frames: list[Clip] = []
        jitter, count = member.media.jitter, member.media.frame_samples
        while jitter.buffered_ms >= FRAME_MS and len(frames) < REPORT_DRAIN_MAX_FRAMES:
            samples, has_audio = jitter.pop(count)
            frames.append(samples if has_audio else np.zeros(count, dtype=np.float32))
        return frames

    def _end_report(self, member: Member, ended_by: str) -> None:
        member.capture_until = None
        self._actions.append(ReportEnded(member.member_id, ended_by))
        if ended_by != "hang-up":
            member.prompts.stop()
            self._play(member, "report_saved")
            member.hang_up_reason = "report saved"

    def _hotline_member_left(self, member: Member) -> None:
        """An operator's caller goes back to the queue (or to a report); a caller's
        operator is free again."""
        partner = self._members.get(member.partner) if member.partner is not None else None
        if partner is not None and member.role is Role.MODERATOR:
            if self._on_duty():
                partner.partner = None
                self._queue_first(partner)
            else:
                self._route_caller(partner, partner.joined_at)
        elif partner is not None:
            self._part(partner, None)
            partner.prompts.play(self._tones["leave"])
        if member.role is Role.MODERATOR and not self._on_duty():
            for waiting in self._queue():  # nobody left to answer them
                waiting.prompts.stop()
                self._route_caller(waiting, waiting.queued_at)

    def _participants(self) -> list[Member]:
        """Present participants (not moderators, not gateways), not on their way out."""
        return [
            m for m in self._members.values()
            if m.present and not m.leaving and m.role is Role.PARTICIPANT and not m.gateway
        ]

    def _toggle_self_mute(self, member: Member) -> None:
        if member.mute is MuteState.MODERATOR_MUTED:
            # Only a moderator lifts this mute: the key raises their hand instead.
            self._play(member, "muted_by_moderator")
            if member.hand_raised:
                self._play(member, "hand_raised")
                self._say_number(member, self._hands.index(member.member_id) + 1)
            else:
                self._raise_hand(member)
            return
        muted = member.mute is MuteState.FREE
        self._set_mute(member, MuteState.SELF_MUTED if muted else MuteState.FREE)
        member.prompts.play(self._tones["muted" if muted else "unmuted"])
        self._play(member, "muted" if muted else "unmuted")

    def _set_mute(self, member: Member, state: MuteState) -> None:
        if member.mute is not state:
            member.mute = state
            self._actions.append(MuteChanged(member.member_id, state))

    def _raise_hand(self, member: Member) -> None:
        member.hand_raised = True
        self._hands.append(member.member_id)
        position = len(self._hands)
        self._actions.append(HandChanged(member.member_id, True, position))
        self._play(member, "hand_raised")
        self._say_number(member, position)
        for moderator in self._members.values():
            if moderator.role is Role.MODERATOR and moderator.present and moderator is not member:
                moderator.prompts.play(self._tones["hand"])
                self._play(moderator, "hand_raised_moderator")

    def _lower_hand(self, member: Member) -> None:
        member.hand_raised = False
        if member.member_id in self._hands:
            self._hands.remove(member.member_id)
        self._actions.append(HandChanged(member.member_id, False))

    def _give_floor(self, moderator: Member) -> None:
        """Unmute the first raised hand, tell them, and lower it."""
        while self._hands:
            chosen = self._members.get(self._hands[0])
            if chosen is None or chosen.leaving:
                self._hands.pop(0)
                continue
            self._lower_hand(chosen)
            self._set_mute(chosen, MuteState.FREE)
            chosen.prompts.stop()
            self._play(chosen, "floor_given")
            self._play(moderator, "floor_given_to")
            self._actions.append(FloorGiven(moderator.member_id, chosen.member_id))
            return
        self._play(moderator, "no_hands")

    def _set_recording(self, member_id: int, *, recording: bool, announce: bool = True) -> None:
        """Start or stop; frames mixed before a stop stay for `pop_recorded`."""
        self._recording = recording
        if recording:
            self._recorded.clear()
        self._actions.append(RecordingChanged(member_id, recording))
        if announce:
            for listener in self._listeners():
                self._play(listener, "recording_started" if recording else "recording_stopped")

    def _end_meeting(self, member_id: int, reason: str) -> None:
        """Tell everyone, then hang up every call once the prompt has played; gateways
        are told too, and left for the controller to hang up on `RoomEmptied`."""
        self._actions.append(MeetingEnded(member_id, reason))
        if self._recording:
            self._set_recording(member_id, recording=False, announce=False)
        for member in self._members.values():
            if member.leaving:
                continue
            member.prompts.stop()
            member.end_confirm_deadline = None
            self._play(member, "meeting_ended")
            if not member.gateway:
                member.hang_up_reason = f"meeting {reason}"
        self._emptied(member_id, f"meeting {reason}")

    def _say_number(self, member: Member, count: int) -> None:
        for name in spoken_number(count, self.config.language):
            self._play(member, name)

    def _play(self, member: Member, name: str) -> None:
        """Queue a prompt; a missing file is logged once and skipped, never fatal."""
        try:
            clip = self._prompts.get(self.config.language, name)
        except KeyError:
            if name not in self._missing_prompts:
                self._missing_prompts.add(name)
                log.warning("room=%s: no prompt %r for language %r; skipped",
                            self.config.id, name, self.config.language)
            return
        member.prompts.play(clip)

    # -- the 20 ms tick ---------------------------------------------------------------

    def _expire(self, now: float) -> None:
        in_room = Phase.IN_ROOM  # an enum member looked up once: 100 ns a time in 3.11
        for member in list(self._members.values()):
            if (member.phase is in_room and member.hang_up_reason is None
                    and member.end_confirm_deadline is None and member.capture_until is None
                    and member.keypad.next_deadline is None):
                continue  # in the room with nothing due: most members, every tick
            if member.hang_up_reason is not None:
                if member.prompts.playing:
                    continue
                if member.hang_up_at is None:
                    member.hang_up_at = now + HANG_UP_DRAIN_S
                elif now >= member.hang_up_at:
                    self._actions.append(HangUp(member.member_id, member.hang_up_reason))
                    self.remove_member(member.member_id)
                continue
            if member.phase is Phase.PIN_ENTRY and member.pin is not None:
                if member.pin_deadline is None and not member.prompts.playing:
                    member.pin_deadline = now + PIN_INPUT_TIMEOUT_S
                elif member.pin_deadline is not None and now >= member.pin_deadline:
                    self._judge_pin(member, member.pin.submit(), now)
                continue
            if member.end_confirm_deadline is not None and now >= member.end_confirm_deadline:
                member.end_confirm_deadline = None
                member.prompts.play(self._tones["error"])
            elif member.keypad.expire(now) is not None:
                member.prompts.play(self._tones["error"])
            if member.capture_until is not None and now >= member.capture_until:
                if member.phase is Phase.NAMING:
                    self._finish_name(member)
                else:
                    self._end_report(member, "limit")
            elif member.prompts.playing:
                continue
            elif member.phase is Phase.WAITING:
                self._play(member, "hold_music")  # again and again until a moderator comes
            elif member.phase is Phase.QUEUED:
                # Their place, then music, then their place again (it may have moved).
                self._play(member, "queue_position")
                self._say_number(member, self._queue().index(member) + 1)
                self._play(member, "in_queue")
                self._play(member, "hold_music")
            elif member.phase is Phase.NAMING and member.capture_until is None:
                member.capture_until = now + NAME_MAX_S  # the tone has played: speak now
            elif member.phase is Phase.REPORTING and member.capture_until is None:
                member.capture_until = now + self.config.report_max_s
                member.capture_rate_hz = member.media.sample_rate_hz
                self._actions.append(ReportStarted(member.member_id, member.capture_rate_hz))

    def tick(self, now: float) -> dict[int, OutgoingPacket]:
        """Mix one frame; return the packets due now, by member. (A bridge with many rooms
        runs `prepare_tick` for all, one `gather_rooms` over them, `finish_tick` for all,
        then one `RoomEncoder.encode_rooms`.)"""
        prepared = self.prepare_tick(now)
        if prepared is None:
            return {}
        gathered = gather_rooms([prepared.frames], TALKER_FLOOR_RMS)[0]
        return RoomEncoder.encode_rooms([self.finish_tick(now, prepared, gathered)])[0]

    def prepare_tick(self, now: float) -> PreparedTick | None:
        """This tick's timers, and the room's part of `gather_rooms`; None when nobody is
        left to mix."""
        self._expire(now)
        members = list(self._members.values())
        if not members:
            return None
        if not self._started and not self.hotline:
            self._start_if_anyone_in(members)
        # Enum members looked up once, not per member: 100 ns a time in Python 3.11.
        in_room, free = Phase.IN_ROOM, MuteState.FREE
        if self.hotline:
            # Operators and callers talk in pairs; every pair must be heard.
            eligible = np.array([
                m.partner is not None and m.mute is free and not m.on_hold for m in members
            ], dtype=np.bool_)
            max_talkers = len(members)
        else:
            eligible = np.array([
                m.phase is in_room and m.mute is free and not m.on_hold for m in members
            ], dtype=np.bool_)
            max_talkers = self.config.max_talkers
        capture = np.array([m.capture_until is not None for m in members], dtype=np.bool_)
        return PreparedTick(members, RoomFrames(
            [m.media for m in members], eligible, max_talkers, self._echo,
            voice_detection=self.config.voice_detection, agc=self.config.agc,
            capture=capture if capture.any() else None,
        ))

    def finish_tick(
        self, now: float, prepared: PreparedTick, gathered: GatheredFrames
    ) -> EncodeJob:
        """Act on what `gather_rooms` found in the room (keys, talkers, captures), mix, and
        say what each member hears, for `RoomEncoder.encode_rooms`."""
        members = prepared.members
        in_room = Phase.IN_ROOM
        for row, frame in gathered.captured:
            member = members[row]
            if member.phase is Phase.NAMING:
                member.name_frames.append(frame)
                continue
            if member.media.sample_rate_hz != member.capture_rate_hz:  # the codec changed
                frame = resample(frame, member.media.sample_rate_hz, member.capture_rate_hz)
            self._captured.setdefault(member.member_id, []).append(frame)
        self._actions.extend(
            TalkingChanged(members[row].member_id, talking)
            for row, talking in gathered.talker_changes
        )
        for row, digit in gathered.digits:
            if members[row].gateway:
                continue  # no keypad: the tone was only kept out of the mix
            self._actions.append(DigitHeard(members[row].member_id, digit))
            self.press(members[row].member_id, digit, now, source="in-band")
        if self.hotline:
            return self._hotline_tick(members, gathered.mixed)
        mix = self._mix(gathered.mixed)
        if self._recording:
            self._recorded.append(mix.total.copy())
        minus_row = {int(row): k for k, row in enumerate(mix.talkers)}
        heard: dict[int, tuple[str, NDArray[np.float32]]] = {}
        room_samples, silence, total = self._samples, self._silence, mix.total
        hears_room = ("room", total)  # most members': one tuple for them all
        for row, member in enumerate(members):
            prompt = member.prompts.read(room_samples)
            if member.phase is not in_room:
                base, kind = silence, "silence"
            elif row in minus_row:
                base, kind = mix.minus[minus_row[row]], "own"
            elif prompt is None and not member.volume_steps:
                heard[member.member_id] = hears_room
                continue
            else:
                base, kind = total, "room"
            if member.volume_steps and kind != "silence":
                gain = np.float32(10 ** (member.volume_steps * VOLUME_STEP_DB / 20))
                base, kind = limit(base * gain), "own"
            if prompt is not None:
                heard[member.member_id] = (
                    "own", prompt if kind == "silence" else limit(base + prompt)
                )
            else:
                heard[member.member_id] = (kind, base)
        return EncodeJob(
            self._encoder, {m.member_id: m.media for m in members}, heard, mix.total,
            self._lone_narrow_talker(mix, gathered),
        )

    def _start_if_anyone_in(self, members: list[Member]) -> None:
        """Send `RoomStarted` at the first tick that mixes a person. Checked at the tick,
        not at each entry: the room's audio starts there, and one check covers every way
        in (PIN, name, a moderator's arrival, a transfer)."""
        for member in members:
            if member.phase is Phase.IN_ROOM and not member.leaving and not member.gateway:
                self._started = True
                self._actions.append(RoomStarted(member.member_id))
                return

    def _mix(self, mixed: dict[int, Clip]) -> MixResult:
        """`mix_minus` of the members mixed, its talkers in the room's rows."""
        rows = sorted(mixed)
        frames = (np.stack([mixed[row] for row in rows]) if rows
                  else np.zeros((0, self._samples), np.float32))
        mix = mix_minus(frames, np.ones(len(rows), np.bool_))
        return MixResult(mix.total, np.array(rows, np.intp)[mix.talkers], mix.minus)

    @staticmethod
    def _lone_narrow_talker(mix: MixResult, gathered: GatheredFrames) -> Clip | None:
        """One narrowband talker, mixed as it is (the limiter left it alone): its own 8 kHz
        frame, for narrowband listeners. G.711 to G.711 then re-encodes the very samples
        the talker sent (after any levelling) rather than a filtered copy of them, whose
        requantizing noise costs 0.05-0.16 PESQ."""
        if mix.talkers.shape[0] != 1:
            return None
        row = int(mix.talkers[0])
        aligned = gathered.narrow_aligned.get(row)
        if aligned is None or not np.array_equal(gathered.mixed[row], mix.total):
            return None
        return aligned

    def _hotline_tick(self, members: list[Member], mixed: dict[int, Clip]) -> EncodeJob:
        """Each operator and caller hears the other, and their own prompts; nobody else."""
        rows = {m.member_id: row for row, m in enumerate(members)}
        heard: dict[int, tuple[str, NDArray[np.float32]]] = {}
        for member in members:
            partner_row = rows.get(member.partner) if member.partner is not None else None
            base = self._silence if partner_row is None else mixed.get(partner_row,
                                                                         self._silence)
            prompt = member.prompts.read(self._samples)
            heard[member.member_id] = ("own", base if prompt is None else limit(base + prompt))
        return EncodeJob(self._encoder, {m.member_id: m.media for m in members}, heard,
                         self._silence)
