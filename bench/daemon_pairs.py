"""Two daemons against each other, each pair of processes started anew: the
noise floor of the gRPC benchmarks, and A/B tests of a change to the daemon.

One process can be several percent faster or slower than another started
from the same code, for its whole life (docs/perf-notes/echo-overhead.md).
So a change to the call path is only measured well across many pairs of new
processes. Each pair serves scenario 1's echo guest; this
script starts both (in turns first), then measures calls/s at --concurrency
from each, back to back, in --rounds alternating rounds, and reports the
ratio B / A: per pair, and the median and quartiles over every round.

  - without --base, A and B run this checkout: an A/A test. Its ratios show
    how far apart two identical daemons measure, the smallest difference a
    change must make to be seen;
  - with --base REV, A runs commit REV (checked out in a temporary git
    worktree and put first on PYTHONPATH), B this checkout.

    python bench/daemon_pairs.py [--base REV] [--pairs 12] [--rounds 2]
        [--seconds 1.5] [--concurrency 8] [--json PATH]

Load comes from h2load if installed, else from the Python client.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from _daemon import daemon
from _h2load import GENERATOR
from _modules import echo_module
from _suite import Row, in_turns, print_table, spread, started, write_json
from echo_grpc import load

REPOSITORY = Path(__file__).resolve().parent.parent
TITLE = "Two daemons, new processes each pair: calls/s of B over A"


@contextlib.contextmanager
def checkout(revision: str | None) -> Iterator[dict[str, str] | None]:
    """The environment of a daemon running `revision`; None: this checkout."""
    if revision is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as parent:
        tree = Path(parent) / "base"
        git = ["git", "-C", str(REPOSITORY), "worktree"]
        subprocess.run([*git, "add", "--detach", str(tree), revision], check=True)
        try:
            # Ahead of the editable install of this checkout.
            path = os.pathsep.join(str(tree / part) for part in ("server", "client"))
            yield {**os.environ, "PYTHONPATH": path}
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=True)


def measure_pair(
    modules: str,
    environments: dict[str, dict[str, str] | None],
    pair: int,
    rounds: int,
    seconds: float,
    concurrency: int,
) -> list[float]:
    """The ratio B / A of calls/s in each round, on a new pair of daemons."""
    starts = {
        name: partial(daemon, "--modules", modules, env=environment)
        for name, environment in environments.items()
    }
    with started(starts, pair) as addresses:
        for address in addresses.values():  # warm-up
            load(GENERATOR, address, concurrency, 0.5)
        ratios = []
        for round_ in range(rounds):
            rate = {}
            # The pair's start order first, then the other way round.
            for name in in_turns(in_turns(starts, pair), round_):
                calls, took = load(GENERATOR, addresses[name], concurrency, seconds)
                rate[name] = calls / took
            ratios.append(rate["B"] / rate["A"])
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="git revision for daemon A (default: this checkout)")
    parser.add_argument("--pairs", type=int, default=12, help="pairs of new processes")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per pair")
    parser.add_argument("--seconds", type=float, default=1.5, help="per daemon and round")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    ratios: list[float] = []
    per_pair: list[float] = []
    with tempfile.TemporaryDirectory() as modules, checkout(args.base) as base:
        (Path(modules) / "echo.wasm").write_bytes(echo_module())
        environments = {"A": base, "B": None}
        for pair in range(args.pairs):
            pair_ratios = measure_pair(
                modules, environments, pair, args.rounds, args.seconds, args.concurrency
            )
            ratios += pair_ratios
            per_pair.append(statistics.median(pair_ratios))
            print(f"pair {pair + 1}/{args.pairs}: B / A {spread(pair_ratios)}", flush=True)

    a = args.base or "this checkout"
    rows = [
        Row(
            f"calls_per_s_c{args.concurrency}_ratio",
            f"calls/s at concurrency {args.concurrency}, B / A (median over rounds)",
            1.0,
            statistics.median(ratios),
            extra={"round_ratios": ratios, "pair_medians": per_pair},
        )
    ]
    notes = [
        f"A: {a}; B: this checkout; {args.pairs} pairs of new processes, "
        f"{args.rounds} rounds of {args.seconds:g} s each",
        f"ratio per round: {spread(ratios)}",
        f"median per pair: {spread(per_pair)}",
    ]
    print_table(TITLE, "A", rows, notes, subject="B")
    write_json(args.json, "daemon_pairs", TITLE, "A", rows, vars(args) | {"json": None})


if __name__ == "__main__":
    main()
