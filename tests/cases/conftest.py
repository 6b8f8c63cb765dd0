"""Fixtures for the case record: reference data seeded into the test's transaction."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from tagwatch.cases.refdata import seed_reference_data


@pytest.fixture
def seeded(db: Session) -> Session:
    seed_reference_data(db)
    return db
