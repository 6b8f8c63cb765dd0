"""The file channel: stream a feed file through the pipeline, committing chunk by chunk.

Each chunk is committed as soon as it is stored, so a large file makes durable progress;
storing is idempotent, so after a failure the same file is simply sent again.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from tagwatch.settings import Settings
from tagwatch.telemetry.service import IngestResult, Item, ingest
from tagwatch.telemetry.sources import file_chunks

DEFAULT_CHUNK = 20_000


def store_file(
    session: Session,
    path: Path,
    *,
    settings: Settings,
    chunk: int = DEFAULT_CHUNK,
    on_chunk: Callable[[IngestResult, int], None] | None = None,
) -> IngestResult:
    """Store every record of the file; `on_chunk(total so far, bytes read)` after each commit."""
    total = IngestResult()
    for items, consumed in parsed_ahead(path, chunk):
        result = ingest(
            session,
            items,
            channel="file",
            origin=str(path)[-300:],
            settings=settings,
            received_at=dt.datetime.now(dt.UTC),
        )
        session.commit()
        total.add(result)
        if on_chunk is not None:
            on_chunk(total, consumed)
    return total


def parsed_ahead(path: Path, chunk: int) -> Iterator[tuple[list[Item], int]]:
    """Read and parse the next chunk in a thread while the current one is being stored (the
    database driver releases the interpreter lock while it writes, so the two overlap)."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=2)
    done = object()

    def produce() -> None:
        try:
            for piece in file_chunks(path, chunk):
                ahead.put(piece)
            ahead.put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            ahead.put(exc)

    thread = threading.Thread(target=produce, name="feed-reader", daemon=True)
    thread.start()
    while (piece := ahead.get()) is not done:
        if isinstance(piece, BaseException):
            raise piece
        yield piece
    thread.join()
