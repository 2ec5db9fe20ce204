"""How many calls of one module run at once, and how many may wait.

Past `max_running`, callers wait for a free slot, at most `max_waiting` of
them; one more is refused at once with ModuleBusy, so a burst costs a bounded
amount of memory and threads instead of an ever-growing queue. A waiting call
gives up when its deadline passes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Gauge

from .errors import CallTimedOut, ModuleBusy

__all__ = ["ConcurrencyLimiter"]


class ConcurrencyLimiter:
    def __init__(
        self, name: str, max_running: int, max_waiting: int, running: Gauge, waiting: Gauge
    ) -> None:
        self._name = name
        self._max_running = max_running
        self._max_waiting = max_waiting
        self._running = 0
        self._waiting = 0
        self._changed = threading.Condition()
        # Labelled gauges; this module's series appear with its first call, so
        # a module that never loaded never gets one.
        self._running_gauge = running
        self._waiting_gauge = waiting

    @contextmanager
    def slot(self, deadline: float) -> Iterator[None]:
        """Hold one of the running slots until the block ends.

        `deadline` is a time.monotonic() value.
        """
        with self._changed:
            if self._running >= self._max_running:
                self._wait(deadline)
            self._running += 1
            self._running_gauge.labels(self._name).set(self._running)
            self._waiting_gauge.labels(self._name).set(self._waiting)
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._running_gauge.labels(self._name).set(self._running)
                self._changed.notify()

    def _wait(self, deadline: float) -> None:
        if self._waiting >= self._max_waiting:
            raise ModuleBusy(
                f"module {self._name!r} is busy: {self._running} calls running and "
                f"{self._waiting} waiting, the most it takes (--module-concurrency, "
                f"--module-queue); retry with backoff"
            )
        self._waiting += 1
        self._waiting_gauge.labels(self._name).set(self._waiting)
        try:
            free = self._changed.wait_for(
                lambda: self._running < self._max_running, max(0.0, deadline - time.monotonic())
            )
        finally:
            self._waiting -= 1
            self._waiting_gauge.labels(self._name).set(self._waiting)
        if not free:
            raise CallTimedOut(
                f"the deadline passed while waiting for a free instance of module "
                f"{self._name!r} ({self._running} calls running)"
            )
