"""Stable, keyed pseudonyms for analysts' outputs.

The same person always gets the same pseudonym under one key, so analysts can count and join,
but without the key nobody can go from a pseudonym back to the person (HMAC-SHA-256).
"""

from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_PREFIX = "P-"
PSEUDONYM_HEX_CHARS = 16


def pseudonym(person_ref: str | int, key: str) -> str:
    if not key:
        raise ValueError("pseudonym_key: must be set to pseudonymise")
    digest = hmac.new(key.encode(), str(person_ref).encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX_CHARS].upper()
