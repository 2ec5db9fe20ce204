"""Graceful shutdown: refuse new calls, let the running ones finish.

gRPC's own `server.stop(grace)` refuses every new RPC at once, health checks
included, so nobody could see the daemon say NOT_SERVING while it drains.
Instead the daemon keeps its listeners open while draining: health answers
NOT_SERVING, new calls get UNAVAILABLE (which clients retry elsewhere), and
only when the running calls are done, or the grace period is over, does the
server stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import Draining

__all__ = ["Drain"]


class Drain:
    def __init__(self) -> None:
        self._running = 0
        self._draining = False
        self._changed = threading.Condition()

    @contextmanager
    def call(self) -> Iterator[None]:
        """Count one call while it runs; refuse it if the daemon is draining."""
        with self._changed:
            if self._draining:
                raise Draining("wasmtube is shutting down and takes no new calls; retry")
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def start(self) -> None:
        with self._changed:
            self._draining = True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call runs; False if some still ran after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            return self._changed.wait_for(
                lambda: self._running == 0, max(0.0, deadline - time.monotonic())
            )

    @property
    def running(self) -> int:
        return self._running
