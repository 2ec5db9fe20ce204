"""No WASI function outlives a call's deadline: poll_oneoff sleeps honour
their clocks but end at the deadline (the call is then DEADLINE_EXCEEDED and
its instance dropped), random_get stops at it, and the functions that walk
iovec arrays or paths take bounded time. Their answers are WASI's: events,
counts and errno values, EFAULT for a pointer outside memory."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from helpers.rpc import rpc_error
from wat_text import EMIT, PARSE

from conftest import RunningDaemon, deploy, wait_until, wat
from wasmtube.v1 import wasmtube_pb2 as pb

MIB = 1024 * 1024
# Where the guest keeps what it passes to WASI (seed-ABI output goes at 42).
SUBS, EVENTS, NEVENTS = 8192, 8704, 9216
ERRNO_BADF, ERRNO_FAULT, ERRNO_INVAL, ERRNO_SPIPE = 8, 21, 28, 70
UNTOUCHED = 99  # nevents before the call: still there if nothing was written

# Seed-ABI functions, each answering "[errno,nevents,(userdata,error,type,nbytes)...]"
# for one poll_oneoff; those taking an input read it as a decimal number of
# milliseconds.
POLLING = wat(f"""
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (global $marked (mut i32) (i32.const 0))
  {PARSE}
  {EMIT}
  (func $ms (param $p i32) (param $n i32) (result i64)
    (i64.mul (i64.extend_i32_u (call $parse (local.get $p) (local.get $n))) (i64.const 1000000)))
  (func $now (param $clock i32) (result i64)
    (drop (call $clock_time_get (local.get $clock) (i64.const 1) (i32.const 9304)))
    (i64.load (i32.const 9304)))
  (func $clock (param $index i32) (param $userdata i64) (param $id i32) (param $ns i64)
      (param $flags i32) (local $at i32)
    (local.set $at (i32.add (i32.const {SUBS}) (i32.mul (local.get $index) (i32.const 48))))
    (i64.store (local.get $at) (local.get $userdata))
    (i32.store8 offset=8 (local.get $at) (i32.const 0))
    (i32.store offset=16 (local.get $at) (local.get $id))
    (i64.store offset=24 (local.get $at) (local.get $ns))
    (i64.store offset=32 (local.get $at) (i64.const 0))
    (i32.store16 offset=40 (local.get $at) (local.get $flags)))
  (func $fd (param $index i32) (param $userdata i64) (param $tag i32) (param $fd i32)
      (local $at i32)
    (local.set $at (i32.add (i32.const {SUBS}) (i32.mul (local.get $index) (i32.const 48))))
    (i64.store (local.get $at) (local.get $userdata))
    (i32.store8 offset=8 (local.get $at) (local.get $tag))
    (i32.store offset=16 (local.get $at) (local.get $fd)))
  (func $poll_and_report (param $p i32) (param $count i32) (result i32)
      (local $errno i32) (local $i i32) (local $e i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.const {NEVENTS}) (i32.const {UNTOUCHED}))
    (local.set $errno
      (call $poll (i32.const {SUBS}) (i32.const {EVENTS}) (local.get $count) (i32.const {NEVENTS})))
    (call $begin (local.get $p))
    (call $put (i32.const 91))
    (call $num (i64.extend_i32_u (local.get $errno)))
    (call $put (i32.const 44))
    (call $num (i64.extend_i32_u (i32.load (i32.const {NEVENTS}))))
    (if (i32.eqz (local.get $errno)) (then
      (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const {NEVENTS}))))
        (local.set $e (i32.add (i32.const {EVENTS}) (i32.mul (local.get $i) (i32.const 32))))
        (call $put (i32.const 44)) (call $num (i64.load (local.get $e)))
        (call $put (i32.const 44))
        (call $num (i64.extend_i32_u (i32.load16_u offset=8 (local.get $e))))
        (call $put (i32.const 44))
        (call $num (i64.extend_i32_u (i32.load8_u offset=10 (local.get $e))))
        (call $put (i32.const 44)) (call $num (i64.load offset=16 (local.get $e)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))))
    (call $put (i32.const 93))
    (call $end))
  (func (export "sleep_ms") (param $p i32) (param $n i32) (result i32)
    (call $clock (i32.const 0) (i64.const 77) (i32.const 1) (call $ms (local.get $p) (local.get $n))
      (i32.const 0))
    (call $poll_and_report (local.get $p) (i32.const 1)))
  (func (export "marked_sleep_ms") (param $p i32) (param $n i32) (result i32)
    ;; sleep_ms, marking the instance: a later call that sees the mark ran on it.
    (global.set $marked (i32.const 1))
    (call $clock (i32.const 0) (i64.const 77) (i32.const 1) (call $ms (local.get $p) (local.get $n))
      (i32.const 0))
    (call $poll_and_report (local.get $p) (i32.const 1)))
  (func (export "marked") (param $p i32) (param $n i32) (result i32)
    (i32.store8 (local.get $p) (i32.add (i32.const 48) (global.get $marked)))
    (i32.const 1))
  (func (export "sleep_realtime_ms") (param $p i32) (param $n i32) (result i32)
    (call $clock (i32.const 0) (i64.const 78) (i32.const 0) (call $ms (local.get $p) (local.get $n))
      (i32.const 0))
    (call $poll_and_report (local.get $p) (i32.const 1)))
  (func (export "sleep_until_ms") (param $p i32) (param $n i32) (result i32)
    (call $clock (i32.const 0) (i64.const 79) (i32.const 1)
      (i64.add (call $now (i32.const 1)) (call $ms (local.get $p) (local.get $n))) (i32.const 1))
    (call $poll_and_report (local.get $p) (i32.const 1)))
  (func (export "sleep_until_realtime_ms") (param $p i32) (param $n i32) (result i32)
    (call $clock (i32.const 0) (i64.const 80) (i32.const 0)
      (i64.add (call $now (i32.const 0)) (call $ms (local.get $p) (local.get $n))) (i32.const 1))
    (call $poll_and_report (local.get $p) (i32.const 1)))
  (func (export "until_then_check") (param $p i32) (param $n i32) (result i32)
    ;; Sleeps until an absolute monotonic time, then answers 1 if the guest's
    ;; clock has reached it (a wake-up must never come early), else 0.
    (local $until i64)
    (local.set $until (i64.add (call $now (i32.const 1)) (call $ms (local.get $p) (local.get $n))))
    (call $clock (i32.const 0) (i64.const 81) (i32.const 1) (local.get $until) (i32.const 1))
    (drop (call $poll (i32.const {SUBS}) (i32.const {EVENTS}) (i32.const 1) (i32.const {NEVENTS})))
    (i32.store8 (local.get $p) (i32.add (i32.const 48)
      (i64.ge_u (call $now (i32.const 1)) (local.get $until))))
    (i32.const 1))
  (func (export "short_and_long") (param $p i32) (param $n i32) (result i32)
    (call $clock (i32.const 0) (i64.const 1) (i32.const 1) (i64.const 30000000000) (i32.const 0))
    (call $clock (i32.const 1) (i64.const 2) (i32.const 1) (i64.const 10000000) (i32.const 0))
    (call $poll_and_report (local.get $p) (i32.const 2)))
  (func (export "stdio_and_long") (param $p i32) (param $n i32) (result i32)
    (call $clock (i32.const 0) (i64.const 4) (i32.const 1) (i64.const 30000000000) (i32.const 0))
    (call $fd (i32.const 1) (i64.const 5) (i32.const 1) (i32.const 0))
    (call $fd (i32.const 2) (i64.const 6) (i32.const 2) (i32.const 2))
    (call $poll_and_report (local.get $p) (i32.const 3)))
  (func (export "read_stdout") (param $p i32) (param $n i32) (result i32)
    (call $fd (i32.const 0) (i64.const 7) (i32.const 1) (i32.const 1))
    (call $poll_and_report (local.get $p) (i32.const 1)))
  (func (export "unknown_fd") (param $p i32) (param $n i32) (result i32)
    (call $fd (i32.const 0) (i64.const 7) (i32.const 2) (i32.const 9))
    (call $poll_and_report (local.get $p) (i32.const 1)))
  (func (export "cpu_clock") (param $p i32) (param $n i32) (result i32)
    (call $clock (i32.const 0) (i64.const 8) (i32.const 2) (i64.const 1000) (i32.const 0))
    (call $poll_and_report (local.get $p) (i32.const 1)))
  (func (export "no_subscriptions") (param $p i32) (param $n i32) (result i32)
    (call $poll_and_report (local.get $p) (i32.const 0)))
  (func (export "events_outside_memory") (param $p i32) (param $n i32) (result i32)
    (call $clock (i32.const 0) (i64.const 9) (i32.const 1) (i64.const 0) (i32.const 0))
    (call $begin (local.get $p))
    (call $num (i64.extend_i32_u
      (call $poll (i32.const {SUBS}) (i32.const 65530) (i32.const 1) (i32.const {NEVENTS}))))
    (call $end))
  (func (export "subscriptions_outside_memory") (param $p i32) (param $n i32) (result i32)
    (call $begin (local.get $p))
    (call $num (i64.extend_i32_u
      (call $poll (i32.const -64) (i32.const {EVENTS}) (i32.const 1) (i32.const {NEVENTS}))))
    (call $end))
  (func (export "calls") (param $p i32) (param $n i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (call $begin (local.get $p))
    (call $num (i64.extend_i32_u (global.get $calls)))
    (call $end)))
