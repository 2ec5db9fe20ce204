"""A guest fails a call on purpose with wasmtube.fail: its code and message
reach the caller, the metrics count it, and the instance stays in the pool."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from helpers.guests import FAILING

from conftest import RunningDaemon, deploy, wat


@pytest.fixture
def failing(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    deploy(modules_dir, "failing", FAILING)
    # One instance, so consecutive calls land on the same one unless it is dropped.
    return start_daemon(modules_dir, module_concurrency=1, max_idle_instances=1)


def failure(daemon: RunningDaemon, function: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        daemon.call("failing", function)
    return info.value


def test_the_guest_chooses_the_status_and_the_message(failing: RunningDaemon) -> None:
    error = failure(failing, "invalid")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "width must be even"
    labels = {"module": "failing", "function": "invalid", "code": "INVALID_ARGUMENT"}
    assert failing.metric("wasmtube_guest_errors_total", **labels) == 1
    assert failing.metric("wasmtube_calls_total", **labels) == 1
    assert failing.metric("wasmtube_traps_total", module="failing") is None


def test_the_alloc_abi_reports_the_same_way(failing: RunningDaemon) -> None:
    error = failure(failing, "not_found")
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "width")


def test_failing_on_purpose_keeps_the_instance(failing: RunningDaemon) -> None:
    assert failing.call("failing", "calls").json == "1"
    failure(failing, "invalid")
    assert failing.call("failing", "calls").json == "3"  # the same instance: 3 calls


def test_a_trap_after_failing_reports_the_trap_and_drops_the_instance(
    failing: RunningDaemon,
) -> None:
    assert failing.call("failing", "calls").json == "1"
    error = failure(failing, "fail_then_trap")
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == (
        "function 'fail_then_trap' trapped (unreachable): wasm trap: wasm `unreachable` "
        "instruction executed (after it had called wasmtube.fail with NOT_FOUND: width)"
    )
    assert failing.call("failing", "calls").json == "1"  # a new instance


@pytest.mark.parametrize("function, code", [("code_zero", 0), ("code_99", 99)])
def test_a_code_that_is_not_an_error_is_internal(
    failing: RunningDaemon, function: str, code: int
) -> None:
    error = failure(failing, function)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert f"status code {code}, which is not a gRPC error code" in error.details()
    assert "width must be even" in error.details()


def test_a_message_outside_memory_keeps_the_code(failing: RunningDaemon) -> None:
    error = failure(failing, "message_outside")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "lies outside linear memory" in error.details()


def test_an_unknown_wasmtube_import_fails_to_load_with_its_name(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(
        modules_dir,
        "unknown",
        wat("""
        (module (import "wasmtube" "explode" (func))
          (memory (export "memory") 1))
        """),
    )
    daemon = start_daemon(modules_dir)
    info = daemon.modules()["unknown"]
    assert "imports wasmtube.explode, which wasmtube does not provide" in info.last_error
    assert (
        "may import only wasmtube.config, wasmtube.fail, wasmtube.log and wasmtube.output_image"
        in info.last_error
    )
