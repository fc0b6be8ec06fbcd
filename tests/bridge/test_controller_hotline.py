"""The controller's side of the hotline: reports written through its `Recorders` from
the first frame to the hang-up, and a caller brought by the operator into a meeting."""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from bridge.config import parse_config
from bridge.controller import CallController, RoomRecording
from bridge.rtp.packet import RtpPacket
from tests.bridge.test_controller import (
    FRAME,
    PCMU,
    FakePorts,
    Phone,
    Rig,
    level_at,
    press,
    prompts,
    tone,
)

CONFIG = """
sip:
  listen: ["udp:192.0.2.1:5060"]
  domain: telerapat.test
rtp: {ports: "40000-40099", timeout_s: 5}
language: en
rooms:
  - {id: terbuka, extension: "2000", voice_detection: false, agc: false}
  - {id: pengaduan, extension: "6000", mode: hotline, operator_extension: "6001",
     moderator_pin: "2468", transfer_room: terbuka, voice_detection: false, agc: false}
"""


class MemoryRecording:
    """A recording kept in memory: what the controller writes, notes and closes."""

    def __init__(self, rate_hz: int, metadata: Mapping[str, str]) -> None:
        self.rate_hz = rate_hz
        self.metadata = dict(metadata)
        self.frames: list[NDArray[np.float32]] = []
        self.closed = False

    def write(self, samples: NDArray[np.float32]) -> None:
        assert not self.closed
        self.frames.append(samples.copy())

    def note(self, key: str, value: str) -> None:
        self.metadata[key] = value

    def close(self) -> object:
        self.closed = True
        return "memory"


class MemoryRecorders:
    def __init__(self) -> None:
        self.reports: list[MemoryRecording] = []

    def start(self, room_id: str, room_name: str | None) -> RoomRecording:
        raise AssertionError("no meeting is recorded here")

    def start_report(self, rate_hz: int, metadata: Mapping[str, str]) -> RoomRecording:
        self.reports.append(MemoryRecording(rate_hz, metadata))
        return self.reports[-1]


def hotline_rig() -> tuple[Rig, MemoryRecorders]:
    rig = Rig()
    recorders = MemoryRecorders()
    rig.controller = CallController(
        parse_config(CONFIG, "test.yaml"), prompts(), FakePorts(), rng=random.Random(7),
        secret=b"s" * 32, recorders=recorders,
    )
    return rig, recorders


def test_a_report_holds_every_frame_from_the_first_to_the_hang_up() -> None:
    rig, recorders = hotline_rig()
    caller = Phone(1, 7000)
    port = rig.local_port(rig.call(caller, extension="6000"))
    spoken = 0
    while not recorders.reports:  # the tone before the recording is still playing
        rig.speak(caller, port, tone(500, spoken))
        rig.tick()
        spoken += 1
        assert spoken < 50
    started_at = spoken
    for _ in range(40):
        rig.speak(caller, port, tone(500, spoken))
        rig.tick()
        spoken += 1
    caller.cseq += 1
    rig.sip(caller, caller.request("BYE", "6000"))
    (report,) = recorders.reports
    assert report.closed and report.rate_hz == 8000
    assert report.metadata == {
        "room": "pengaduan", "caller": "phone", "caller_uri": "sip:phone@198.51.100.1",
        "call_id": caller.call_id, "ended_by": "hang-up",
    }
    # The tick that started it is in: one frame per tick, the first already speech;
    # then what was still in the playout buffer at the hang-up, down to the last frame
    # the caller sent.
    played = spoken - started_at + 1
    assert len(report.frames) > played
    assert all(frame.shape == (FRAME,) for frame in report.frames)
    assert level_at(report.frames[0], 500) > 0.2
    last_sent = PCMU.decode(PCMU.encode(tone(500, spoken - 1)[np.newaxis])[0])
    np.testing.assert_array_equal(report.frames[-1], last_sent)


def test_operator_brings_a_caller_into_the_transfer_room() -> None:
    rig, _ = hotline_rig()
    operator, caller, bob = Phone(1, 7000), Phone(2, 7002), Phone(3, 7004)
    operator_port = rig.local_port(rig.call(operator, extension="6001"))
    for digit in (2, 4, 6, 8, 11):  # the operators' PIN and #
        press(rig, operator, operator_port, digit)
    caller_port = rig.local_port(rig.call(caller, extension="6000"))
    rig.call(bob, extension="2000")
    press(rig, operator, operator_port, 10)  # *8: take the caller
    press(rig, operator, operator_port, 8)
    press(rig, operator, operator_port, 10)  # *5: into "terbuka"
    press(rig, operator, operator_port, 5)
    heard = []
    for index in range(30):
        rig.speak(caller, caller_port, tone(700, index))
        heard += [PCMU.decode(RtpPacket.parse(data).payload) for _, data, dest in rig.tick()
                  if dest[0] == bob.host]
    assert level_at(np.concatenate(heard)[-FRAME * 10 :], 700) > 0.2
