"""Order file import and export speed, against the target of 25,000 people a minute.

Imports a synthetic file (default 500 people, each with an address, an active order with a
curfew and an exclusion zone, a device and an allocation) into an empty SQLite store, exports
it, re-imports the export (which must change nothing) and checks export -> import -> export
gives the same bytes. The comparison is the target rate (25,000 people in 60 s): a ratio below
1 beats it. Downstream event handlers (telemetry, compliance) run as they do in service;
`--no-downstream` leaves them out to time the case record's own work. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session

from tagwatch.cases import orderfile, samples
from tagwatch.cases.refdata import seed_reference_data
from tagwatch.db.engine import make_engine
from tagwatch.db.metadata import load_metadata

TARGET_PEOPLE_PER_SECOND = 25_000 / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument(
        "--no-downstream",
        action="store_true",
        help="publish events to no handlers, to time the case record's own work",
    )
    args = parser.parse_args()
    if args.no_downstream:
        import tagwatch.events

        tagwatch.events._handlers = lambda: {}  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        metadata = load_metadata()
        metadata.drop_all(engine)
        metadata.create_all(engine)
        document = samples.document(args.people)
        with Session(engine) as session:
            seed_reference_data(session)
            session.commit()
            started = time.perf_counter()
            orderfile.import_document(session, document)
            session.commit()
            import_s = time.perf_counter() - started
        with Session(engine) as session:
            started = time.perf_counter()
            exported = orderfile.dumps(orderfile.export_document(session))
            export_s = time.perf_counter() - started
        with Session(engine) as session:
            started = time.perf_counter()
            again = orderfile.import_document(session, json.loads(exported))
            session.commit()
            reimport_s = time.perf_counter() - started
            identical = orderfile.dumps(orderfile.export_document(session)) == exported
        engine.dispose()
    rate = args.people / import_s
    print(
        json.dumps(
            {
                "benchmark": "cases_import",
                "backend": url.split(":", 1)[0],
                "people": args.people,
                "downstream_handlers": not args.no_downstream,
                "import_s": round(import_s, 3),
                "export_s": round(export_s, 3),
                "reimport_unchanged_s": round(reimport_s, 3),
                "people_per_s": round(rate, 1),
                "target_people_per_s": round(TARGET_PEOPLE_PER_SECOND, 1),
                "ratio_vs_target": round(TARGET_PEOPLE_PER_SECOND / rate, 3),
                "reimport_changed_anything": again.changed_anything,
                "round_trip_identical": identical,
            }
        )
    )


if __name__ == "__main__":
    main()
