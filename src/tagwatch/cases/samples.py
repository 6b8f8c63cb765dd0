"""Synthetic, valid order documents: for tests, benchmarks and trying the import out.

Deterministic for a given seed; every value is made up (names from a short list, identifiers
with correct check letters, addresses spread over inner London).
"""

from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Any

from tagwatch.cases.identifiers import pnc_check_letter

GIVEN = ("Aisha", "Ben", "Chloé", "Dariusz", "Eilidh", "Femi", "Grace", "Hamza", "Ioana", "Jack")
FAMILY = ("O'Neil", "Smith-Jones", "Nowak", "Okafor", "MacLeod", "Khan", "Popescu", "Evans")
LONDON_UNITS = ("LDN-CAMISL", "LDN-HACKCITY", "LDN-LAMB", "LDN-SWARK", "LDN-TOWH", "LDN-NEWH")

# Far enough ahead that nothing downstream has anything to evaluate yet.
FIRST_DAY = dt.date(2030, 1, 7)
CURFEW_WEEK = [
    {"day": day, "start": "19:00", "end": "07:00"}
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
]
CLEARED = [
    {"kind": "domestic_abuse", "checked_by": "officer1", "checked_at": "2026-01-02T10:00:00Z",
     "outcome": "no_concerns"},
    {"kind": "child_safeguarding", "checked_by": "officer1", "checked_at": "2026-01-02T11:00:00Z",
     "outcome": "concerns_managed"},
]  # fmt: skip


def square(lon: float, lat: float, half_deg: float = 0.002) -> dict[str, Any]:
    ring = [
        [lon - half_deg, lat - half_deg],
        [lon + half_deg, lat - half_deg],
        [lon + half_deg, lat + half_deg],
        [lon - half_deg, lat + half_deg],
        [lon - half_deg, lat - half_deg],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


def person(number: int, start: dt.date = FIRST_DAY) -> dict[str, Any]:
    """Person number `number` with one address and one active curfew-and-zone order."""
    rng = random.Random(number)
    day = start.isoformat()
    end = (start + dt.timedelta(days=182)).isoformat()
    lat = round(51.48 + rng.random() * 0.06, 6)
    lon = round(-0.15 + rng.random() * 0.12, 6)
    serial = f"{number % 100:02d}{number:07d}"
    unit = LONDON_UNITS[number % len(LONDON_UNITS)]
    return {
        "ref": f"TW{number:06d}",
        "names": [
            {
                "kind": "primary",
                "given": GIVEN[number % len(GIVEN)],
                "family": FAMILY[number % len(FAMILY)],
                "middle": None,
            },
        ],
        "date_of_birth": f"{1960 + number % 40}-{1 + number % 12:02d}-{1 + number % 28:02d}",
        "sex": "male" if number % 2 else "female",
        "gender": "not_recorded",
        "ethnicity": ("W1", "B2", "A1", "M9", "NS")[number % 5],
        "disability": "prefers_not_to_say",
        "nationality": "GBR",
        "religion": "not_recorded",
        "language": "en",
        "interpreter_needed": False,
        "identifiers": {
            "crn": f"X{number:06d}",
            "pnc": f"2001/{number:07d}{pnc_check_letter('01', f'{number:07d}')}",
        },
        "restricted": False,
        "addresses": [
            {
                "ref": "home",
                "line1": f"{number % 200 + 1} High Street",
                "line2": None,
                "town": "London",
                "postcode": "SE1 7PB",
                "lat": lat,
                "lon": lon,
            },
        ],
        "orders": [
            {
                "ref": f"ORD{number:07d}",
                "type": "community_order",
                "status": "active",
                "end_reason": None,
                "notifying_organisation": {"kind": "court", "name": "Camberwell Green Magistrates"},
                "responsible_organisation": {"kind": "probation", "name": "London"},
                "region": "LDN",
                "delivery_unit": unit,
                "responsible_officer": f"officer{number % 20}",
                "start_date": day,
                "end_date": end,
                "fitting_deadline": f"{day}T23:00:00Z",
                "conditions": [
                    {
                        "type": "curfew",
                        "start": f"{day}T19:00:00Z",
                        "end": None,
                        "address_ref": "home",
                        "timetable": copy.deepcopy(CURFEW_WEEK),
                        "release_day": None,
                        "safeguarding_checks": copy.deepcopy(CLEARED),
                    },
                    {
                        "type": "exclusion_zone",
                        "start": f"{day}T00:00:00Z",
                        "end": f"{end}T00:00:00Z",
                        "name": "Town centre",
                        "geometry": square(lon + 0.01, lat + 0.01),
                        "schedule": None,
                    },
                ],
                "allocations": [
                    {"device": serial, "fitted_at": f"{day}T15:00:00Z", "removed_at": None}
                ],
            }
        ],
    }


def device(number: int) -> dict[str, Any]:
    return {
        "serial": f"{number % 100:02d}{number:07d}",
        "type": "gps_tag",
        "model": "GT-3",
        "batch": f"B{number // 1000:03d}",
    }


def document(count: int, first: int = 1, start: dt.date = FIRST_DAY) -> dict[str, Any]:
    """A valid file of `count` people, each with an order, a curfew, a zone and a device."""
    numbers = range(first, first + count)
    return {
        "format": "tagwatch-orders",
        "version": 1,
        "devices": [device(n) for n in numbers],
        "people": [person(n, start) for n in numbers],
    }
