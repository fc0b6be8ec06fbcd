"""A room's media at 16 kHz: members' decoders and playout, and packets out by codec and ptime.

The room mixes wideband (16 kHz, 320 samples per 20 ms tick). Narrowband members (G.711)
are decoded at 8 kHz, and their talkers' frames are upsampled in one vectorized call per
tick; what they hear is downsampled the same way. Each member keeps the filter history of
its own streams, so frame edges are seamless.

Out, every member collects one frame per tick and sends a packet when its ptime (20, 40
or 60 ms) is full; packet edges fall on the same ticks for everyone with the same ptime,
so members with the same codec, encoder settings and mix (the plain room mix, or
silence) share one encode. Talkers, and members hearing a prompt, get their own.

Stateful codecs (G.722, Opus) keep one encoder per shared group and one per member for
its own mix. A member moving between the two switches encoder state mid-stream, as
Asterisk's softmix does when a listener starts talking: the far decoder hears a small
step at that packet, not a gap. A talker stays on its own encoder for two seconds after
its last word, so the step comes once per talk spurt rather than at every pause.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

from bridge.config import EchoMode
from dsp.agc import level_talkers
from dsp.codecs import codec_rates, get_codec, new_decoder, new_encoder
from dsp.codecs.base import EncoderSettings, StreamEncoder
from dsp.dtmf import QUIET_FRAME_DBFS, detect_dtmf, dtmf_states
from dsp.echo import (
    DETECTOR_STATE_SIZE,
    EchoCanceller,
    echo_detector_state,
    update_echo_detectors,
)
from dsp.frame import frame_samples
from dsp.jitter import JitterBank, JitterBuffer
from dsp.resample import (
    downsample_16k_to_8k,
    downsampler_state,
    upsample_8k_to_16k,
    upsampler_state,
)
from dsp.vad import (
    ENERGY_FLOOR_DBFS,
    TalkerState,
    age_silent,
    choose_talkers,
    detect_voice,
    note_quiet_frames,
)

log = logging.getLogger(__name__)

ROOM_RATE_HZ = 16_000
NARROWBAND_RATE_HZ = 8_000
FRAME_MS = 20
# Codecs without state: the vectorized FrameCodec path codes many members' frames at once,
# and a packet after a gap needs nothing rebuilt (no FEC, no decoder to keep in step).
STATELESS_CODECS = ("PCMU", "PCMA")
# After a member stops talking, what it hears stays on its own stateful encoder this long
# (ticks) before it moves back to the shared one: each move is a step in encoder state
# its decoder hears, and speech pauses between words are shorter than this.
OWN_ENCODER_HOLD_TICKS = 100
# A shared stateful encoder nobody has used for this long is dropped.
_SHARED_ENCODER_IDLE_TICKS = 50
# A room's echo detectors are checked in groups of this many members, each group in its
# own tick of the 25 (`EchoWatch`), however they joined. A check call costs 50-250 us of
# numpy overhead plus 4-15 us a member (`dsp.echo`): one call for a whole small room (and
# for the groups of all rooms due in the same tick), not one per member (people dial in at
# different ticks: 20 rooms of 10 who joined one by one made 2,628 calls in a 12 s run,
# then 276); in a big room 40 at a time (0.2-0.65 ms), not 200 who joined together in one
# tick (2.9 ms).
_ECHO_CHECK_GROUP = 40

Samples = NDArray[np.float32]
_Value = TypeVar("_Value")
_NO_FRAME: Samples = np.zeros(0, np.float32)  # a place in a list being filled


class OutgoingPacket(NamedTuple):
    """What a member is sent this tick: a payload, or None when the codec chose to stay
    silent (Opus DTX); either way the RTP clock moves on by `timestamp_step`. (A named
    tuple: one is made for every member every tick, at half a dataclass's cost.)"""

    payload: bytes | None
    timestamp_step: int


class _SharingKey(tuple[str, EncoderSettings]):
    """(codec, settings) with its hash computed once, and one object per distinct value
    (see `_sharing_key`): it is looked up for every member on every packet, and hashing
    and comparing a dataclass field by field each time costs more than the encode."""

    _hash: int

    def __new__(cls, codec: str, settings: EncoderSettings) -> _SharingKey:
        key = super().__new__(cls, (codec, settings))
        key._hash = tuple.__hash__(key)
        return key

    def __hash__(self) -> int:
        return self._hash


_SHARING_KEYS: dict[tuple[str, EncoderSettings], _SharingKey] = {}


def _sharing_key(codec: str, settings: EncoderSettings) -> _SharingKey:
    """The one key object for this codec and settings (a handful exist per process)."""
    key = _SharingKey(codec, settings)
    return _SHARING_KEYS.setdefault(key, key)


class MemberMedia:
    """One member's codec state: decoder and playout in, frames waiting for a packet out."""

    # Slots, those every tick reads first: the tick reads members in loops over hundreds
    # of them, and a slot lies in the object, not in a values array of its own (fewer
    # cache lines per member and pass once the tick's memory has gone cold).
    __slots__ = ("talker", "sent_frame", "echo_mode", "echo", "dtmf_state", "up_state",
                 "sample_rate_hz", "jitter", "jitter_bank", "codec", "pending", "share_key",
                 "frames_per_packet", "stateless", "own_encoder", "own_hold_ticks",
                 "down_state", "echo_restart", "narrowband", "frame_samples", "clock_rate_hz",
                 "clock_frame", "decoder", "settings", "bad_payloads", "late_dropped")

    def __init__(
        self, codec: str, settings: EncoderSettings, *, jitter_bank: JitterBank | None = None
    ) -> None:
        """`jitter_bank`: the bank of narrowband playout buffers (one for all rooms),
        which a G.711 member's buffer joins (pushed and popped with the others:
        `PayloadBatch`, `gather_rooms`)."""
        self.codec = codec.upper()
        self.sample_rate_hz, self.clock_rate_hz = codec_rates(self.codec)
        self.narrowband = self.sample_rate_hz == NARROWBAND_RATE_HZ
        self.frame_samples = frame_samples(self.sample_rate_hz, FRAME_MS)
        self.decoder = new_decoder(self.codec)
        # Opus conceals a loss itself, from its decoder state (see `push`).
        self.jitter = JitterBuffer(self.sample_rate_hz, clock_rate_hz=self.clock_rate_hz,
                                   conceal=not self.decoder.conceals)
        self.clock_frame = frame_samples(self.clock_rate_hz, FRAME_MS)  # RTP ticks per frame
        self.jitter_bank: JitterBank | None = None
        if jitter_bank is not None and self.codec in STATELESS_CODECS:
            jitter_bank.add(self.jitter)
            self.jitter_bank = jitter_bank
        self.own_encoder: StreamEncoder | None = None
        # G.711: encoded by table, no encoder state, so any packet can be shared.
        self.stateless = self.codec in STATELESS_CODECS
        self.set_settings(settings)  # settings, share_key, frames_per_packet
        self.own_hold_ticks = 0  # see OWN_ENCODER_HOLD_TICKS
        self.bad_payloads = 0
        self.late_dropped = 0
        self.pending: list[tuple[str, Samples]] = []  # (kind, frame at the member's rate)
        # Filter history of the upsampler (what they say; None: zeros) and of the
        # downsampler of their own mix (what they hear when it is not the shared one;
        # None: the room mix's history, which is what they heard last).
        self.up_state: NDArray[np.float32] | None = None
        self.dtmf_state: NDArray[np.float32] | None = None  # in-band keypad detector; None: fresh
        self.down_state: NDArray[np.float32] | None = downsampler_state()
        self.talker = TalkerState()  # voice detection, talker selection and AGC
        # Echo: the frame sent this tick at the member's rate (the canceller's reference),
        # and the canceller, while one runs.
        self.sent_frame: Samples | None = None
        self.echo_restart = False  # the echo detector starts over (see `EchoWatch`)
        self.echo: EchoCanceller | None = None
        self.echo_mode: EchoMode = "auto"

    def push(
        self, timestamp: int, payload: bytes, *, lost_before: bool, late: bool,
        arrival_s: float | None = None,
    ) -> None:
        """Decode a payload into the playout buffer; on a loss just before it, rebuild
        the missing audio from the packet's in-band FEC where the codec has it.
        `arrival_s` (when it was received, seconds) lets the buffer follow the link's jitter.
        (G.711, decoded in bulk by `PayloadBatch`, goes to the buffer directly: it has no
        FEC or concealment of its own and no state.)

        A late packet (after a later one) is dropped for stateful codecs: decoding it out of
        order would throw the G.722 predictors or the Opus decoder off for the packets
        after it, and its slot may already hold the FEC rebuild.
        """
        if late and self.codec not in STATELESS_CODECS:
            self.late_dropped += 1
            return
        try:
            if lost_before:
                # FEC holds the previous packet only (at most 60 ms), in whole 2.5 ms steps
                # (RFC 6716 §2.1.4); the rest of a longer gap plays as silence.
                granule = self.sample_rate_hz // 400
                gap = min(self.jitter.gap_before(timestamp), 3 * self.frame_samples)
                gap -= gap % granule
                recovered = self.decoder.recover(payload, gap) if gap else None
                if recovered is None and gap:
                    # No FEC in this packet: the codec's own concealment (Opus PLC), which
                    # also keeps its decoder state continuous for the packet after it.
                    recovered = self.decoder.conceal(gap)
                if recovered is not None:
                    self.jitter.push_before(timestamp, recovered)
            decoded = self.decoder.decode(payload)
        except ValueError:
            self.bad_payloads += 1  # a corrupt packet is dropped, the stream goes on
            return
        self.jitter.push(timestamp, decoded, arrival_s)

    def set_echo_mode(self, mode: EchoMode) -> None:
        """auto: a canceller while the line shows echo; on: always one; off: never."""
        self.echo_mode = mode
        self.echo_restart = True
        if mode == "on" and self.echo is None:
            self.echo = EchoCanceller(self.sample_rate_hz, self.frame_samples)
        elif mode == "off":
            self.echo = None

    def set_settings(self, settings: EncoderSettings) -> None:
        self.settings: EncoderSettings = settings
        self.share_key = _sharing_key(self.codec, settings)
        self.frames_per_packet = settings.ptime_ms // FRAME_MS
        if self.own_encoder is not None:
            self.own_encoder.configure(settings)

    def own_encode(self, frame: Samples) -> bytes | None:
        if self.own_encoder is None:
            self.own_encoder = new_encoder(self.codec, self.settings)
        return self.own_encoder.encode(frame)


# A payload to place: (member, RTP timestamp, payload, lost just before, late, arrival)
_Payload = tuple[MemberMedia, int, bytes, bool, bool, float | None]


# What `PayloadBatch.add_frames` is given: members (None: skip), RTP timestamps,
# G.711 payloads as rows, arrival times.
_FramesBlock = tuple[list[MemberMedia | None], list[int], NDArray[np.uint8], list[float]]


def playout_bank() -> JitterBank:
    """A bank for the playout buffers of G.711 members (8 kHz, 20 ms frames): one per
    bridge, shared by its rooms, so that a sweep's packets go in with one push."""
    return JitterBank(NARROWBAND_RATE_HZ, frame_samples(NARROWBAND_RATE_HZ, FRAME_MS))


class PayloadBatch:
    """The audio payloads of one sweep of the sockets, decoded together before they go
    into the playout buffers, in the order they came.

    G.711 is a table lookup: the payloads of every member on the same law are joined and
    looked up in one call, where two numpy calls per packet (wrapping the bytes, the
    lookup) cost more than the lookup itself. Other codecs keep decoder state and decode
    packet by packet.
    """

    def __init__(self) -> None:
        self._items: list[_Payload] = []
        # (members, RTP timestamps, payloads as rows, arrival times) from `add_frames`
        self._frames: list[_FramesBlock] = []

    def add(
        self, media: MemberMedia, timestamp: int, payload: bytes, *, lost_before: bool,
        late: bool, arrival_s: float | None,
    ) -> None:
        self._items.append((media, timestamp, payload, lost_before, late, arrival_s))

    def add_frames(
        self, medias: list[MemberMedia | None], timestamps: list[int],
        payloads: NDArray[np.uint8], arrivals: list[float],
    ) -> None:
        """`add` for packets not late, each following on from its member's last one or,
        in a `STATELESS_CODECS` stream, after a gap (nothing to rebuild before it), their
        payloads the rows of `payloads`; a member of None is skipped. They are placed
        before the packets given to `add`, so a member here must have none there that came
        before."""
        self._frames.append((medias, timestamps, payloads, arrivals))

    def push(self) -> None:
        """Decode and place every payload added since the last push. A packet that fails
        is logged and dropped; the others are placed all the same. G.711 frames of
        members in a `JitterBank` go in together (`JitterBank.push_many`), each member's
        packets still in the order they came."""
        frames, self._frames = self._frames, []
        items: list[_Payload] = []
        for block in _joined(frames):
            items.extend(_push_frames(*block))
        items.extend(self._items)
        self._items = []
        decoded = _decode_g711(items)
        banked: dict[JitterBank, _BankedPackets] = {}
        waiting: set[MemberMedia] = set()  # members with packets in `banked`
        for (media, timestamp, payload, lost_before, late, arrival_s), samples in zip(
            items, decoded, strict=True
        ):
            bank = media.jitter_bank
            if (bank is not None and samples is not None and arrival_s is not None
                    and samples.shape[0] == bank.frame_samples):
                banked.setdefault(bank, _BankedPackets()).add(
                    media.jitter, timestamp, samples, arrival_s)
                waiting.add(media)
                continue
            if media in waiting:  # its earlier packets go first
                _push_banked(banked)
                banked, waiting = {}, set()
            try:
                if samples is not None:  # G.711: nothing more to do than place it
                    media.jitter.push(timestamp, samples, arrival_s)
                else:
                    media.push(timestamp, payload, lost_before=lost_before, late=late,
                               arrival_s=arrival_s)
            except Exception:  # noqa: BLE001 - one packet's fault must not cost the others
                log.exception("rtp: a %s packet (timestamp %d) dropped", media.codec, timestamp)
        _push_banked(banked)


def _joined(blocks: list[_FramesBlock]) -> list[_FramesBlock]:
    """`add_frames` blocks of the same payload size as one, in the order they came: the
    sweep's packets of every room (rooms share a playout bank) decoded and pushed once."""
    if len(blocks) < 2:
        return blocks
    by_size: dict[int, list[_FramesBlock]] = {}
    for block in blocks:
        by_size.setdefault(block[2].shape[1], []).append(block)
    return [
        ([media for block in same for media in block[0]],
         [stamp for block in same for stamp in block[1]],
         np.concatenate([block[2] for block in same]),
         [arrival for block in same for arrival in block[3]])
        if len(same) > 1 else same[0]
        for same in by_size.values()
    ]


@dataclass(slots=True)
class _BankedPackets:
    """A sweep's frames for one `JitterBank`, in the order they came."""

    buffers: list[JitterBuffer] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    frames: list[Samples] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    def add(self, buffer: JitterBuffer, timestamp: int, frame: Samples, arrival_s: float) -> None:
        self.buffers.append(buffer)
        self.timestamps.append(timestamp)
        self.frames.append(frame)
        self.arrivals.append(arrival_s)


def _push_frames(
    medias: list[MemberMedia | None], timestamps: list[int], payloads: NDArray[np.uint8],
    arrivals: list[float],
) -> list[_Payload]:
    """`PayloadBatch.add_frames`' packets of members in a `JitterBank` decoded and placed,
    one lookup and one `push_many` per bank and law; the others returned to be placed
    as `PayloadBatch.add` packets."""
    groups: dict[tuple[JitterBank, str], list[int]] = {}
    others: list[_Payload] = []
    # Most sweeps of a big room: every member on one bank and law, found in two list
    # comprehensions rather than a grouping loop per packet.
    bank = _shared([media.jitter_bank if media is not None else None for media in medias])
    law = _shared([media.codec if media is not None else None for media in medias])
    if bank is not None and law is not None and payloads.shape[1] == bank.frame_samples:
        groups[(bank, law)] = list(range(len(medias)))
    else:
        for k, media in enumerate(medias):
            if media is None:
                continue
            bank = media.jitter_bank
            if bank is None or payloads.shape[1] != bank.frame_samples:
                others.append((media, timestamps[k], payloads[k].tobytes(), False, False,
                               arrivals[k]))
                continue
            key = (bank, media.codec)
            rows = groups.get(key)
            if rows is None:
                groups[key] = [k]
            else:
                rows.append(k)
    for (bank, law), rows in groups.items():
        every = len(rows) == len(medias)
        buffers = [media.jitter for k in rows if (media := medias[k]) is not None]
        try:
            bank.push_many(
                buffers, timestamps if every else [timestamps[k] for k in rows],
                get_codec(law).decode_many(payloads if every else payloads[rows]),
                arrivals if every else [arrivals[k] for k in rows])
        except Exception:  # noqa: BLE001 - the media clock must go on for every room
            log.exception("rtp: %d G.711 packets dropped", len(rows))
    return others


def _push_banked(banked: dict[JitterBank, _BankedPackets]) -> None:
    for bank, packets in banked.items():
        try:
            bank.push_many(packets.buffers, packets.timestamps, _rows(packets.frames),
                           packets.arrivals)
        except Exception:  # noqa: BLE001 - the media clock must go on for every room
            log.exception("rtp: %d G.711 packets dropped", len(packets.buffers))


def _decode_g711(items: list[_Payload]) -> list[Samples | None]:
    """The G.711 payloads among `items` decoded, one lookup per law; None for the rest."""
    by_law: dict[str, list[int]] = {}
    for k, item in enumerate(items):
        if item[0].codec in STATELESS_CODECS:
            by_law.setdefault(item[0].codec, []).append(k)
    decoded: list[Samples | None] = [None] * len(items)
    for law, indices in by_law.items():
        payloads = [items[k][2] for k in indices]
        samples = get_codec(law).decode(b"".join(payloads))
        offset = 0
        for k, payload in zip(indices, payloads, strict=True):
            decoded[k] = samples[offset : offset + len(payload)]
            offset += len(payload)
    return decoded


@dataclass(frozen=True, slots=True)
class GatheredFrames:
    """One tick's input: who is mixed and their frames at 16 kHz, keypad digits, talker
    changes."""

    # row -> (320,) float32 frame of each member mixed this tick (a selected talker with
    # audio); the others, most of a big room, have no frame here rather than a row of
    # zeros in a (members, 320) array that a tick would clear and carry for nothing.
    mixed: dict[int, Samples]
    digits: list[tuple[int, str]]  # (row, digit) heard in-band
    talker_changes: list[tuple[int, bool]]  # (row, now a talker) where selection changed
    # (row, frame at the member's own rate, echo removed, before levelling) of the rows
    # asked for with `capture`: what a member says for a report or their name, whether
    # or not the room hears them.
    captured: list[tuple[int, Samples]] = field(default_factory=list)
    # row -> the narrowband talker's 8 kHz frame, levelled and delayed by exactly the
    # 8 -> 16 -> 8 kHz round trip: what a narrowband listener would get from it through
    # the room, without the round trip's filtering and the G.711 requantizing it causes.
    narrow_aligned: dict[int, Samples] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoomFrames:
    """One room's part of a tick's `gather_rooms`: its members (rows, in order) and how
    its talkers are found."""

    media: list[MemberMedia]
    eligible: NDArray[np.bool_]  # (members,) in the room, not muted, not on hold
    max_talkers: int
    echo: EchoWatch  # the room's, kept from tick to tick
    voice_detection: bool = True
    agc: bool = True
    capture: NDArray[np.bool_] | None = None  # (members,) rows whose frame comes back too


def gather_rooms(rooms: list[RoomFrames], floor_rms: float) -> list[GatheredFrames]:
    """Read one frame from every member's playout buffer, find keypad tones and talkers,
    and return, room by room, the frames of the chosen talkers at 16 kHz.

    Lines quieter than `floor_rms` (digital silence, idle phones, DTX) cost nothing beyond
    the read. Every line loud enough to carry a key press (`dsp.dtmf.QUIET_FRAME_DBFS`:
    not line noise), and the frame after it, is searched for DTMF in one call per sample
    rate, members at the PIN prompt included, and frames carrying a tone stay out of the
    mix (the first ~20 ms of a tone, before the detector is sure, still gets through).
    Eligible lines (in the room, not muted, not on hold) go through voice detection
    (`dsp.vad`; in a room without `voice_detection`, every audible line counts as speech),
    then each room's loudest `max_talkers` voiced members are chosen, and their frames are
    levelled (`dsp.agc`, where the room has it) and, when narrowband, upsampled. A member
    who goes quiet has its filter and detector history cleared, so its next sound starts
    clean. Rows set in a room's `capture` also get their frame back as heard from the line
    (`GatheredFrames.captured`).

    Every stage runs once for all rooms' members (one call per rate, and per setting where
    rooms differ): a stage's numpy calls cost the same for two members as for two
    hundred, and a bridge runs many small meetings at once. Only the choice of talkers is
    room by room; each member's state is its own, so a room hears what it would alone.
    """
    if not rooms:
        return []
    media = [member for room in rooms for member in room.media]
    offsets = [0]
    for room in rooms:
        offsets.append(offsets[-1] + len(room.media))
    count = len(media)
    mixed: dict[int, Samples] = {}
    # Python lists: read row by row below, where a numpy scalar read costs ten times more.
    is_eligible: list[bool] = np.concatenate([room.eligible for room in rooms]).tolist()
    is_captured: list[bool] = (
        np.concatenate([room.capture if room.capture is not None
                        else np.zeros(len(room.media), np.bool_) for room in rooms]).tolist()
        if any(room.capture is not None for room in rooms) else [False] * count
    )
    changes: list[tuple[int, bool]] = []
    popped, has_audio, energies = _pop_frames(media)
    floor_energy = floor_rms * floor_rms
    keypad_energy = 10 ** (QUIET_FRAME_DBFS / 10)  # mean square under which no press starts
    # sample rate -> rows; defaultdicts: no empty list made and dropped per row
    audible: defaultdict[int, list[int]] = defaultdict(list)
    # sample rate -> (row, frame) of the lines whose keypad detector runs: those loud
    # enough to start a press, and the frame after each (`dsp.dtmf.QUIET_FRAME_DBFS`)
    keyed: defaultdict[int, list[tuple[int, Samples]]] = defaultdict(list)
    faint: list[bool] = [True] * count  # too quiet to start a press
    quiet: list[TalkerState] = []  # no frame to judge this tick
    below_gate: list[TalkerState] = []  # a frame under the floor: the line's noise is low
    captured: list[tuple[int, Samples]] = []
    tails: list[tuple[int, Samples]] = []  # (row, frame) of talkers quiet this tick
    # An audible row's frame is `popped[row]` unless its canceller made another one (here):
    # a row's view of `stacked` is made only where the frame itself is read, not for the
    # hundreds of lines that only go through voice detection by row number.
    cancelled: dict[int, Samples] = {}
    # The echo watches' inputs, all rooms' in row order (split by room below).
    watched_rows: list[int] = []
    watched_mic: list[float] = []
    watched_references: list[Samples | None] = []
    # Most ticks: every frame one row of an array, as long as the others. A row's view is
    # then made only where a frame is kept (a few hundred fewer objects a tick), and the
    # rows of frames as they came are later taken from the array in one call.
    stacked = popped if isinstance(popped, np.ndarray) else None
    length = stacked.shape[1] if stacked is not None else 0
    as_popped = stacked is not None  # every frame kept so far is its row of `stacked`
    for row, (member, heard, energy) in enumerate(
        zip(media, has_audio, energies, strict=True)
    ):
        size = length or popped[row].shape[0]
        talker = member.talker
        if talker.selected and not is_eligible[row]:
            talker.selected = False  # muted, on hold: the slot goes at once
            changes.append((row, False))
        reference, member.sent_frame = member.sent_frame, None
        if member.echo_mode == "auto":
            # What the line sends, before any cancelling: judged on the canceller's output,
            # the echo would seem gone and the canceller be dropped, and the echo return.
            watched_rows.append(row)
            watched_mic.append(energy / size)
            watched_references.append(reference)
        samples: Samples | None = None  # its frame, once needed
        if member.echo is not None:
            # Every tick, sound or not: the canceller's reference history must not skip.
            samples = popped[row]
            mic = samples if heard else np.zeros_like(samples)
            ref = reference if reference is not None else np.zeros_like(samples)
            samples = member.echo.process(mic, ref)
            energy = float(samples @ samples) if heard else 0.0
            as_popped = False
        if is_captured[row]:
            samples = popped[row] if samples is None else samples
            captured.append((row, samples.copy() if heard else np.zeros_like(samples)))
        if not (heard and energy > floor_energy * size):
            if member.dtmf_state is not None:
                samples = popped[row] if samples is None else samples
                keyed[member.sample_rate_hz].append(
                    (row, samples if heard else np.zeros_like(samples))
                )
            if talker.selected and is_eligible[row]:
                # A talker's word ends below the floor: keep mixing it while the slot is
                # held, so the word's last milliseconds (and the resampler's tail of the
                # frame before) are heard rather than cut off mid-filter.
                samples = popped[row] if samples is None else samples
                tails.append((row, samples if heard else np.zeros_like(samples)))
            else:
                member.up_state = None
            if talker.voiced or talker.selected:
                quiet.append(talker)
            if heard and talker.noise_floor_dbfs > ENERGY_FLOOR_DBFS:
                below_gate.append(talker)
            continue
        audible[member.sample_rate_hz].append(row)
        if samples is not None:
            cancelled[row] = samples
        if energy > keypad_energy * size:
            faint[row] = False
        if not faint[row] or member.dtmf_state is not None:
            keyed[member.sample_rate_hz].append(
                (row, popped[row] if samples is None else samples))
    # Per row where rooms differ in it: whether voice detection classifies, and AGC levels.
    classify = _by_row(rooms, [room.voice_detection for room in rooms])
    levels = _by_row(rooms, [room.agc for room in rooms])
    _update_echo_watches(rooms, offsets, watched_rows, watched_mic, watched_references)
    digits: list[tuple[int, str]] = []
    in_press: set[int] = set()
    for rate_hz, rows in keyed.items():
        states = dtmf_states(rate_hz, len(rows))
        for k, (row, _) in enumerate(rows):
            state = media[row].dtmf_state
            if state is not None:  # None: a fresh detector
                states[k] = state
        found, states, tones = detect_dtmf(_rows([f for _, f in rows]), states, rate_hz)
        for k, (row, _) in enumerate(rows):
            media[row].dtmf_state = None if faint[row] else states[k]  # None: fresh next
            if found[k] is not None:
                digits.extend((row, digit) for digit in str(found[k]))
            if tones[k]:
                in_press.add(row)

    def heard_frame(row: int) -> Samples:
        """An audible row's frame, as `gather_rooms` hears it."""
        samples = cancelled.get(row)
        return popped[row] if samples is None else samples

    # (sample rate, the rooms' voice detection) -> eligible rows without a tone
    candidates: dict[tuple[int, bool], list[int]] = {}
    for rate_hz, audible_rows in audible.items():
        for row in audible_rows:
            member = media[row]
            if row in in_press or not is_eligible[row]:
                member.up_state = None
                quiet.append(member.talker)
                continue
            key = (rate_hz, classify if isinstance(classify, bool) else classify[row])
            candidates.setdefault(key, []).append(row)
    age_silent(quiet)
    note_quiet_frames(below_gate)
    for (rate_hz, by_sound), candidate_rows in candidates.items():
        talkers = [media[row].talker for row in candidate_rows]
        if stacked is not None and as_popped:
            # Heard frames as they came (no canceller in the rooms): rows of `stacked`,
            # judged where they lie, their energies those the pop summed (in float32: a
            # level a millionth of a dB off the float64 sum's, no decision moved in tests).
            judged = np.array(candidate_rows, np.intp)
            detect_voice(stacked, talkers, rate_hz, classify=by_sound, rows=judged,
                         energies=np.array(energies)[judged])
        else:
            detect_voice(_rows([heard_frame(row) for row in candidate_rows]), talkers, rate_hz,
                         classify=by_sound)
    for room, first in zip(rooms, offsets, strict=False):
        # Only voiced members, and those who held a slot until now, can be talkers.
        contenders = [
            row for row, member in enumerate(room.media, first)
            if is_eligible[row] and (member.talker.voiced or member.talker.selected)
        ]
        before = [media[row].talker.selected for row in contenders]
        chosen = choose_talkers([media[row].talker for row in contenders], room.max_talkers)
        changes.extend(
            (row, now) for row, was, now in zip(contenders, before, chosen.tolist(), strict=True)
            if was != now
        )
    levelled: dict[int, Samples] = {}
    voiced_by_rate: dict[int, list[tuple[int, Samples]]] = {}
    if levels is not False:
        for (rate_hz, _), candidate_rows in candidates.items():
            voiced_by_rate.setdefault(rate_hz, []).extend([
                (row, heard_frame(row)) for row in candidate_rows
                if media[row].talker.voiced and (levels is True or levels[row])
            ])
    for voiced in voiced_by_rate.values():
        if voiced:
            # Every voiced line, chosen or waiting, so a waiting talker is ranked by the
            # level it will be heard at.
            gained = level_talkers(
                np.stack([f for _, f in voiced]), [media[row].talker for row, _ in voiced]
            )
            levelled.update((row, gained[k]) for k, (row, _) in enumerate(voiced))
    narrow_rows: list[int] = []
    narrow_frames: list[Samples] = []
    # The candidates, and the quiet talkers still holding a slot (never levelled).
    for row, samples in [
        *((row, None) for candidate_rows in candidates.values() for row in candidate_rows),
        *tails,
    ]:
        member = media[row]
        if not member.talker.selected:
            member.up_state = None
            continue
        if row in levelled:
            samples = levelled[row]
        elif samples is None:
            samples = heard_frame(row)
        if member.narrowband:
            narrow_rows.append(row)
            narrow_frames.append(samples)
        else:
            mixed[row] = samples
    narrow_aligned: dict[int, Samples] = {}
    if narrow_rows:
        histories = np.stack([
            _or_fresh(media[row].up_state, upsampler_state) for row in narrow_rows
        ])
        narrow = np.stack(narrow_frames)
        upsampled, states = upsample_8k_to_16k(narrow, histories)
        mixed.update(zip(narrow_rows, upsampled, strict=True))
        # The upsampler keeps the last taps // 2 input samples, which is also the delay of
        # the two linear-phase filters together at 8 kHz (dsp.resample keeps taps = 1 mod
        # 4): the history then the frame, cut to a frame, is the frame that delay later.
        aligned = np.concatenate([histories, narrow], axis=1)[:, : narrow.shape[1]]
        for k, row in enumerate(narrow_rows):
            media[row].up_state = states[k]
            narrow_aligned[row] = aligned[k]
    # Each room's part, in its own row numbers (one pass over what was found, in order).
    gathered = [GatheredFrames({}, [], [], [], {}) for _ in rooms]

    def room_of(row: int) -> tuple[GatheredFrames, int]:
        k = bisect.bisect_right(offsets, row) - 1
        return gathered[k], row - offsets[k]

    for row, frame in mixed.items():  # in any order: the room mixes its rows sorted
        part, local = room_of(row)
        part.mixed[local] = frame
    for row, digit in digits:
        part, local = room_of(row)
        part.digits.append((local, digit))
    for row, now in changes:
        part, local = room_of(row)
        part.talker_changes.append((local, now))
    for row, frame in captured:
        part, local = room_of(row)
        part.captured.append((local, frame))
    for row, frame in narrow_aligned.items():
        part, local = room_of(row)
        part.narrow_aligned[local] = frame
    return gathered


def _by_row(rooms: list[RoomFrames], values: list[bool]) -> bool | list[bool]:
    """A room setting per row; the one value, when every room has it."""
    if values.count(values[0]) == len(values):
        return values[0]
    return [value for room, value in zip(rooms, values, strict=True) for _ in room.media]


def _update_echo_watches(
    rooms: list[RoomFrames], offsets: list[int], rows: list[int], mic_power: list[float],
    references: list[Samples | None],
) -> None:
    """Split the watched rows' inputs by room and update all the rooms' watches."""
    ticks = []
    start = 0
    for room, first, end in zip(rooms, offsets, offsets[1:], strict=False):
        stop = bisect.bisect_left(rows, end, start)  # the rows are in order
        members = room.media
        ticks.append(WatchedTick(room.echo, [members[row - first] for row in rows[start:stop]],
                                 mic_power[start:stop], references[start:stop]))
        start = stop
    EchoWatch.update_all(ticks)


def _pop_frames(
    media: list[MemberMedia],
) -> tuple[list[Samples] | Samples, list[bool], list[float]]:
    """One frame from every member's playout buffer, whether it holds audio, and its
    energy (sum of squares; 0 where it holds no audio): members in a `JitterBank`
    together (one `pop_many` per bank), the others one by one. A room of G.711 members
    (most ticks of a big room, lossy links or not) gets the bank's array as it is,
    energies and all in one call."""
    count = len(media)
    bank = _shared([member.jitter_bank for member in media])
    if bank is not None and (
        _shared([member.frame_samples for member in media]) == bank.frame_samples
    ):
        frames, heard = bank.pop_many([member.jitter for member in media], bank.frame_samples)
        energies = np.einsum("ij,ij->i", frames, frames)
        if not all(heard):  # a loss or a silent line concealed as nothing
            energies[~np.array(heard)] = 0.0
        return frames, heard, energies.tolist()
    popped: list[Samples] = [_NO_FRAME] * count
    has_audio = [False] * count
    banked: dict[JitterBank, tuple[list[int], list[JitterBuffer]]] = {}
    for row, member in enumerate(media):
        bank = member.jitter_bank
        if bank is not None and member.frame_samples == bank.frame_samples:
            rows_buffers = banked.get(bank)
            if rows_buffers is None:
                rows_buffers = banked[bank] = ([], [])
            rows_buffers[0].append(row)
            rows_buffers[1].append(member.jitter)
        else:
            popped[row], has_audio[row] = member.jitter.pop(member.frame_samples)
    for bank, (rows, buffers) in banked.items():
        frames, heard = bank.pop_many(buffers, bank.frame_samples)
        for row, frame, audio in zip(rows, frames, heard, strict=True):
            popped[row], has_audio[row] = frame, audio
    return popped, has_audio, _energies(popped, has_audio)


def _shared(values: list[_Value]) -> _Value | None:
    """The value every item of `values` has; None when they differ or there are none."""
    if not values:
        return None
    first = values[0]
    return first if values.count(first) == len(values) else None


def _energies(frames: list[Samples], has_audio: list[bool]) -> list[float]:
    """Each frame's energy (sum of squares; 0 where it holds no audio), in one call per
    frame length rather than a dot product per member."""
    by_length: dict[int, list[int]] = {}
    for row, frame in enumerate(frames):
        by_length.setdefault(frame.shape[0], []).append(row)
    energies = [0.0] * len(frames)
    for rows in by_length.values():
        stacked = _rows([frames[row] for row in rows])
        for row, energy in zip(rows, np.einsum("ij,ij->i", stacked, stacked).tolist(),
                               strict=True):
            if has_audio[row]:
                energies[row] = energy
    return energies


@dataclass(frozen=True, slots=True)
class WatchedTick:
    """One room's echo watch this tick: the members it watches (in row order), the power
    of what came back from each, and the frame we sent each (None: nothing yet)."""

    watch: EchoWatch
    members: list[MemberMedia]
    mic_power: list[float]
    references: list[Samples | None]


def _reference_powers(references: list[Samples | None]) -> NDArray[np.float64]:
    """The mean square of each reference, worked out once per distinct frame: most
    members were sent the same room mix."""
    by_frame: dict[int, float] = {}
    powers = [0.0] * len(references)  # a list: a numpy item write costs five times more
    for k, reference in enumerate(references):
        if reference is None:
            continue
        power = by_frame.get(id(reference))
        if power is None:
            power = by_frame[id(reference)] = float(reference @ reference) / reference.size
        powers[k] = power
    return np.array(powers)


class EchoWatch:
    """A room's echo detectors, and switching cancellers on and off.

    Members in "auto" echo mode feed the detector the power of what came back from them
    and of what we sent them (`WatchedTick`); a member whose line shows echo gets a
    canceller, which goes again once the detector has heard no echo for a while
    (`dsp.echo`). A room keeps one watch from tick to tick: the detector states stay rows
    of one array, rebuilt only when the watched members change, not gathered and
    scattered member by member; all rooms' watches are updated with one detector call.
    """

    def __init__(self) -> None:
        self._watched: list[MemberMedia] = []  # whose states are the rows of `_states`
        self._states = np.empty((0, DETECTOR_STATE_SIZE), np.float32)
        self._ticks = 0  # updates so far: detectors started later keep the room's beat

    @staticmethod
    def update_all(ticks: list[WatchedTick]) -> None:
        """One tick of several rooms' watches, with one detector call for all: every
        detector's state is its own row, checked on its own beat."""
        busy = [tick for tick in ticks if tick.members]
        if busy:
            states = [tick.watch._rows_of(tick.members) for tick in busy]
            if len(busy) == 1:  # one room watching (a big room's ticks): its lists as they are,
                # and its rows the watch's own array, updated where they are
                members, mic_power = busy[0].members, busy[0].mic_power
                references, joined = busy[0].references, states[0]
            else:
                members = [member for tick in busy for member in tick.members]
                mic_power = [power for tick in busy for power in tick.mic_power]
                references = [frame for tick in busy for frame in tick.references]
                joined = np.concatenate(states)
            delays = update_echo_detectors(np.array(mic_power), _reference_powers(references),
                                           joined)
            start = 0
            for tick, rows in zip(busy, states, strict=True):
                tick.watch._states = joined[start : start + rows.shape[0]]
                start += rows.shape[0]
            shows_echo = ~np.isnan(delays)
            has_canceller = np.fromiter(
                (member.echo is not None for member in members), np.bool_, len(members)
            )
            for k in np.flatnonzero(shows_echo != has_canceller).tolist():
                member = members[k]
                member.echo = (
                    EchoCanceller(member.sample_rate_hz, member.frame_samples)
                    if shows_echo[k] else None
                )
        for tick in ticks:
            tick.watch._watched = tick.members
            tick.watch._ticks += 1

    def _rows_of(self, watched: list[MemberMedia]) -> NDArray[np.float32]:
        """The detector states of `watched`, in order: last tick's array when they are the
        same members; else their old rows, and fresh ones for newcomers and restarts."""
        restarted = any(member.echo_restart for member in watched)
        if watched == self._watched and not restarted:
            return self._states
        kept = {id(member): k for k, member in enumerate(self._watched)}
        rows = []
        for position, member in enumerate(watched):
            k = kept.get(id(member))
            if k is None or member.echo_restart:
                # A detector is due when its frame count plus its phase is a multiple of
                # 25, and counts one frame a tick: started with this phase, it is due in
                # the same ticks as every detector of its group, whenever it started.
                group = position // _ECHO_CHECK_GROUP
                rows.append(echo_detector_state(self._ticks + group))
            else:
                rows.append(self._states[k])
            member.echo_restart = False
        return _rows(rows)


def _rows(arrays: list[NDArray[np.float32]]) -> NDArray[np.float32]:
    """`np.stack` of equal-length 1-D arrays, at a third of its cost for hundreds of rows."""
    return np.concatenate(arrays).reshape(len(arrays), -1)


def _or_fresh(
    state: NDArray[np.float32] | None, fresh: Callable[[], NDArray[np.float32]]
) -> NDArray[np.float32]:
    return state if state is not None else fresh()


@dataclass(frozen=True, slots=True)
class EncodeJob:
    """One room's tick for `RoomEncoder.encode_rooms`: queue its frame for every member
    and make the packets now due.

    `heard[id]` is (kind, frame at 16 kHz): kind "room" means the shared `total`,
    "silence" means zeros, "own" a mix of its own; only "own" frames are read.
    `narrow_total`: what narrowband members hearing the room get instead of `total`
    brought down to 8 kHz (a lone narrowband talker, as it came, see `gather_rooms`);
    the room's 8 kHz filter runs on all the same, so the switch back is seamless.
    """

    encoder: RoomEncoder
    media: dict[int, MemberMedia]
    heard: dict[int, tuple[str, Samples]]
    total: Samples
    narrow_total: Samples | None = None


class RoomEncoder:
    """Turns what each member hears into packets, sharing every encode it can."""

    def __init__(self) -> None:
        self._tick = 0
        self._room_down_state = downsampler_state()
        self._room_down_state_before = self._room_down_state
        self._off_grid: list[int] = []  # members between their packet edges this tick
        # codec -> G.711 members hearing the room mix in one-frame packets, this tick
        self._room_listeners: dict[str, list[int]] = {}
        self._narrow_total: Samples | None = None  # what they hear
        self._shared: dict[tuple[str, EncoderSettings, str], StreamEncoder] = {}
        self._shared_last_used: dict[tuple[str, EncoderSettings, str], int] = {}

    @staticmethod
    def encode_rooms(jobs: list[EncodeJob]) -> list[dict[int, OutgoingPacket]]:
        """Each room's packets now due, by member (`EncodeJob`): the rooms' mixes brought
        down to 8 kHz in one filter call (each with its own history), and the payload each
        room's G.711 listeners share encoded for all rooms in one call per codec."""
        rooms_8k: list[Samples | None] = [None] * len(jobs)
        narrowed = [k for k, job in enumerate(jobs)
                    if any(member.narrowband for member in job.media.values())]
        if narrowed:
            # Every tick while anyone is narrowband: the filter history must follow the
            # room without gaps, since own mixes start from it.
            encoders = [jobs[k].encoder for k in narrowed]
            narrow, states = downsample_16k_to_8k(
                np.stack([jobs[k].total for k in narrowed]),
                np.stack([encoder._room_down_state for encoder in encoders]))
            for k, encoder, room_8k, state in zip(narrowed, encoders, narrow, states,
                                                   strict=True):
                encoder._room_down_state_before, encoder._room_down_state = (
                    encoder._room_down_state, state)
                rooms_8k[k] = room_8k
        packets = [
            job.encoder._queue_and_pack(job.media, job.heard, job.total, room_8k,
                                        job.narrow_total)
            for job, room_8k in zip(jobs, rooms_8k, strict=True)
        ]
        by_codec: dict[str, list[tuple[int, list[int]]]] = {}  # codec -> (job, listeners)
        for k, job in enumerate(jobs):
            for codec_name, member_ids in job.encoder._room_listeners.items():
                by_codec.setdefault(codec_name, []).append((k, member_ids))
        for codec_name, listening in by_codec.items():
            heard_8k: list[Samples] = []
            for k, _ in listening:
                room_8k = jobs[k].encoder._narrow_total
                assert room_8k is not None  # G.711 listeners are narrowband
                heard_8k.append(room_8k)
            payloads = get_codec(codec_name).encode(np.stack(heard_8k))
            for (k, member_ids), payload in zip(listening, payloads, strict=True):
                # One packet object for all of a room's listeners: it is immutable, and
                # only the RTP header the controller puts on it differs.
                step = jobs[k].media[member_ids[0]].clock_frame
                packets[k].update(dict.fromkeys(member_ids, OutgoingPacket(payload.tobytes(),
                                                                            step)))
        for job, out in zip(jobs, packets, strict=True):
            for member_id in job.encoder._off_grid:
                out[member_id] = OutgoingPacket(None, job.media[member_id].clock_frame)
            job.encoder._forget_idle_encoders()
        return packets

    def _queue_and_pack(
        self, media: dict[int, MemberMedia], heard: dict[int, tuple[str, Samples]],
        total: Samples, room_8k: Samples | None, lone_talker: Samples | None,
    ) -> dict[int, OutgoingPacket]:
        """A room's `EncodeJob` once its mix is at 8 kHz (`room_8k`; None: nobody narrowband):
        every member's frame queued, and the packets due, but for the payload the room's
        G.711 listeners share (`_room_listeners`, encoded by `encode_rooms`)."""
        self._off_grid = []
        self._room_listeners = {}
        self._queue_frames(media, heard, total, room_8k, lone_talker)
        self._tick += 1
        due = [
            (member_id, member) for member_id, member in media.items()
            if self._tick % member.frames_per_packet == 0 and member.pending
        ]
        return self._packets(due)

    def _queue_frames(
        self, media: dict[int, MemberMedia], heard: dict[int, tuple[str, Samples]],
        total: Samples, room_8k: Samples | None, lone_talker: Samples | None,
    ) -> None:
        narrow_total = lone_talker if room_8k is not None and lone_talker is not None else room_8k
        self._narrow_total = narrow_total
        narrow_silence = np.zeros(frame_samples(NARROWBAND_RATE_HZ, FRAME_MS), np.float32)
        wide_silence = np.zeros(frame_samples(ROOM_RATE_HZ, FRAME_MS), np.float32)
        own_narrow: list[tuple[MemberMedia, Samples]] = []
        room_listeners = self._room_listeners
        for member_id, member in media.items():
            kind, frame = heard[member_id]
            if (kind == "room" and member.stateless and member.frames_per_packet == 1
                    and not member.pending):
                # Most of a large room: G.711 at 8 kHz hearing the room mix in a packet
                # every tick, the same payload as everyone on the codec, with no queue.
                member.down_state = None  # an own mix next continues from the room's
                member.sent_frame = narrow_total
                room_listeners.setdefault(member.codec, []).append(member_id)
                continue
            if not member.pending and self._tick % member.frames_per_packet:
                # Packets start on the room's grid, so that members with the same ptime
                # can share encodes: a newcomer's stream (or one whose ptime changed)
                # starts at the next grid tick, its RTP clock running on meanwhile.
                self._off_grid.append(member_id)
                continue
            if kind == "own" and member.narrowband:
                own_narrow.append((member, frame))
                continue
            if not member.narrowband:
                queued = total if kind == "room" else wide_silence if kind == "silence" else frame
            else:
                assert narrow_total is not None
                queued = narrow_total if kind == "room" else narrow_silence
                # Its own mix, if it gets one next, continues from what it heard: the room
                # (None: the room filter's history) or silence (a zero history).
                member.down_state = None if kind == "room" else downsampler_state()
            member.pending.append((kind, queued))
            member.sent_frame = queued
        if own_narrow:
            # A member that heard the room until now continues from the room's history.
            states = np.stack([
                member.down_state if member.down_state is not None
                else self._room_down_state_before
                for member, _ in own_narrow
            ])
            narrow, states = downsample_16k_to_8k(np.stack([f for _, f in own_narrow]), states)
            for k, (member, _) in enumerate(own_narrow):
                member.down_state = states[k]
                member.pending.append(("own", narrow[k]))
                member.sent_frame = narrow[k]

    def _packets(self, due: list[tuple[int, MemberMedia]]) -> dict[int, OutgoingPacket]:
        out: dict[int, OutgoingPacket] = {}
        shared_payloads: dict[tuple[tuple[str, EncoderSettings], str, int], bytes | None] = {}
        batch: dict[str, list[tuple[int, Samples]]] = {}  # G.711 own frames by codec
        for member_id, member in due:
            pending, member.pending = member.pending, []
            count = len(pending)
            step = count * member.clock_frame
            if count == 1:
                kind, frame = pending[0]
            else:
                kind = pending[0][0]
                if any(k != kind for k, _ in pending):
                    kind = "own"
                frame = np.concatenate([f for _, f in pending])
            stateful = member.codec not in STATELESS_CODECS
            if stateful and count == member.frames_per_packet:
                # Hold a recent talker on its own encoder between words, so its decoder
                # is switched between encoder states once per talk spurt, not per pause.
                if kind == "own":
                    member.own_hold_ticks = OWN_ENCODER_HOLD_TICKS
                elif member.own_hold_ticks > 0:
                    member.own_hold_ticks -= count
                    kind = "own"
            if kind != "own" and count == member.frames_per_packet:
                key = (member.share_key, kind, count)
                if key not in shared_payloads:
                    shared_payloads[key] = self._shared_encode(member, kind, frame)
                out[member_id] = OutgoingPacket(shared_payloads[key], step)
            elif count != member.frames_per_packet and stateful:
                # Only after a ptime change mid-packet: a stateful encoder takes frames of
                # its ptime only, so this packet's time passes unsent.
                out[member_id] = OutgoingPacket(None, step)
            elif member.codec in STATELESS_CODECS:
                batch.setdefault(member.codec, []).append((member_id, frame))
                out[member_id] = OutgoingPacket(None, step)  # payload filled in below
            else:
                out[member_id] = OutgoingPacket(member.own_encode(frame), step)
        for codec_name, rows in batch.items():
            by_length: dict[int, list[tuple[int, Samples]]] = {}
            for member_id, frame in rows:
                by_length.setdefault(frame.shape[0], []).append((member_id, frame))
            for same_length in by_length.values():
                encoded = get_codec(codec_name).encode(np.stack([f for _, f in same_length]))
                for (member_id, _), payload in zip(same_length, encoded, strict=True):
                    out[member_id] = out[member_id]._replace(payload=payload.tobytes())
        return out

    def _shared_encode(self, member: MemberMedia, kind: str, frame: Samples) -> bytes | None:
        if member.codec in STATELESS_CODECS:
            payload: bytes = get_codec(member.codec).encode(frame[np.newaxis])[0].tobytes()
            return payload
        key = (member.codec, member.settings, kind)
        encoder = self._shared.get(key)
        if encoder is None:
            encoder = self._shared[key] = new_encoder(member.codec, member.settings)
        self._shared_last_used[key] = self._tick
        return encoder.encode(frame)

    def _forget_idle_encoders(self) -> None:
        for key, last_used in list(self._shared_last_used.items()):
            if self._tick - last_used > _SHARED_ENCODER_IDLE_TICKS:
                del self._shared[key], self._shared_last_used[key]
