"""Cost of the media path in-process: N members in one room (or in rooms of M), K talkers, G.711.

Runs the real CallController (SIP INVITE/ACK to join, RTP parse, playout buffer, keypad
and voice detection, AGC, mix, shared encodes, RTP packetization) with no sockets. The K
talkers send espeak-ng speech (English and Indonesian voices, each its own), the others
line noise at -60 dBFS (an open phone in a quiet room); it prints the CPU time per 20 ms
tick and per member. It measures the Python media path only; the end-to-end capacity
benchmark with real sockets and Janus alongside belongs to issue #6.

    .venv/bin/python bench/tick.py            # N = 10, 50, 100, 200, 400
    .venv/bin/python bench/tick.py --smoke    # a few seconds, for CI
    .venv/bin/python bench/tick.py --room-size 10   # the same members in rooms of 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from inprocess import InProcessBridge, audio_offer, bench_config, room_extension
from speech import ENGLISH, INDONESIAN, VOICES, sentences_clip, set_active_level

from bridge.rtp.packet import RtpPacket
from dsp.codecs import get_codec

FRAME = 160
PCMU_PAYLOAD_TYPE = 0  # RFC 3551 §6
WARM_UP_TICKS = 100  # let the join prompts play out


def run(members: int, talkers: int, seconds: float, room_size: int | None = None
        ) -> dict[str, float]:
    """`members` in rooms of `room_size` (None: one room), `talkers` talking in each."""
    size = room_size or members
    bridge = InProcessBridge(bench_config(rooms=-(-members // size)))
    phones = []
    for index in range(members):
        host = f"10.{index // 250}.{index % 250}.1"
        phones.append(bridge.join(host, audio_offer(host, PCMU_PAYLOAD_TYPE),
                                  room_extension(index // size)))
    rng = np.random.default_rng(1)
    codec = get_codec("PCMU")
    ticks = int(seconds * 50)
    speech = [codec.encode(_frames(_talker_clip(k), ticks)) for k in range(talkers)]
    line_noise = 10 ** (-60 / 20) * rng.standard_normal((ticks, FRAME))
    noise = codec.encode(line_noise.astype(np.float32))
    for _ in range(WARM_UP_TICKS):
        bridge.tick()
    cpu = 0.0
    sent = 0
    for tick in range(ticks):
        # The phones' packets are made before the clock starts: only the bridge is timed.
        datagrams = [
            bytes(RtpPacket(PCMU_PAYLOAD_TYPE, tick & 0xFFFF, tick * FRAME, member + 1,
                            (speech[member % size] if member % size < talkers else noise)[
                                tick].tobytes()))
            for member in range(members)
        ]
        start = time.process_time()
        bridge.send_rtp_many(list(zip(phones, datagrams, strict=True)))
        sent += len(bridge.tick())
        cpu += time.process_time() - start
    per_tick_us = cpu / ticks * 1e6
    return {
        "members": members,
        "cpu_per_tick_ms": per_tick_us / 1000,
        "us_per_member_tick": per_tick_us / members,
        "core_share": cpu / seconds,
        "packets_out_per_tick": sent / ticks,
    }


def _talker_clip(index: int) -> np.ndarray:
    voice = VOICES[index % len(VOICES)]
    clip = sentences_clip(voice, INDONESIAN if voice.startswith("id") else ENGLISH, 8000)
    return set_active_level(clip, -26.0)


def _frames(clip: np.ndarray, ticks: int) -> np.ndarray:
    """`ticks` 20 ms frames of `clip`, looped: `(ticks, FRAME)` float32."""
    looped = np.resize(clip.astype(np.float32), ticks * FRAME)
    return looped.reshape(ticks, FRAME)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--talkers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--room-size", type=int, default=None, metavar="M",
                        help="members in rooms of M (the talkers in each), not all in one")
    args = parser.parse_args()
    sizes = [10, 50] if args.smoke else [10, 50, 100, 200, 400]
    seconds = 1.0 if args.smoke else args.seconds
    print(f"{'members':>8} {'ms/tick':>9} {'µs/member/tick':>15} {'share of a core':>16} "
          f"{'packets/tick':>13}")
    for members in sizes:
        r = run(members, args.talkers, seconds, args.room_size)
        print(f"{r['members']:>8.0f} {r['cpu_per_tick_ms']:>9.2f} {r['us_per_member_tick']:>15.1f} "
              f"{r['core_share']:>16.2f} {r['packets_out_per_tick']:>13.0f}")


if __name__ == "__main__":
    main()
