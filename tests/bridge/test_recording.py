"""Crash-safe WAV recordings: exact samples, a valid .part after every flush, recovery."""

from __future__ import annotations

import json
import logging
import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from bridge.recording import (
    HEADER_BYTES,
    WavRecording,
    read_recording,
    recording_stem,
    recover_recordings,
)

RATE_HZ = 16000
FRAME_SAMPLES = 320  # 20 ms at 16 kHz
STARTED_AT = 1795428900.0  # 2026-11-23T10:15:00Z
METADATA: dict[str, str | int | float] = {
    "room": "rakor",
    "name": "Rapat Koordinasi",
    "members": 12,
}


def known_int16(count: int, seed: int = 4) -> NDArray[np.int16]:
    """Return `count` reproducible samples over the whole int16 range."""
    return np.random.default_rng(seed).integers(-32768, 32768, count, dtype=np.int16)


def as_float(samples: NDArray[np.int16]) -> NDArray[np.float32]:
    return samples.astype(np.float32) / np.float32(32768.0)


def start(directory: Path, stem: str = "meeting-rakor", **options: float) -> WavRecording:
    return WavRecording.start(directory, stem, RATE_HZ, METADATA, STARTED_AT, **options)


def write_frames(recording: WavRecording, samples: NDArray[np.float32]) -> None:
    for offset in range(0, len(samples), FRAME_SAMPLES):
        recording.write(samples[offset : offset + FRAME_SAMPLES])


def read_part(path: Path) -> NDArray[np.int16]:
    """Read a .part as `wave` (any WAV reader) sees it: only what its header counts."""
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE_HZ)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)


def snapshot_crash(recording: WavRecording, directory: Path) -> Path:
    """Copy what a crash right now would leave (.part and sidecar) into `directory`."""
    directory.mkdir(exist_ok=True)
    part = Path(shutil.copy2(recording.part_path, directory))
    sidecar = recording.part_path.with_name(recording.part_path.name + ".json")
    shutil.copy2(sidecar, directory)
    return part


def test_round_trip_keeps_int16_samples_exactly(tmp_path: Path) -> None:
    expected = known_int16(RATE_HZ * 2 + 123)  # an odd tail frame as well
    recording = start(tmp_path)
    write_frames(recording, as_float(expected))
    path = recording.close(ended_at=STARTED_AT + 2.5)

    samples, rate_hz, document = read_recording(path)

    assert path == tmp_path / "meeting-rakor.wav"
    assert rate_hz == RATE_HZ
    np.testing.assert_array_equal(np.rint(samples * 32768.0).astype(np.int16), expected)
    assert document == {
        "file": "meeting-rakor.wav",
        "rate_hz": RATE_HZ,
        "samples": len(expected),
        "duration_s": len(expected) / RATE_HZ,
        "started_at": "2026-11-23T10:15:00.000Z",
        "started_at_epoch_s": STARTED_AT,
        "ended_at": "2026-11-23T10:15:02.500Z",
        "ended_at_epoch_s": STARTED_AT + 2.5,
        "recovered": False,
        "metadata": METADATA,
    }


def test_close_leaves_only_the_wav_and_its_json(tmp_path: Path) -> None:
    recording = start(tmp_path)
    recording.write(as_float(known_int16(FRAME_SAMPLES)))
    recording.close(ended_at=STARTED_AT + 1)

    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "meeting-rakor.json",
        "meeting-rakor.wav",
    ]


def test_start_writes_an_empty_wav_and_a_sidecar(tmp_path: Path) -> None:
    recording = start(tmp_path / "new" / "folder")

    assert recording.part_path == tmp_path / "new" / "folder" / "meeting-rakor.wav.part"
    assert recording.part_path.stat().st_size == HEADER_BYTES
    assert len(read_part(recording.part_path)) == 0
    sidecar = json.loads(recording.part_path.with_name("meeting-rakor.wav.part.json").read_text())
    assert sidecar == {
        "metadata": METADATA,
        "rate_hz": RATE_HZ,
        "started_at": "2026-11-23T10:15:00.000Z",
        "started_at_epoch_s": STARTED_AT,
    }
    recording.close(ended_at=STARTED_AT)


def test_part_is_a_valid_wav_after_each_flush(tmp_path: Path) -> None:
    expected = known_int16(RATE_HZ)
    recording = start(tmp_path, flush_interval_s=0.1)  # 1600 samples: every 5 frames
    flushed_counts = []
    for offset in range(0, len(expected), FRAME_SAMPLES):
        recording.write(as_float(expected[offset : offset + FRAME_SAMPLES]))
        flushed = read_part(recording.part_path)
        np.testing.assert_array_equal(flushed, expected[: len(flushed)])
        flushed_counts.append(len(flushed))
    recording.close(ended_at=STARTED_AT + 1)

    assert flushed_counts[:6] == [0, 0, 0, 0, 1600, 1600]
    assert flushed_counts[-1] == RATE_HZ


