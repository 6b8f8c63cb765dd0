"""Name folding for search and duplicate detection: case, accents, apostrophes, hyphens."""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`\u00b4]")
_SEPARATORS = re.compile(r"[\s\-\u2010\u2011\u2013\u2014.,]+")


def fold(value: str) -> str:
    """`O'Néil-Smith` and `oneil smith` fold alike: lower case, no accents or apostrophes,
    hyphens and runs of spaces as one space."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    without = _APOSTROPHES.sub("", stripped.casefold())
    return _SEPARATORS.sub(" ", without).strip()


def fold_full(given: str, family: str) -> str:
    return fold(f"{given} {family}")
