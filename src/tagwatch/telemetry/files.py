"""The file channel: stream a feed file through the pipeline, committing chunk by chunk.

Each chunk is committed as soon as it is stored, so a large file makes durable progress;
storing is idempotent, so after a failure the same file is simply sent again. A large file
is read, parsed and prepared in a reader process (`reader`), up to a chunk ahead of the
store, so parsing and storing run on two cores.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from tagwatch.events import batch
from tagwatch.settings import Settings
from tagwatch.telemetry.reader import prepared_by_reader, prepared_chunks
from tagwatch.telemetry.service import IngestResult, ingest_prepared

# Records stored and committed together. Compliance evaluates each allocation a chunk touches
# once per chunk, re-reading its records from an hour before the earliest new one, so fewer,
# larger chunks cost it less; 100,000 is about a second of storing, durable at each commit,
# and the two processes peak some 170 MB higher than with 20,000.
DEFAULT_CHUNK = 100_000
# The reader hands the file over in pieces of this many records; a chunk's pieces are stored
# as they arrive and committed together, so storing starts once one piece is parsed, not a
# whole chunk, and the two processes overlap from the start.
PIECE = 20_000
# Below this size a file is read in the storing process: starting the reader would cost
# more than it saves.
READER_PROCESS_FROM_BYTES = 4 << 20


def store_file(
    session: Session,
    path: Path,
    *,
    settings: Settings,
    chunk: int = DEFAULT_CHUNK,
    on_chunk: Callable[[IngestResult, int], None] | None = None,
    reader_process: bool | None = None,
    piece: int = PIECE,
) -> IngestResult:
    """Store every record of the file; `on_chunk(total so far, bytes read)` after each commit.
    `reader_process`: read in a separate process (default: when the file is large)."""
    if reader_process is None:
        reader_process = path.stat().st_size >= READER_PROCESS_FROM_BYTES
    image = session.get_bind().dialect.name == "sqlite"
    piece = min(chunk, piece)
    pieces = (
        # The reader may run a chunk ahead: it parses the next one while this one is evaluated.
        prepared_by_reader(path, piece, image=image, ahead=-(-chunk // piece))
        if reader_process
        else prepared_chunks(path, piece, image=image)
    )
    total = IngestResult()
    with contextlib.closing(pieces):
        more = True
        while more:
            stored = IngestResult()
            consumed = 0
            # Evaluation is deferred to the end of the block: once per chunk, not per piece.
            with batch(session):
                for prepared, bytes_read in pieces:
                    consumed = bytes_read
                    stored.add(
                        ingest_prepared(
                            session,
                            prepared,
                            channel="file",
                            origin=str(path)[-300:],
                            settings=settings,
                            received_at=dt.datetime.now(dt.UTC),
                        )
                    )
                    if stored.received >= chunk:
                        break
                else:
                    more = False
            if not stored.received:
                break
            session.commit()
            total.add(stored)
            if on_chunk is not None:
                on_chunk(total, consumed)
    return total
