"""Shared fixtures: a real daemon on a free loopback port, its stub, its metrics."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import wasmtime
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc
from wasmtube_server import BUNDLED_MODULES_DIR, Config, Daemon

ROOT = Path(__file__).resolve().parent.parent
GUEST_WASM = BUNDLED_MODULES_DIR / "wasm_test.wasm"

# Files whose tests are all `slow`: they drive third-party tools (Prometheus,
# Go, Node.js, grpcurl, buf, a registry, cargo), sweep many inputs, or are the
# hostile suite. `pytest -m "not slow"` runs the rest: every module of the
# daemon and the client, in well under a minute.
SLOW_FILES = {
    "test_buf_lint.py",
    "test_docs.py",
    "test_fuzz.py",
    "test_go_client.py",
    "test_grpcurl.py",
    "test_manifests.py",
    "test_new_guest.py",
    "test_node_client.py",
    "test_oci.py",
    "test_prometheus.py",
    "test_reload_under_load.py",
}
SLOW_DIRECTORIES = {"hostile"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path
        if path.name in SLOW_FILES or path.parent.name in SLOW_DIRECTORIES:
            item.add_marker(pytest.mark.slow)


def is_serving(target: str) -> bool:
    """Whether the daemon at `target` answers health with SERVING: it is up
    and has loaded its module directory."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="wasmtube.v1.Wasmtube")
        try:
            status = health.Check(request, timeout=1).status
        except grpc.RpcError:
            return False
    return status == health_pb2.HealthCheckResponse.SERVING


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: all held open while choosing, so none repeats."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def wat(text: str) -> bytes:
    """A WAT module as a binary .wasm file's bytes."""
    return bytes(wasmtime.wat2wasm(text))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def deploy(directory: Path, name: str, data: bytes, *, atomic: bool = True) -> None:
    """Put a module file in place the way deployers do."""
    target = directory / f"{name}.wasm"
    if atomic:
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, target)
    else:
        with open(target, "wb") as f:
            f.write(data)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


def json_module(output: str, *, extra: str = "") -> bytes:
    """A seed-ABI module whose `get` returns `output` and that echoes with `echo`."""
    escaped = output.replace("\\", "\\\\").replace('"', '\\"')
    return wat(f"""
        (module
          (memory (export "memory") 1)
          (data (i32.const 4096) "{escaped}")
          (func (export "get") (param i32 i32) (result i32)
            (memory.copy (local.get 0) (i32.const 4096) (i32.const {len(output.encode())}))
            (i32.const {len(output.encode())}))
          (func (export "echo") (param i32 i32) (result i32) (local.get 1))
          {extra})
    """)


class RunningDaemon:
    def __init__(self, daemon: Daemon, registry: CollectorRegistry) -> None:
        self.daemon = daemon
        self.registry = registry
        self.channel = grpc.insecure_channel(
            daemon.address,
            options=[
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20),
            ],
        )
        self.stub = pb_grpc.WasmtubeStub(self.channel)

    @property
    def address(self) -> str:
        return self.daemon.address

    @property
    def modules_dir(self) -> Path:
        return self.daemon.config.modules_dir

    def call(self, module: str, function: str, json_text: str = "{}") -> pb.CallResponse:
        return self.stub.Call(pb.CallRequest(module=module, function=function, json=json_text))

    def modules(self) -> dict[str, pb.ModuleInfo]:
        response = self.stub.ListModules(pb.ListModulesRequest())
        return {m.name: m for m in response.modules}

    def wait_generation(self, name: str, generation: int, timeout: float = 10.0) -> pb.ModuleInfo:
        return wait_until(
            lambda: (
                (m := self.modules().get(name)) is not None and m.generation >= generation and m
            ),
            timeout,
            f"module {name} generation {generation}",
        )

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.daemon.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample on the real /metrics page, or None if absent."""
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return sample.value
        return None

    def close(self) -> None:
        self.channel.close()
        self.daemon.stop(grace=1)


@pytest.fixture
def modules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "modules"
    directory.mkdir()
    return directory


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., RunningDaemon]]:
    """Start real daemons on free loopback ports; all are stopped after the test."""
    running: list[RunningDaemon] = []

    def start(modules_dir: Path, **options: Any) -> RunningDaemon:
        options.setdefault("reload_debounce", 0.05)
        options.setdefault("listen", "127.0.0.1:0")
        options.setdefault("metrics_listen", "127.0.0.1:0")
        config = Config(modules_dir=modules_dir, **options)
        registry = CollectorRegistry()
        daemon = Daemon(config, registry=registry)
        daemon.start()
        assert daemon.wait_ready(30), "the module directory did not load in 30 s"
        handle = RunningDaemon(daemon, registry)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.close()


@pytest.fixture
def guest_daemon(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    """A daemon serving the Rust test guest as module `wasm_test`."""
    (modules_dir / "wasm_test.wasm").write_bytes(GUEST_WASM.read_bytes())
    return start_daemon(modules_dir)


def big_module(functions: int = 3000, seed: int = 0, steps: int = 12) -> bytes:
    """A seed-ABI module with many functions, slow to compile: 3,000 functions
    of 12 steps make ~1.5 MB and take ~0.5 s to compile here."""
    step = """(local.set $x (i32.add (i32.rotl (local.get $x) (i32.const 5))
                 (i32.mul (local.get $b) (i32.const {k}))))
              (if (i32.gt_u (local.get $x) (local.get $b))
                (then (local.set $x (i32.mul (local.get $x) (i32.const {m}))))
                (else (local.set $x (i32.xor (local.get $x) (i32.const {k})))))"""
    bodies = "\n".join(
        f"(func $f{i} (param $a i32) (param $b i32) (result i32) (local $x i32)"
        + " ".join(step.format(k=i * 31 + j + seed, m=j * 7 + 3) for j in range(steps))
        + " (local.get $x))"
        for i in range(functions)
    )
    return wat(f"""
        (module
          (memory (export "memory") 1)
          {bodies}
          (func (export "get") (param i32 i32) (result i32)
            (i32.store16 (local.get 0) (i32.const 0x7d7b))
            (i32.const 2)))
    """)
