"""Scenario 1: echo of 100 B of JSON over gRPC, wasmtube vs a bare grpcio server.

Both servers run at once as separate processes with the same proto; this
process is the load generator. wasmtube (default settings) serves an echo
guest that does nothing but hand its input back (alloc ABI, written in WAT:
bench/_modules.py), so the figures are the sidecar's own cost; one more row
gives the p50 of the bundled Rust guest's `echo` (seed ABI), which parses
and re-serialises the JSON with serde. The bare server
(bench/bare_server.py) answers the same messages without any sandbox: the
floor the Python gRPC stack sets. Each figure is taken from the two servers
back to back, in turns, in every round, so the drift of a noisy machine
spreads over both; and every round starts both servers anew, so that no
figure rests on one lucky or unlucky process (fresh_servers):
  - latency p50 and p99 at concurrency 1 (sync stub, one call at a time);
  - calls/s at concurrency 1, 8 and 32, that many calls in flight on one
    connection, from two load generators: h2load (bench/_h2load.py), which
    leaves the servers nearly all the CPU, and a Python grpc.aio client,
    which needs about a core of this 2-core machine for itself. Without
    h2load (apt-get install nghttp2-client) only the Python rows are shown.

    python bench/echo_grpc.py [--seconds 12] [--rounds 8] [--json PATH]

--seconds is the time per server and figure, split over --rounds rounds.

Targets (issue 6): p50 at most 1.10x the bare server's; calls/s at
concurrency 8 at least 0.90x.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import grpc
import grpc.aio
from _daemon import daemon
from _h2load import H2LOAD, h2load_rate
from _modules import echo_module
from _suite import (
    Row,
    Target,
    bare_server,
    in_turns,
    p99,
    print_table,
    rounds_parser,
    spread,
    started,
    write_json,
)

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc
from wasmtube_server import BUNDLED_MODULES_DIR

PAYLOAD = json.dumps({"args": "x" * 89}, separators=(",", ":"))  # 100 B
REQUEST = pb.CallRequest(module="echo", function="echo", json=PAYLOAD)
RUST_REQUEST = pb.CallRequest(module="wasm_test", function="echo", json=PAYLOAD)
# What either server answers: the same length from both, which h2load checks.
RESPONSE = pb.CallResponse(json=PAYLOAD, module_sha256="0" * 64, generation=1)
CONCURRENCY = (1, 8, 32)
SERVERS = ("bare", "wasmtube")
# Load generators: name, label in the table, key suffix in the JSON.
GENERATORS = (("h2load", "h2load", "_h2load"), ("python", "Python client", ""))
TITLE = f"Scenario 1: echo of {len(PAYLOAD)} B over gRPC, wasmtube vs bare grpcio"
BASELINE = "bare grpcio"


def latency_us(
    stub: pb_grpc.WasmtubeStub, seconds: float, request: pb.CallRequest = REQUEST
) -> list[float]:
    """Microseconds per call, one call at a time, for about `seconds`."""
    samples = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter_ns()
        response = stub.Call(request)
        samples.append((time.perf_counter_ns() - start) / 1000)
    assert response.json == PAYLOAD, response.json
    return samples


def throughput(address: str, concurrency: int, seconds: float) -> tuple[int, float]:
    """(calls, seconds) with `concurrency` calls in flight for about `seconds`."""

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
    return calls, time.perf_counter() - start


def load(generator: str, address: str, concurrency: int, seconds: float) -> tuple[int, float]:
    """(calls, seconds) from `generator` ("h2load" or "python")."""
    if generator == "h2load":
        return h2load_rate(address, concurrency, seconds, REQUEST, RESPONSE)
    return throughput(address, concurrency, seconds)


def main() -> None:
    args = rounds_parser(__doc__, 12.0, 8).parse_args()
    per_round = args.seconds / args.rounds

    generators = [g for g, _, _ in GENERATORS if g != "h2load" or H2LOAD is not None]
    figures = Figures(generators)
    with tempfile.TemporaryDirectory() as modules, tempfile.TemporaryDirectory() as cache:
        (Path(modules) / "echo.wasm").write_bytes(echo_module())
        (Path(modules) / "wasm_test.wasm").write_bytes(
            (BUNDLED_MODULES_DIR / "wasm_test.wasm").read_bytes()
        )
        for round_ in range(args.rounds):
            with fresh_servers(modules, cache, round_) as addresses:
                measure_round(addresses, round_, per_round, generators, figures)
    rows, spreads = report(figures)
    notes = [
        f"{args.rounds} alternating rounds of {per_round:g} s per server and figure, "
        "each on a new pair of server processes",
        *spreads,
    ]
    if H2LOAD is None:
        notes.append("h2load is not installed (apt-get install nghttp2-client): no h2load rows")
    print_table(TITLE, BASELINE, rows, notes)
    write_json(
        args.json,
        "echo_grpc",
        TITLE,
        BASELINE,
        rows,
        {"seconds": args.seconds, "rounds": args.rounds, "payload_bytes": len(PAYLOAD)},
    )


# (calls, seconds) of each round by (server, load generator, concurrency).
Calls = dict[tuple[str, str, int], list[tuple[int, float]]]


class Figures:
    """What the rounds measured: latency samples by server, (calls, seconds)
    per round by server, load generator and concurrency, Rust echo samples."""

    def __init__(self, generators: list[str]) -> None:
        self.latency: dict[str, list[float]] = {name: [] for name in SERVERS}
        self.calls: Calls = {
            (n, g, c): [] for n in SERVERS for g in generators for c in CONCURRENCY
        }
        self.rust: list[float] = []


def fresh_servers(
    modules: str, cache: str, round_: int
) -> contextlib.AbstractContextManager[dict[str, str]]:
    """A new bare server and daemon, started in turns first: server name -> address.

    Each round gets new processes because a process keeps its speed for its
    whole life: two identical daemons, each started anew, differ by several
    percent from one pair of processes to the next (README, run C), more
    than the differences this benchmark is after. New pairs spread that over
    the rounds, as the turns spread the machine's drift.
    """
    return started(
        {
            "bare": bare_server,
            # The cache only makes restarts quick: calls run the same code.
            "wasmtube": partial(daemon, "--modules", modules, "--cache-dir", cache),
        },
        round_,
    )


def measure_round(
    addresses: dict[str, str],
    round_: int,
    per_round: float,
    generators: list[str],
    figures: Figures,
) -> None:
    """One round on new servers: warm them up, then each figure from both,
    back to back (in turns first: this machine's speed drifts over seconds,
    so the two figures of a pair are taken as close together as they can be)."""
    with contextlib.ExitStack() as stack:
        stubs = {
            name: pb_grpc.WasmtubeStub(stack.enter_context(grpc.insecure_channel(address)))
            for name, address in addresses.items()
        }
        for stub in stubs.values():  # warm-up: connections, pooled instances
            latency_us(stub, 0.5)
        latency_us(stubs["wasmtube"], 0.5, RUST_REQUEST)
        order = in_turns(SERVERS, round_)
        for name in order:
            figures.latency[name] += latency_us(stubs[name], per_round)
        for generator in generators:
            for concurrency in CONCURRENCY:
                for name in order:
                    figures.calls[name, generator, concurrency].append(
                        load(generator, addresses[name], concurrency, per_round)
                    )
        figures.rust += latency_us(stubs["wasmtube"], per_round / 2, RUST_REQUEST)


def report(figures: Figures) -> tuple[list[Row], list[str]]:
    """The table's rows, and notes on how much the targeted ratios moved
    from round to round."""
    latency, calls, rust = figures.latency, figures.calls, figures.rust
    rows = [
        Row(
            "p50_us",
            "p50 latency, us",
            statistics.median(latency["bare"]),
            statistics.median(latency["wasmtube"]),
            Target("<=", 1.10),
        ),
        Row("p99_us", "p99 latency, us", p99(latency["bare"]), p99(latency["wasmtube"])),
    ]
    notes = []
    for generator, label, suffix in GENERATORS:
        for concurrency in CONCURRENCY:
            if ("bare", generator, concurrency) not in calls:
                continue  # no h2load here
            bare, ours = (calls[name, generator, concurrency] for name in SERVERS)
            per_round = [
                (o_done / o_took) / (b_done / b_took)
                for (b_done, b_took), (o_done, o_took) in zip(bare, ours, strict=True)
            ]
            figure = f"calls/s at concurrency {concurrency}, {label}"
            target = Target(">=", 0.90) if concurrency == 8 else None
            rows.append(
                Row(
                    f"calls_per_s_c{concurrency}{suffix}",
                    figure,
                    _rate(bare),
                    _rate(ours),
                    target,
                    extra={"round_ratios": per_round},
                )
            )
            if target is not None:
                notes.append(f"{figure}: ratio per round {spread(per_round)}")
    rows.append(
        Row(
            "p50_us_rust_echo",
            "p50 latency, us, Rust serde echo",
            statistics.median(latency["bare"]),
            statistics.median(rust),
        )
    )
    return rows, notes


def _rate(rounds: list[tuple[int, float]]) -> float:
    """Calls/s over all rounds."""
    return sum(done for done, _ in rounds) / sum(took for _, took in rounds)


if __name__ == "__main__":
    main()
