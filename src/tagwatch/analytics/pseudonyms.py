"""The pseudonyms analysts see: people and devices, keyed by the pseudonym key.

People get `tagwatch.access.pseudonymise.pseudonym` of their reference, as the reports show
them, so a person is the same pseudonym in every analyst's output. Devices get the same keyed
hash of `device:<serial>` under their own prefix: a track can be followed from day to day
without its serial, which the case record links to the wearer.
"""

from __future__ import annotations

from tagwatch.access.pseudonymise import PSEUDONYM_HEX_CHARS, PSEUDONYM_PREFIX, pseudonym

DEVICE_PREFIX = "D-"
DEVICE_NAMESPACE = "device:"


def device_pseudonym(serial: str, key: str) -> str:
    return DEVICE_PREFIX + pseudonym(DEVICE_NAMESPACE + serial, key).removeprefix(PSEUDONYM_PREFIX)


class Pseudonyms:
    """Pseudonyms under one key, each worked out once per export (a day repeats few people)."""

    def __init__(self, key: str) -> None:
        pseudonym("", key)  # refuses an empty key before any file is written
        self._key = key
        self._people: dict[str, str] = {}
        self._devices: dict[str, str] = {}

    def person(self, ref: str | None) -> str | None:
        if ref is None:
            return None
        found = self._people.get(ref)
        if found is None:
            found = self._people[ref] = pseudonym(ref, self._key)
        return found

    def device(self, serial: str | None) -> str | None:
        if serial is None:
            return None
        found = self._devices.get(serial)
        if found is None:
            found = self._devices[serial] = device_pseudonym(serial, self._key)
        return found


def sql_pseudonym(prefix: str, value_sql: str, key_sql: str) -> str:
    """The same pseudonym computed by PostgreSQL (pgcrypto's `hmac`), for the GIS views."""
    return (
        f"('{prefix}' || upper(left(encode(hmac(({value_sql})::text, {key_sql}, 'sha256'),"
        f" 'hex'), {PSEUDONYM_HEX_CHARS})))"
    )
