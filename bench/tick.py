"""Cost of the media path in-process: N members in one room, K talkers, G.711.

Runs the real CallController (SIP INVITE/ACK to join, RTP parse, playout buffer, mix,
shared encodes, RTP packetization) with no sockets, and prints the CPU time per 20 ms
tick and per member. It measures the Python media path only; the end-to-end capacity
benchmark with real sockets and Janus alongside belongs to issue #6.

    .venv/bin/python bench/tick.py            # N = 10, 50, 100, 200, 400
    .venv/bin/python bench/tick.py --smoke    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from inprocess import InProcessBridge, audio_offer, bench_config

from bridge.rtp.packet import RtpPacket
from dsp.codecs import get_codec

FRAME = 160
PCMU_PAYLOAD_TYPE = 0  # RFC 3551 §6
WARM_UP_TICKS = 100  # let the join prompts play out


def run(members: int, talkers: int, seconds: float) -> dict[str, float]:
    bridge = InProcessBridge(bench_config())
    phones = []
    for index in range(members):
        host = f"10.{index // 250}.{index % 250}.1"
        phones.append(bridge.join(host, audio_offer(host, PCMU_PAYLOAD_TYPE)))
    rng = np.random.default_rng(1)
    codec = get_codec("PCMU")
    ticks = int(seconds * 50)
    speech = codec.encode((0.2 * rng.standard_normal((ticks, FRAME))).astype(np.float32))
    quiet = codec.encode(np.zeros((1, FRAME), dtype=np.float32))[0].tobytes()
    for _ in range(WARM_UP_TICKS):
        bridge.tick()
    cpu = 0.0
    sent = 0
    for tick in range(ticks):
        start = time.process_time()
        for member, phone in enumerate(phones):
            payload = speech[tick].tobytes() if member < talkers else quiet
            packet = RtpPacket(PCMU_PAYLOAD_TYPE, tick & 0xFFFF, tick * FRAME, member + 1, payload)
            bridge.send_rtp(phone, bytes(packet))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--talkers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sizes = [10, 50] if args.smoke else [10, 50, 100, 200, 400]
    seconds = 1.0 if args.smoke else args.seconds
    print(f"{'members':>8} {'ms/tick':>9} {'µs/member/tick':>15} {'share of a core':>16} "
          f"{'packets/tick':>13}")
    for members in sizes:
        r = run(members, args.talkers, seconds)
        print(f"{r['members']:>8.0f} {r['cpu_per_tick_ms']:>9.2f} {r['us_per_member_tick']:>15.1f} "
              f"{r['core_share']:>16.2f} {r['packets_out_per_tick']:>13.0f}")


if __name__ == "__main__":
    main()
