"""Prompt WAVs: every prompt in both languages, 16 kHz mono 16-bit, sensible length and level."""

import importlib.util
import shutil
import wave
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.level import peak_dbfs, rms_dbfs

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
RATE_HZ = 16000
# The names the bridge plays, in every language.
REQUIRED_NAMES = {
    # PIN entry and joining.
    "enter_pin",
    "wrong_pin",
    "too_many_attempts",
    "welcome",
    "alone",
    "muted",
    "unmuted",
    "moderator",
    # Keypad and room modes (issue #4).
    "hand_raised",
    "hand_lowered",
    "muted_by_moderator",
    "moderator_mute_hand",
    "listen_only",
    "floor_given",
    "floor_given_to",
    "no_hands",
    "hand_raised_moderator",
    "there_are",
    "participants",
    "volume_up",
    "volume_down",
    "volume_limit",
    "help",
    "help_moderator",
    "all_muted",
    "all_unmuted",
    "locked",
    "unlocked",
    "room_locked",
    "room_full",
    "recording_started",
    "recording_stopped",
    "removed",
    "member_removed",
    "end_confirm",
    "meeting_ended",
    "wait_for_moderator",
    "say_your_name",
    "has_joined",
    "has_left",
    # Hotline.
    "hotline_welcome",
    "queue_position",
    "in_queue",
    "operator_connected",
    "leave_report",
    "report_saved",
    "next_caller",
    "no_callers",
    "callers_waiting",
    "call_ended",
}
# Prompts that list commands may run long; every other sentence stays short for phone users.
LONG_NAMES = {"help", "help_moderator"}
HOLD_MUSIC = PROMPTS_DIR / "common" / "hold_music.wav"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prompts_generate", PROMPTS_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()
TEXTS: dict[tuple[str, str], str] = GENERATOR.prompt_texts()
SPOKEN_FILES = {key: PROMPTS_DIR / key[0] / f"{key[1]}.wav" for key in TEXTS}
ALL_FILES = [*SPOKEN_FILES.values(), HOLD_MUSIC]


def read_pcm(path: Path) -> NDArray[np.float32]:
    """Check the file is 16 kHz mono 16-bit PCM and return its samples in [-1, 1)."""
    assert path.exists(), f"{path} missing: run prompts/generate.py"
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getframerate() == RATE_HZ
        assert wav.getcomptype() == "NONE"
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return samples.astype(np.float32) / 32768


def test_prompt_table_covers_what_the_bridge_plays_in_both_languages() -> None:
    assert GENERATOR.LANGUAGES == ("id", "en")
    for language in GENERATOR.LANGUAGES:
        names = {name for lang, name in TEXTS if lang == language}
        assert {name for name in names if not name.startswith("num_")} == REQUIRED_NAMES


def test_number_words_are_prompts_of_their_own_language() -> None:
    for language, words in GENERATOR.NUMBER_WORDS.items():
        for word in words:
            assert TEXTS[(language, f"num_{word}")] == word
    assert ("id", "num_sebelas") in TEXTS and ("en", "num_sebelas") not in TEXTS
    assert ("en", "num_eleven") in TEXTS and ("id", "num_eleven") not in TEXTS


def test_the_eight_first_prompts_keep_their_texts() -> None:
    """Their WAVs are already deployed: a changed text would silently change them."""
    assert TEXTS[("id", "enter_pin")] == "Silakan masukkan PIN rapat, diakhiri tanda pagar."
    assert TEXTS[("en", "moderator")] == "You have joined as a moderator."
    assert [name for name, *_ in GENERATOR.PROMPTS[:8]] == [
        "enter_pin",
        "wrong_pin",
        "too_many_attempts",
        "welcome",
        "alone",
        "muted",
        "unmuted",
        "moderator",
    ]


def test_prompts_folder_holds_exactly_the_generated_files() -> None:
    on_disk = set(PROMPTS_DIR.glob("*/*.wav"))
    assert on_disk == set(ALL_FILES)


@pytest.mark.parametrize(("language", "name"), sorted(SPOKEN_FILES), ids="/".join)
def test_prompt_wav_is_normalized_16k_mono_pcm(language: str, name: str) -> None:
    audio = read_pcm(SPOKEN_FILES[(language, name)])
    duration_s = len(audio) / RATE_HZ
    if name.startswith("num_"):
        assert 0.2 <= duration_s <= 1.5
    elif name in LONG_NAMES:
        assert duration_s <= 30.0
    else:
        assert 0.3 <= duration_s <= 10.0
    assert peak_dbfs(audio) == pytest.approx(GENERATOR.PEAK_DBFS, abs=0.5)
    assert rms_dbfs(audio) > -30.0  # speech, not a click in silence
    # Trimmed and faded: no click at either end.
    assert np.max(np.abs(audio[:8])) < 0.05 and np.max(np.abs(audio[-8:])) < 0.05


def test_hold_music_is_a_quiet_loop_of_20_to_30_seconds() -> None:
    music = read_pcm(HOLD_MUSIC)
    assert 20.0 <= len(music) / RATE_HZ <= 30.0
    assert rms_dbfs(music) == pytest.approx(GENERATOR.HOLD_MUSIC_RMS_DBFS, abs=0.5)
    assert peak_dbfs(music) < -3.0
    # Looping jumps from the last sample to the first: both are near zero, so no click.
    assert abs(music[0]) < 0.01 and abs(music[-1]) < 0.01
    # It keeps playing: no gap of a second or more anywhere.
    quarter_seconds = music[: len(music) // 4000 * 4000].reshape(-1, 4000)
    assert rms_dbfs(quarter_seconds[1:-1].reshape(-1)) > -30.0
    assert min(rms_dbfs(block) for block in quarter_seconds[1:-1]) > -40.0


def test_hold_music_sits_in_the_telephone_band() -> None:
    music = read_pcm(HOLD_MUSIC)
    power = np.abs(np.fft.rfft(music)) ** 2
    freqs = np.fft.rfftfreq(len(music), 1 / RATE_HZ)
    in_band = power[(freqs >= 300) & (freqs <= 3400)].sum()
    assert in_band / power.sum() > 0.8


def test_prompts_total_size_stays_small() -> None:
    """About six minutes of 16 kHz speech and music: a repository can carry that."""
    assert sum(path.stat().st_size for path in ALL_FILES) < 14e6


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are needed to synthesize prompts",
)
def test_generator_is_deterministic(tmp_path: Path) -> None:
    assert GENERATOR.main(["--output-dir", str(tmp_path)]) == 0
    written = sorted(tmp_path.rglob("*.wav"))
    assert [path.relative_to(tmp_path) for path in written] == sorted(
        path.relative_to(PROMPTS_DIR) for path in ALL_FILES
    )
    # A second run renders every file again and finds each byte the same.
    assert GENERATOR.main(["--output-dir", str(tmp_path), "--check"]) == 0
