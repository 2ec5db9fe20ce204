"""Placement: whether a call runs on the event loop itself or on a worker thread.

Handing a call to a worker thread and its answer back costs two thread
switches, more than a short guest takes to run. So a unary call of a
function that has always been quick runs on the event loop, within a time
slice (`INLINE_SLICE_SECONDS`, enforced by the epoch deadline like any
other): the loop is never held longer than that. A call that outruns its
slice is interrupted and run again from the start on a worker thread, on a
new instance, and its function runs on worker threads from then on. So does
a function whose calls took longer than `QUICK_SECONDS` `SLOW_STREAK` times
in a row (once could be a cold start): on the loop, calls run one at a time,
and such calls are better spread over the cores. A module version whose
calls outran their slice `MAX_OVERRUNS` times runs all its calls on worker
threads, so no module can take the loop for more than a few slices.

A rerun is invisible to the caller but for the time it took: the first run's
instance is dropped with everything the guest did to it, and only its log
lines (with the same call id) remain.

Streams always run on worker threads: a stream's instance lives as long as
the stream, and a slice that ran out would lose it.
"""

from __future__ import annotations

__all__ = ["INLINE_SLICE_SECONDS", "MAX_OVERRUNS", "QUICK_SECONDS", "SLOW_STREAK", "Placement"]

# The time slice of a call run on the loop; the epoch deadline rounds it up
# to whole ticks of the Runtime's ticker.
INLINE_SLICE_SECONDS = 0.002
# A call on the loop that takes longer than this counts as slow, and a
# function whose calls were slow this many times in a row moves to workers.
QUICK_SECONDS = 0.001
SLOW_STREAK = 3
# Slices a module version may outrun before all its calls move to workers.
MAX_OVERRUNS = 3


class Placement:
    """Where the calls of one module version run. Used on the event loop only."""

    __slots__ = ("_on_workers", "_overruns", "_slow")

    def __init__(self) -> None:
        self._on_workers: set[str] = set()
        # Slow calls in a row, by function.
        self._slow: dict[str, int] = {}
        self._overruns = 0

    def inline(self, function: str) -> bool:
        """Whether a unary call of `function` should run on the event loop."""
        return self._overruns < MAX_OVERRUNS and function not in self._on_workers

    def ran(self, function: str, seconds: float) -> None:
        """A call of `function` ran on the loop in `seconds`."""
        if seconds <= QUICK_SECONDS:
            if function in self._slow:
                del self._slow[function]
            return
        streak = self._slow[function] = self._slow.get(function, 0) + 1
        if streak >= SLOW_STREAK:
            self._on_workers.add(function)

    def overran(self, function: str) -> None:
        """A call of `function` outran its slice: its calls move to workers."""
        self._on_workers.add(function)
        self._overruns += 1
