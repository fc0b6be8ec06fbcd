"""Spoken numbers: Indonesian and English counts as queues of number-word prompts."""

import importlib.util
from pathlib import Path

import pytest

from bridge.conference.numbers import MAX_SPOKEN, NUMBER_WORDS, spoken_number

PROMPTS_DIR = Path(__file__).resolve().parents[3] / "prompts"


def words(count: int, language: str) -> str:
    """The words of a count, without the num_ prefix, for readable expectations."""
    names = spoken_number(count, language)
    assert all(name.startswith("num_") for name in names)
    return " ".join(name.removeprefix("num_") for name in names)


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, "nol"),
        (1, "satu"),
        (7, "tujuh"),
        (9, "sembilan"),
        # se- is "one" before puluh, belas, ratus and ribu.
        (10, "sepuluh"),
        (11, "sebelas"),
        (100, "seratus"),
        (1000, "seribu"),
        # belas: 12-19.
        (12, "dua belas"),
        (15, "lima belas"),
        (19, "sembilan belas"),
        # puluh.
        (20, "dua puluh"),
        (21, "dua puluh satu"),
        (23, "dua puluh tiga"),
        (40, "empat puluh"),
        (99, "sembilan puluh sembilan"),
        # ratus.
        (101, "seratus satu"),
        (110, "seratus sepuluh"),
        (111, "seratus sebelas"),
        (115, "seratus lima belas"),
        (150, "seratus lima puluh"),
        (200, "dua ratus"),
        (305, "tiga ratus lima"),
        (999, "sembilan ratus sembilan puluh sembilan"),
        # ribu.
        (1001, "seribu satu"),
        (1010, "seribu sepuluh"),
        (1100, "seribu seratus"),
        (1999, "seribu sembilan ratus sembilan puluh sembilan"),
        (2000, "dua ribu"),
        (2023, "dua ribu dua puluh tiga"),
        (9999, "sembilan ribu sembilan ratus sembilan puluh sembilan"),
        (10_000, "sepuluh ribu"),
        (11_000, "sebelas ribu"),
        (12_500, "dua belas ribu lima ratus"),
        (21_000, "dua puluh satu ribu"),
        (100_000, "seratus ribu"),
        # Only a thousands group of exactly one is seribu.
        (101_000, "seratus satu ribu"),
        (111_111, "seratus sebelas ribu seratus sebelas"),
        (
            999_999,
            "sembilan ratus sembilan puluh sembilan ribu sembilan ratus sembilan puluh sembilan",
        ),
    ],
)
def test_indonesian(count: int, expected: str) -> None:
    assert words(count, "id") == expected


def test_indonesian_names_are_the_prompt_names() -> None:
    assert spoken_number(23, "id") == ["num_dua", "num_puluh", "num_tiga"]
    assert spoken_number(150, "id") == ["num_seratus", "num_lima", "num_puluh"]
    assert spoken_number(2023, "id") == ["num_dua", "num_ribu", "num_dua", "num_puluh", "num_tiga"]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, "zero"),
        (1, "one"),
        (10, "ten"),
        (11, "eleven"),
        (13, "thirteen"),
        (19, "nineteen"),
        (20, "twenty"),
        (23, "twenty three"),
        (90, "ninety"),
        (99, "ninety nine"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (115, "one hundred fifteen"),
        (340, "three hundred forty"),
        (1000, "one thousand"),
        (1015, "one thousand fifteen"),
        (2023, "two thousand twenty three"),
        (12_000, "twelve thousand"),
        (100_001, "one hundred thousand one"),
        (999_999, "nine hundred ninety nine thousand nine hundred ninety nine"),
    ],
)
def test_english(count: int, expected: str) -> None:
    assert words(count, "en") == expected


def test_unknown_language_is_spoken_in_indonesian() -> None:
    assert spoken_number(23, "fr") == spoken_number(23, "id")


@pytest.mark.parametrize("count", [-1, MAX_SPOKEN + 1, 10**9])
def test_counts_outside_the_range_are_refused(count: int) -> None:
    with pytest.raises(ValueError, match="counts run from 0 to 999999"):
        spoken_number(count, "id")


def test_counts_are_spoken_with_the_words_of_their_language_only() -> None:
    samples = [*range(0, 2100), *range(2100, MAX_SPOKEN + 1, 997), MAX_SPOKEN]
    for language, vocabulary in NUMBER_WORDS.items():
        used = {name for count in samples for name in spoken_number(count, language)}
        assert used == {f"num_{word}" for word in vocabulary}, language


def test_every_word_has_a_generated_prompt() -> None:
    spec = importlib.util.spec_from_file_location("prompts_generate", PROMPTS_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.NUMBER_WORDS == NUMBER_WORDS
    texts = generator.prompt_texts()
    for language, vocabulary in NUMBER_WORDS.items():
        for word in vocabulary:
            assert (language, f"num_{word}") in texts
            assert (PROMPTS_DIR / language / f"num_{word}.wav").exists()
