"""A pyVoIP 1.6.8 conference member in its own process: register, call, talk, record.

pyVoIP's API blocks and leaves non-daemon threads behind when anything goes wrong, so
the test runs it here, as a child it can kill by PID, and talks to it over stdio:
this prints one line per step ("registered", "answered", "recorded <n> bytes", "done")
and ends the call when it reads "hangup" on stdin. Audio is pyVoIP's own format:
8-bit unsigned PCM at 8 kHz, 128 being silence.

    python -m tests.integration.pyvoip_member --server 127.0.0.1 --port 5060 \\
        --sip-port 5070 --rtp-ports 30000-30010 --extension 2000 \\
        --speak clip.wav --record heard.u8
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pyVoIP.VoIP import CallState, PhoneStatus, VoIPPhone

from tests.integration.audio_analysis import read_wav

PYVOIP_RATE_HZ = 8000
ANSWER_TIMEOUT_S = 10.0


def to_unsigned_8bit(samples: np.typing.NDArray[np.float32]) -> bytes:
    """Convert float samples (1.0 = full scale) to pyVoIP's 8-bit unsigned PCM."""
    return np.clip(np.round(samples * 128.0) + 128, 0, 255).astype(np.uint8).tobytes()


def run(args: argparse.Namespace) -> int:
    speech, rate_hz = read_wav(args.speak)
    if rate_hz != PYVOIP_RATE_HZ:
        print(f"error: {args.speak} is {rate_hz} Hz, pyVoIP sends 8000 Hz", flush=True)
        return 2
    low, high = (int(p) for p in args.rtp_ports.split("-"))
    phone = VoIPPhone(
        args.server,
        args.port,
        args.user,
        args.password,
        myIP=args.my_ip,
        sipPort=args.sip_port,
        rtpPortLow=low,
        rtpPortHigh=high,
    )
    phone.start()  # REGISTERs, answering the 401 challenge; blocks until it is done
    try:
        if phone.get_status() is not PhoneStatus.REGISTERED:
            print(f"register failed: {phone.get_status()}", flush=True)
            return 1
        print("registered", flush=True)
        call = phone.call(args.extension)  # blocks until a 100 or 180 arrives
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while call.state is not CallState.ANSWERED:
            if time.monotonic() > deadline or call.state is CallState.ENDED:
                print(f"call not answered: {call.state}", flush=True)
                return 1
            time.sleep(0.02)
        answered_at = time.monotonic()
        print("answered", flush=True)
        call.write_audio(to_unsigned_8bit(speech))  # queued; sent at 20 ms per packet
        for line in sys.stdin:
            if line.strip() == "hangup":
                break
        # The receive buffer is laid out by RTP timestamp; read all of it at once.
        # read_audio pads a short read with 128s: strip them (and any trailing silence).
        length = int((time.monotonic() - answered_at + 1.0) * PYVOIP_RATE_HZ)
        heard = call.read_audio(length=length, blocking=False).rstrip(b"\x80")
        args.record.write_bytes(heard)
        print(f"recorded {len(heard)} bytes", flush=True)
        call.hangup()
    finally:
        phone.stop()  # un-REGISTERs and closes the sockets
    print("done", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password", default="demo1234")
    parser.add_argument("--my-ip", default="127.0.0.1")
    parser.add_argument("--sip-port", type=int, required=True)
    parser.add_argument("--rtp-ports", required=True, help="low-high, inclusive")
    parser.add_argument("--extension", required=True)
    parser.add_argument("--speak", type=Path, required=True, help="8 kHz mono 16-bit WAV")
    parser.add_argument("--record", type=Path, required=True, help="where to write heard audio")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
