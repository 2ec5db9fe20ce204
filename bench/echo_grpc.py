"""Echo of 100 B of JSON over gRPC: wasmtube vs a bare grpcio server.

Both servers run as separate processes with the same proto; this process is
the load generator. Latency (p50, p99) at concurrency 1 with a sync stub;
throughput at concurrency 1, 8 and 32 with grpc.aio. wasmtube serves the
bundled Rust guest's `echo` (seed ABI, pooled instances).

    python bench/echo_grpc.py [--seconds 5] [--json results.json]

Targets (issue 6): p50 at most 1.10x the bare server's; calls/s at
concurrency 8 at least 0.90x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import grpc.aio
from _daemon import daemon, free_port

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc

PAYLOAD = json.dumps({"args": "x" * 89}, separators=(",", ":"))  # 100 B
REQUEST = pb.CallRequest(module="wasm_test", function="echo", json=PAYLOAD)


@contextmanager
def bare_server() -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bare_server.py")), address]
    )
    try:
        grpc.channel_ready_future(grpc.insecure_channel(address)).result(timeout=30)
        yield address
    finally:
        process.terminate()
        process.wait()


def latency_us(address: str, seconds: float) -> list[float]:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.WasmtubeStub(channel)
        for _ in range(300):
            stub.Call(REQUEST)
        samples = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter_ns()
            response = stub.Call(REQUEST)
            samples.append((time.perf_counter_ns() - start) / 1000)
        assert response.json == PAYLOAD
        return samples


def throughput(address: str, concurrency: int, seconds: float) -> float:
    async def run() -> int:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.WasmtubeStub(channel)
            done = 0
            end = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < end:
                    await stub.Call(REQUEST)
                    done += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return done

    start = time.perf_counter()
    calls = asyncio.run(run())
    return calls / (time.perf_counter() - start)


def measure(address: str, seconds: float) -> dict[str, float]:
    samples = latency_us(address, seconds)
    figures = {
        "p50_us": statistics.median(samples),
        "p99_us": statistics.quantiles(samples, n=100)[98],
    }
    for concurrency in (1, 8, 32):
        figures[f"calls_per_s_c{concurrency}"] = throughput(address, concurrency, seconds)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    with bare_server() as address:
        bare = measure(address, args.seconds)
    with daemon() as running:
        ours = measure(running.address, args.seconds)

    print(f"echo of {len(PAYLOAD)} B over gRPC, {args.seconds:g} s per figure")
    print(f"{'figure':18} {'bare grpcio':>12} {'wasmtube':>10} {'ratio':>7}  target")
    targets = {"p50_us": "<= 1.10", "calls_per_s_c8": ">= 0.90"}
    for key in bare:
        ratio = ours[key] / bare[key]
        print(f"{key:18} {bare[key]:12.1f} {ours[key]:10.1f} {ratio:7.2f}  {targets.get(key, '')}")
    if args.json:
        args.json.write_text(json.dumps({"bare": bare, "wasmtube": ours}, indent=2))


if __name__ == "__main__":
    main()
