"""Keep-alive connections end after a number of responses, so several workers share the load.

With several worker processes on one listening socket (`tagwatch serve --workers N`), a
connection stays with the worker that accepted it for as long as it is kept alive. New
connections that arrive together are mostly accepted by whichever worker woke first, and their
clients would stay on it while the other workers sit idle. Ending each connection after
`requests` responses (`Connection: close`, as nginx's `keepalive_requests` and Apache's
`MaxKeepAliveRequests` do) makes its client connect again, and the new connection is accepted
by a worker free to accept it: a busy worker is slow to, so load moves to the idle ones
within a second or two. A client's next request costs one new TCP connection.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Connections this process counts at once; past it the oldest counts are forgotten (a client
# that closed its connection is never seen again, and its count must not pile up).
_TRACKED = 4096


class KeepAliveLimitMiddleware:
    """Answers the `requests`-th request on a connection with `Connection: close`."""

    def __init__(self, app: ASGIApp, requests: int) -> None:
        self.app = app
        self.requests = requests
        self._served: dict[tuple[str, int], int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if client is None or self.requests <= 0:
            await self.app(scope, receive, send)
            return
        peer = (client[0], client[1])
        served = self._served.pop(peer, 0) + 1
        last = served >= self.requests
        if not last:
            self._served[peer] = served  # re-inserted: the dict stays in order of use
            if len(self._served) > _TRACKED:
                del self._served[next(iter(self._served))]

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        await self.app(scope, receive, send_closing if last else send)
