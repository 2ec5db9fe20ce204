"""The real /metrics page after known calls and reloads, and the call tally behind it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from conftest import RunningDaemon, deploy, json_module, sha256, wait_until


def test_metrics_count_calls_reloads_and_modules(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    v1, v2 = json_module('{"v":1}'), json_module('{"v":2}')
    deploy(modules_dir, "m", v1)
    deploy(modules_dir, "n", v1)
    daemon = start_daemon(modules_dir)

    for _ in range(3):
        daemon.call("m", "get")
    daemon.call("m", "echo", "[1]")
    for request in [("m", "nope"), ("ghost", "get")]:
        with pytest.raises(grpc.RpcError):
            daemon.call(*request)

    m = daemon.metric
    assert m("wasmtube_calls_total", module="m", function="get", code="OK") == 3
    assert m("wasmtube_calls_total", module="m", function="echo", code="OK") == 1
    # Names that do not exist never become label values.
    assert m("wasmtube_calls_total", module="m", function="_unknown", code="NOT_FOUND") == 1
    assert m("wasmtube_calls_total", module="_unknown", function="_unknown", code="NOT_FOUND") == 1
    assert m("wasmtube_call_duration_seconds_count", module="m", function="get") == 3
    assert m("wasmtube_call_duration_seconds_sum", module="m", function="get") > 0
    assert m("wasmtube_modules_loaded") == 2
    assert m("wasmtube_module_info", module="m", sha256=sha256(v1), generation="1") == 1
    assert m("wasmtube_module_reloads_total", module="m", result="success") == 1

    deploy(modules_dir, "m", v2)
    daemon.wait_generation("m", 2)
    assert m("wasmtube_module_info", module="m", sha256=sha256(v2), generation="2") == 1
    # The old version's info series is gone, so a dashboard shows one version.
    assert m("wasmtube_module_info", module="m", sha256=sha256(v1), generation="1") is None
    assert m("wasmtube_module_reloads_total", module="m", result="success") == 2

    deploy(modules_dir, "m", b"broken")
    wait_until(lambda: m("wasmtube_module_reloads_total", module="m", result="failure") == 1)

    (modules_dir / "n.wasm").unlink()
    wait_until(lambda: m("wasmtube_modules_loaded") == 1)
    assert m("wasmtube_module_reloads_total", module="n", result="removed") == 1


def test_traps_are_counted_by_reason(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(
        modules_dir,
        "t",
        json_module("{}", extra='(func (export "trap") (param i32 i32) (result i32) unreachable)'),
    )
    daemon = start_daemon(modules_dir)
    for _ in range(2):
        with pytest.raises(grpc.RpcError):
            daemon.call("t", "trap")
    assert (
        daemon.metric("wasmtube_traps_total", module="t", function="trap", reason="unreachable")
        == 2
    )
    assert daemon.metric("wasmtube_calls_total", module="t", function="trap", code="INTERNAL") == 2
