"""Investigation: what do fresh instances cost against pooled ones, per call?

Answered: pooled stays the default (docs/perf-notes/costs-of-isolation.md).

Measures, in one run on the bundled wasm_test guest:
  - the sandbox alone (no gRPC): instantiate-per-call vs a warm instance;
  - over gRPC (daemon in a subprocess, one client thread): p50/p99 latency.
Prints each figure and the fresh/pooled ratio.

    python bench/investigate_instance_policy.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time

import grpc

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc
from wasmtube_server import BUNDLED_MODULES_DIR, Config
from wasmtube_server.sandbox import (
    InstancePolicy,
    InstancePool,
    Limits,
    Runtime,
    call_function,
    compile_module,
)

PAYLOAD = json.dumps({"args": "x" * 80})  # ~100 B


def sandbox_us(policy: InstancePolicy, calls: int) -> list[float]:
    runtime = Runtime(Limits.from_config(Config()))
    runtime.start()
    wasm = (BUNDLED_MODULES_DIR / "wasm_test.wasm").read_bytes()
    compiled = compile_module(runtime, wasm, hashlib.sha256(wasm).hexdigest())
    pool = InstancePool(compiled, runtime, policy, max_idle=1)
    function = compiled.functions["echo"]
    data = PAYLOAD.encode()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        instance = pool.take()
        call_function(instance, function, data, 42, 10.0)
        pool.give(instance)
        samples.append((time.perf_counter() - start) * 1e6)
    runtime.stop()
    return samples


def grpc_us(policy: str, calls: int, port: int) -> list[float]:
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wasmtube_server",
            "--listen",
            f"127.0.0.1:{port}",
            "--metrics-listen",
            "off",
            "--instance-policy",
            policy,
            "--log-level",
            "warning",
        ],
    )
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.WasmtubeStub(channel)
        request = pb.CallRequest(module="wasm_test", function="echo", json=PAYLOAD)
        for _ in range(200):  # warm-up
            stub.Call(request)
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            stub.Call(request)
            samples.append((time.perf_counter() - start) * 1e6)
        channel.close()
        return samples
    finally:
        daemon.terminate()
        daemon.wait()


def p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1] if q < 100 else max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--port", type=int, default=50871)
    args = parser.parse_args()

    rows = []
    for where, measure in [
        ("sandbox", lambda pol: sandbox_us(InstancePolicy(pol), args.calls)),
        ("gRPC", lambda pol: grpc_us(pol, args.calls, args.port)),
    ]:
        fresh, pooled = measure("fresh"), measure("pooled")
        rows.append(
            (
                where,
                statistics.median(fresh),
                statistics.median(pooled),
                p(fresh, 99),
                p(pooled, 99),
            )
        )
    print(
        f"{'path':8} {'fresh p50':>10} {'pooled p50':>11} {'ratio':>6} "
        f"{'fresh p99':>10} {'pooled p99':>11}   (microseconds, echo of {len(PAYLOAD)} B)"
    )
    for where, f50, p50, f99, p99 in rows:
        print(f"{where:8} {f50:10.1f} {p50:11.1f} {f50 / p50:6.2f} {f99:10.1f} {p99:11.1f}")
    print(json.dumps({"rows": rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