""")


@pytest.fixture
def start_polling(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> Callable[..., RunningDaemon]:
    def start(**options: object) -> RunningDaemon:
        deploy(modules_dir, "polling", POLLING)
        return start_daemon(modules_dir, wasi=True, **options)

    return start


def answer(daemon: RunningDaemon, function: str, argument: str = "0") -> list[int]:
    return json.loads(daemon.call("polling", function, argument).json)


def test_a_long_sleep_ends_at_the_deadline(start_polling: Callable[..., RunningDaemon]) -> None:
    daemon = start_polling(call_timeout=1)
    started = time.monotonic()
    error = rpc_error(lambda: daemon.call("polling", "sleep_ms", "30000"))
    elapsed = time.monotonic() - started
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "'sleep_ms' ran past its" in error.details()
    # Not a speed check: proof the 30 s sleep was cut short at the 1 s deadline.
    assert elapsed < 1 + 2
    labels = {"module": "polling", "function": "sleep_ms", "reason": "timeout"}
    assert daemon.metric("wasmtube_traps_total", **labels) == 1


@pytest.mark.parametrize(
    "function", ["sleep_realtime_ms", "sleep_until_ms", "sleep_until_realtime_ms", "short_and_long"]
)
def test_every_kind_of_clock_ends_at_the_deadline(
    start_polling: Callable[..., RunningDaemon], function: str
) -> None:
    daemon = start_polling(call_timeout=1)
    started = time.monotonic()
    argument = "30000" if function != "short_and_long" else "0"
    if function == "short_and_long":
        # Its short clock fires first: it answers at once, as it should.
        assert answer(daemon, function) == [0, 1, 2, 0, 0, 0]
        return
    error = rpc_error(lambda: daemon.call("polling", function, argument))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1 + 2


def test_the_callers_deadline_ends_the_sleep_too(
    start_polling: Callable[..., RunningDaemon],
) -> None:
    daemon = start_polling(call_timeout=60)
    request = pb.CallRequest(module="polling", function="sleep_ms", json="30000")
    error = rpc_error(lambda: daemon.stub.Call(request, timeout=0.5))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(
        lambda: (
            daemon.metric(
                "wasmtube_traps_total", module="polling", function="sleep_ms", reason="timeout"
            )
            == 1
        ),
        timeout=10,
        what="the sleeping guest to be stopped",
    )
    assert daemon.metric("wasmtube_calls_running", module="polling") == 0


@pytest.mark.parametrize(
    ("function", "userdata"),
    [
        ("sleep_ms", 77),
        ("sleep_realtime_ms", 78),
        ("sleep_until_ms", 79),
        ("sleep_until_realtime_ms", 80),
    ],
)
def test_a_short_sleep_sleeps_and_reports_its_clock_event(
    start_polling: Callable[..., RunningDaemon], function: str, userdata: int
) -> None:
    daemon = start_polling()
    started = time.monotonic()
    # errno 0, one event: the subscription's userdata, no error, type clock.
    assert answer(daemon, function, "10") == [0, 1, userdata, 0, 0, 0]
    assert time.monotonic() - started >= 0.01  # it did wait
    assert answer(daemon, function, "0") == [0, 1, userdata, 0, 0, 0]


def test_an_absolute_sleep_never_wakes_before_the_guests_clock(
    start_polling: Callable[..., RunningDaemon],
) -> None:
    daemon = start_polling()
    for milliseconds in ("1", "5", "20"):
        assert daemon.call("polling", "until_then_check", milliseconds).json == "1"


def test_only_the_clock_that_fired_is_reported(start_polling: Callable[..., RunningDaemon]) -> None:
    daemon = start_polling()
    assert answer(daemon, "short_and_long") == [0, 1, 2, 0, 0, 0]


def test_stdio_is_ready_at_once(start_polling: Callable[..., RunningDaemon]) -> None:
    daemon = start_polling(call_timeout=5)
    # stdin can be read (it is at its end), stderr written; the 30 s clock is not reported.
    assert answer(daemon, "stdio_and_long") == [0, 2, 5, 0, 1, 1, 6, 0, 2, 1]


@pytest.mark.parametrize(
    ("function", "errno"),
    [
        ("read_stdout", ERRNO_BADF),
        ("unknown_fd", ERRNO_BADF),
        ("cpu_clock", ERRNO_INVAL),
        ("no_subscriptions", ERRNO_INVAL),
    ],
)
def test_a_subscription_wasi_refuses_gets_its_errno(
    start_polling: Callable[..., RunningDaemon], function: str, errno: int
) -> None:
    daemon = start_polling()
    assert answer(daemon, function) == [errno, UNTOUCHED]


@pytest.mark.parametrize("function", ["events_outside_memory", "subscriptions_outside_memory"])
def test_a_pointer_outside_memory_is_efault(
    start_polling: Callable[..., RunningDaemon], function: str
) -> None:
    daemon = start_polling()
    assert daemon.call("polling", function).json == str(ERRNO_FAULT)
    assert daemon.call("polling", "calls").json == "1"  # the same instance goes on


def test_an_interrupted_instance_is_not_reused_and_others_are_served_meanwhile(
    start_polling: Callable[..., RunningDaemon],
) -> None:
    # Room for two idle instances: the sleeper's would be kept if it were given back.
    daemon = start_polling(call_timeout=3, max_idle_instances=2)
    outcome: list[grpc.RpcError] = []
    started = time.monotonic()
    sleeper = threading.Thread(
        target=lambda: outcome.append(
            rpc_error(lambda: daemon.call("polling", "marked_sleep_ms", "30000"))
        )
    )
    sleeper.start()
    wait_until(lambda: daemon.metric("wasmtube_calls_running", module="polling") == 1)
    # The sleeper holds its instance; other calls of the module are served at once.
    for _ in range(10):
        assert daemon.call("polling", "calls").json
    assert answer(daemon, "sleep_ms", "10") == [0, 1, 77, 0, 0, 0]
    sleeper.join(timeout=30)
    assert time.monotonic() - started < 3 + 2
    assert outcome[0].code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # No instance the sleeper marked serves again.
    for _ in range(3):
        assert daemon.call("polling", "marked").json == "0"


def test_stopping_the_daemon_wakes_a_sleeping_guest(
    start_polling: Callable[..., RunningDaemon],
) -> None:
    daemon = start_polling(call_timeout=600)
    sleeper = threading.Thread(
        target=lambda: rpc_error(lambda: daemon.call("polling", "sleep_ms", "600000"))
    )
    sleeper.start()
    wait_until(lambda: daemon.metric("wasmtube_calls_running", module="polling") == 1)
    started = time.monotonic()
    # Grace 1 s, then whatever still runs is stopped; stopping waits for the
    # threads that run guests, so it returns only once the sleep has ended.
    daemon.close()
    assert time.monotonic() - started < 1 + 5
    sleeper.join(timeout=10)
    assert not sleeper.is_alive()


# Functions around the WASI calls that take sizes from the guest: each
# answers "[errno,count]" (count: bytes written or read, or 0).
IO = wat(f"""
(module
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite"
    (func $fd_pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread"
    (func $fd_pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 2)
  {PARSE}
  {EMIT}
  (func $report (param $p i32) (param $errno i32) (result i32)
    (call $begin (local.get $p))
    (call $put (i32.const 91))
    (call $num (i64.extend_i32_u (local.get $errno)))
    (call $put (i32.const 44))
    (call $num (i64.extend_i32_u (i32.load (i32.const 9216))))
    (call $put (i32.const 93))
    (call $end))
  ;; $count iovecs at 20000, each of $length bytes at 65536.
  (func $iovecs (param $count i32) (param $length i32) (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (i32.store (i32.add (i32.const 20000) (i32.mul (local.get $i) (i32.const 8)))
        (i32.const 65536))
      (i32.store offset=4 (i32.add (i32.const 20000) (i32.mul (local.get $i) (i32.const 8)))
        (local.get $length))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
  (func (export "random_mib") (param $p i32) (param $n i32) (result i32) (local $mib i32)
    ;; Fills $mib MiB at 1 MiB, growing memory to hold them.
    (local.set $mib (call $parse (local.get $p) (local.get $n)))
    (drop (memory.grow (i32.mul (i32.add (local.get $mib) (i32.const 1)) (i32.const 16))))
    (i32.store (i32.const 9216) (i32.const 0))
    (call $report (local.get $p) (call $random_get (i32.const 1048576)
      (i32.mul (local.get $mib) (i32.const 1048576)))))
  (func (export "random_32") (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 9216) (i32.const 0))
    (call $report (local.get $p) (call $random_get (i32.const 9216) (i32.const 4))))
  (func (export "random_outside") (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 9216) (i32.const 0))
    (call $report (local.get $p) (call $random_get (i32.const 131000) (i32.const 1000))))
  (func (export "write_iovecs") (param $p i32) (param $n i32) (result i32)
    ;; As many iovecs of 10 bytes as the input says, to stdout.
    (call $iovecs (call $parse (local.get $p) (local.get $n)) (i32.const 10))
    (call $report (local.get $p) (call $fd_write (i32.const 1) (i32.const 20000)
      (call $parse (local.get $p) (local.get $n)) (i32.const 9216))))
  (func (export "write_huge") (param $p i32) (param $n i32) (result i32)
    ;; 1024 iovecs, each naming the same 64 KiB, to stderr: 64 MiB in all.
    (call $iovecs (i32.const 1024) (i32.const 65536))
    (call $report (local.get $p)
      (call $fd_write (i32.const 2) (i32.const 20000) (i32.const 1024) (i32.const 9216))))
  (func (export "write_to") (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 9216) (i32.const 0))
    (call $iovecs (i32.const 1) (i32.const 10))
    (call $report (local.get $p) (call $fd_write (call $parse (local.get $p) (local.get $n))
      (i32.const 20000) (i32.const 1) (i32.const 9216))))
  (func (export "write_iovecs_outside") (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 9216) (i32.const 0))
    (call $report (local.get $p)
      (call $fd_write (i32.const 1) (i32.const 0x7ffffff0) (i32.const 100) (i32.const 9216))))
  (func (export "write_buffer_outside") (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 9216) (i32.const 0))
    (i32.store (i32.const 20000) (i32.const 131000))
    (i32.store (i32.const 20004) (i32.const 1000))
    (call $report (local.get $p)
      (call $fd_write (i32.const 1) (i32.const 20000) (i32.const 1) (i32.const 9216))))
  (func (export "read_from") (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 9216) (i32.const 99))
    (call $iovecs (i32.const 1) (i32.const 10))
    (call $report (local.get $p) (call $fd_read (call $parse (local.get $p) (local.get $n))
      (i32.const 20000) (i32.const 1) (i32.const 9216))))
  (func (export "pwrite_to") (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 9216) (i32.const 0))
    (call $report (local.get $p) (call $fd_pwrite (call $parse (local.get $p) (local.get $n))
      (i32.const 20000) (i32.const 1) (i64.const 0) (i32.const 9216))))
  (func (export "pread_from") (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 9216) (i32.const 0))
    (call $report (local.get $p) (call $fd_pread (call $parse (local.get $p) (local.get $n))
      (i32.const 20000) (i32.const 1) (i64.const 0) (i32.const 9216))))
  (func (export "open_long_path") (param $p i32) (param $n i32) (result i32)
    ;; A path as long as all of memory, from descriptor 1 (wasmtime's would read it).
    (i32.store (i32.const 9216) (i32.const 0))
    (call $report (local.get $p) (call $path_open (i32.const 1) (i32.const 0) (i32.const 0)
      (i32.const 131072) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0)
      (i32.const 9216)))))
