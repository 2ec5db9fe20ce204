"""The worker threads guest calls run on.

The event loop only receives, admits and answers; a guest runs on a worker
thread (and releases the GIL while it runs), so a long guest never stops the
loop, and health checks always get an answer.

concurrent.futures' ThreadPoolExecutor hands each item to whichever idle
thread its queue wakes first, so consecutive calls land on different
threads, each with its stack and data gone cold since its last call. This
pool hands each item to the thread that went idle last: one call at a time
then runs on one warm thread, and under load the few busiest threads do the
work (docs/benchmarks.md has what that buys).

Threads start as the load needs them, up to `max_workers`; past that, work
waits in arrival order. Futures are ordinary concurrent.futures Futures.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any, ParamSpec, TypeVar

__all__ = ["WorkerPool"]

P = ParamSpec("P")
T = TypeVar("T")

_Item = tuple["futures.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _Worker:
    """One thread's mailbox: an item and the lock it sleeps on until given one."""

    __slots__ = ("item", "wake")

    def __init__(self, item: _Item | None) -> None:
        self.item = item
        self.wake = threading.Lock()
        self.wake.acquire()


class WorkerPool(futures.Executor):
    def __init__(self, max_workers: int, thread_name_prefix: str = "worker") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._lock = threading.Lock()
        # Idle workers, the one that went idle last on top.
        self._idle: list[_Worker] = []
        # Work that found every thread busy, oldest first.
        self._backlog: deque[_Item] = deque()
        self._threads: list[threading.Thread] = []
        self._shutdown = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> futures.Future[T]:
        future: futures.Future[T] = futures.Future()
        item: _Item = (future, fn, args, kwargs)
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit work to a pool that was shut down")
            if self._idle:
                worker = self._idle.pop()
                worker.item = item
                worker.wake.release()
            elif len(self._threads) < self._max_workers:
                self._start(_Worker(item))
            else:
                self._backlog.append(item)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let the threads finish the work submitted so far (or, with
        `cancel_futures`, cancel what no thread has started), then exit."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._backlog:
                    self._backlog.popleft()[0].cancel()
            # An idle worker woken with no item exits.
            while self._idle:
                self._idle.pop().wake.release()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()

    def _start(self, worker: _Worker) -> None:
        thread = threading.Thread(
            target=self._work,
            args=(worker,),
            name=f"{self._prefix}_{len(self._threads)}",
            # The daemon interrupts running guests before it exits
            # (Runtime.stop), so no thread of this pool outlives it for long.
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _work(self, worker: _Worker) -> None:
        item = worker.item
        while item is not None:
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as e:
                    future.set_exception(e)
                else:
                    future.set_result(result)
            # Drop the references before sleeping: a handler's request and
            # response must not live until this thread's next item.
            del future, fn, args, kwargs, item
            item = self._next(worker)

    def _next(self, worker: _Worker) -> _Item | None:
        """The next item for `worker`: the oldest waiting, or one handed to it
        after it sleeps on top of the idle stack; None once shut down."""
        with self._lock:
            if self._backlog:
                return self._backlog.popleft()
            if self._shutdown:
                return None
            worker.item = None
            self._idle.append(worker)
        worker.wake.acquire()
        return worker.item
