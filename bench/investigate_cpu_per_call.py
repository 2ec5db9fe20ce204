"""Investigation: where do scenario 1's calls spend the server's CPU, wasmtube
against the bare server?

Answered for the sync server: calls/s follows CPU per call, and the gRPC
stack's own cost dwarfs the sandbox's (docs/perf-notes/echo-overhead.md).

At concurrency 8 on a 2-core machine, the load generator and the server
between them keep both cores busy, so calls/s is the CPU they have divided
by the CPU each call costs. This benchmark measures that cost from the
kernel's own accounts (/proc/PID/stat and /proc/PID/task/*/status) while
h2load (or, without it, the Python client) drives each server: per call,
the server's user and system CPU, that of its busiest thread (gRPC's
polling thread) and of all its others (the handler threads, gRPC's own),
and the threads' voluntary and involuntary context switches. The servers
are bench/bare_server.py and the daemon with scenario 1's echo guest, back
to back in every round, on new processes every round.

If calls/s is bound by CPU, the ratio of calls/s should follow the inverse
ratio of CPU per call, and the table prints both.

    python bench/investigate_cpu_per_call.py [--seconds 24] [--rounds 8] [--json PATH]
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

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
    started_servers,
    write_json,
)
from echo_grpc import load

CONCURRENCY = 8
TITLE = f"Server CPU per echo call at concurrency {CONCURRENCY}: wasmtube vs a bare grpcio server"
BASELINE = "bare grpcio"
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Usage:
    """A process's CPU seconds and its live threads' context switches."""

    user: float
    system: float
    # CPU seconds of each live thread, by thread id.
    threads: dict[str, float]
    voluntary: int
    involuntary: int


def usage(pid: int) -> Usage:
    """The process's counters now. Its user and system times include threads
    that have ended; the per-thread figures cover the live ones."""
    user, system = _times(Path(f"/proc/{pid}/stat"))
    threads: dict[str, float] = {}
    voluntary = involuntary = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            thread_user, thread_system = _times(task / "stat")
            status = (task / "status").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        threads[task.name] = thread_user + thread_system
        voluntary += _field(status, "voluntary_ctxt_switches")
        involuntary += _field(status, "nonvoluntary_ctxt_switches")
    return Usage(user, system, threads, voluntary, involuntary)


def _times(stat: Path) -> tuple[float, float]:
    # Fields after the command, which is in parentheses and may hold spaces:
    # utime and stime are the 12th and 13th (proc(5)).
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def _field(status: str, name: str) -> int:
    for line in status.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {name} in /proc status")


@dataclass(frozen=True, slots=True)
class Sample:
    """One server's figures for one round, per call."""

    calls_per_s: float
    user_us: float
    system_us: float
    busiest_thread_us: float
    other_threads_us: float
    voluntary: float
    involuntary: float

    @property
    def cpu_us(self) -> float:
        return self.user_us + self.system_us


def measure(pid: int, address: str, seconds: float) -> Sample:
    before = usage(pid)
    calls, took = load(GENERATOR, address, CONCURRENCY, seconds)
    after = usage(pid)
    per_thread = sorted(
        (cpu - before.threads.get(tid, 0.0) for tid, cpu in after.threads.items()), reverse=True
    )
    per_call = 1e6 / calls
    return Sample(
        calls / took,
        (after.user - before.user) * per_call,
        (after.system - before.system) * per_call,
        per_thread[0] * per_call,
        sum(per_thread[1:]) * per_call,
        (after.voluntary - before.voluntary) / calls,
        (after.involuntary - before.involuntary) / calls,
    )


FIGURES = {
    "calls_per_s": ("calls/s", lambda s: s.calls_per_s),
    "cpu_us": ("server CPU per call, us", lambda s: s.cpu_us),
    "user_us": ("  user", lambda s: s.user_us),
    "system_us": ("  system (kernel)", lambda s: s.system_us),
    "busiest_thread_us": ("  busiest thread (gRPC polling)", lambda s: s.busiest_thread_us),
    "other_threads_us": ("  all other threads", lambda s: s.other_threads_us),
    "voluntary": ("voluntary context switches per call", lambda s: s.voluntary),
    "involuntary": ("involuntary context switches per call", lambda s: s.involuntary),
}


def main() -> None:
    args = rounds_parser(__doc__, 24.0, 8, "per server").parse_args()
    per_round = args.seconds / args.rounds
    samples: dict[str, list[Sample]] = {"bare": [], "wasmtube": []}

    with tempfile.TemporaryDirectory() as modules:
        (Path(modules) / "echo.wasm").write_bytes(echo_module())
        starts: dict[str, Callable[[], AbstractContextManager[Any]]] = {
            "bare": bare_server,
            "wasmtube": partial(daemon, "--modules", modules),
        }
        for round_ in range(args.rounds):
            with started_servers(starts, round_) as servers:
                for server in servers.values():  # warm-up
                    load(GENERATOR, server.address, CONCURRENCY, 0.5)
                for name in in_turns(samples, round_):
                    server = servers[name]
                    samples[name].append(measure(server.pid, server.address, per_round))

    rows = [
        Row(
            key,
            figure,
            statistics.median(value(s) for s in samples["bare"]),
            statistics.median(value(s) for s in samples["wasmtube"]),
        )
        for key, (figure, value) in FIGURES.items()
    ]
    rate_ratios = [
        ours.calls_per_s / bare.calls_per_s
        for ours, bare in zip(samples["wasmtube"], samples["bare"], strict=True)
    ]
    inverse_cpu_ratios = [
        bare.cpu_us / ours.cpu_us
        for ours, bare in zip(samples["wasmtube"], samples["bare"], strict=True)
    ]
    notes = [
        f"{args.rounds} alternating rounds of {per_round:g} s per server, each on new "
        f"processes; load from {GENERATOR_NAME}",
        f"calls/s, wasmtube over bare, per round: {spread(rate_ratios)}",
        f"CPU per call, bare over wasmtube, per round: {spread(inverse_cpu_ratios)}",
        "context switches: of the threads alive at the end of each round",
    ]
    print_table(TITLE, BASELINE, rows, notes)
    write_json(
        args.json,
        "cpu_per_call",
        TITLE,
        BASELINE,
        rows,
        {"seconds": args.seconds, "rounds": args.rounds, "generator": GENERATOR},
        rounds={name: [figures_of(s) for s in values] for name, values in samples.items()},
    )


def figures_of(sample: Sample) -> dict[str, float]:
    """Every figure of one round's sample, by key, for the JSON."""
    return {key: value(sample) for key, (_, value) in FIGURES.items()}


if __name__ == "__main__":
    main()
