"""How a guest call ends when the guest misbehaves after or instead of
returning: a trap or a timeout wins over an earlier wasmtube.fail, and WASI
proc_exit or a WASI call made wrongly is the guest's failure, said as such."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from helpers.rpc import rpc_error

from conftest import RunningDaemon, deploy, wat

FAIL_MESSAGE = "card declined"

# Each shape, after calling wasmtube.fail(NOT_FOUND, "card declined"), once
# with the seed ABI (-> i32) and once with the alloc ABI (-> i64). `calls`
# counts the calls of this instance, so a test can tell whether it was kept.
_SHAPES = {
    "returns": "",
    "loops": "(loop $l (br $l))",
    "unreachable": "unreachable",
    "out_of_bounds": "(drop (i32.load (i32.const 0x7ffffff0)))",
    "divides_by_zero": "(drop (i32.div_u (i32.const 1) (i32.sub (local.get 1) (local.get 1))))",
    "grows_until_refused": (
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable"
    ),
}
_FUNCTIONS = "\n".join(
    f"""
  (func (export "seed_{shape}") (param i32 i32) (result i32)
    (call $count) (call $report) {body} (i32.const 0))
  (func (export "alloc_{shape}") (param i32 i32) (result i64)
    (call $count) (call $report) {body} (i64.const 0))"""
    for shape, body in _SHAPES.items()
)
FAILING = wat(f"""
(module
  (import "wasmtube" "fail" (func $fail (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 2048) "{FAIL_MESSAGE}")
  (func $count (global.set $calls (i32.add (global.get $calls) (i32.const 1))))
  (func $report (call $fail (i32.const 5) (i32.const 2048) (i32.const {len(FAIL_MESSAGE)})))
  {_FUNCTIONS}
  (func (export "wasmtube_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "calls") (param $p i32) (param i32) (result i32)
    (call $count)
    (i32.store8 (local.get $p) (i32.add (i32.const 0x30) (global.get $calls)))
    (i32.const 1)))
""")

REPORTED = f"(after it had called wasmtube.fail with NOT_FOUND: {FAIL_MESSAGE})"


@pytest.fixture
def start_failing(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> Callable[..., RunningDaemon]:
    def start(**options: object) -> RunningDaemon:
        deploy(modules_dir, "failing", FAILING)
        # One instance, so consecutive calls land on the same one unless it is dropped.
        return start_daemon(modules_dir, module_concurrency=1, max_idle_instances=1, **options)

    return start


def traps(daemon: RunningDaemon, function: str, reason: str) -> float | None:
    return daemon.metric("wasmtube_traps_total", module="failing", function=function, reason=reason)


@pytest.mark.parametrize("abi", ["seed", "alloc"])
def test_failing_and_returning_answers_the_guests_code_and_keeps_the_instance(
    start_failing: Callable[..., RunningDaemon], abi: str
) -> None:
    daemon = start_failing()
    assert daemon.call("failing", "calls").json == "1"
    error = rpc_error(lambda: daemon.call("failing", f"{abi}_returns"))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, FAIL_MESSAGE)
    assert daemon.call("failing", "calls").json == "3"


@pytest.mark.parametrize("abi", ["seed", "alloc"])
@pytest.mark.parametrize(
    ("shape", "code", "words", "reason"),
    [
        ("unreachable", grpc.StatusCode.INTERNAL, "trapped (unreachable)", "unreachable"),
        ("out_of_bounds", grpc.StatusCode.INTERNAL, "trapped (out of bounds)", "out_of_bounds"),
        ("divides_by_zero", grpc.StatusCode.INTERNAL, "trapped (other)", "other"),
        ("grows_until_refused", grpc.StatusCode.RESOURCE_EXHAUSTED, "ran out of memory", "memory"),
    ],
)
def test_a_trap_after_failing_wins_and_drops_the_instance(
    start_failing: Callable[..., RunningDaemon],
    abi: str,
    shape: str,
    code: grpc.StatusCode,
    words: str,
    reason: str,
) -> None:
    daemon = start_failing(max_memory=8 * 1024 * 1024)
    function = f"{abi}_{shape}"
    assert daemon.call("failing", "calls").json == "1"
    error = rpc_error(lambda: daemon.call("failing", function))
    assert error.code() == code
    assert error.details().startswith(f"function {function!r} {words}")
    assert error.details().endswith(REPORTED)
    assert traps(daemon, function, reason) == 1
    assert daemon.metric("wasmtube_guest_errors_total", module="failing") is None
    assert daemon.call("failing", "calls").json == "1"  # a new instance


@pytest.mark.parametrize("abi", ["seed", "alloc"])
def test_failing_then_running_past_the_deadline_is_deadline_exceeded(
    start_failing: Callable[..., RunningDaemon], abi: str
) -> None:
    daemon = start_failing(call_timeout=0.5)
    function = f"{abi}_loops"
    error = rpc_error(lambda: daemon.call("failing", function))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The seconds are what was left when the guest started: 0.5 or a little less.
    assert error.details().startswith(f"function {function!r} ran past its 0.")
    assert error.details().endswith(f" s deadline and was stopped {REPORTED}")
    assert traps(daemon, function, "timeout") == 1
    assert daemon.call("failing", "calls").json == "1"


@pytest.mark.parametrize("abi", ["seed", "alloc"])
def test_failing_then_running_out_of_fuel_is_resource_exhausted(
    start_failing: Callable[..., RunningDaemon], abi: str
) -> None:
    daemon = start_failing(fuel=1_000_000, call_timeout=30)
    function = f"{abi}_loops"
    error = rpc_error(lambda: daemon.call("failing", function))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == (
        f"function {function!r} used up its fuel (--fuel) and was stopped {REPORTED}"
    )
    assert traps(daemon, function, "fuel") == 1


# WASI guests that exit, or call WASI with arguments wasmtime refuses outright
# (it answers a pointer outside memory by ending the call, not with an errno).
EXITING = wat("""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args (param i32 i32) (result i32)))
  (import "wasmtube" "fail" (func $fail (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 2048) "bye")
  (func (export "exit_7") (param i32 i32) (result i32) (call $exit (i32.const 7)) (i32.const 0))
  (func (export "exit_0") (param i32 i32) (result i32) (call $exit (i32.const 0)) (i32.const 0))
  (func (export "alloc_exit_3") (param i32 i32) (result i64)
    (call $exit (i32.const 3)) (i64.const 0))
  (func (export "fail_then_exit") (param i32 i32) (result i32)
    (call $fail (i32.const 3) (i32.const 2048) (i32.const 3))
    (call $exit (i32.const 1)) (i32.const 0))
  (func (export "clock_into_nowhere") (param i32 i32) (result i32)
    (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 65534))) (i32.const 0))
  (func (export "bad_clock_id") (param i32 i32) (result i32)
    (drop (call $clock (i32.const 99) (i64.const 0) (i32.const 0))) (i32.const 0))
  (func (export "args_into_nowhere") (param i32 i32) (result i32)
    (drop (call $args (i32.const 70000) (i32.const 0))) (i32.const 0))
  (func (export "wasmtube_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "ok") (param $p i32) (param i32) (result i32)
    (i32.store16 (local.get $p) (i32.const 0x7d7b)) (i32.const 2)))
