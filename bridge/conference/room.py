"""One conference room: its members, what each hears, and what the keypad does.

Every 20 ms `tick(now)` reads one frame from each member's playout buffer into a
`(members, samples)` array at 16 kHz, picks the talkers, mixes once
(`dsp.mixer.mix_minus`) and hands what each member hears to `media.RoomEncoder`:
everyone who hears the plain room mix with the same codec, settings and ptime shares one
encode; talkers (who must not hear themselves) and members hearing a prompt get their own.

Members are integer ids chosen by the caller (the controller). The room never sends
anything itself: it returns payloads, and commands such as `HangUp` through
`pop_actions()`.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

import dsp.tones as tones
from bridge.conference.keypad import (
    DEFAULT_KEYMAP,
    CommandEntered,
    KeypadCommand,
    KeypadSequencer,
    SequenceRejected,
)
from bridge.conference.media import (
    FRAME_MS,
    ROOM_RATE_HZ,
    EchoWatch,
    MemberMedia,
    OutgoingPacket,
    RoomEncoder,
    gather_frames,
)
from bridge.conference.pin import PinEntry, PinOutcome
from bridge.conference.prompts import Clip, PromptLibrary, PromptPlayer
from bridge.config import EchoMode, RoomConfig
from dsp.codecs.base import EncoderSettings
from dsp.frame import frame_samples
from dsp.mixer import limit, mix_minus
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


class Phase(enum.Enum):
    PIN_ENTRY = "pin_entry"  # hears prompts only; not heard by the room
    IN_ROOM = "in_room"


class Role(enum.Enum):
    PARTICIPANT = "participant"
    MODERATOR = "moderator"


class MuteState(enum.Enum):
    FREE = "free"
    SELF_MUTED = "self_muted"
    MODERATOR_MUTED = "moderator_muted"  # only a moderator lifts it (issue #4)


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


RoomAction = HangUp | MemberJoined | MuteChanged | PinRejected | DigitHeard | TalkingChanged


@dataclass(eq=False)
class Member:
    """A member's state in the room; media buffers included."""

    member_id: int
    label: str
    media: MemberMedia
    phase: Phase
    joined_at: float
    role: Role = Role.PARTICIPANT
    mute: MuteState = MuteState.FREE
    prompts: PromptPlayer = field(default_factory=PromptPlayer)
    keypad: KeypadSequencer = field(default_factory=lambda: KeypadSequencer(DEFAULT_KEYMAP))
    pin: PinEntry | None = None
    pin_deadline: float | None = None
    hang_up_reason: str | None = None  # set: hang up once the prompt queue is empty
    hang_up_at: float | None = None  # set when the last prompt ended: HANG_UP_DRAIN_S on
    on_hold: bool = False  # held members' music on hold must not reach the room
    last_press: tuple[str, str, float] | None = None  # (digit, source, time) of the last key


