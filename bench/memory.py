"""Scenario 6: memory of the daemon after many calls and after many reloads.

RSS is VmRSS of the server process, read from /proc/PID/status.
  - Calls: the daemon (subprocess, default settings, bundled modules) and the
    baseline, a bare grpcio server with the same proto (bench/bare_server.py,
    a subprocess too), each get --warmup-calls echo calls of 100 B of JSON
    (wasm_test's `echo` on wasmtube), then --calls more from this process
    with grpc.aio at concurrency --concurrency. Growth = RSS after the calls /
    RSS after the warm-up.
  - Reloads: a daemon (subprocess, --reload-debounce 0) watches a directory
    holding one small module; each reload renames the other of two versions
    into place, waits until ListModules shows the new generation and calls
    the new version once (so its instances are made, and the old version's
    must be freed). --warmup-reloads first, then --reloads more. No baseline.
The RSS is also sampled at 10 points along each run (in the JSON, "trace"):
a leak keeps climbing, a cache levels off.

    python bench/memory.py [--calls 100000] [--reloads 1000] [--json PATH]

Targets (issue 6): RSS after 100,000 calls and after 1,000 reloads within 10%
of the RSS after warm-up (growth <= 1.10).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import grpc
import grpc.aio
from _daemon import daemon
from _modules import small_module
from _suite import MIB, Row, Target, bare_server, print_table, rss_bytes, write_json

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc

PAYLOAD = json.dumps({"args": "x" * 89}, separators=(",", ":"))  # 100 B
ECHO = pb.CallRequest(module="wasm_test", function="echo", json=PAYLOAD)
TITLE = "Scenario 6: server RSS (VmRSS) after many calls and many reloads"
BASELINE = "bare grpcio"
CHECKPOINTS = 10

Trace = list[tuple[int, int]]  # (calls or reloads so far, RSS bytes)


def echo_calls(address: str, pid: int, calls: int, concurrency: int) -> Trace:
    """`calls` echo calls over `concurrency` aio workers; RSS at CHECKPOINTS points."""
    step = max(1, calls // CHECKPOINTS)

    async def run() -> Trace:
        trace: Trace = []
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.WasmtubeStub(channel)
            response = await stub.Call(ECHO)
            if response.json != PAYLOAD:
                raise SystemExit(f"echo answered {response.json!r}")
            sent = 0

            async def worker() -> None:
                nonlocal sent
                while sent < calls:
                    sent += 1
                    number = sent
                    await stub.Call(ECHO)
                    if number % step == 0:
                        trace.append((number, rss_bytes(pid)))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return trace

    return asyncio.run(run())


def calls_growth(
    address: str, pid: int, warmup: int, calls: int, concurrency: int
) -> tuple[int, int, Trace]:
    """RSS after `warmup` calls, after `calls` more, and the trace of the latter."""
    echo_calls(address, pid, warmup, concurrency)
    time.sleep(0.2)
    warm = rss_bytes(pid)
    trace = echo_calls(address, pid, calls, concurrency)
    time.sleep(0.2)
    return warm, rss_bytes(pid), trace


def deploy(directory: Path, data: bytes, name: str = "m") -> None:
    """Write `data` beside the module and rename it into place, as a deploy does."""
    tmp = directory / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, directory / f"{name}.wasm")


def generation(stub: pb_grpc.WasmtubeStub, name: str = "m") -> int:
    modules = stub.ListModules(pb.ListModulesRequest()).modules
    return next((m.generation for m in modules if m.name == name), 0)


def reloads_growth(warmup: int, reloads: int) -> tuple[int, int, Trace]:
    """RSS of a daemon after `warmup` reloads, after `reloads` more, and the trace."""
    versions = [small_module(1), small_module(2)]
    call = pb.CallRequest(module="m", function="get", json="{}")
    step = max(1, reloads // CHECKPOINTS)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        deploy(directory, versions[0])
        with daemon("--modules", tmp, "--reload-debounce", "0") as running:
            pid, stub = running.pid, running.stub
            done = 0

            def reload() -> None:
                nonlocal done
                done += 1
                deploy(directory, versions[done % 2])
                while generation(stub) < done + 1:
                    time.sleep(0.0005)
                response = stub.Call(call)
                if response.generation != done + 1:
                    raise SystemExit(f"reload {done}: generation {response.generation} answered")

            for _ in range(warmup):
                reload()
            time.sleep(0.2)
            warm = rss_bytes(pid)
            trace: Trace = []
            for i in range(1, reloads + 1):
                reload()
                if i % step == 0:
                    trace.append((i, rss_bytes(pid)))
            time.sleep(0.2)
            return warm, rss_bytes(pid), trace


def mib(trace: Trace) -> list[tuple[int, float]]:
    return [(count, round(rss / MIB, 2)) for count, rss in trace]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--warmup-calls", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=8, help="of the calls")
    parser.add_argument("--reloads", type=int, default=1_000)
    parser.add_argument("--warmup-reloads", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args()

    start = time.perf_counter()
    with bare_server() as bare:
        bare_warm, bare_end, bare_trace = calls_growth(
            bare.address, bare.pid, args.warmup_calls, args.calls, args.concurrency
        )
    with daemon() as running:
        ours_warm, ours_end, ours_trace = calls_growth(
            running.address, running.pid, args.warmup_calls, args.calls, args.concurrency
        )
    calls_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reload_warm, reload_end, reload_trace = reloads_growth(args.warmup_reloads, args.reloads)
    reload_seconds = time.perf_counter() - start

    calls, reloads = f"{args.calls:,}", f"{args.reloads:,}"
    rows = [
        Row("calls_rss_warm_mib", "RSS after call warm-up, MiB", bare_warm / MIB, ours_warm / MIB),
        Row(
            "calls_rss_end_mib",
            f"RSS after {calls} more calls, MiB",
            bare_end / MIB,
            ours_end / MIB,
        ),
        Row(
            "calls_growth",
            f"growth over {calls} calls (x)",
            bare_end / bare_warm,
            ours_end / ours_warm,
            Target("<=", 1.10, on="wasmtube"),
        ),
        Row("reloads_rss_warm_mib", "RSS after reload warm-up, MiB", None, reload_warm / MIB),
        Row(
            "reloads_rss_end_mib", f"RSS after {reloads} more reloads, MiB", None, reload_end / MIB
        ),
        Row(
            "reloads_growth",
            f"growth over {reloads} reloads (x)",
            None,
            reload_end / reload_warm,
            Target("<=", 1.10, on="wasmtube"),
        ),
    ]
    notes = [
        f"warm-up: {args.warmup_calls:,} calls, {args.warmup_reloads} reloads; calls at "
        f"concurrency {args.concurrency} ({calls_seconds:.0f} s for both servers); "
        f"reloads took {reload_seconds:.0f} s ({reload_seconds / max(1, args.reloads) * 1000:.1f}"
        " ms each, with a call)",
        "RSS along the calls, MiB: "
        + " ".join(f"{rss / MIB:.1f}" for _, rss in ours_trace)
        + f" (bare: {' '.join(f'{rss / MIB:.1f}' for _, rss in bare_trace)})",
        "RSS along the reloads, MiB: " + " ".join(f"{rss / MIB:.1f}" for _, rss in reload_trace),
    ]
    print_table(TITLE, BASELINE, rows, notes)
    write_json(
        args.json,
        "memory",
        TITLE,
        BASELINE,
        rows,
        {
            "calls": args.calls,
            "warmup_calls": args.warmup_calls,
            "concurrency": args.concurrency,
            "reloads": args.reloads,
            "warmup_reloads": args.warmup_reloads,
        },
        trace_mib={
            "bare_calls": mib(bare_trace),
            "wasmtube_calls": mib(ours_trace),
            "wasmtube_reloads": mib(reload_trace),
        },
    )


if __name__ == "__main__":
    main()
