"""The daemon answers at once after starting, while large modules compile."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from conftest import RunningDaemon, big_module, deploy, json_module
from wasmtube_server import Config, Daemon


@pytest.mark.slow
def test_health_and_list_modules_answer_while_modules_compile(modules_dir: Path) -> None:
    # Four ~1.5 MB modules, ~0.5 s of compiling each, load before "z_small".
    for i in range(4):
        deploy(modules_dir, f"big{i}", big_module(seed=i))
    deploy(modules_dir, "z_small", json_module('{"small":true}'))
    daemon = Daemon(
        Config(modules_dir=modules_dir, listen="127.0.0.1:0", metrics_listen="127.0.0.1:0"),
        registry=CollectorRegistry(),
    )
    daemon.start()
    handle = RunningDaemon(daemon, daemon.metrics.registry)
    try:
        health = health_pb2_grpc.HealthStub(handle.channel)
        check = health_pb2.HealthCheckRequest(service="wasmtube.v1.Wasmtube")
        assert not daemon.modules.ready.is_set(), "loading finished before the first check"
        assert health.Check(check, timeout=2).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert len(handle.modules()) < 5  # answered mid-load
        with pytest.raises(grpc.RpcError) as info:
            handle.call("z_small", "get")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "still loading" in info.value.details()

        assert daemon.wait_ready(60)
        assert health.Check(check, timeout=2).status == health_pb2.HealthCheckResponse.SERVING
        assert len(handle.modules()) == 5
        assert handle.call("z_small", "get").json == '{"small":true}'
        # After start-up, an unknown module is NOT_FOUND again, not UNAVAILABLE.
        with pytest.raises(grpc.RpcError) as info:
            handle.call("ghost", "get")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        handle.close()