class Room:
    """A conference room driven by `tick(now)` every 20 ms."""

    def __init__(self, config: RoomConfig, prompts: PromptLibrary) -> None:
        if prompts.rate_hz != ROOM_RATE_HZ:
            raise ValueError(
                f"prompts are at {prompts.rate_hz} Hz, the room mixes at {ROOM_RATE_HZ}"
            )
        self.config = config
        self._prompts = prompts
        self._samples = frame_samples(ROOM_RATE_HZ, FRAME_MS)
        self._silence = np.zeros(self._samples, dtype=np.float32)
        self._members: dict[int, Member] = {}
        self._actions: list[RoomAction] = []
        self._encoder = RoomEncoder()
        self._echo = EchoWatch()
        self._tones: dict[str, Clip] = {
            "error": tones.error_tone(ROOM_RATE_HZ),
            "muted": tones.muted_tone(ROOM_RATE_HZ),
            "unmuted": tones.unmuted_tone(ROOM_RATE_HZ),
        }

    # -- membership ---------------------------------------------------------------

    @property
    def needs_pin(self) -> bool:
        return self.config.pin is not None or self.config.moderator_pin is not None

    def add_member(
        self, member_id: int, label: str, codec_name: str, now: float,
        settings: EncoderSettings | None = None,
    ) -> None:
        """Take a new caller: straight in, or to PIN entry if the room has a PIN."""
        member = Member(
            member_id=member_id,
            label=label,
            media=MemberMedia(codec_name, settings or EncoderSettings()),
            phase=Phase.PIN_ENTRY if self.needs_pin else Phase.IN_ROOM,
            joined_at=now,
        )
        member.media.set_echo_mode(self.config.echo_cancellation)
        self._members[member_id] = member
        if member.phase is Phase.PIN_ENTRY:
            member.pin = PinEntry(self.config.pin, self.config.moderator_pin)
            self._play(member, "enter_pin")
        else:
            self._admit(member, Role.PARTICIPANT)

    def remove_member(self, member_id: int) -> None:
        """Forget a member (their call has ended)."""
        self._members.pop(member_id, None)

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
            member.media = MemberMedia(codec_name, settings)
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
        """Members past PIN entry."""
        return sum(1 for m in self._members.values() if m.phase is Phase.IN_ROOM)

    def pop_actions(self) -> list[RoomAction]:
        actions, self._actions = self._actions, []
        return actions

    # -- input ----------------------------------------------------------------------

    def push_audio(
        self, member_id: int, timestamp: int, payload: bytes, *, lost_before: bool = False,
        late: bool = False, arrival_s: float | None = None,
    ) -> None:
        """Decode a member's RTP payload into their playout buffer. `lost_before`: the
        packet before it never came, so in-band FEC may rebuild it; `late`: it comes after
        a later one (see `MemberMedia.push`); `arrival_s`: when it was received, so the
        playout delay follows the link's jitter (None: as if on time)."""
        member = self._members.get(member_id)
        if member is None or not payload:
            return
        member.media.push(timestamp, payload, lost_before=lost_before, late=late,
                          arrival_s=arrival_s)

    def press(self, member_id: int, digit: str, now: float, source: str = "signalled") -> None:
        """A keypad digit from a member: signalled (RFC 4733 event, SIP INFO) or heard
        in-band. A press that arrives both ways counts once: the same digit from the other
        source within SAME_PRESS_S is the same press."""
        member = self._members.get(member_id)
        if member is None or member.hang_up_reason is not None:
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
        result = member.keypad.press(digit, now)
        if isinstance(result, CommandEntered):
            self._run(member, result.command)
        elif isinstance(result, SequenceRejected):
            member.prompts.play(self._tones["error"])

    def _press_pin(self, member: Member, digit: str, now: float) -> None:
        assert member.pin is not None
        member.prompts.stop()  # barge-in: typing cuts the prompt short
        outcome = member.pin.press(digit)
        member.pin_deadline = now + PIN_INPUT_TIMEOUT_S
        if outcome is not None:
            self._judge_pin(member, outcome)

    def _judge_pin(self, member: Member, outcome: PinOutcome) -> None:
        assert member.pin is not None
        member.pin_deadline = None
        if outcome is PinOutcome.MODERATOR:
            self._admit(member, Role.MODERATOR)
        elif outcome is PinOutcome.PARTICIPANT:
            self._admit(member, Role.PARTICIPANT)
        elif outcome is PinOutcome.WRONG:
            self._actions.append(PinRejected(member.member_id, member.pin.attempts))
            self._play(member, "wrong_pin")
        else:
            self._actions.append(PinRejected(member.member_id, member.pin.attempts))
            self._play(member, "too_many_attempts")
            member.hang_up_reason = "wrong PIN"

    def _admit(self, member: Member, role: Role) -> None:
        member.phase = Phase.IN_ROOM
        member.role = role
        member.pin = None
        member.pin_deadline = None
        if self.needs_pin:
            self._play(member, "moderator" if role is Role.MODERATOR else "welcome")
        if self.present_count == 1:
            self._play(member, "alone")
        self._actions.append(MemberJoined(member.member_id, role))

    def _run(self, member: Member, command: KeypadCommand) -> None:
        if command is KeypadCommand.TOGGLE_MUTE:
            if member.mute is MuteState.MODERATOR_MUTED:
                # Only a moderator lifts a moderator mute; the hand queue comes with #4.
                self._play(member, "muted")
                return
            member.mute = MuteState.FREE if member.mute is MuteState.SELF_MUTED else (
                MuteState.SELF_MUTED
            )
            muted = member.mute is MuteState.SELF_MUTED
            member.prompts.play(self._tones["muted" if muted else "unmuted"])
            self._play(member, "muted" if muted else "unmuted")
            self._actions.append(MuteChanged(member.member_id, member.mute))

    def _play(self, member: Member, name: str) -> None:
        member.prompts.play(self._prompts.get(self.config.language, name))

    # -- the 20 ms tick ---------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest keypad, PIN or hang-up deadline (ticks run every 20 ms anyway)."""
        deadlines = [
            d
            for m in self._members.values()
            for d in (m.keypad.next_deadline, m.pin_deadline, m.hang_up_at)
            if d is not None
        ]
        return min(deadlines, default=None)

    def _expire(self, now: float) -> None:
        for member in list(self._members.values()):
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
                    self._judge_pin(member, member.pin.submit())
            elif member.keypad.expire(now) is not None:
                member.prompts.play(self._tones["error"])

    def tick(self, now: float) -> dict[int, OutgoingPacket]:
        """Mix one frame; return the packets due now, by member."""
        self._expire(now)
        members = list(self._members.values())
        if not members:
            return {}
        eligible = np.array([
            m.phase is Phase.IN_ROOM and m.mute is MuteState.FREE and not m.on_hold
            for m in members
        ], dtype=np.bool_)
        gathered = gather_frames(
            [m.media for m in members], eligible, TALKER_FLOOR_RMS,
            max_talkers=self.config.max_talkers,
            voice_detection=self.config.voice_detection, agc=self.config.agc, echo=self._echo,
        )
        self._actions.extend(
            TalkingChanged(members[row].member_id, talking)
            for row, talking in gathered.talker_changes
        )
        for row, digit in gathered.digits:
            self._actions.append(DigitHeard(members[row].member_id, digit))
            self.press(members[row].member_id, digit, now, source="in-band")
        mix = mix_minus(gathered.frames, gathered.talking)
        minus_row = {int(row): k for k, row in enumerate(mix.talkers)}
        heard: dict[int, tuple[str, NDArray[np.float32]]] = {}
        for row, member in enumerate(members):
            prompt = member.prompts.read(self._samples)
            if member.phase is Phase.PIN_ENTRY:
                base, kind = self._silence, "silence"
            elif row in minus_row:
                base, kind = mix.minus[minus_row[row]], "own"
            else:
                base, kind = mix.total, "room"
            if prompt is not None:
                heard[member.member_id] = (
                    "own", prompt if kind == "silence" else limit(base + prompt)
                )
            else:
                heard[member.member_id] = (kind, base)
        return self._encoder.encode(
            {m.member_id: m.media for m in members}, heard, mix.total
        )