""")


@pytest.fixture
def exiting(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    deploy(modules_dir, "exiting", EXITING)
    return start_daemon(modules_dir, wasi=True)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("exit_7", "function 'exit_7' exited with status 7 (WASI proc_exit) instead of returning"),
        ("exit_0", "function 'exit_0' exited with status 0 (WASI proc_exit) instead of returning"),
        (
            "alloc_exit_3",
            "function 'alloc_exit_3' exited with status 3 (WASI proc_exit) instead of returning",
        ),
        (
            "fail_then_exit",
            "function 'fail_then_exit' exited with status 1 (WASI proc_exit) instead of "
            "returning (after it had called wasmtube.fail with INVALID_ARGUMENT: bye)",
        ),
    ],
)
def test_proc_exit_is_the_guests_failure(
    exiting: RunningDaemon,
    caplog: pytest.LogCaptureFixture,
    function: str,
    message: str,
) -> None:
    with caplog.at_level(logging.ERROR, logger="wasmtube_server"):
        error = rpc_error(lambda: exiting.call("exiting", function))
    assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, message)
    assert "internal error in wasmtube" not in error.details()
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    assert (
        exiting.metric("wasmtube_traps_total", module="exiting", function=function, reason="exit")
        == 1
    )
    assert exiting.call("exiting", "ok").json == "{}"


@pytest.mark.parametrize(
    ("function", "cause"),
    [
        (
            "clock_into_nowhere",
            "In func wasi_snapshot_preview1::clock_time_get at write timestamp: "
            "Pointer out of bounds: Region { start: 65534, len: 8 }",
        ),
        (
            "bad_clock_id",
            "In func wasi_snapshot_preview1::clock_time_get at convert Clockid: "
            "Invalid enum value Clockid",
        ),
        (
            "args_into_nowhere",
            "In func wasi_snapshot_preview1::args_sizes_get at write size: "
            "Pointer out of bounds: Region { start: 70000, len: 4 }",
        ),
    ],
)
def test_a_wasi_call_made_wrongly_is_the_guests_failure(
    exiting: RunningDaemon,
    caplog: pytest.LogCaptureFixture,
    function: str,
    cause: str,
) -> None:
    with caplog.at_level(logging.ERROR, logger="wasmtube_server"):
        error = rpc_error(lambda: exiting.call("exiting", function))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == (
        f"function {function!r} was stopped by a WASI call it made wrongly: {cause}"
    )
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    assert (
        exiting.metric("wasmtube_traps_total", module="exiting", function=function, reason="host")
        == 1
    )
    assert exiting.call("exiting", "ok").json == "{}"
