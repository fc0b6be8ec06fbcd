"""Loading prompt WAVs into a PromptLibrary, and its language fallback."""

import wave
from pathlib import Path

import numpy as np
import pytest

from bridge.conference.prompts import COMMON, PromptLibrary
from bridge.prompt_files import load_prompts, read_wav

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


def write_wav(path: Path, samples: list[int], rate_hz: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def constant(value: int, count: int = 160) -> list[int]:
    return [value] * count


def test_prompts_of_each_language_and_the_common_folder_are_loaded(tmp_path: Path) -> None:
    write_wav(tmp_path / "id" / "welcome.wav", constant(1000))
    write_wav(tmp_path / "en" / "welcome.wav", constant(2000))
    write_wav(tmp_path / "common" / "hold_music.wav", constant(3000))
    write_wav(tmp_path / "fr" / "welcome.wav", constant(4000))  # not a language we speak
    library = load_prompts(tmp_path, 16000)
    assert library.rate_hz == 16000
    assert sorted(library.clips) == [("common", "hold_music"), ("en", "welcome"), ("id", "welcome")]
    assert library.clips[("en", "welcome")][0] == pytest.approx(2000 / 32768)
    assert library.clips[(COMMON, "hold_music")].dtype == np.float32


def test_prompts_are_resampled_to_the_room_rate(tmp_path: Path) -> None:
    write_wav(tmp_path / "id" / "welcome.wav", constant(0, 8000), rate_hz=8000)
    write_wav(tmp_path / "common" / "hold_music.wav", constant(0, 16000))
    library = load_prompts(tmp_path, 48000)
    assert library.clips[("id", "welcome")].shape == (48000,)
    assert library.clips[(COMMON, "hold_music")].shape == (48000,)


def test_stereo_is_refused_and_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no prompts found"):
        load_prompts(tmp_path, 16000)
    write_wav(tmp_path / "id" / "welcome.wav", constant(0, 320), channels=2)
    with pytest.raises(ValueError, match="mono 16-bit PCM"):
        read_wav(tmp_path / "id" / "welcome.wav")


def test_library_falls_back_from_the_language_to_indonesian_to_common() -> None:
    def clip(value: float) -> np.ndarray:
        return np.full(4, value, dtype=np.float32)

    library = PromptLibrary(
        16000,
        {
            ("en", "welcome"): clip(1.0),
            ("id", "welcome"): clip(2.0),
            ("id", "help"): clip(3.0),
            (COMMON, "help"): clip(4.0),
            (COMMON, "hold_music"): clip(5.0),
        },
    )
    assert library.get("en", "welcome")[0] == 1.0
    assert library.get("id", "welcome")[0] == 2.0
    assert library.get("en", "help")[0] == 3.0  # a spoken prompt beats a neutral one
    assert library.get("en", "hold_music")[0] == 5.0
    assert library.get("fr", "hold_music")[0] == 5.0
    with pytest.raises(KeyError, match="no prompt named 'nothing' for language 'en'"):
        library.get("en", "nothing")


def test_the_shipped_prompts_load_with_hold_music() -> None:
    library = load_prompts(PROMPTS_DIR, 16000)
    assert library.get("en", "hold_music").shape[0] >= 20 * 16000
    assert ("en", "num_eleven") in library.clips and ("id", "num_sebelas") in library.clips
    assert library.get("en", "welcome") is library.clips[("en", "welcome")]
    assert {language for language, _ in library.clips} == {"id", "en", COMMON}
