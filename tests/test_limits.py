"""Time, fuel, memory and stack limits: a misbehaving guest is stopped with the
right status, and the daemon keeps serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from helpers.rpc import rpc_error

from conftest import RunningDaemon, deploy, json_module, wait_until, wat
from wasmtube.v1 import wasmtube_pb2 as pb

MIB = 1024 * 1024

# Misbehaving seed-ABI functions, one per limit.
HOG = wat("""
(module
  (memory (export "memory") 1)
  (func (export "forever") (param i32 i32) (result i32)
    (loop $l (br $l)) (i32.const 0))
  (func (export "grow_until_refused") (param i32 i32) (result i32)
    ;; Like a Rust guest whose allocator fails: grow until refused, then abort.
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)
  (func (export "grow_politely") (param i32 i32) (result i32)
    ;; Grows until refused, then answers {} anyway: no error.
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (i32.store16 (local.get 0) (i32.const 0x7d7b))
    (i32.const 2))
  (func $recurse (export "recurse") (param i32 i32) (result i32)
    (call $recurse (local.get 0) (local.get 1)))
  (func (export "ok") (param i32 i32) (result i32)
    (i32.store16 (local.get 0) (i32.const 0x7d7b))
    (i32.const 2)))
""")


@pytest.fixture
def start_hog(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> Callable[..., RunningDaemon]:
    def start(**options: object) -> RunningDaemon:
        deploy(modules_dir, "hog", HOG)
        deploy(modules_dir, "other", json_module('{"other":true}'))
        return start_daemon(modules_dir, **options)

    return start


def test_endless_loop_is_stopped_at_the_server_timeout(start_hog) -> None:
    daemon = start_hog(call_timeout=0.5)
    started = time.monotonic()
    error = rpc_error(lambda: daemon.call("hog", "forever"))
    elapsed = time.monotonic() - started
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "ran past its 0.5 s deadline and was stopped" in error.details()
    # Not a speed check: proof the loop was interrupted rather than left running.
    assert elapsed < 5
    assert (
        daemon.metric("wasmtube_traps_total", module="hog", function="forever", reason="timeout")
        == 1
    )
    assert (
        daemon.metric(
            "wasmtube_calls_total", module="hog", function="forever", code="DEADLINE_EXCEEDED"
        )
        == 1
    )
    # The module still works: the interrupted instance was dropped, not reused.
    assert daemon.call("hog", "ok").json == "{}"


def test_callers_deadline_stops_the_guest(start_hog) -> None:
    daemon = start_hog(call_timeout=60)
    request = pb.CallRequest(module="hog", function="forever", json="{}")
    error = rpc_error(lambda: daemon.stub.Call(request, timeout=0.3))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server stops the guest too, long before its own 60 s cap.
    wait_until(
        lambda: (
            daemon.metric(
                "wasmtube_traps_total", module="hog", function="forever", reason="timeout"
            )
            == 1
        ),
        timeout=10,
    )
    assert daemon.metric("wasmtube_calls_running", module="hog") == 0


@pytest.mark.slow
def test_other_calls_are_served_while_a_guest_loops(start_hog) -> None:
    daemon = start_hog(call_timeout=3)
    looping = threading.Thread(target=lambda: rpc_error(lambda: daemon.call("hog", "forever")))
    looping.start()
    wait_until(lambda: daemon.metric("wasmtube_calls_running", module="hog") == 1)
    for _ in range(20):
        assert daemon.call("other", "get").json == '{"other":true}'
        assert daemon.call("hog", "ok").json == "{}"
    assert looping.is_alive()
    looping.join(timeout=30)


def test_fuel_exhaustion_is_resource_exhausted(start_hog) -> None:
    daemon = start_hog(fuel=1_000_000, call_timeout=30)
    error = rpc_error(lambda: daemon.call("hog", "forever"))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "used up its fuel" in error.details()
    assert (
        daemon.metric("wasmtube_traps_total", module="hog", function="forever", reason="fuel") == 1
    )
    # Every call gets a full tank again.
    for _ in range(3):
        assert daemon.call("hog", "ok").json == "{}"


def test_memory_growth_stops_at_the_cap(start_hog) -> None:
    daemon = start_hog(max_memory=8 * MIB)
    error = rpc_error(lambda: daemon.call("hog", "grow_until_refused"))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "ran out of memory" in error.details() and "of the 8 MiB cap" in error.details()
    assert (
        daemon.metric(
            "wasmtube_traps_total", module="hog", function="grow_until_refused", reason="memory"
        )
        == 1
    )
    # A guest that copes with a refused grow is not an error.
    assert daemon.call("hog", "grow_politely").json == "{}"
    assert daemon.call("hog", "ok").json == "{}"


def test_the_daemons_memory_stays_bounded(start_hog) -> None:
    daemon = start_hog(max_memory=64 * MIB, instance_policy="fresh")
    rpc_error(lambda: daemon.call("hog", "grow_until_refused"))
    before = _rss()
    for _ in range(30):
        rpc_error(lambda: daemon.call("hog", "grow_until_refused"))
    # 30 instances grew to 64 MiB each (1.9 GiB in all); each was freed.
    assert _rss() - before < 3 * 64 * MIB


def test_module_larger_than_the_cap_fails_to_load(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "huge", wat('(module (memory (export "memory") 200))'))
    daemon = start_daemon(modules_dir, max_memory=4 * MIB)
    assert "cannot be instantiated" in daemon.modules()["huge"].last_error


def test_stack_overflow_is_a_trap(start_hog) -> None:
    daemon = start_hog()
    error = rpc_error(lambda: daemon.call("hog", "recurse"))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "stack overflow" in error.details()
    assert (
        daemon.metric(
            "wasmtube_traps_total", module="hog", function="recurse", reason="stack_overflow"
        )
        == 1
    )
    assert daemon.call("hog", "ok").json == "{}"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_stopping_the_daemon_interrupts_running_guests(start_hog) -> None:
    daemon = start_hog(call_timeout=600)
    looping = threading.Thread(target=lambda: rpc_error(lambda: daemon.call("hog", "forever")))
    looping.start()
    wait_until(lambda: daemon.metric("wasmtube_calls_running", module="hog") == 1)
    daemon.close()  # grace 1 s, then whatever still runs is stopped
    looping.join(timeout=10)
    wait_until(
        lambda: (
            daemon.registry.get_sample_value(
                "wasmtube_traps_total",
                {"module": "hog", "function": "forever", "reason": "timeout"},
            )
            == 1
        ),
        timeout=10,
        what="the guest to be interrupted",
    )
