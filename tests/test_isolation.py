"""Instance policies and per-module concurrency: what one call can see of
another, how many run at once, and what happens past the bound."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import RunningDaemon, deploy, wait_until, wat
from wasmtube.v1 import wasmtube_pb2 as pb

# `poke` leaves a mark in linear memory; `peek` answers whether it is there.
MEMORY_PROBE = wat("""
(module
  (memory (export "memory") 1)
  (data (i32.const 2048) "{\\"marked\\":true}{\\"marked\\":false}")
  (func (export "poke") (param i32 i32) (result i32)
    (i32.store8 (i32.const 1000) (i32.const 1))
    (i32.store16 (local.get 0) (i32.const 0x7d7b))
    (i32.const 2))
  (func (export "peek") (param $at i32) (param i32) (result i32)
    (if (i32.load8_u (i32.const 1000))
      (then (memory.copy (local.get $at) (i32.const 2048) (i32.const 15))
            (return (i32.const 15))))
    (memory.copy (local.get $at) (i32.const 2063) (i32.const 16))
    (i32.const 16))
  (func (export "forever") (param i32 i32) (result i32)
    (loop $l (br $l)) (i32.const 0)))
""")


@pytest.fixture
def start_probe(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> Callable[..., RunningDaemon]:
    def start(**options: object) -> RunningDaemon:
        deploy(modules_dir, "probe", MEMORY_PROBE)
        deploy(modules_dir, "other", MEMORY_PROBE)
        return start_daemon(modules_dir, **options)

    return start


def test_fresh_calls_never_see_an_earlier_calls_memory(start_probe) -> None:
    daemon = start_probe(instance_policy="fresh")
    for _ in range(5):
        daemon.call("probe", "poke")
        assert daemon.call("probe", "peek").json == '{"marked":false}'


def test_pooled_calls_reuse_a_warm_instance(start_probe) -> None:
    daemon = start_probe(instance_policy="pooled", module_concurrency=1, max_idle_instances=1)
    daemon.call("probe", "poke")
    assert daemon.call("probe", "peek").json == '{"marked":true}'


def test_policy_can_be_set_per_module(start_probe) -> None:
    daemon = start_probe(
        instance_policy="fresh",
        module_policies={"other": "pooled"},
        max_idle_instances=1,
        module_concurrency=1,
    )
    daemon.call("probe", "poke")
    daemon.call("other", "poke")
    assert daemon.call("probe", "peek").json == '{"marked":false}'
    assert daemon.call("other", "peek").json == '{"marked":true}'


def _loop_in_background(daemon: RunningDaemon, errors: list[grpc.StatusCode]) -> threading.Thread:
    def run() -> None:
        try:
            daemon.call("probe", "forever")
        except grpc.RpcError as e:
            errors.append(e.code())

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.slow
def test_calls_to_one_module_run_in_parallel(start_probe) -> None:
    daemon = start_probe(module_concurrency=2, call_timeout=2)
    errors: list[grpc.StatusCode] = []
    threads = [_loop_in_background(daemon, errors) for _ in range(2)]
    # Both guests run at the same moment, each on its own instance.
    wait_until(lambda: daemon.metric("wasmtube_calls_running", module="probe") == 2)
    assert daemon.metric("wasmtube_calls_waiting", module="probe") == 0
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [grpc.StatusCode.DEADLINE_EXCEEDED] * 2


@pytest.mark.slow
def test_past_the_bound_calls_wait_then_a_full_queue_is_refused(start_probe) -> None:
    daemon = start_probe(module_concurrency=1, module_queue=1, call_timeout=2)
    errors: list[grpc.StatusCode] = []
    running = _loop_in_background(daemon, errors)
    wait_until(lambda: daemon.metric("wasmtube_calls_running", module="probe") == 1)
    waiting = _loop_in_background(daemon, errors)
    wait_until(lambda: daemon.metric("wasmtube_calls_waiting", module="probe") == 1)

    with pytest.raises(grpc.RpcError) as info:
        daemon.call("probe", "peek")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "module 'probe' is busy: 1 calls running and 1 waiting" in info.value.details()
    # Other modules are not affected by one module's queue.
    assert daemon.call("other", "peek").json == '{"marked":false}'

    running.join(timeout=30)
    waiting.join(timeout=30)
    assert errors == [grpc.StatusCode.DEADLINE_EXCEEDED] * 2
    assert daemon.call("probe", "peek").json == '{"marked":false}'


@pytest.mark.slow
def test_a_waiting_call_gives_up_at_its_deadline(start_probe) -> None:
    daemon = start_probe(module_concurrency=1, module_queue=4, call_timeout=3)
    errors: list[grpc.StatusCode] = []
    running = _loop_in_background(daemon, errors)
    wait_until(lambda: daemon.metric("wasmtube_calls_running", module="probe") == 1)
    request = pb.CallRequest(module="probe", function="peek", json="{}")
    with pytest.raises(grpc.RpcError) as info:
        daemon.stub.Call(request, timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: daemon.metric("wasmtube_calls_waiting", module="probe") == 0)
    running.join(timeout=30)


@pytest.mark.slow
def test_past_max_workers_requests_are_refused_at_once(start_probe) -> None:
    daemon = start_probe(max_workers=2, module_concurrency=4, call_timeout=2)
    errors: list[grpc.StatusCode] = []
    threads = [_loop_in_background(daemon, errors) for _ in range(2)]
    wait_until(lambda: daemon.metric("wasmtube_calls_running", module="probe") == 2)
    with pytest.raises(grpc.RpcError) as info:
        daemon.call("other", "peek")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-workers" in info.value.details()
    # Health checks are not calls: a busy daemon still answers its probes.
    health = health_pb2_grpc.HealthStub(daemon.channel)
    check = health_pb2.HealthCheckRequest(service="wasmtube.v1.Wasmtube")
    assert health.Check(check, timeout=2).status == health_pb2.HealthCheckResponse.SERVING
    for thread in threads:
        thread.join(timeout=30)
    assert daemon.call("other", "peek").json == '{"marked":false}'
