"""Kept-alive connections end when their worker is busier than the others, or after a number of
responses, so several worker processes share the load.

With several worker processes on one listening socket (`tagwatch serve --workers N`), a
connection stays with the worker that accepted it for as long as it is kept alive. Connections
that arrive together are mostly accepted by whichever worker woke first, and their clients stay
on it: one worker queues pages while another idles, and its clients wait twice as long.

So a response ends its connection (`Connection: close`, as nginx's `keepalive_requests` does):

- when its worker has more than one request in flight above the workers' mean (`WorkerLoads`,
  a small memory map the workers share), so the client's next connection can go to a less
  busy one;
- after `requests` responses in any case, so the workers' shares even out over time.

The client connects again, costing one new TCP connection.
"""

from __future__ import annotations

import atexit
import fcntl
import mmap
import os
import struct
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Connections this process counts at once; past it the oldest counts are forgotten (a client
# that closed its connection is never seen again, and its count must not pile up).
_TRACKED = 4096
# Where `tagwatch serve` tells its workers to share their loads.
LOADS_ENV = "TAGWATCH_WORKER_LOADS"
_SLOT = struct.Struct("qq")  # pid, requests in flight
_SLOTS = 256


class WorkerLoads:
    """Requests in flight in each worker process of one server, one slot per worker in a file
    they all map. Each worker writes only its own slot; a reader may see a count a request
    stale, which only delays shedding by a request. A slot whose process is gone is reused."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # workers starting together claim distinct slots
            if os.fstat(fd).st_size < _SLOT.size * _SLOTS:
                os.ftruncate(fd, _SLOT.size * _SLOTS)
            self._map = mmap.mmap(fd, _SLOT.size * _SLOTS)
            self._offset = _SLOT.size * self._claim_slot()
            _SLOT.pack_into(self._map, self._offset, os.getpid(), 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._in_flight = 0
        # A worker that stops frees its slot (one that dies leaves it to its replacement).
        atexit.register(self.release)

    def release(self) -> None:
        _SLOT.pack_into(self._map, self._offset, 0, 0)

    def _claim_slot(self) -> int:
        for slot in range(_SLOTS):
            pid, _ = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            if pid == 0 or not _alive(pid):
                return slot
        raise RuntimeError(f"more than {_SLOTS} workers share {LOADS_ENV}")

    def started(self) -> None:
        self._in_flight += 1
        struct.pack_into("q", self._map, self._offset + 8, self._in_flight)

    def finished(self) -> None:
        self._in_flight -= 1
        struct.pack_into("q", self._map, self._offset + 8, self._in_flight)

    def busier_than_the_rest(self) -> bool:
        """More than one request in flight above the workers' mean: not one more, so that
        at light load a worker answering while the others idle keeps its connections."""
        counts = [in_flight for pid, in_flight in _SLOT.iter_unpack(self._map) if pid != 0]
        return len(counts) > 1 and self._in_flight * len(counts) > sum(counts) + len(counts)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class KeepAliveLimitMiddleware:
    """Answers with `Connection: close` when this worker is the busier, and on the
    `requests`-th request of a connection (0: never for that reason)."""

    def __init__(self, app: ASGIApp, requests: int) -> None:
        self.app = app
        self.requests = requests
        self._served: dict[tuple[str, int], int] = {}
        shared = os.environ.get(LOADS_ENV)
        self.loads = WorkerLoads(Path(shared)) if shared else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if client is None:
            await self.app(scope, receive, send)
            return
        last = self._count(client[0], client[1])
        loads = self.loads
        if loads is None:
            await self.app(scope, receive, self._closing(send) if last else send)
            return
        # A request counts as load until its answer starts: a page being built, not a live
        # map's stream of events, which would make its worker look busy for as long as it is
        # open.
        loads.started()
        answered = False

        async def send_counted(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                if last or loads.busier_than_the_rest():
                    MutableHeaders(scope=message)["connection"] = "close"
                loads.finished()
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            if not answered:
                loads.finished()

    @staticmethod
    def _closing(send: Send) -> Send:
        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        return send_closing

    def _count(self, host: str, port: int) -> bool:
        """Count a request on the connection; True if it is its last."""
        if self.requests <= 0:
            return False
        peer = (host, port)
        served = self._served.pop(peer, 0) + 1
        if served >= self.requests:
            return True
        self._served[peer] = served  # re-inserted: the dict stays in order of use
        if len(self._served) > _TRACKED:
            del self._served[next(iter(self._served))]
        return False
