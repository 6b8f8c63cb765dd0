"""The cohort goes into the case record through the order import, untouched."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy.orm import Session

from tagwatch.cases.orderfile import import_document
from tagwatch.cases.refdata import seed_reference_data, seed_values
from tagwatch.simulate.cohort import generate_cohort
from tagwatch.simulate.places import DELIVERY_UNITS, DISTRICTS


def test_delivery_units_are_the_reference_data_codes() -> None:
    london = {
        v["code"]: v["label"]
        for v in seed_values()
        if v["kind"] == "delivery_unit" and v["parent_code"] == "LDN"
    }
    assert london == DELIVERY_UNITS
    assert {d.unit for d in DISTRICTS} <= london.keys()


@pytest.mark.slow  # importing active orders runs compliance and alerts over their history
def test_the_order_import_accepts_a_generated_cohort(db: Session) -> None:
    seed_reference_data(db)
    today = dt.datetime.now(dt.UTC).date()
    document = json.loads(json.dumps(generate_cohort(6, 17, today)))
    result = import_document(db, document)
    assert result.people_added == 6
    assert result.orders_added == sum(len(p["orders"]) for p in document["people"])
    assert result.devices_added == len(document["devices"])
