"""How many calls of one module run at once, and how many may wait.

Past `max_running`, callers wait for a free slot, at most `max_waiting` of
them; one more is refused at once with ModuleBusy, so a burst costs a bounded
amount of memory and threads instead of an ever-growing queue. A waiting call
gives up when its deadline passes.

The counts are read by the metrics collector at scrape time (see
metrics.py), so a call pays for no gauge updates.
"""

from __future__ import annotations

import threading
import time

from .errors import CallTimedOut, ModuleBusy

__all__ = ["ConcurrencyLimiter"]


class ConcurrencyLimiter:
    def __init__(self, name: str, max_running: int, max_waiting: int) -> None:
        self.name = name
        self._max_running = max_running
        self._max_waiting = max_waiting
        self.running = 0
        self.waiting = 0
        # Calls take the plain lock (a C-level `with`); only waiting calls use
        # the Condition built on it.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def enter(self, deadline: float) -> None:
        """Take one of the running slots; pair with leave().

        `deadline` is a time.monotonic() value.
        """
        with self._lock:
            if self.running >= self._max_running:
                self._wait(deadline)
            self.running += 1

    def leave(self) -> None:
        with self._lock:
            self.running -= 1
            if self.waiting:
                self._changed.notify()

    def _wait(self, deadline: float) -> None:
        if self.waiting >= self._max_waiting:
            raise ModuleBusy(
                f"module {self.name!r} is busy: {self.running} calls running and "
                f"{self.waiting} waiting, the most it takes (--module-concurrency, "
                f"--module-queue); retry with backoff"
            )
        self.waiting += 1
        try:
            free = self._changed.wait_for(
                lambda: self.running < self._max_running, max(0.0, deadline - time.monotonic())
            )
        finally:
            self.waiting -= 1
        if not free:
            raise CallTimedOut(
                f"the deadline passed while waiting for a free instance of module "
                f"{self.name!r} ({self.running} calls running)"
            )
