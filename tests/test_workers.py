"""The pool gRPC runs handlers on: every item runs once, results and errors
reach its Future, the thread that went idle last takes the next item, no more
than max_workers threads run, and shutdown lets the threads go."""

from __future__ import annotations

import threading
from concurrent import futures

import pytest

from conftest import wait_until
from wasmtube_server.admission.workers import WorkerPool

WAIT = 10  # seconds; every wait below ends far sooner unless the pool is broken


def test_results_and_errors_reach_the_futures() -> None:
    pool = WorkerPool(4)
    try:
        assert pool.submit(lambda a, b: a + b, 2, b=3).result(WAIT) == 5
        failed = pool.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failed.result(WAIT)
        assert list(pool.map(lambda x: x * x, range(100))) == [x * x for x in range(100)]
    finally:
        pool.shutdown()


def test_the_thread_that_went_idle_last_takes_the_next_item() -> None:
    pool = WorkerPool(8)

    def idle(count: int) -> None:
        wait_until(lambda: len(pool._idle) == count, timeout=WAIT)

    def thread_name() -> str:
        return threading.current_thread().name

    try:
        # Three threads busy at once, then idle in the order they are freed.
        release = [threading.Event() for _ in range(3)]
        started = threading.Barrier(4)

        def hold(event: threading.Event) -> str:
            started.wait(WAIT)
            event.wait(WAIT)
            return thread_name()

        held = [pool.submit(hold, event) for event in release]
        started.wait(WAIT)
        names = []
        for count, (event, future) in enumerate(zip(release, held, strict=True), 1):
            event.set()
            names.append(future.result(WAIT))
            idle(count)
        assert len(set(names)) == 3
        # One call at a time: always the thread freed last, never the others.
        for _ in range(20):
            assert pool.submit(thread_name).result(WAIT) == names[-1]
            idle(3)
    finally:
        pool.shutdown()


def test_no_more_threads_than_max_workers_and_the_rest_waits_in_order() -> None:
    pool = WorkerPool(2)
    try:
        gate = threading.Event()
        busy = [pool.submit(gate.wait, WAIT) for _ in range(2)]
        order: list[int] = []
        waiting = [pool.submit(order.append, i) for i in range(5)]
        assert not any(f.done() for f in waiting)
        gate.set()
        futures.wait([*busy, *waiting], timeout=WAIT)
        assert order == [0, 1, 2, 3, 4]
        assert len(pool._threads) == 2
    finally:
        pool.shutdown()


def test_shutdown_finishes_submitted_work_and_lets_the_threads_go() -> None:
    pool = WorkerPool(3)
    gate = threading.Event()
    busy = pool.submit(gate.wait, WAIT)
    queued = [pool.submit(lambda i=i: i) for i in range(5)]
    threads = list(pool._threads)
    gate.set()
    pool.shutdown(wait=True)
    assert busy.result(0) is True
    assert [f.result(0) for f in queued] == list(range(5))
    assert not any(t.is_alive() for t in threads)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(print)


def test_shutdown_can_cancel_work_no_thread_has_started() -> None:
    pool = WorkerPool(1)
    gate = threading.Event()
    busy = pool.submit(gate.wait, WAIT)
    queued = [pool.submit(lambda: None) for _ in range(3)]
    pool.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    gate.set()
    assert busy.result(WAIT) is True


def test_at_least_one_worker() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        WorkerPool(0)
