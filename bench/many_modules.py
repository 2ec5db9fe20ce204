"""Scenario 7: many modules: start-up time, idle RSS and call latency as the count grows.

For each count N (default 0, 10, 100, 1,000) a directory gets N small,
distinct seed-ABI modules (bench/_modules.py small_module, ~90 B each). A
daemon is started as a subprocess on it three times: without --cache-dir
(every module compiled), then twice with the same --cache-dir: first with the
cache empty (cold: every module compiled and stored), then again (warm:
compiled modules read back). Measured:
  - start-up: from launching the process until health says SERVING (every
    module loaded); the empty directory (N=0) is the baseline: the start of
    the Python process, imports and gRPC server;
  - RSS (VmRSS from /proc/PID/status) of the idle daemon 0.5 s after SERVING;
    per idle module: (RSS_N - RSS_10) / (N - 10), and (RSS_N - RSS_0) / N;
  - compile-cache hits and misses, from the daemon's /metrics;
  - latency of one call (`get` of the first module, sync stub, concurrency 1)
    with the warm daemons of every N > 0 running at once, in rounds that
    rotate between them so a noisy machine's drift spreads over all; baseline:
    the smallest N.

    python bench/many_modules.py [--counts 0,10,100,1000] [--calls 3000] [--json PATH]

Targets (issue 6): 1,000 modules ready in under 5 s from a warm cache; under
1 MiB of RSS per idle module; call p50 with 1,000 modules within 5% of the p50
with 10 (ratio <= 1.05).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from _daemon import daemon_command, free_port
from _modules import small_module
from _suite import MIB, Row, Target, p99, print_table, rss_bytes, write_json
from grpc_health.v1 import health_pb2, health_pb2_grpc

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc

TITLE = "Scenario 7: many small modules: start-up, idle RSS, call latency"
BASELINE = "fewest modules"
# Reconnect quickly while the daemon is still starting: gRPC's default backoff
# (1 s and more) would be counted as start-up time.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 10),
    ("grpc.min_reconnect_backoff_ms", 10),
    ("grpc.max_reconnect_backoff_ms", 20),
]
HEALTH = health_pb2.HealthCheckRequest(service="wasmtube.v1.Wasmtube")
SERVING = health_pb2.HealthCheckResponse.SERVING
CACHE_METRIC = re.compile(r'^wasmtube_compile_cache_lookups_total\{result="(\w+)"\} (\S+)$', re.M)


def module_name(i: int) -> str:
    return f"m{i:04d}"


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    channel: grpc.Channel
    metrics_port: int
    seconds: float
    rss: int = 0
    cache: dict[str, float] = field(default_factory=dict)

    def stop(self) -> None:
        self.channel.close()
        self.process.terminate()
        self.process.wait()


def start(modules: Path, cache: Path | None, timeout: float = 120) -> Started:
    """Launch a daemon and time it until health says SERVING; then read RSS and /metrics."""
    address, metrics_port = f"127.0.0.1:{free_port()}", free_port()
    command = daemon_command(
        address,
        f"127.0.0.1:{metrics_port}",
        "--modules",
        str(modules),
        *([] if cache is None else ["--cache-dir", str(cache)]),
    )
    channel = grpc.insecure_channel(address, options=FAST_RECONNECT)
    health = health_pb2_grpc.HealthStub(channel)
    began = time.perf_counter()
    process = subprocess.Popen(command)
    started = Started(process, channel, metrics_port, 0.0)
    try:
        while True:
            try:
                if health.Check(HEALTH, timeout=1).status == SERVING:
                    break
            except grpc.RpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
            if process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {process.returncode}")
            if time.perf_counter() - began > timeout:
                raise TimeoutError(f"no SERVING after {timeout} s")
            time.sleep(0.005)
        started.seconds = time.perf_counter() - began
        time.sleep(0.5)
        started.rss = rss_bytes(process.pid)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        started.cache = {result: float(n) for result, n in CACHE_METRIC.findall(text)}
    except BaseException:
        started.stop()
        raise
    return started


def latencies_us(daemons: dict[int, Started], calls: int, rounds: int) -> dict[int, list[float]]:
    """Calls of the first module's `get`, rotating between the daemons round by round."""
    request = pb.CallRequest(module=module_name(0), function="get", json="{}")
    stubs = {n: pb_grpc.WasmtubeStub(d.channel) for n, d in daemons.items()}
    for n, stub in stubs.items():
        response = stub.Call(request)
        if response.json != '{"version":0}':
            raise SystemExit(f"{n} modules: get answered {response.json!r}")
        for _ in range(200):
            stub.Call(request)
    samples: dict[int, list[float]] = {n: [] for n in daemons}
    per_round = max(1, calls // rounds)
    for round_ in range(rounds):
        order = list(stubs)
        order = order[round_ % len(order) :] + order[: round_ % len(order)]
        for n in order:
            stub = stubs[n]
            for _ in range(per_round):
                began = time.perf_counter_ns()
                stub.Call(request)
                samples[n].append((time.perf_counter_ns() - began) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="0,10,100,1000", help="module counts, comma-separated")
    parser.add_argument("--calls", type=int, default=3000, help="latency samples per count")
    parser.add_argument("--rounds", type=int, default=10, help="rotating latency rounds")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.counts.split(",")})
    if not any(n > 0 for n in counts):
        parser.error("--counts needs at least one count above 0")

    uncached: dict[int, Started] = {}
    cold: dict[int, Started] = {}
    warm: dict[int, Started] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for n in counts:
                modules, cache = Path(tmp, f"modules-{n}"), Path(tmp, f"cache-{n}")
                modules.mkdir()
                for i in range(n):
                    (modules / f"{module_name(i)}.wasm").write_bytes(small_module(i))
                uncached[n] = start(modules, None)
                uncached[n].stop()
                cold[n] = start(modules, cache)
                cold[n].stop()
                warm[n] = start(modules, cache)
                print(
                    f"{n:5} modules: start-up no cache {uncached[n].seconds:.2f} s, "
                    f"cold {cold[n].seconds:.2f} s, "
                    f"warm {warm[n].seconds:.2f} s; RSS {warm[n].rss / MIB:.1f} MiB; "
                    f"cache cold {cold[n].cache}, warm {warm[n].cache}",
                    flush=True,
                )
            loaded = {n: d for n, d in warm.items() if n > 0}
            samples = latencies_us(loaded, args.calls, args.rounds)
        finally:
            for d in warm.values():
                d.stop()

    rows: list[Row] = []
    first = min(loaded)
    floor = min(counts)
    for n in counts:
        label = f"{n:,} modules"
        rows += [
            Row(
                f"startup_no_cache_s_{n}",
                f"start-up, {label}, no cache, s",
                uncached[floor].seconds,
                uncached[n].seconds,
            ),
            Row(
                f"startup_cold_s_{n}",
                f"start-up, {label}, cold cache, s",
                cold[floor].seconds,
                cold[n].seconds,
            ),
            Row(
                f"startup_warm_s_{n}",
                f"start-up, {label}, warm cache, s",
                warm[floor].seconds,
                warm[n].seconds,
                Target("<", 5, "wasmtube", "s") if n == 1000 else None,
            ),
            Row(
                f"rss_mib_{n}", f"RSS idle, {label}, MiB", warm[floor].rss / MIB, warm[n].rss / MIB
            ),
        ]
    for n in counts:
        if n in loaded:
            rows += [
                Row(
                    f"call_p50_us_{n}",
                    f"call p50, {n:,} modules, us",
                    statistics.median(samples[first]),
                    statistics.median(samples[n]),
                    Target("<=", 1.05) if n == max(loaded) and n != first else None,
                ),
                Row(
                    f"call_p99_us_{n}",
                    f"call p99, {n:,} modules, us",
                    p99(samples[first]),
                    p99(samples[n]),
                ),
            ]
    most = max(counts)
    if most > first:
        rows.append(
            Row(
                f"rss_per_module_mib_{first}_{most}",
                f"RSS per idle module, {first} to {most:,}, MiB",
                None,
                (warm[most].rss - warm[first].rss) / (most - first) / MIB,
                Target("<", 1, "wasmtube", "MiB"),
            )
        )
    if floor == 0:
        rows.append(
            Row(
                f"rss_per_module_mib_0_{most}",
                f"RSS per idle module, 0 to {most:,}, MiB",
                None,
                (warm[most].rss - warm[0].rss) / most / MIB,
                Target("<", 1, "wasmtube", "MiB"),
            )
        )
    notes = [
        f"baseline column: {floor} modules for start-up and RSS, {first} for calls; "
        f"{args.calls:,} calls per count in {args.rounds} rotating rounds",
        "compile-cache lookups (hit/miss/invalid) at warm start: "
        + "; ".join(f"{n:,}: {warm[n].cache or '-'}" for n in counts if n > 0),
    ]
    print_table(TITLE, BASELINE, rows, notes)
    write_json(
        args.json,
        "many_modules",
        TITLE,
        BASELINE,
        rows,
        {"counts": counts, "calls": args.calls, "rounds": args.rounds},
        rss_mib={
            "no_cache": {str(n): d.rss / MIB for n, d in uncached.items()},
            "cold": {str(n): d.rss / MIB for n, d in cold.items()},
            "warm": {str(n): d.rss / MIB for n, d in warm.items()},
        },
        cache_lookups={
            "cold": {str(n): d.cache for n, d in cold.items()},
            "warm": {str(n): d.cache for n, d in warm.items()},
        },
    )


if __name__ == "__main__":
    main()
