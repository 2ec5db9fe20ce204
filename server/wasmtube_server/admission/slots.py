"""Slots: how many calls and streams the daemon takes at once.

Every limit on concurrency is a number of slots. A request takes its slots
before it runs and gives them back when it ends; with none free it is
refused at once (RESOURCE_EXHAUSTED), or for a module's slots it may wait in
a bounded queue until its deadline.

- `CallSlots`: calls handled at once in the whole daemon (--max-workers),
  and the drain on shutdown.
- `StreamSlots`: CallStreams open at once (--max-streams). A stream holds
  one for its whole life, and a call slot only while one of its messages
  runs, so idle streams never starve unary calls.
- `ModuleSlots`: calls of one module running in a guest at once
  (--module-concurrency), and how many may wait (--module-queue).

Every method runs on the server's event loop thread, which is what makes the
plain counters correct without a lock; the metrics page only reads them.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ..errors import CallTimedOut, Draining, ModuleBusy, Overloaded

__all__ = ["CallSlots", "ModuleSlots", "StreamSlots"]


class CallSlots:
    """Calls handled at once by the daemon, and the drain.

    gRPC's own `maximum_concurrent_rpcs` would count health checks too, so a
    daemon busy with long calls would fail its liveness probe and be
    restarted, which makes overload worse; these slots count Wasmtube calls
    only. While draining every call is refused with UNAVAILABLE (clients
    retry elsewhere) and `idle()` tells when the running ones are done.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0
        self.draining = False
        # When the drain last refused a call (the event loop's clock).
        self.refused_at = 0.0
        self._idle = asyncio.Event()

    def refuse_if_draining(self) -> None:
        """Raise Draining while the daemon drains."""
        if self.draining:
            self.refused_at = asyncio.get_running_loop().time()
            raise Draining("wasmtube is shutting down and takes no new calls; retry")

    def take(self) -> None:
        """Take a slot, or raise Draining or Overloaded; pair with give_back()."""
        self.refuse_if_draining()
        if self.taken >= self.limit:
            raise Overloaded(
                f"wasmtube is handling {self.limit} calls, its --max-workers limit; "
                f"retry with backoff"
            )
        self.taken += 1

    def give_back(self) -> None:
        self.taken -= 1
        if self.draining and not self.taken:
            self._idle.set()

    def start_draining(self) -> None:
        """Refuse every call from now on."""
        self.draining = True
        if not self.taken:
            self._idle.set()

    async def idle(self) -> None:
        """After start_draining(): return once no call holds a slot."""
        await self._idle.wait()

    async def quiet(self, seconds: float) -> None:
        """After start_draining(): return once no call was refused for `seconds`."""
        loop = asyncio.get_running_loop()
        while (wait := self.refused_at + seconds - loop.time()) > 0:
            await asyncio.sleep(wait)


class StreamSlots:
    """CallStreams open at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    def take(self) -> None:
        """Take a slot, or raise Overloaded; pair with give_back()."""
        if self.taken >= self.limit:
            raise Overloaded(
                f"wasmtube has {self.limit} CallStreams open, its --max-streams limit; "
                f"retry with backoff, or use Call"
            )
        self.taken += 1

    def give_back(self) -> None:
        self.taken -= 1


class ModuleSlots:
    """Calls of one module that run in a guest at once, and the queue before them.

    Past `max_running`, calls wait for a slot in arrival order, at most
    `max_waiting` of them; one more is refused at once with ModuleBusy, so a
    burst costs a bounded amount of memory instead of an ever-growing queue.
    A waiting call gives up when its deadline passes. Waiting holds no thread.
    """

    def __init__(self, name: str, max_running: int, max_waiting: int) -> None:
        self.name = name
        self._max_running = max_running
        self._max_waiting = max_waiting
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def take(self, deadline: float) -> None:
        """Take a running slot by `deadline` (time.monotonic(), which is the
        event loop's clock), or raise ModuleBusy or CallTimedOut; pair with
        give_back()."""
        if self.running < self._max_running and not self._waiters:
            self.running += 1
            return
        if len(self._waiters) >= self._max_waiting:
            raise ModuleBusy(
                f"module {self.name!r} is busy: {self.running} calls running and "
                f"{len(self._waiters)} waiting, the most it takes (--module-concurrency, "
                f"--module-queue); retry with backoff"
            )
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            async with asyncio.timeout_at(deadline):
                await turn
        except BaseException as e:
            if turn.done() and not turn.cancelled():
                # Handed a slot just as it gave up (deadline, cancelled): pass it on.
                self.give_back()
            elif turn in self._waiters:
                self._waiters.remove(turn)
            if isinstance(e, TimeoutError):
                raise CallTimedOut(
                    f"the deadline passed while waiting for a free instance of module "
                    f"{self.name!r} ({self.running} calls running)"
                ) from None
            raise

    def give_back(self) -> None:
        """Free a running slot: handed straight to the oldest waiting call, if any."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1
