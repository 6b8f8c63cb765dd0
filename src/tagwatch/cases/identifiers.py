"""Formats of the identifiers a person may hold, each checked and normalised.

Each validator takes the raw text and returns the normalised value, or raises ValueError
with the reason. Normalised values are what is stored, compared and exported.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

PNC_CHECK_LETTERS = "ZABCDEFGHJKLMNPQRTUVWXY"

_CRN = re.compile(r"[A-Z]\d{6}")
_PNC = re.compile(r"(\d{2}|\d{4})/(\d{1,7})([A-Z])")
_NOMIS = re.compile(r"[A-Z]\d{4}[A-Z]{2}")
_PRISON_NUMBER = re.compile(r"(?=[A-Z0-9]*[A-Z])(?=[A-Z0-9]*\d)[A-Z0-9]{6}")
_HOME_OFFICE_REF = re.compile(r"(?:[A-Z]\d{7}|\d{1,12})(?:-\d{1,2})?")


def _clean(value: str) -> str:
    return value.strip().upper()


def pnc_check_letter(year: str, serial: str) -> str:
    """The check letter: 2-digit year then the 7-digit serial, as a number, modulo 23."""
    return PNC_CHECK_LETTERS[int(year[-2:] + serial.zfill(7)) % 23]


def crn(value: str) -> str:
    v = _clean(value)
    if not _CRN.fullmatch(v):
        raise ValueError("a CRN is one letter and 6 digits (X123456)")
    return v


def pnc(value: str, *, today: dt.date | None = None) -> str:
    """Normalised to a 4-digit year and 7-digit serial: `2001/0123456F`."""
    v = _clean(value)
    m = _PNC.fullmatch(v)
    if not m:
        raise ValueError("a PNC number is YYYY/NNNNNNNL (2- or 4-digit year, up to 7 digits)")
    year, serial, letter = m.groups()
    expected = pnc_check_letter(year, serial)
    if letter != expected:
        raise ValueError(f"PNC check letter is wrong (expected {expected})")
    if len(year) == 2:
        this_year = (today or dt.datetime.now(dt.UTC).date()).year
        century = this_year // 100 * 100
        full = century + int(year)
        year = str(full if full <= this_year else full - 100)
    return f"{year}/{serial.zfill(7)}{letter}"


def nomis(value: str) -> str:
    v = _clean(value)
    if not _NOMIS.fullmatch(v):
        raise ValueError("a NOMIS number is a letter, 4 digits and 2 letters (A1234BC)")
    return v


def prison_number(value: str) -> str:
    v = _clean(value)
    if not _PRISON_NUMBER.fullmatch(v):
        raise ValueError("a prison number is 6 letters and digits, e.g. AB1234")
    return v


def home_office_ref(value: str) -> str:
    v = _clean(value)
    if not _HOME_OFFICE_REF.fullmatch(v):
        raise ValueError(
            "a Home Office reference is a letter and 7 digits, or 1 to 12 digits, "
            "optionally followed by - and 1 or 2 digits"
        )
    return v


VALIDATORS: dict[str, Callable[[str], str]] = {
    "crn": crn,
    "pnc": pnc,
    "nomis": nomis,
    "prison_number": prison_number,
    "home_office_ref": home_office_ref,
}
IDENTIFIER_KEYS: tuple[str, ...] = tuple(VALIDATORS)
