"""The police crime CSV: 13 columns, normally no header row. Parse, validate, convert.

Every problem is reported with its row, field and reason; good rows are kept. The rules and
the file statuses are documented in docs/crime-mapping.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from tagwatch.geo.projection import to_bng, to_wgs84

COLUMNS = (
    "police_force",
    "crime_type",
    "crime_type_description",
    "batch_id",
    "crime_reference",
    "date_from",
    "date_to",
    "easting",
    "northing",
    "latitude",
    "longitude",
    "datum",
    "free_text",
)
CRIME_TYPES = {
    "RB": "Robbery",
    "BIAD": "Burglary in a dwelling",
    "AB": "Aggravated burglary",
    "BOTD": "Burglary other than a dwelling",
    "TOMV": "Theft of a motor vehicle",
    "TFP": "Theft from the person",
    "TFMV": "Theft from a motor vehicle",
}
MAX_WINDOW = dt.timedelta(hours=12)
EASTING_RANGE = (0.0, 600_000.0)
NORTHING_RANGE = (0.0, 1_300_000.0)
LATITUDE_RANGE = (49.5, 61.5)
LONGITUDE_RANGE = (-8.5, 2.6)
MAX_REFERENCE_LENGTH = 100

# Force code, 8-digit date, an optional "-<digit>" and an optional "-R" or "-A".
_BATCH_ID = re.compile(r"^([A-Za-z]+)(\d{8})(-\d)?(-[RrAa])?$")
_TIMESTAMP = re.compile(r"^\d{14}$")
_HEADER_WORDS = ("force", "crimetype", "batch", "reference", "from", "easting")

SUCCESSFUL = "successful"
PARTIAL = "partial"
ERROR = "error"
FAILED = "failed"


@dataclass(frozen=True)
class RowError:
    row: int  # record number in the file, 1-based, counting a header row and blank lines
    field: str
    code: str
    reason: str
    value: str = ""
    crime_reference: str = ""


@dataclass
class CrimeRow:
    row: int
    force_code: str
    crime_type: str
    crime_type_description: str
    batch_id: str
    crime_ref: str
    t_from: dt.datetime
    t_to: dt.datetime
    easting: float
    northing: float
    latitude: float
    longitude: float
    location_source: str  # "bng" or "wgs84": which pair the force supplied
    datum: str
    free_text: str


@dataclass
class ParsedBatch:
    status: str
    force_code: str | None
    batch_id: str | None
    rows: list[CrimeRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    total_rows: int = 0
    header_skipped: bool = False

    @property
    def failed_rows(self) -> int:
        return len({e.row for e in self.errors})


def _is_header(fields: list[str]) -> bool:
    words = {re.sub(r"[^a-z]", "", f.lower()) for f in fields}
    joined = " ".join(words)
    return sum(word in joined for word in _HEADER_WORDS) >= 3


def _timestamp(value: str) -> dt.datetime | None:
    if not _TIMESTAMP.match(value):
        return None
    try:
        return dt.datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class _RowCheck:
    """Collects the errors of one row."""

    def __init__(self, row: int, ref: str) -> None:
        self.row = row
        self.ref = ref
        self.errors: list[RowError] = []

    def fail(self, field_: str, code: str, reason: str, value: str = "") -> None:
        self.errors.append(RowError(self.row, field_, code, reason, value, self.ref))


def _check_batch_id(check: _RowCheck, batch_id: str, force: str) -> None:
    if not batch_id:
        check.fail("batch_id", "MISSING_BATCH_ID", "the batch id is missing")
        return
    match = _BATCH_ID.match(batch_id)
    if not match:
        check.fail(
            "batch_id",
            "INVALID_BATCH_ID_FORMAT",
            "must be the force code, a date as yyyyMMdd, then optionally -<digit> and -R or -A",
            batch_id,
        )
        return
    if force and match.group(1) != force:
        check.fail(
            "batch_id",
            "INVALID_BATCH_ID_FORMAT",
            f"must start with the row's force code {force}",
            batch_id,
        )
    try:
        digits = match.group(2)
        dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        check.fail("batch_id", "INVALID_BATCH_ID_DATE", "the date is not a real date", batch_id)


def _check_pair(
    check: _RowCheck,
    names: tuple[str, str],
    values: tuple[str, str],
    ranges: tuple[tuple[float, float], tuple[float, float]],
) -> tuple[float, float] | None:
    numbers: list[float] = []
    for name, value, (low, high) in zip(names, values, ranges, strict=True):
        number = _number(value)
        if number is None:
            check.fail(name, "INVALID_NUMBER", "not a number", value)
        elif not low <= number <= high:
            check.fail(
                name,
                "INVALID_LOCATION_DATA_RANGE",
                f"must be between {low:g} and {high:g}",
                value,
            )
        else:
            numbers.append(number)
    return (numbers[0], numbers[1]) if len(numbers) == 2 else None


def _parse_row(
    row_no: int,
    fields: list[str],
    force_codes: Collection[str] | None,
    crime_types: Collection[str],
    expected_force: str | None,
) -> CrimeRow | list[RowError]:
    values = [f.strip() for f in fields]
    check = _RowCheck(row_no, values[4] if len(values) > 4 else "")
    if len(values) != len(COLUMNS):
        check.fail(
            "columns",
            "INVALID_COLUMN_COUNT",
            f"has {len(values)} columns; {len(COLUMNS)} are expected",
        )
        return check.errors
    (force, ctype, cdesc, batch_id, ref, t_from_s, t_to_s, e_s, n_s, lat_s, lon_s, datum, text) = (
        values
    )
    text = fields[12].strip()
    if not force:
        check.fail("police_force", "INVALID_POLICE_FORCE", "the police force is missing")
    elif force_codes is not None and force not in force_codes:
        check.fail("police_force", "INVALID_POLICE_FORCE", "not a known police force code", force)
    elif expected_force is not None and force != expected_force:
        check.fail(
            "police_force",
            "INVALID_POLICE_FORCE",
            f"this upload is for force {expected_force}",
            force,
        )
    ctype = ctype.upper()
    if ctype not in crime_types:
        check.fail(
            "crime_type",
            "INVALID_CRIME_TYPE",
            "must be one of " + ", ".join(sorted(crime_types)),
            values[1],
        )
    _check_batch_id(check, batch_id, force)
    if not ref:
        check.fail("crime_reference", "MISSING_CRIME_REFERENCE", "the crime reference is missing")
    elif len(ref) > MAX_REFERENCE_LENGTH:
        check.fail(
            "crime_reference",
            "INVALID_TEXT",
            f"longer than {MAX_REFERENCE_LENGTH} characters",
            ref[:40],
        )
    t_from = _timestamp(t_from_s)
    t_to = _timestamp(t_to_s)
    if t_from is None:
        check.fail(
            "date_from",
            "INVALID_FROM_DATE_FORMAT",
            "must be a UTC time as yyyyMMddHHmmss",
            t_from_s,
        )
    if t_to is None:
        check.fail(
            "date_to", "INVALID_TO_DATE_FORMAT", "must be a UTC time as yyyyMMddHHmmss", t_to_s
        )
    if t_from is not None and t_to is not None:
        if t_to < t_from:
            check.fail(
                "date_to", "CRIME_DATE_TIME_TO_AFTER_FROM", "is before date/time from", t_to_s
            )
        elif t_to - t_from > MAX_WINDOW:
            check.fail(
                "date_to",
                "CRIME_DATE_TIME_EXCEEDS_WINDOW",
                "the crime window is longer than 12 hours",
                t_to_s,
            )

    has_en = (bool(e_s), bool(n_s))
    has_ll = (bool(lat_s), bool(lon_s))
    location: tuple[float, float] | None = None
    source = ""
    if not any(has_en) and not any(has_ll):
        check.fail(
            "location",
            "MISSING_LOCATION_DATA",
            "give easting and northing, or latitude and longitude",
        )
    elif any(has_en) and any(has_ll):
        check.fail(
            "location",
            "MULTIPLE_LOCATION_DATA_TYPES",
            "give easting and northing, or latitude and longitude, not both",
        )
    elif any(has_en) and not all(has_en):
        missing = "northing" if has_en[0] else "easting"
        check.fail(missing, "DEPENDENT_LOCATION_DATA", "easting and northing go together")
    elif any(has_ll) and not all(has_ll):
        missing = "longitude" if has_ll[0] else "latitude"
        check.fail(missing, "DEPENDENT_LOCATION_DATA", "latitude and longitude go together")
    elif all(has_en):
        source = "bng"
        location = _check_pair(
            check, ("easting", "northing"), (e_s, n_s), (EASTING_RANGE, NORTHING_RANGE)
        )
    else:
        source = "wgs84"
        location = _check_pair(
            check, ("latitude", "longitude"), (lat_s, lon_s), (LATITUDE_RANGE, LONGITUDE_RANGE)
        )
    datum_norm = datum.upper()
    if datum_norm and datum_norm not in ("WGS84", "OSGB36"):
        check.fail("datum", "INVALID_DATUM", "must be WGS84 or OSGB36 when given", datum)
    elif datum_norm and source and (datum_norm == "OSGB36") != (source == "bng"):
        check.fail(
            "datum",
            "INVALID_DATUM",
            f"says {datum_norm} but the row gives "
            + ("easting and northing" if source == "bng" else "latitude and longitude"),
            datum,
        )

    if check.errors or location is None or t_from is None or t_to is None:
        return check.errors
    first, second = location
    return CrimeRow(
        row=row_no,
        force_code=force,
        crime_type=ctype,
        crime_type_description=cdesc,
        batch_id=batch_id,
        crime_ref=ref,
        t_from=t_from,
        t_to=t_to,
        easting=first if source == "bng" else math.nan,
        northing=second if source == "bng" else math.nan,
        latitude=first if source == "wgs84" else math.nan,
        longitude=second if source == "wgs84" else math.nan,
        location_source=source,
        datum=datum_norm,
        free_text=text,
    )


def _convert(rows: list[CrimeRow], errors: list[RowError]) -> list[CrimeRow]:
    """Fill the other coordinate pair (OSTN15); rows outside its area are errors."""
    if not rows:
        return rows
    bng = [r for r in rows if r.location_source == "bng"]
    wgs = [r for r in rows if r.location_source == "wgs84"]
    if bng:
        lon, lat = to_wgs84([r.easting for r in bng], [r.northing for r in bng])
        for r, lo, la in zip(bng, lon.tolist(), lat.tolist(), strict=True):
            r.longitude, r.latitude = lo, la
    if wgs:
        east, north = to_bng([r.longitude for r in wgs], [r.latitude for r in wgs])
        for r, e, n in zip(wgs, east.tolist(), north.tolist(), strict=True):
            r.easting, r.northing = e, n
    kept: list[CrimeRow] = []
    for r in rows:
        coords = np.array([r.easting, r.northing, r.latitude, r.longitude])
        if bool(np.all(np.isfinite(coords))):
            kept.append(r)
        else:
            errors.append(
                RowError(
                    r.row,
                    "location",
                    "INVALID_LOCATION_DATA_RANGE",
                    "outside the area the national grid transformation (OSTN15) covers",
                    crime_reference=r.crime_ref,
                )
            )
    return kept


def _unique_references(rows: list[CrimeRow], errors: list[RowError]) -> list[CrimeRow]:
    """A crime appears once per file: a second row with its reference is an error."""
    first_row: dict[str, int] = {}
    kept: list[CrimeRow] = []
    for r in rows:
        if r.crime_ref in first_row:
            errors.append(
                RowError(
                    r.row,
                    "crime_reference",
                    "DUPLICATE_CRIME_REFERENCE",
                    f"already given in row {first_row[r.crime_ref]} of this file",
                    r.crime_ref,
                    r.crime_ref,
                )
            )
        else:
            first_row[r.crime_ref] = r.row
            kept.append(r)
    return kept


def parse_crime_csv(
    data: bytes,
    *,
    force_codes: Collection[str] | None = None,
    crime_types: Collection[str] | None = None,
    expected_force: str | None = None,
) -> ParsedBatch:
    """Parse one police crime file.

    `force_codes` and `crime_types` are the accepted codes (reference data); `crime_types`
    defaults to the seven national codes and `force_codes` None accepts any non-empty code.
    `expected_force` makes every row's force match the uploader's.
    """
    types = {c.upper() for c in crime_types} if crime_types else set(CRIME_TYPES)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return ParsedBatch(
            FAILED, None, None, file_errors=[f"file: not UTF-8 text (byte {exc.start})"]
        )
    rows: list[CrimeRow] = []
    errors: list[RowError] = []
    total = 0
    header_skipped = False
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row_no, fields in enumerate(reader, start=1):
            if not any(f.strip() for f in fields):
                continue
            if not header_skipped and total == 0 and _is_header(fields):
                header_skipped = True
                continue
            total += 1
            parsed = _parse_row(row_no, fields, force_codes, types, expected_force)
            if isinstance(parsed, CrimeRow):
                rows.append(parsed)
            else:
                errors.extend(parsed)
    except csv.Error as exc:
        return ParsedBatch(
            FAILED,
            None,
            None,
            file_errors=[f"file: not readable as CSV at line {reader.line_num}: {exc}"],
            total_rows=total,
        )
    rows = _convert(_unique_references(rows, errors), errors)
    errors.sort(key=lambda e: (e.row, COLUMNS.index(e.field) if e.field in COLUMNS else 99))

    batch = ParsedBatch(
        SUCCESSFUL,
        None,
        None,
        rows,
        errors,
        total_rows=total,
        header_skipped=header_skipped,
    )
    forces = sorted({r.force_code for r in rows})
    batch_ids = sorted({r.batch_id for r in rows})
    if total == 0:
        batch.status = FAILED
        batch.file_errors.append("file: has no crime rows")
    elif len(forces) > 1:
        batch.status = FAILED
        batch.file_errors.append("file: rows from more than one force: " + ", ".join(forces))
    elif len(batch_ids) > 1:
        batch.status = FAILED
        batch.file_errors.append("file: more than one batch id: " + ", ".join(batch_ids))
    elif not rows:
        batch.status = ERROR
    elif errors:
        batch.status = PARTIAL
    if batch.status == FAILED:
        batch.rows = []
    else:
        batch.force_code = forces[0] if forces else None
        batch.batch_id = batch_ids[0] if batch_ids else None
    return batch
