"""The file channel: stream a feed file through the pipeline, committing chunk by chunk.

Each chunk is committed as soon as it is stored, so a large file makes durable progress;
storing is idempotent, so after a failure the same file is simply sent again. A large file
is read, parsed and prepared in a reader process (`reader`), up to a chunk ahead of the
store, so parsing and storing run on two cores (the first piece is parsed by the store
itself, while the reader starts). A chunk's records are received at one time, so compliance
evaluates its allocations once, at that time, with the fixes the chunk stored in memory
(`recent`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.orm import Session

from tagwatch.events import batch
from tagwatch.settings import Settings
from tagwatch.telemetry import repository
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
    image = repository.stages_images(session)
    piece = min(chunk, piece)
    pieces = (
        # The reader may run a chunk ahead: it parses the next one while this one is evaluated.
        # The first piece is parsed here, while the reader starts.
        prepared_by_reader(path, piece, image=image, ahead=-(-chunk // piece), here=piece)
        if reader_process
        else prepared_chunks(path, piece, image=image)
    )
    total = IngestResult()
    with _long_lived_frozen(), contextlib.closing(pieces):
        more = True
        while more:
            stored = IngestResult()
            consumed = 0
            # One receipt time for the chunk: its allocations are then evaluated in one round
            # at that time, not in one round per piece that last touched them.
            received_at = dt.datetime.now(dt.UTC)
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
                            received_at=received_at,
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


@contextlib.contextmanager
def _long_lived_frozen() -> Iterator[None]:
    """Leave the objects alive before the file (the application's, a large heap) out of the
    collector's full passes while it is stored, as the server does with its own at start
    (`app`): the churn of a file triggers a few, and each would walk them all."""
    if gc.get_freeze_count():  # frozen already
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