def test_frame_larger_than_the_flush_interval_is_split_across_flushes(tmp_path: Path) -> None:
    expected = known_int16(5000)
    recording = start(tmp_path, flush_interval_s=0.1)
    recording.write(as_float(expected))

    np.testing.assert_array_equal(read_part(recording.part_path), expected[:4800])
    assert recording.samples == 5000
    assert recording.duration_s == 5000 / RATE_HZ
    samples, _, _ = read_recording(recording.close(ended_at=STARTED_AT + 1))
    np.testing.assert_array_equal(np.rint(samples * 32768.0).astype(np.int16), expected)


def test_out_of_range_floats_are_clipped_and_rounded(tmp_path: Path) -> None:
    values = np.array(
        [1.0, 1.5, -1.0, -2.0, 0.99999, 1.4 / 32768, 1.6 / 32768, -1.6 / 32768],
        dtype=np.float32,
    )
    recording = start(tmp_path)
    recording.write(values)
    samples, _, _ = read_recording(recording.close(ended_at=STARTED_AT + 1))

    assert (samples * 32768).astype(np.int16).tolist() == [
        32767, 32767, -32768, -32768, 32767, 1, 2, -2,
    ]


def test_stem_taken_by_finished_or_partial_recording_gets_a_number(tmp_path: Path) -> None:
    (tmp_path / "meeting-rakor.wav").write_bytes(b"finished")
    first = start(tmp_path)
    second = start(tmp_path)

    assert first.part_path.name == "meeting-rakor-2.wav.part"
    assert second.part_path.name == "meeting-rakor-3.wav.part"
    assert first.close(ended_at=STARTED_AT).name == "meeting-rakor-2.wav"
    assert second.close(ended_at=STARTED_AT).name == "meeting-rakor-3.wav"
    assert (tmp_path / "meeting-rakor.wav").read_bytes() == b"finished"


def test_close_is_idempotent(tmp_path: Path) -> None:
    recording = start(tmp_path)
    recording.write(as_float(known_int16(FRAME_SAMPLES)))

    first = recording.close(ended_at=STARTED_AT + 1)
    second = recording.close(ended_at=STARTED_AT + 99)

    assert first == second
    assert recording.closed
    assert json.loads(first.with_suffix(".json").read_text())["ended_at_epoch_s"] == STARTED_AT + 1


def test_write_after_close_raises(tmp_path: Path) -> None:
    recording = start(tmp_path)
    recording.close(ended_at=STARTED_AT)

    with pytest.raises(ValueError, match="write to a closed recording"):
        recording.write(as_float(known_int16(FRAME_SAMPLES)))


