"""Admission of calls: the --max-workers cap and graceful shutdown, in one lock.

Cap: past `limit` calls in progress, the next is refused at once with
RESOURCE_EXHAUSTED instead of queueing without bound in the executor. gRPC's
own `maximum_concurrent_rpcs` would count health checks too, so a daemon busy
with long calls would fail its liveness probe and be restarted, which makes
overload worse; this gate counts Wasmtube calls only.

Drain: gRPC's `server.stop(grace)` refuses every new RPC at once, health
checks included, so nobody could see the daemon say NOT_SERVING while it
drains. Instead the daemon keeps its listeners open while draining: health
answers NOT_SERVING, new calls get UNAVAILABLE (which clients retry
elsewhere), and only when the running calls are done, or the grace period is
over, does the server stop.
"""

from __future__ import annotations

import threading

from .errors import Draining, Overloaded

__all__ = ["CallGate"]


class CallGate:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._running = 0
        self._draining = False
        self._lock = threading.Lock()
        self._idle = threading.Event()

    def enter(self) -> None:
        """Admit one call, or raise Draining or Overloaded; pair with leave()."""
        with self._lock:
            if self._draining:
                raise Draining("wasmtube is shutting down and takes no new calls; retry")
            if self._running >= self._limit:
                raise Overloaded(
                    f"wasmtube is handling {self._limit} requests, its --max-workers limit; "
                    f"retry with backoff"
                )
            self._running += 1

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            if self._draining and self._running == 0:
                self._idle.set()

    def start_draining(self) -> None:
        """Refuse every call from now on."""
        with self._lock:
            self._draining = True
            if self._running == 0:
                self._idle.set()

    def wait_idle(self, timeout: float) -> bool:
        """After start_draining(): wait until no call runs; False on timeout."""
        return self._idle.wait(max(0.0, timeout))

    @property
    def running(self) -> int:
        return self._running
