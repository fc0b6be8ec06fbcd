"""Generate the spoken prompts, prompts/<language>/<name>.wav, with espeak-ng and sox.

Run it with the project's venv: `.venv/bin/python prompts/generate.py` (or `make prompts`).
Output is 16 kHz mono 16-bit PCM WAV, silence trimmed at both ends, softly faded, and
normalized to a -3 dBFS peak; the language-neutral hold music, prompts/common/hold_music.wav,
is synthesized by sox alone. It is deterministic (no dither, sox's repeatable mode),
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
from collections.abc import Iterator
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
# sox output options of every file written: mono 16-bit signed PCM.
PCM_16_BIT = ("-b", "16", "-c", "1", "-e", "signed-integer")
# sox output options of the hold music's intermediate files.
FLOAT_MONO = ("-r", str(RATE_HZ), "-c", "1", "-b", "32", "-e", "floating-point")
# Language-neutral clips live in prompts/common/<name>.wav.
COMMON = "common"

# Hold music: pluck notes arpeggiating a chord each, over a soft sine pad of that chord.
HOLD_MUSIC_NOTE_S = 0.4
# Indices into (root, third, fifth, octave): up and back down, eight notes per chord.
HOLD_MUSIC_PATTERN = (0, 1, 2, 3, 2, 1, 0, 1)
# MIDI notes in C major: I-vi-IV-V, I-vi-ii-V. Ending on V, the loop resolves into its start.
HOLD_MUSIC_CHORDS: tuple[tuple[int, int, int], ...] = (
    (72, 76, 79),
    (69, 72, 76),
    (72, 77, 81),
    (71, 74, 79),
    (72, 76, 79),
    (69, 72, 76),
    (69, 74, 77),
    (71, 74, 79),
)
# The pad's level under the arpeggio's, before the whole is normalized to an RMS level.
HOLD_MUSIC_PAD_GAIN = 0.3
HOLD_MUSIC_RMS_DBFS = -18.0

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
    # Keypad (issue #4). A text ending in a comma leads into a spoken number: the comma
    # gives espeak-ng's rising, unfinished intonation, and its pause is trimmed off.
    (
        "hand_raised",
        "Tangan Anda terangkat. Anda berada di antrean nomor,",
        "Your hand is raised. You are number,",
    ),
    ("hand_lowered", "Tangan Anda diturunkan.", "Your hand is lowered."),
    ("muted_by_moderator", "Moderator mematikan mikrofon Anda.", "A moderator has muted you."),
    (
        "moderator_mute_hand",
        "Mikrofon Anda dimatikan oleh moderator. "
        "Tekan bintang sembilan untuk mengangkat tangan.",
        "A moderator has muted you. Press star nine to raise your hand.",
    ),
    (
        "listen_only",
        "Anda bergabung sebagai pendengar. Tekan bintang sembilan untuk mengangkat tangan.",
        "You are listening only. Press star nine to raise your hand.",
    ),
    (
        "floor_given",
        "Anda dipersilakan berbicara. Mikrofon Anda aktif.",
        "You have the floor. You are unmuted.",
    ),
    (
        "floor_given_to",
        "Kesempatan bicara diberikan kepada peserta berikutnya.",
        "The floor is given to the next raised hand.",
    ),
    ("no_hands", "Tidak ada peserta yang mengangkat tangan.", "Nobody has raised a hand."),
    (
        "hand_raised_moderator",
        "Ada peserta yang mengangkat tangan.",
        "A participant has raised a hand.",
    ),
    ("there_are", "Saat ini ada,", "There are,"),
    ("participants", "peserta dalam rapat.", "participants in the meeting."),
    ("volume_up", "Volume dinaikkan.", "Volume up."),
    ("volume_down", "Volume diturunkan.", "Volume down."),
    ("volume_limit", "Volume sudah maksimum atau minimum.", "Volume at its limit."),
    (
        "help",
        "Tekan bintang enam untuk mematikan atau menyalakan mikrofon. "
        "Bintang sembilan untuk mengangkat atau menurunkan tangan. "
        "Bintang pagar untuk jumlah peserta. "
        "Bintang satu untuk mengecilkan volume, bintang tiga untuk membesarkan. "
        "Bintang nol untuk petunjuk ini.",
        "Press star six to mute or unmute yourself. "
        "Star nine to raise or lower your hand. "
        "Star hash to hear how many are in the meeting. "
        "Star one for quieter, star three for louder. "
        "Star zero for this help.",
    ),
    # Played after `help` to moderators: only what they may do beyond it.
    (
        "help_moderator",
        "Perintah moderator. "
        "Pagar pagar untuk membisukan semua peserta. "
        "Sembilan sembilan untuk menyalakan semua mikrofon. "
        "Bintang delapan untuk memberi kesempatan bicara. "
        "Bintang lima untuk mengunci atau membuka rapat. "
        "Bintang tujuh untuk merekam atau berhenti merekam. "
        "Bintang dua untuk mengeluarkan peserta terakhir. "
        "Bintang empat lalu satu untuk mengakhiri rapat.",
        "Moderator commands. "
        "Hash hash to mute everyone. "
        "Nine nine to unmute everyone. "
        "Star eight to give the floor to the next raised hand. "
        "Star five to lock or unlock the meeting. "
        "Star seven to start or stop recording. "
        "Star two to remove the last person who joined. "
        "Star four, then one, to end the meeting.",
    ),
    ("all_muted", "Semua peserta dibisukan oleh moderator.", "A moderator has muted everyone."),
    ("all_unmuted", "Semua peserta dapat berbicara kembali.", "Everyone may speak again."),
    ("locked", "Rapat dikunci. Peserta baru tidak dapat bergabung.", "The meeting is locked."),
    ("unlocked", "Rapat dibuka kembali.", "The meeting is unlocked."),
    (
        "room_locked",
        "Maaf, rapat sedang dikunci. Sampai jumpa.",
        "Sorry, this meeting is locked. Goodbye.",
    ),
    (
        "room_full",
        "Maaf, rapat sudah penuh. Sampai jumpa.",
        "Sorry, this meeting is full. Goodbye.",
    ),
    ("recording_started", "Rapat ini sedang direkam.", "This meeting is being recorded."),
    ("recording_stopped", "Perekaman rapat dihentikan.", "Recording has stopped."),
    (
        "removed",
        "Anda dikeluarkan dari rapat oleh moderator. Sampai jumpa.",
        "A moderator has removed you from the meeting. Goodbye.",
    ),
    (
        "member_removed",
        "Peserta terakhir yang bergabung telah dikeluarkan.",
        "The last person who joined has been removed.",
    ),
    (
        "end_confirm",
        "Tekan satu untuk mengakhiri rapat bagi semua peserta.",
        "Press one to end the meeting for everyone.",
    ),
    (
        "meeting_ended",
        "Rapat telah diakhiri. Terima kasih, sampai jumpa.",
        "The meeting has ended. Thank you, goodbye.",
    ),
    (
        "wait_for_moderator",
        "Mohon tunggu. Rapat akan dimulai setelah moderator bergabung.",
        "Please wait. The meeting will start when a moderator joins.",
    ),
    (
        "say_your_name",
        "Sebutkan nama Anda setelah nada, lalu tekan pagar.",
        "After the tone, say your name, then press hash.",
    ),
    # Played after a member's recorded name.
    ("has_joined", "telah bergabung.", "has joined."),
    ("has_left", "telah keluar.", "has left."),
    # Hotline.
    (
        "hotline_welcome",
        "Selamat datang di layanan pengaduan.",
        "Welcome to the reporting hotline.",
    ),
    ("queue_position", "Anda berada di antrean nomor,", "You are number,"),
    (
        "in_queue",
        "Mohon tunggu, operator akan segera melayani Anda.",
        "Please hold, an operator will be with you shortly.",
    ),
    (
        "operator_connected",
        "Anda tersambung dengan operator.",
        "You are connected to the operator.",
    ),
    (
        "leave_report",
        "Saat ini tidak ada operator yang bertugas. "
        "Silakan sampaikan laporan Anda setelah nada. Tekan pagar jika sudah selesai.",
        "No operator is on duty. Please leave your report after the tone, "
        "and press hash when you are done.",
    ),
    (
        "report_saved",
        "Laporan Anda sudah kami terima. Terima kasih.",
        "Your report has been saved. Thank you.",
    ),
    ("next_caller", "Penelepon berikutnya tersambung.", "Next caller connected."),
    ("no_callers", "Tidak ada penelepon dalam antrean.", "No callers are waiting."),
    # After there_are and a number, to an operator.
    ("callers_waiting", "penelepon menunggu.", "callers waiting."),
    (
        "call_ended",
        "Terima kasih atas laporan Anda. Sampai jumpa.",
        "Thank you for your report. Goodbye.",
    ),
)

# The words bridge/conference/numbers.py strings together to say a count, per language;
# each is the prompt `num_<word>` and is spoken as written.
NUMBER_WORDS: dict[str, tuple[str, ...]] = {
    "id": (
        "nol", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan",
        "sepuluh", "sebelas", "seratus", "seribu", "belas", "puluh", "ratus", "ribu",
    ),
    "en": (
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy",
        "eighty", "ninety", "hundred", "thousand",
    ),
}


def prompt_texts() -> dict[tuple[str, str], str]:
    """Return the text of every prompt by (language, name)."""
    texts: dict[tuple[str, str], str] = {}
    for name, indonesian, english in PROMPTS:
        texts[("id", name)] = indonesian
        texts[("en", name)] = english
    for language, words in NUMBER_WORDS.items():
        for word in words:
            texts[(language, f"num_{word}")] = word
    return texts


def sox(*arguments: str) -> str:
    """Run sox repeatably and return what it reports (e.g. `stats`) on standard error."""
    # -R: repeatable mode (fixed seeds); -D: no dither, the one random step left.
    result = subprocess.run(
        ["sox", "-R", "-D", "-V1", *arguments], check=True, capture_output=True, text=True
    )
    return result.stderr


def synthesize(text: str, language: str, work_dir: Path) -> bytes:
    """Speak `text` in `language` and return the finished WAV file's bytes."""
    raw = work_dir / "raw.wav"
    finished = work_dir / "finished.wav"
    subprocess.run(
        ["espeak-ng", "-v", VOICES[language], "-s", str(SPEED_WPM), "--stdin", "-w", str(raw)],
        input=text.encode("utf-8"),
        check=True,
    )
    # silence/reverse/silence trims both ends; fades go on before the final reverse so
    # neither needs the (unknown) length; gain -n comes last, after the resampler's
    # overshoot, so the peak is exactly where it is asked to be.
    trim = ["silence", "1", "0.02", f"{TRIM_THRESHOLD_DB}d"]
    sox(
        str(raw),
        *PCM_16_BIT,
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
    )
    return finished.read_bytes()