def test_start_rejects_a_flush_interval_of_zero(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_interval_s must be positive"):
        start(tmp_path, flush_interval_s=0)
    assert list(tmp_path.iterdir()) == []


def test_recording_stem_is_kind_name_and_utc_start() -> None:
    assert recording_stem("meeting", "rakor", STARTED_AT) == "meeting-rakor-20261123T101500Z"


def test_recording_stem_sanitizes_names() -> None:
    stem = recording_stem("report", "+62 812/345 ../x", STARTED_AT)

    assert stem == "report-_62_812_345_x-20261123T101500Z"
    assert recording_stem("report", "", STARTED_AT) == "report-_-20261123T101500Z"


def test_recover_finishes_a_part_with_its_metadata(tmp_path: Path) -> None:
    expected = known_int16(RATE_HZ)
    recording = start(tmp_path / "live", flush_interval_s=0.5)
    write_frames(recording, as_float(expected))
    part = snapshot_crash(recording, tmp_path / "crashed")
    os.utime(part, (STARTED_AT + 7, STARTED_AT + 7))
    recording.close(ended_at=STARTED_AT + 1)

    recovered = recover_recordings(tmp_path / "crashed", now=STARTED_AT + 60)

    assert recovered == [tmp_path / "crashed" / "meeting-rakor.wav"]
    samples, rate_hz, document = read_recording(recovered[0])
    np.testing.assert_array_equal(np.rint(samples * 32768.0).astype(np.int16), expected)
    assert rate_hz == RATE_HZ
    assert document["recovered"] is True
    assert document["metadata"] == METADATA
    assert document["started_at_epoch_s"] == STARTED_AT
    assert document["ended_at_epoch_s"] == STARTED_AT + 7  # the .part's mtime
    assert document["recovered_at_epoch_s"] == STARTED_AT + 60
    assert sorted(path.name for path in (tmp_path / "crashed").iterdir()) == [
        "meeting-rakor.json",
        "meeting-rakor.wav",
    ]


def test_recover_truncates_a_torn_last_sample(tmp_path: Path) -> None:
    expected = known_int16(RATE_HZ // 2 + 2)
    recording = start(tmp_path / "live", flush_interval_s=0.5)
    write_frames(recording, as_float(expected[: RATE_HZ // 2]))
    part = snapshot_crash(recording, tmp_path / "crashed")
    recording.close(ended_at=STARTED_AT + 1)
    # The crash hit after two more samples and half of a third reached the file, before
    # the header was rewritten.
    with part.open("ab") as stream:
        stream.write(expected[RATE_HZ // 2 :].astype("<i2").tobytes() + b"\x7f")

    recovered = recover_recordings(tmp_path / "crashed", now=STARTED_AT + 60)

    assert recovered[0].stat().st_size == HEADER_BYTES + 2 * len(expected)
    samples, _, document = read_recording(recovered[0])
    np.testing.assert_array_equal(np.rint(samples * 32768.0).astype(np.int16), expected)
    assert document["samples"] == len(expected)


def test_recover_without_sidecar_keeps_the_audio(tmp_path: Path) -> None:
    expected = known_int16(RATE_HZ)
    recording = start(tmp_path / "live", flush_interval_s=0.5)
    write_frames(recording, as_float(expected))
    part = snapshot_crash(recording, tmp_path / "crashed")
    recording.close(ended_at=STARTED_AT + 1)
    part.with_name(part.name + ".json").unlink()
    os.utime(part, (STARTED_AT + 7, STARTED_AT + 7))

    recovered = recover_recordings(tmp_path / "crashed", now=STARTED_AT + 60)

    samples, _, document = read_recording(recovered[0])
    np.testing.assert_array_equal(np.rint(samples * 32768.0).astype(np.int16), expected)
    assert document["recovered"] is True
    assert document["metadata"] == {}
    assert document["started_at_epoch_s"] == STARTED_AT + 6  # mtime less the duration


def test_recover_logs_and_leaves_a_garbage_part_and_recovers_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recording = start(tmp_path / "live", flush_interval_s=0.5)
    write_frames(recording, as_float(known_int16(RATE_HZ)))
    snapshot_crash(recording, tmp_path / "crashed")
    recording.close(ended_at=STARTED_AT + 1)
    garbage = tmp_path / "crashed" / "aaa-garbage.wav.part"
    garbage.write_bytes(b"this is not a WAV header at all, but it is long enough" * 2)

    with caplog.at_level(logging.ERROR, logger="bridge.recording"):
        recovered = recover_recordings(tmp_path / "crashed", now=STARTED_AT + 60)

    assert recovered == [tmp_path / "crashed" / "meeting-rakor.wav"]
    assert garbage.exists()
    assert "aaa-garbage.wav.part" in caplog.text
    assert "not a canonical RIFF/WAVE header" in caplog.text


def test_recover_never_replaces_a_finished_recording(tmp_path: Path) -> None:
    recording = start(tmp_path / "live", flush_interval_s=0.5)
    write_frames(recording, as_float(known_int16(RATE_HZ)))
    part = snapshot_crash(recording, tmp_path / "crashed")
    recording.close(ended_at=STARTED_AT + 1)
    (tmp_path / "crashed" / "meeting-rakor.wav").write_bytes(b"finished")

    assert recover_recordings(tmp_path / "crashed", now=STARTED_AT + 60) == []
    assert part.exists()
    assert (tmp_path / "crashed" / "meeting-rakor.wav").read_bytes() == b"finished"


def test_recover_removes_a_sidecar_left_after_the_rename(tmp_path: Path) -> None:
    recording = start(tmp_path, flush_interval_s=0.5)
    sidecar = recording.part_path.with_name(recording.part_path.name + ".json")
    sidecar_text = sidecar.read_text()
    recording.close(ended_at=STARTED_AT + 1)
    sidecar.write_text(sidecar_text)  # a crash in close() between rename and unlink

    assert recover_recordings(tmp_path, now=STARTED_AT + 60) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "meeting-rakor.json",
        "meeting-rakor.wav",
    ]


def test_recover_in_a_missing_directory_finds_nothing(tmp_path: Path) -> None:
    assert recover_recordings(tmp_path / "absent", now=STARTED_AT) == []
