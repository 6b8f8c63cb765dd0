"""The server the HTTP benchmarks measure: `tagwatch serve` with its worker processes, on a
free local port, as a deployment on this machine would run it."""

from __future__ import annotations

import socket
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_command(port: int, workers: int = 1) -> list[str]:
    """`tagwatch serve`: uvicorn with `workers` processes (the periodic tasks, if the
    environment turns them on, in the supervising process)."""
    return [
        str(Path(sys.executable).parent / "tagwatch"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
