"""Prompt WAVs: every prompt in both languages, 16 kHz mono 16-bit, sensible length and level."""

import importlib.util
import shutil
import wave
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from dsp.level import peak_dbfs, rms_dbfs

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
# The names bridge/conference plays.
REQUIRED_NAMES = {
    "enter_pin",
    "wrong_pin",
    "too_many_attempts",
    "welcome",
    "alone",
    "muted",
    "unmuted",
    "moderator",
}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prompts_generate", PROMPTS_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()
PROMPT_FILES = [
    PROMPTS_DIR / language / f"{name}.wav"
    for language in GENERATOR.LANGUAGES
    for name, *_ in GENERATOR.PROMPTS
]


def test_prompt_table_covers_what_the_bridge_plays() -> None:
    assert GENERATOR.LANGUAGES == ("id", "en")
    assert {name for name, *_ in GENERATOR.PROMPTS} == REQUIRED_NAMES


@pytest.mark.parametrize("path", PROMPT_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_prompt_wav_is_normalized_16k_mono_pcm(path: Path) -> None:
    assert path.exists(), f"{path} missing: run prompts/generate.py"
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getframerate() == 16000
        assert wav.getcomptype() == "NONE"
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    duration_s = len(samples) / 16000
    assert 0.3 <= duration_s <= 6.0
    audio = samples.astype(np.float32) / 32768
    assert peak_dbfs(audio) == pytest.approx(GENERATOR.PEAK_DBFS, abs=0.5)
    assert rms_dbfs(audio) > -30.0  # speech, not a click in silence
    # Trimmed and faded: no click at either end.
    assert np.max(np.abs(audio[:8])) < 0.05 and np.max(np.abs(audio[-8:])) < 0.05


def test_prompts_total_size_stays_small() -> None:
    assert sum(path.stat().st_size for path in PROMPT_FILES) < 1.5e6


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are needed to synthesize prompts",
)
def test_generator_is_deterministic(tmp_path: Path) -> None:
    assert GENERATOR.main(["--output-dir", str(tmp_path / "a")]) == 0
    assert GENERATOR.main(["--output-dir", str(tmp_path / "a"), "--check"]) == 0
    assert GENERATOR.main(["--output-dir", str(tmp_path / "b")]) == 0
    first = sorted((tmp_path / "a").rglob("*.wav"))
    assert len(first) == len(PROMPT_FILES)
    for path in first:
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
