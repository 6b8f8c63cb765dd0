"""The data dictionary is generated, complete and current."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tagwatch.access.principal import Principal
from tagwatch.db.metadata import load_metadata
from tagwatch.reports.dictionary import (
    DOC_PATH,
    RETENTION_NOTE,
    entries,
    missing_meanings,
    render_markdown,
)


def test_every_table_and_field_has_a_meaning() -> None:
    assert missing_meanings() == []


def test_the_committed_dictionary_is_what_the_generator_makes_now() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render_markdown(), (
        "run: tagwatch report dictionary"
    )


def test_retention_periods_are_published_as_proposed_policy() -> None:
    assert RETENTION_NOTE in render_markdown()
    assert "proposed policy" in RETENTION_NOTE


def test_every_live_column_is_described_with_its_type_and_classification() -> None:
    live = {(t.name, c.name) for t in load_metadata().tables.values() for c in t.columns}
    described = {(e.name, f.name) for e in entries() for f in e.fields}
    assert live == described
    person = {f.name: f for e in entries() if e.name == "person" for f in e.fields}
    assert "special category" in person["ethnicity"].classification
    assert "W1" in person["ethnicity"].allowed and "NR" in person["ethnicity"].allowed
    assert person["ref"].required and "unique" in person["ref"].keys


def test_dictionary_page_needs_its_permission(
    make_client: Callable[..., TestClient], caller: Callable[..., Principal]
) -> None:
    page = make_client(caller({"dictionary:read"})).get("/reports/data-dictionary")
    assert page.status_code == 200
    assert "monitoring_order" in page.text and "Criminal offence data".lower() in page.text.lower()
    assert "Retention periods are proposed policy" in page.text
    assert make_client(caller({"report:read"})).get("/reports/data-dictionary").status_code == 403
