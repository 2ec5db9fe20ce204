"""What the issue-6 benchmark scenarios share: rows with targets, the table, the JSON.

Each scenario builds `Row`s (a figure, the baseline's value, wasmtube's value,
their ratio wasmtube / baseline and an optional target on either the ratio or
wasmtube's own value), prints them with `print_table` and writes them with
`write_json`. Also: p99, VmRSS of a process, and the bare grpcio server
(bench/bare_server.py) as a subprocess.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, NamedTuple

import grpc
from _daemon import free_port

MIB = 1024 * 1024


def p99(samples: Sequence[float]) -> float:
    """The 99th percentile: statistics.quantiles(samples, n=100)[98].

    Inclusive method: with few samples (15 deploys, say) the default exclusive
    method extrapolates past the largest sample; with thousands both agree.
    """
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def spread(ratios: Sequence[float]) -> str:
    """'median M, quartiles Q1 to Q3, range LO to HI' of per-round ratios."""
    if len(ratios) < 2:
        return f"{ratios[0]:.2f}"
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return (
        f"median {median:.2f}, quartiles {q1:.2f} to {q3:.2f}, "
        f"range {min(ratios):.2f} to {max(ratios):.2f}"
    )


def rounds_parser(
    doc: str, seconds: float, rounds: int, seconds_help: str = "per server and figure"
) -> argparse.ArgumentParser:
    """A parser for a benchmark in alternating rounds: --seconds (in all, split
    over the rounds), --rounds and --json; described by `doc`'s first line."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=seconds, help=seconds_help)
    parser.add_argument("--rounds", type=int, default=rounds, help="alternating rounds")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures here")
    return parser


def in_turns(names: Iterable[str], turn: int) -> list[str]:
    """`names` in their order on even turns, reversed on odd ones: which of
    two things goes first alternates, so the drift of a noisy machine (or
    whatever favours going first) spreads over both."""
    ordered = list(names)
    return ordered if turn % 2 == 0 else ordered[::-1]


@contextmanager
def started_servers(
    starts: Mapping[str, Callable[[], AbstractContextManager[Any]]], turn: int
) -> Iterator[dict[str, Any]]:
    """New servers, started in turns first (in_turns), stopped on exit: name
    -> what each start gave (daemon()'s Running, bare_server()'s Bare: both
    have a `pid` and an `address`), in the order of `starts`."""
    with ExitStack() as stack:
        servers = {name: stack.enter_context(starts[name]()) for name in in_turns(starts, turn)}
        yield {name: servers[name] for name in starts}


@contextmanager
def started(
    starts: Mapping[str, Callable[[], AbstractContextManager[Any]]], turn: int
) -> Iterator[dict[str, str]]:
    """started_servers(), as name -> address."""
    with started_servers(starts, turn) as servers:
        yield {name: server.address for name, server in servers.items()}


def rss_bytes(pid: int) -> int:
    """Resident set size of process `pid`: VmRSS in /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # "VmRSS:   12345 kB"
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass(frozen=True, slots=True)
class Target:
    """A limit on a row's ratio (`on="ratio"`) or on wasmtube's own value."""

    op: Literal["<=", ">=", "<", ">"]
    limit: float
    on: Literal["ratio", "wasmtube"] = "ratio"
    unit: str = ""

    def text(self) -> str:
        subject = "ratio " if self.on == "ratio" else ""
        unit = f" {self.unit}" if self.unit else ""
        return f"{subject}{self.op} {self.limit:g}{unit}"

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return {
            "<=": value <= self.limit,
            ">=": value >= self.limit,
            "<": value < self.limit,
            ">": value > self.limit,
        }[self.op]


@dataclass(slots=True)
class Row:
    """One figure: the baseline's value, wasmtube's value, and their ratio."""

    key: str
    figure: str
    baseline: float | None
    wasmtube: float | None
    target: Target | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.wasmtube is None or self.baseline == 0:
            return None
        return self.wasmtube / self.baseline

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        value = self.ratio if self.target.on == "ratio" else self.wasmtube
        return self.target.met(value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "figure": self.figure,
            "baseline": self.baseline,
            "wasmtube": self.wasmtube,
            "ratio": self.ratio,
            "target": None if self.target is None else self.target.text(),
            "met": self.met,
            **self.extra,
        }


def fmt(value: float | None) -> str:
    """A figure in a few significant digits; '-' for none."""
    if value is None:
        return "-"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def print_table(
    title: str,
    baseline: str,
    rows: Sequence[Row],
    notes: Sequence[str] = (),
    subject: str = "wasmtube",
) -> None:
    """figure | baseline | subject | ratio | target | met, then notes."""
    header = ("figure", baseline, subject, "ratio", "target", "")
    cells = [
        (
            row.figure,
            fmt(row.baseline),
            fmt(row.wasmtube),
            "-" if row.ratio is None else f"{row.ratio:.2f}",
            "" if row.target is None else row.target.text(),
            {True: "met", False: "MISSED", None: ""}[row.met],
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    print(f"\n== {title}")
    for line in [header, *cells]:
        print(
            f"{line[0]:<{widths[0]}}  {line[1]:>{widths[1]}}  {line[2]:>{widths[2]}}  "
            f"{line[3]:>{widths[3]}}  {line[4]:<{widths[4]}}  {line[5]}".rstrip()
        )
    for note in notes:
        print(f"  {note}")
    sys.stdout.flush()


def write_json(
    path: Path | None,
    scenario: str,
    title: str,
    baseline: str,
    rows: Sequence[Row],
    settings: dict[str, Any],
    **extra: Any,
) -> None:
    """Write the rows and the run's settings as one JSON document, if `path` is set."""
    if path is None:
        return
    document = {
        "scenario": scenario,
        "title": title,
        "baseline": baseline,
        "python": platform.python_version(),
        "wasmtime": version("wasmtime"),
        "grpcio": version("grpcio"),
        "settings": settings,
        "rows": [row.as_dict() for row in rows],
        **extra,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


class Bare(NamedTuple):
    pid: int
    address: str


@contextmanager
def bare_server(*options: str) -> Iterator[Bare]:
    """bench/bare_server.py in a subprocess on a free port, ready to call;
    `options` are its command-line options (--spin-us, --release-gil)."""
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bare_server.py")), address, *options]
    )
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield Bare(process.pid, address)
    finally:
        process.terminate()
        process.wait()
