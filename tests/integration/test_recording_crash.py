"""A recording process killed with SIGKILL keeps every flushed second, and recovery finds it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bridge.recording import HEADER_BYTES, read_recording, recover_recordings
from tests.integration.harness import REPO, wait_until

pytestmark = pytest.mark.integration

RATE_HZ = 16000
SIGNAL_S = 3
STARTED_AT = 1795428900.0  # 2026-11-23T10:15:00Z
KILL_AFTER_BYTES = HEADER_BYTES + 2 * 2 * RATE_HZ  # more than 2 s of 16-bit audio
WAIT_S = 30.0

# The child writes 3 s in 20 ms frames with a 1 s flush interval, then blocks on stdin
# without closing the recording: the parent kills it there.
CHILD = """
import sys
from pathlib import Path
import numpy as np
from bridge.recording import WavRecording

directory, signal_path = Path(sys.argv[1]), sys.argv[2]
samples = np.load(signal_path)
recording = WavRecording.start(
    directory, "report-6281234", 16000, {"caller": "+6281234", "room": "hotline"},
    float(sys.argv[3]), flush_interval_s=1.0,
)
for offset in range(0, len(samples), 320):
    recording.write(samples[offset : offset + 320])
sys.stdin.buffer.read()
"""


def test_sigkilled_recording_is_recovered_with_the_flushed_audio(tmp_path: Path) -> None:
    expected = np.random.default_rng(7).integers(-32768, 32768, SIGNAL_S * RATE_HZ, np.int16)
    signal_path = tmp_path / "signal.npy"
    np.save(signal_path, expected.astype(np.float32) / np.float32(32768.0))
    directory = tmp_path / "reports"
    part = directory / "report-6281234.wav.part"
    stderr_path = tmp_path / "child.stderr"
    with stderr_path.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(directory), str(signal_path), str(STARTED_AT)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:

        def grown_past_two_seconds() -> bool:
            if child.poll() is not None:
                raise AssertionError(f"child exited early: {stderr_path.read_text()}")
            return part.exists() and part.stat().st_size > KILL_AFTER_BYTES

        wait_until(grown_past_two_seconds, WAIT_S, "the .part to hold more than 2 s of audio")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=WAIT_S) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=WAIT_S)
        assert child.stdin is not None
        child.stdin.close()

    recovered = recover_recordings(directory, now=STARTED_AT + 60)

    assert recovered == [directory / "report-6281234.wav"]
    samples, rate_hz, document = read_recording(recovered[0])
    written = np.rint(samples * 32768.0).astype(np.int16)
    assert rate_hz == RATE_HZ
    assert len(written) >= 2 * RATE_HZ
    np.testing.assert_array_equal(written, expected[: len(written)])
    assert document["recovered"] is True
    assert document["samples"] == len(written)
    assert document["metadata"] == {"caller": "+6281234", "room": "hotline"}
    assert document["started_at"] == "2026-11-23T10:15:00.000Z"
    assert not part.exists()
