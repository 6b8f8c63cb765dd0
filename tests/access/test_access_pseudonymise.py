"""Analysts' pseudonyms: stable under one key, distinct per person, unlinkable across keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwatch.access.pseudonymise import pseudonym

refs = st.one_of(st.text(min_size=1, max_size=40), st.integers(min_value=0))


@given(ref=refs)
def test_stable_for_one_key(ref: str | int) -> None:
    first = pseudonym(ref, "key-one")
    assert first == pseudonym(ref, "key-one")
    assert first.startswith("P-") and len(first) == 18


@given(a=refs, b=refs)
def test_distinct_people_get_distinct_pseudonyms(a: str | int, b: str | int) -> None:
    if str(a) != str(b):
        assert pseudonym(a, "key-one") != pseudonym(b, "key-one")


@given(ref=refs)
def test_another_key_gives_unlinkable_pseudonyms(ref: str | int) -> None:
    assert pseudonym(ref, "key-one") != pseudonym(ref, "key-two")


def test_a_key_is_required() -> None:
    with pytest.raises(ValueError, match="pseudonym_key"):
        pseudonym("X123", "")
