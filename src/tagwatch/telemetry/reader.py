"""The file channel's reader: a process that reads, parses and prepares a feed file chunk by
chunk while the storing process stores the chunk before, so the two use two cores.

Run as `python -m tagwatch.telemetry.reader PATH CHUNK IMAGE FD SKIP`: it sends each chunk,
the first SKIP records left out, as `(Prepared, bytes read so far)` over the pipe `FD`, then
None; a failure as `ReaderFailed`. It imports only the feed's parsing, so it starts in a
fraction of a second; meanwhile the storing process parses the first records itself, so it
has something to store from the start. A thread in the storing process receives up to
`ahead` chunks, so the reader runs at most that far ahead.
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Generator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import cast

from tagwatch.telemetry.columns import Prepared, prepare
from tagwatch.telemetry.sources import file_chunks

Chunks = Generator[tuple[Prepared, int], None, None]
_ENDED = object()  # the pipe closed before the reader said it had finished


@dataclass(frozen=True)
class ReaderFailed:
    """What went wrong in the reader: the exception itself when it can travel, else its
    description."""

    error: BaseException | None
    description: str


def prepared_chunks(path: Path, chunk: int, *, image: bool, skip: int = 0) -> Chunks:
    """The file's chunks (the first `skip` records left out), prepared in this process."""
    for items, consumed in file_chunks(path, chunk, skip):
        yield prepare(items, image=image), consumed


def prepared_by_reader(
    path: Path, chunk: int, *, image: bool, ahead: int = 1, here: int = 0
) -> Chunks:
    """The file's chunks, prepared in a reader process; up to `ahead` of them are received
    while the store is busy with the one before. The first `here` records come first, as
    one chunk prepared in this process while the reader starts. Closing the iterator early
    (the store failed) stops the reader."""
    read_end, write_end = os.pipe()
    try:
        reader = subprocess.Popen(
            [
                sys.executable,
                "-m",
                __name__,
                str(path),
                str(chunk),
                "1" if image else "0",
                str(write_end),
                str(here),
            ],
            pass_fds=(write_end,),
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    pipe = Connection(read_end, writable=False)
    received: queue.Queue[object] = queue.Queue(maxsize=ahead)
    stopping = threading.Event()

    def receive() -> None:
        # A pipe holds a few kilobytes: without this thread the reader could only run one
        # piece ahead, and would wait while the store evaluates a chunk.
        while not stopping.is_set():
            try:
                message: object = pipe.recv()
            except EOFError:
                message = _ENDED
            while not stopping.is_set():
                with contextlib.suppress(queue.Full):
                    received.put(message, timeout=0.1)
                    break
            if message is None or message is _ENDED or isinstance(message, ReaderFailed):
                return

    receiver = threading.Thread(target=receive, name="feed-receiver", daemon=True)
    receiver.start()
    try:
        if here:
            yield from _first_records(path, here, image)
        while True:
            message = received.get()
            if message is _ENDED:
                raise RuntimeError(
                    f"the feed reader stopped unexpectedly (exit status {reader.wait()})"
                )
            if message is None:
                return
            if isinstance(message, ReaderFailed):
                if message.error is not None:
                    raise message.error
                raise RuntimeError(f"the feed reader failed: {message.description}")
            yield cast(tuple[Prepared, int], message)
    finally:
        stopping.set()
        if receiver.is_alive():
            reader.kill()  # the receiver, blocked reading, sees the pipe end and stops
        receiver.join()
        pipe.close()
        try:
            reader.wait(timeout=5)
        except subprocess.TimeoutExpired:
            reader.kill()
            reader.wait()


def _first_records(path: Path, count: int, image: bool) -> Chunks:
    """The file's first `count` records as one chunk, prepared in this process."""
    with contextlib.closing(prepared_chunks(path, count, image=image)) as chunks:
        first = next(chunks, None)
    if first is not None:
        yield first


def _send_chunks(path: Path, chunk: int, image: bool, skip: int, pipe: Connection) -> None:
    try:
        for piece in prepared_chunks(path, chunk, image=image, skip=skip):
            pipe.send(piece)
    except BrokenPipeError:
        return  # the store stopped reading: nothing more to do
    except Exception as exc:  # handed to the store, which raises it
        try:
            pipe.send(ReaderFailed(exc, repr(exc)))
        except Exception:  # the exception does not pickle: its description does
            pipe.send(ReaderFailed(None, repr(exc)))
        return
    pipe.send(None)


def main(arguments: list[str]) -> None:
    path, chunk, image, fd, skip = arguments
    # Ctrl-C reaches the whole process group: the storing process handles it, and this one
    # ends when its pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What a chunk allocates holds no reference cycles and is freed as it goes; cycle
    # collection would only rescan it (a fifth of the reader's time), so it is off here.
    gc.disable()
    pipe = Connection(int(fd), readable=False)
    try:
        _send_chunks(Path(path), int(chunk), image == "1", int(skip), pipe)
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


if __name__ == "__main__":
    # Through the module's own name, so what it sends unpickles in the storing process.
    from tagwatch.telemetry.reader import main as run_reader

    run_reader(sys.argv[1:])
