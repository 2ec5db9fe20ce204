"""Investigation: what does any handler cost on this gRPC stack (a yardstick
for scenario 1)?

Answered for the sync server: any 15 us of Python costs most of the 10% the
old scenario-1 target allowed (docs/perf-notes/echo-overhead.md).

Scenario 1 compares wasmtube with a bare grpcio server whose handler does
nothing. This benchmark puts handlers of known cost between the two, all
bench/bare_server.py with the same settings, each in its own process:
  - one that spins --spin-us microseconds of Python (default 15, about what
    wasmtube's handler takes in a hot loop) before answering;
  - one that also makes a single C call that releases the GIL and returns
    at once: a guest call must release it, or two guests could never run
    at once (scenario 4);
  - one that makes that C call alone;
and the wasmtube daemon serving scenario 1's echo guest. Each is measured
against the plain bare server, back to back in every round, on new
processes every round: calls/s at concurrency 8 (h2load if installed, else
the Python client) and p50 latency at concurrency 1. The ratios say how
much of scenario 1's gap any sandbox with parallel guests would pay on this
stack.

    python bench/investigate_handler_cost.py [--spin-us 15] [--seconds 12] [--rounds 8]
        [--json PATH]
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
from functools import partial
from pathlib import Path

import grpc
from _daemon import daemon
from _h2load import GENERATOR, GENERATOR_NAME
from _modules import echo_module
from _suite import (
    Row,
    bare_server,
    in_turns,
    print_table,
    rounds_parser,
    spread,
    started,
    write_json,
)
from echo_grpc import latency_us, load

from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc

CONCURRENCY = 8
TITLE = "What a handler costs: servers of known cost and wasmtube, vs a bare grpcio server"
BASELINE = "bare grpcio"


def servers(spin_us: float) -> dict[str, tuple[str, ...] | None]:
    """Label -> bare_server options, or None for the wasmtube daemon."""
    spin = ("--spin-us", f"{spin_us:g}")
    return {
        "bare": (),
        f"spins {spin_us:g} us of Python": spin,
        f"spins {spin_us:g} us, then one GIL-releasing C call": (*spin, "--release-gil"),
        "one GIL-releasing C call": ("--release-gil",),
        "wasmtube, echo guest": None,
    }


def round_ratios(samples: dict[str, list[float]], label: str) -> list[float]:
    """Each round's figure for server `label` over the plain bare server's."""
    return [ours / bare for ours, bare in zip(samples[label], samples["bare"], strict=True)]


def figure_rows(
    key: str, figure: str, samples: dict[str, list[float]], one_per_round: bool = False
) -> list[Row]:
    """A row for each server but the plain bare one: its median against the
    bare server's; with `one_per_round` (a sample a round), each round's ratio
    in the JSON."""
    return [
        Row(
            f"{key}:{label}",
            f"{figure}: {label}",
            statistics.median(samples["bare"]),
            statistics.median(values),
            extra={"round_ratios": round_ratios(samples, label)} if one_per_round else {},
        )
        for label, values in samples.items()
        if label != "bare"
    ]


def main() -> None:
    parser = rounds_parser(__doc__, 12.0, 8)
    parser.add_argument("--spin-us", type=float, default=15.0, help="Python per call")
    args = parser.parse_args()
    per_round = args.seconds / args.rounds
    options = servers(args.spin_us)
    rates: dict[str, list[float]] = {label: [] for label in options}
    latency: dict[str, list[float]] = {label: [] for label in options}

    with tempfile.TemporaryDirectory() as modules:
        (Path(modules) / "echo.wasm").write_bytes(echo_module())

        starts = {
            label: partial(daemon, "--modules", modules)
            if server is None
            else partial(bare_server, *server)
            for label, server in options.items()
        }
        for round_ in range(args.rounds):
            # New processes every round, started in turns first, as in
            # echo_grpc.py: a process keeps its speed for its whole life.
            order = in_turns(options, round_)
            with started(starts, round_) as addresses, contextlib.ExitStack() as stack:
                stubs = {
                    label: pb_grpc.WasmtubeStub(stack.enter_context(grpc.insecure_channel(a)))
                    for label, a in addresses.items()
                }
                for label, address in addresses.items():  # warm-up
                    latency_us(stubs[label], 0.3)
                    load(GENERATOR, address, CONCURRENCY, 0.3)
                for label in order:
                    calls, took = load(GENERATOR, addresses[label], CONCURRENCY, per_round)
                    rates[label].append(calls / took)
                for label in order:
                    latency[label] += latency_us(stubs[label], per_round / 2)

    rows = [
        *figure_rows(
            f"calls_per_s_c{CONCURRENCY}",
            f"calls/s at concurrency {CONCURRENCY}",
            rates,
            one_per_round=True,
        ),
        *figure_rows("p50_us", "p50 latency, us", latency),
    ]
    notes = [
        f"{args.rounds} alternating rounds of {per_round:g} s per server, "
        "each on new server processes; "
        f"calls/s from {GENERATOR_NAME}",
        *(
            f"calls/s, {label}: ratio per round {spread(round_ratios(rates, label))}"
            for label in options
            if label != "bare"
        ),
    ]
    print_table(TITLE, BASELINE, rows, notes, subject="server")
    write_json(
        args.json,
        "handler_cost",
        TITLE,
        BASELINE,
        rows,
        {"spin_us": args.spin_us, "seconds": args.seconds, "rounds": args.rounds},
    )


if __name__ == "__main__":
    main()
