"""Health: SERVING only when nothing stands in the way, and the reasons
otherwise, in the trailing metadata of every Check."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from certs import CertificateAuthority
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import RunningDaemon, deploy, json_module, wait_until
from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc

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


def test_a_health_address_answers_plaintext_probes_while_the_api_serves_tls(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, tmp_path: Path
) -> None:
    ca = CertificateAuthority(tmp_path)
    server = ca.issue("server", server=True)
    deploy(modules_dir, "m", json_module('{"m":1}'))
    daemon = start_daemon(
        modules_dir, tls_cert=server.cert, tls_key=server.key, health_listen="127.0.0.1:0"
    )
    probe_address = daemon.daemon.health_address
    with grpc.insecure_channel(probe_address) as channel:
        # What the kubelet's gRPC probe asks, for the service and the server.
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("wasmtube.v1.Wasmtube", ""):
            request = health_pb2.HealthCheckRequest(service=service)
            status = health.Check(request, timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        # Nothing else is served there.
        stub = pb_grpc.WasmtubeStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Call(pb.CallRequest(module="m", function="get", json="{}"), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.RpcError) as info:
            stub.ListModules(pb.ListModulesRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # The API itself is TLS only.
    trusted = grpc.ssl_channel_credentials(root_certificates=ca.pem.cert.read_bytes())
    with grpc.secure_channel(daemon.address, trusted) as channel:
        response = pb_grpc.WasmtubeStub(channel).Call(
            pb.CallRequest(module="m", function="get", json="{}"), timeout=5
        )
        assert response.json == '{"m":1}'


def test_the_metrics_page_has_the_process_series_dashboards_expect(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    daemon = start_daemon(modules_dir)
    assert daemon.metric("process_resident_memory_bytes") > 10 * 2**20
    assert daemon.metric("process_cpu_seconds_total") > 0
    assert daemon.metric("process_open_fds") > 0
    assert daemon.metric("process_start_time_seconds") > 1.7e9
    assert daemon.metric("python_info") == 1
