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
import random
import time
from pathlib import Path

import numpy as np

from bridge.conference.media import ROOM_RATE_HZ
from bridge.config import parse_config
from bridge.controller import CallController
from bridge.prompt_files import load_prompts
from bridge.rtp.packet import RtpPacket
from bridge.sip.flow import Flow
from bridge.sip.parser import parse_message
from dsp.codecs import get_codec

FRAME = 160
BRIDGE = ("192.0.2.1", 5060)
CONFIG = """
sip: {listen: ["udp:192.0.2.1:5060"]}
rtp: {ports: "20000-29999", timeout_s: 3600}
language: en
rooms: [{id: pleno, extension: "2000"}]
"""


class Ports:
    def __init__(self) -> None:
        self.next = 20000

    def allocate(self, host: str) -> int:
        self.next += 2
        return self.next

    def release(self, port: int) -> None:
        pass


def invite(index: int) -> tuple[bytes, Flow, int]:
    host = f"10.{index // 250}.{index % 250}.1"
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
           "m=audio 4000 RTP/AVP 0\r\n")
    text = (f"INVITE sip:2000@{BRIDGE[0]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host};branch=z9hG4bK{index}\r\n"
            f"From: <sip:m{index}@{host}>;tag=t{index}\r\nTo: <sip:2000@{BRIDGE[0]}>\r\n"
            f"Call-ID: bench{index}\r\nCSeq: 1 INVITE\r\nContact: <sip:m{index}@{host}>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
    return text.encode(), Flow("udp", *BRIDGE, host, 5060), index


def run(members: int, talkers: int, seconds: float) -> dict[str, float]:
    prompts = load_prompts(Path(__file__).resolve().parent.parent / "prompts", ROOM_RATE_HZ)
    controller = CallController(parse_config(CONFIG, "bench"), prompts, Ports(),
                                rng=random.Random(1), secret=b"b" * 32)
    now = 0.0
    ports: list[int] = []
    for index in range(members):
        data, flow, _ = invite(index)
        controller.receive_sip(data, flow, now)
        for out, _ in controller.sip_datagrams():
            response = parse_message(out)
            if getattr(response, "status", 0) == 200:
                port = int(response.body.split(b"m=audio ")[1].split(b" ")[0])
                ports.append(port)
                ack = data.replace(b"INVITE sip", b"ACK sip", 1).replace(b"1 INVITE", b"1 ACK")
                ack = ack.split(b"Content-Type")[0] + b"Content-Length: 0\r\n\r\n"
                tag = response.to_address.tag
                ack = ack.replace(b"To: <sip:2000@192.0.2.1>",
                                  f"To: <sip:2000@192.0.2.1>;tag={tag}".encode())
                controller.receive_sip(ack, flow, now)
    controller.sip_datagrams()
    rng = np.random.default_rng(1)
    codec = get_codec("PCMU")
    ticks = int(seconds * 50)
    speech = codec.encode((0.2 * rng.standard_normal((ticks, FRAME))).astype(np.float32))
    quiet = codec.encode(np.zeros((1, FRAME), dtype=np.float32))[0].tobytes()
    for _ in range(100):  # let the join prompts play out
        controller.tick(now)
        controller.rtp_datagrams()
        now += 0.02
    cpu = 0.0
    sent = 0
    for tick in range(ticks):
        start = time.process_time()
        for member, port in enumerate(ports):
            payload = speech[tick].tobytes() if member < talkers else quiet
            packet = bytes(RtpPacket(0, tick & 0xFFFF, tick * FRAME, member + 1, payload))
            controller.receive_rtp(port, packet, (f"10.0.0.{member % 250}", 4000), now)
        controller.tick(now)
        sent += len(controller.rtp_datagrams())
        cpu += time.process_time() - start
        now += 0.02
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
