"""Case identifiers in the formats of the order format (docs/order-format.md)."""

from __future__ import annotations

import string

import numpy as np

PNC_CHECK_LETTERS = "ZABCDEFGHJKLMNPQRTUVWXY"
_LETTERS = string.ascii_uppercase


def pnc_check_letter(year: int, serial: int) -> str:
    """The 2-digit year followed by the 7-digit serial, as a number, modulo 23."""
    return PNC_CHECK_LETTERS[int(f"{year % 100:02d}{serial:07d}") % 23]


def pnc(year: int, serial: int) -> str:
    return f"{year:04d}/{serial:07d}{pnc_check_letter(year, serial)}"


def unique_numbers(rng: np.random.Generator, count: int, space: int) -> list[int]:
    """`count` distinct numbers below `space`, so identifiers never collide."""
    return [int(n) for n in rng.choice(space, size=count, replace=False)]


def crn(letter_index: int, number: int) -> str:
    return f"{_LETTERS[letter_index % 26]}{number:06d}"


def nomis(number: int) -> str:
    """Letter, 4 digits, 2 letters: the number picks all of them (unique per number)."""
    first = _LETTERS[number % 26]
    digits = (number // 26) % 10_000
    tail = number // 260_000
    return f"{first}{digits:04d}{_LETTERS[(tail // 26) % 26]}{_LETTERS[tail % 26]}"


def prison_number(number: int) -> str:
    """Two letters and 4 digits (`AB1234`)."""
    head = number // 10_000
    return f"{_LETTERS[(head // 26) % 26]}{_LETTERS[head % 26]}{number % 10_000:04d}"


def home_office_ref(number: int) -> str:
    """A letter and 7 digits."""
    return f"{_LETTERS[(number // 10_000_000) % 26]}{number % 10_000_000:07d}"