""")


@pytest.fixture
def io(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    deploy(modules_dir, "io", IO)
    return start_daemon(modules_dir, wasi=True, call_timeout=5)


def io_answer(daemon: RunningDaemon, function: str, argument: str = "0") -> list[int]:
    return json.loads(daemon.call("io", function, argument).json)


def test_random_get_fills_its_buffer(io: RunningDaemon) -> None:
    errno, value = io_answer(io, "random_32")
    assert errno == 0
    assert value != 0 or io_answer(io, "random_32")[1] != 0  # 2^-64 to be zero twice
    assert io_answer(io, "random_mib", "4") == [0, 0]


def test_random_get_outside_memory_is_efault(io: RunningDaemon) -> None:
    assert io_answer(io, "random_outside") == [ERRNO_FAULT, 0]


def test_random_get_of_a_huge_buffer_stops_at_the_deadline(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "io", IO)
    daemon = start_daemon(modules_dir, wasi=True, call_timeout=0.3)
    started = time.monotonic()
    # 200 MiB of randomness takes far longer than 0.3 s to make.
    error = rpc_error(lambda: daemon.call("io", "random_mib", "200"))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 0.3 + 2
    assert daemon.call("io", "random_32").json.startswith("[0,")


@pytest.mark.parametrize(("count", "expected"), [(0, [0, 0]), (4, [0, 40]), (1024, [0, 10240])])
def test_fd_write_to_stdout_counts_every_iovec(
    io: RunningDaemon, count: int, expected: list[int]
) -> None:
    assert io_answer(io, "write_iovecs", str(count)) == expected


def test_fd_write_takes_at_most_iov_max_iovecs(io: RunningDaemon) -> None:
    assert io_answer(io, "write_iovecs", "1025")[0] == ERRNO_INVAL


def test_fd_write_of_gigabytes_is_counted_not_copied(io: RunningDaemon) -> None:
    started = time.monotonic()
    assert io_answer(io, "write_huge") == [0, 1024 * 65536]
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("fd", "errno"), [(0, ERRNO_BADF), (1, 0), (2, 0), (3, ERRNO_BADF)])
def test_fd_write_goes_to_stdout_and_stderr_only(io: RunningDaemon, fd: int, errno: int) -> None:
    assert io_answer(io, "write_to", str(fd))[0] == errno


@pytest.mark.parametrize("function", ["write_iovecs_outside", "write_buffer_outside"])
def test_fd_write_with_a_pointer_outside_memory_is_efault(io: RunningDaemon, function: str) -> None:
    # An errno the guest can handle, not the end of the call.
    assert io_answer(io, function) == [ERRNO_FAULT, 0]


@pytest.mark.parametrize(("fd", "expected"), [(0, [0, 0]), (1, [ERRNO_BADF, 99])])
def test_fd_read_of_stdin_is_at_its_end(io: RunningDaemon, fd: int, expected: list[int]) -> None:
    assert io_answer(io, "read_from", str(fd)) == expected


@pytest.mark.parametrize(
    ("function", "fd", "errno"),
    [
        ("pwrite_to", 1, ERRNO_SPIPE),
        ("pwrite_to", 0, ERRNO_BADF),
        ("pread_from", 0, ERRNO_SPIPE),
        ("pread_from", 2, ERRNO_BADF),
    ],
)
def test_positioned_io_on_stdio_is_espipe(
    io: RunningDaemon, function: str, fd: int, errno: int
) -> None:
    assert io_answer(io, function, str(fd))[0] == errno


def test_path_open_answers_at_once_that_no_directory_is_open(io: RunningDaemon) -> None:
    assert io_answer(io, "open_long_path") == [ERRNO_BADF, 0]
