"""Counts spoken as a queue of number-word prompts (`num_<word>`), in Indonesian or English.

A count is said word by word from recorded words, the way an IVR does it: 23 in
Indonesian is "dua puluh tiga", the prompts num_dua, num_puluh and num_tiga. Pure data
in, prompt names out; prompts/generate.py speaks each word of NUMBER_WORDS.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_SPOKEN = 999_999

_ID_UNITS = ("nol", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan")
_EN_BELOW_TWENTY = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
)
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

# Every word each language may need for 0..MAX_SPOKEN; the prompt of a word is num_<word>.
NUMBER_WORDS: dict[str, tuple[str, ...]] = {
    "id": (
        *_ID_UNITS, "sepuluh", "sebelas", "seratus", "seribu", "belas", "puluh", "ratus", "ribu"
    ),
    "en": (*_EN_BELOW_TWENTY, *_EN_TENS[2:], "hundred", "thousand"),
}


def _indonesian_below_thousand(count: int) -> list[str]:
    """Words of 1..999 in Indonesian: the prefix se- stands for "one" before belas,
    puluh and ratus (sebelas, sepuluh, seratus), 12-19 are <unit> belas."""
    words: list[str] = []
    hundreds, rest = divmod(count, 100)
    if hundreds == 1:
        words.append("seratus")
    elif hundreds:
        words += [_ID_UNITS[hundreds], "ratus"]
    tens, units = divmod(rest, 10)
    if rest == 10:
        words.append("sepuluh")
    elif rest == 11:
        words.append("sebelas")
    elif tens == 1:
        words += [_ID_UNITS[units], "belas"]
    else:
        if tens:
            words += [_ID_UNITS[tens], "puluh"]
        if units:
            words.append(_ID_UNITS[units])
    return words


def _indonesian(count: int) -> list[str]:
    """Words of 0..MAX_SPOKEN in Indonesian; only a thousands group of exactly one is
    seribu (1000-1999), so 101000 is seratus satu ribu."""
    if count == 0:
        return ["nol"]
    thousands, rest = divmod(count, 1000)
    words: list[str] = []
    if thousands == 1:
        words.append("seribu")
    elif thousands:
        words += [*_indonesian_below_thousand(thousands), "ribu"]
    if rest:
        words += _indonesian_below_thousand(rest)
    return words


def _english_below_thousand(count: int) -> list[str]:
    """Words of 1..999 in English, without "and" (American style: one hundred fifteen)."""
    words: list[str] = []
    hundreds, rest = divmod(count, 100)
    if hundreds:
        words += [_EN_BELOW_TWENTY[hundreds], "hundred"]
    if rest >= 20:
        tens, units = divmod(rest, 10)
        words.append(_EN_TENS[tens])
        if units:
            words.append(_EN_BELOW_TWENTY[units])
    elif rest:
        words.append(_EN_BELOW_TWENTY[rest])
    return words


def _english(count: int) -> list[str]:
    """Words of 0..MAX_SPOKEN in English."""
    if count == 0:
        return ["zero"]
    thousands, rest = divmod(count, 1000)
    words: list[str] = []
    if thousands:
        words += [*_english_below_thousand(thousands), "thousand"]
    if rest:
        words += _english_below_thousand(rest)
    return words


_SPEAKERS: dict[str, Callable[[int], list[str]]] = {"id": _indonesian, "en": _english}


def spoken_number(count: int, language: str) -> list[str]:
    """Return the prompt names that say `count` (0..999,999) in `language`, in order.

    An unknown language is spoken in Indonesian, as PromptLibrary falls back to it.
    """
    if not 0 <= count <= MAX_SPOKEN:
        raise ValueError(f"cannot speak {count}: counts run from 0 to {MAX_SPOKEN}")
    speak = _SPEAKERS.get(language, _indonesian)
    return [f"num_{word}" for word in speak(count)]
