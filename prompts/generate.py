"""Generate the spoken prompts, prompts/<language>/<name>.wav, with espeak-ng and sox.

Run it with the project's venv: `.venv/bin/python prompts/generate.py` (or `make prompts`).
Output is 16 kHz mono 16-bit PCM WAV, silence trimmed at both ends, softly faded, and
normalized to a -3 dBFS peak. It is deterministic (no dither, sox's repeatable mode),
so a second run rewrites nothing; `--check` only reports files that would change.
This script runs processes and is never imported by bridge/ or dsp/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent
LANGUAGES = ("id", "en")
# espeak-ng voice per prompt language.
VOICES = {"id": "id", "en": "en"}
RATE_HZ = 16000
PEAK_DBFS = -3.0
# Words per minute: a little slower than espeak-ng's 175, for narrowband phone lines.
SPEED_WPM = 150
# Leading/trailing audio quieter than this is trimmed as silence.
TRIM_THRESHOLD_DB = -45
FADE_IN_S = 0.01
FADE_OUT_S = 0.03

# name, Indonesian, English. The names are the ones bridge/conference asks for.
PROMPTS: tuple[tuple[str, str, str], ...] = (
    (
        "enter_pin",
        "Silakan masukkan PIN rapat, diakhiri tanda pagar.",
        "Please enter the meeting PIN, followed by the hash key.",
    ),
    ("wrong_pin", "PIN salah. Silakan coba lagi.", "That PIN is not correct. Please try again."),
    ("too_many_attempts", "PIN salah tiga kali. Sampai jumpa.", "Too many wrong PINs. Goodbye."),
    (
        "welcome",
        "Selamat datang. Anda sudah bergabung dalam rapat.",
        "Welcome. You have joined the meeting.",
    ),
    ("alone", "Saat ini Anda satu-satunya peserta.", "You are currently the only participant."),
    ("muted", "Mikrofon Anda dimatikan.", "You are muted."),
    ("unmuted", "Mikrofon Anda aktif kembali.", "You are unmuted."),
    ("moderator", "Anda masuk sebagai moderator.", "You have joined as a moderator."),
)


def prompt_texts() -> dict[tuple[str, str], str]:
    """Return the text of every prompt by (language, name)."""
    texts: dict[tuple[str, str], str] = {}
    for name, indonesian, english in PROMPTS:
        texts[("id", name)] = indonesian
        texts[("en", name)] = english
    return texts


def synthesize(text: str, language: str, work_dir: Path) -> bytes:
    """Speak `text` in `language` and return the finished WAV file's bytes."""
    raw = work_dir / "raw.wav"
    finished = work_dir / "finished.wav"
    subprocess.run(
        ["espeak-ng", "-v", VOICES[language], "-s", str(SPEED_WPM), "--stdin", "-w", str(raw)],
        input=text.encode("utf-8"),
        check=True,
    )
    # -R: repeatable mode (fixed seeds); -D: no dither, the one random step left.
    # silence/reverse/silence trims both ends; fades go on before the final reverse so
    # neither needs the (unknown) length; gain -n comes last, after the resampler's
    # overshoot, so the peak is exactly where it is asked to be.
    trim = ["silence", "1", "0.02", f"{TRIM_THRESHOLD_DB}d"]
    subprocess.run(
        [
            "sox",
            "-R",
            "-D",
            "-V1",
            str(raw),
            "-b",
            "16",
            "-c",
            "1",
            "-e",
            "signed-integer",
            str(finished),
            *trim,
            "reverse",
            *trim,
            "fade",
            "t",
            str(FADE_OUT_S),
            "reverse",
            "fade",
            "t",
            str(FADE_IN_S),
            "rate",
            "-v",
            str(RATE_HZ),
            "gain",
            "-n",
            str(PEAK_DBFS),
        ],
        check=True,
    )
    return finished.read_bytes()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace `path` with `data` unless it already holds it; True if written."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return True


def main(argv: list[str] | None = None) -> int:
    """Generate every prompt; return a process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--output-dir", type=Path, default=PROMPTS_DIR, help="where <language>/<name>.wav go"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail if any file would change"
    )
    args = parser.parse_args(argv)
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        print(f"missing {', '.join(missing)}: run `make system-packages`", file=sys.stderr)
        return 2
    stale: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="telerapat-prompts-") as work:
        for (language, name), text in prompt_texts().items():
            path = args.output_dir / language / f"{name}.wav"
            data = synthesize(text, language, Path(work))
            if args.check:
                if not (path.exists() and path.read_bytes() == data):
                    stale.append(path)
            elif write_if_changed(path, data):
                print(f"wrote {path}")
    if stale:
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