def hold_music(work_dir: Path) -> bytes:
    """Synthesize the hold music, an arpeggio over a soft chord pad; return the WAV's bytes.

    Every note and every chord fades in from silence and out to it, so the last sample
    meets the first without a step: the clip loops without a click.
    """
    length = str(HOLD_MUSIC_NOTE_S)
    chord_length = str(HOLD_MUSIC_NOTE_S * len(HOLD_MUSIC_PATTERN))
    notes: list[str] = []
    pads: list[str] = []
    for index, chord in enumerate(HOLD_MUSIC_CHORDS):
        tones = (*chord, chord[0] + 12)
        for step, tone_index in enumerate(HOLD_MUSIC_PATTERN):
            note = str(work_dir / f"note{index:02d}-{step}.wav")
            pitch = semitones_from_a4(tones[tone_index])
            # Low-passed to keep the pluck's bright attack inside the telephone band.
            sox("-n", *FLOAT_MONO, note, "synth", length, "pluck", pitch,
                "lowpass", "3000", "fade", "q", "0.01", length, "0.15")
            notes.append(note)
        # One sine per input channel, an octave below the arpeggio, mixed down to mono.
        pad = str(work_dir / f"pad{index:02d}.wav")
        sines = [part for midi in chord for part in ("sine", semitones_from_a4(midi - 12))]
        sox("-r", str(RATE_HZ), "-c", str(len(chord)), "-n", *FLOAT_MONO, pad,
            "synth", chord_length, *sines,
            "remix", "-", "fade", "h", "0.6", chord_length, "1.0")
        pads.append(pad)
    arpeggio, chords, mixed, finished = (
        work_dir / f"{name}.wav" for name in ("arpeggio", "chords", "mixed", "hold_music")
    )
    sox(*notes, str(arpeggio))
    sox(*pads, str(chords))
    sox("-m", "-v", "1", str(arpeggio), "-v", str(HOLD_MUSIC_PAD_GAIN), str(chords), str(mixed))
    stats = sox(str(mixed), "-n", "stats").splitlines()
    rms_dbfs = float(next(line for line in stats if line.startswith("RMS lev dB")).split()[3])
    gain = f"{HOLD_MUSIC_RMS_DBFS - rms_dbfs:.2f}"
    sox(str(mixed), *PCM_16_BIT, str(finished), "gain", gain)
    return finished.read_bytes()


def semitones_from_a4(midi_note: int) -> str:
    """Return a MIDI note as sox synth's `%semitones` from A4 (MIDI 69, 440 Hz)."""
    return f"%{midi_note - 69}"


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace `path` with `data` unless it already holds it; True if written."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return True


def render_all(work_dir: Path) -> Iterator[tuple[Path, bytes]]:
    """Yield every file this script makes, as (path under the prompts folder, bytes)."""
    for (language, name), text in prompt_texts().items():
        yield Path(language) / f"{name}.wav", synthesize(text, language, work_dir)
    yield Path(COMMON) / "hold_music.wav", hold_music(work_dir)


def main(argv: list[str] | None = None) -> int:
    """Generate every prompt; return a process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=PROMPTS_DIR,
        help="where <language>/<name>.wav and common/ go",
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
        for relative, data in render_all(Path(work)):
            path = args.output_dir / relative
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
