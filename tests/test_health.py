"""Health: SERVING only when nothing stands in the way, and the reasons
otherwise, in the trailing metadata of every Check."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import RunningDaemon, deploy, json_module, wait_until

REASON = "wasmtube-not-serving"


def check(daemon: RunningDaemon) -> tuple[int, str | None]:
    """Health's status for the Wasmtube service, and the reason it gave."""
    with grpc.insecure_channel(daemon.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="wasmtube.v1.Wasmtube")
        response, call = stub.Check.with_call(request, timeout=5)
        reasons = dict(call.trailing_metadata() or ())
    return response.status, reasons.get(REASON)


def test_serving_says_no_reason(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "m", json_module("{}"))
    daemon = start_daemon(modules_dir)
    assert check(daemon) == (health_pb2.HealthCheckResponse.SERVING, None)


def test_a_missing_module_directory_is_the_reason_not_to_serve(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "m", json_module("{}"))
    daemon = start_daemon(modules_dir, watch="poll", poll_interval=0.1)
    shutil.rmtree(modules_dir)
    not_serving = (
        health_pb2.HealthCheckResponse.NOT_SERVING,
        f"module directory {modules_dir} does not exist",
    )
    wait_until(lambda: check(daemon) == not_serving, what="health to name the missing directory")
    modules_dir.mkdir()
    wait_until(lambda: check(daemon)[0] == health_pb2.HealthCheckResponse.SERVING)
    assert check(daemon) == (health_pb2.HealthCheckResponse.SERVING, None)
