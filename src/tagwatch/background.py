"""Periodic work driven by the clock: rules that fire on time, escalation, deadlines.

A domain lists its tasks in `<domain>/periodic.py` as `TASKS = [PeriodicTask(...)]`. The
server runs them in one background thread (each run one transaction); `tagwatch tick` runs
every task once, for cron or tests. Tasks take `now` as an argument so tests control time.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session, sessionmaker

from tagwatch.db.engine import unit_of_work
from tagwatch.domains import domain_modules

log = structlog.get_logger()


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    interval_seconds: float
    run: Callable[[Session, dt.datetime], object]


def all_tasks() -> list[PeriodicTask]:
    return [task for module in domain_modules("periodic") for task in module.TASKS]


def run_all_once(
    factory: sessionmaker[Session], now: dt.datetime | None = None
) -> dict[str, object]:
    results: dict[str, object] = {}
    for task in all_tasks():
        with unit_of_work(factory) as session:
            results[task.name] = task.run(session, now or dt.datetime.now(dt.UTC))
    return results


class Scheduler:
    """Runs every periodic task at its interval until stopped."""

    def __init__(self, factory: sessionmaker[Session], tick_seconds: float = 1.0) -> None:
        self._factory = factory
        self._tick = tick_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tagwatch-periodic", daemon=True)
        self._thread.start()
        # Which process runs them: with several server workers, it must be exactly one.
        log.info("periodic tasks started", pid=os.getpid(), tasks=len(all_tasks()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        tasks = all_tasks()
        due = {task.name: 0.0 for task in tasks}
        clock = 0.0
        while not self._stop.wait(self._tick):
            clock += self._tick
            for task in tasks:
                if clock < due[task.name]:
                    continue
                due[task.name] = clock + task.interval_seconds
                try:
                    with unit_of_work(self._factory) as session:
                        task.run(session, dt.datetime.now(dt.UTC))
                except Exception:  # a failing task must not stop the others
                    log.exception("periodic task failed", task=task.name)
