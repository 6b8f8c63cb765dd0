"""Analytics fixtures: the small cohort of `analytics_cases`, stored in the test's database."""

from __future__ import annotations

import pytest
from analytics_cases import Cohort, build_cohort
from sqlalchemy.orm import Session

from tagwatch.settings import Settings


@pytest.fixture
def cohort(db: Session, settings: Settings) -> Cohort:
    return build_cohort(db, settings)
