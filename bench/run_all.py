"""Run the whole benchmark suite, print each scenario's table, collect the figures.

Scenarios, each a script in bench/ run as its own process (it starts its own
servers as further processes) with `--json` pointed at a temporary file:
  1. echo_grpc.py       echo of 100 B over gRPC vs a bare grpcio server
  2. echo_inprocess.py  echo in process vs wasmtime-py and Extism
  3. images_grpc.py     1080p and 4K images (image_stats) vs a bare grpcio server
  4. parallel.py        a CPU-bound guest at concurrency 1 and 2
  5. reload.py          write-to-serving latency, restart with and without cache
  6. memory.py          RSS after 100,000 calls and after 1,000 reloads
  7. many_modules.py    start-up, RSS and latency with 10 to 1,000 modules
  8. stream_frames.py   640x480 frames over one CallStream vs unary Calls (issue 7)
Each scenario's JSON goes, under its name, into one file (--json, default
bench-results.json in the current directory), rewritten after every scenario
so an interrupted run keeps what it measured. Ends with every target, met or
missed. A scenario that fails is reported and the suite goes on.

    python bench/run_all.py [--quick] [--only 3 5 memory ...] [--json PATH]

--quick runs each scenario with short settings (about 2.5 minutes in all on
2 cores, a smoke test: the figures are noisier); without it the suite takes
about 10 minutes.
Targets: see each scenario's docstring; every table has a target column.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
TIMEOUT_SECONDS = 30 * 60  # per scenario; it is interrupted (SIGINT) past this


@dataclass(frozen=True)
class Scenario:
    number: int
    name: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()

    @property
    def script(self) -> Path:
        return HERE / f"{self.name}.py"


SCENARIOS = (
    Scenario(1, "echo_grpc", quick=("--seconds", "2", "--rounds", "2")),
    Scenario(2, "echo_inprocess", quick=("--calls", "2000", "--rounds", "5")),
    Scenario(3, "images_grpc", quick=("--seconds", "2", "--rounds", "2")),
    Scenario(4, "parallel", quick=("--rounds", "100000000", "--repeat", "3")),
    # Scenario 6 measures RSS after reloads; reload.py's own memory part is skipped.
    Scenario(
        5,
        "reload",
        full=("--reloads", "0"),
        quick=("--deploys", "15", "--restarts", "3", "--reloads", "0"),
    ),
    Scenario(
        6,
        "memory",
        quick=(
            "--calls",
            "10000",
            "--warmup-calls",
            "2000",
            "--reloads",
            "100",
            "--warmup-reloads",
            "20",
        ),
    ),
    Scenario(7, "many_modules", quick=("--calls", "1000")),
    Scenario(8, "stream_frames", quick=("--frames", "40", "--rounds", "2")),
)


def git_revision() -> str | None:
    """HEAD's commit, with "+dirty" if the working tree has changes; None without git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def run(scenario: Scenario, quick: bool, output: Path) -> tuple[int, float]:
    """Run one scenario's script; its exit code (or a signal, negative) and its seconds."""
    command = [
        sys.executable,
        str(scenario.script),
        *(scenario.quick if quick else scenario.full),
        "--json",
        str(output),
    ]
    print(f"\n##### [{scenario.number}] {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    # SIGINT at its default in the script, even if this process was started with
    # it ignored (as `cmd &` does): it is how the script is told to stop.
    process = subprocess.Popen(
        command, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    try:
        code = process.wait(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"##### [{scenario.number}] over {TIMEOUT_SECONDS} s: interrupting it", flush=True)
        code = interrupt(process)
    except BaseException:
        # A Ctrl-C reaches the script too: let it stop its servers, then make sure.
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            interrupt(process)
        raise
    return code, time.perf_counter() - start


def interrupt(process: subprocess.Popen[bytes]) -> int:
    """SIGINT, so the script's cleanup stops the servers it started; SIGKILL if it hangs."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def targets(name: str, figures: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(what, value, met) for each target in a scenario's JSON, whatever its layout."""
    found: list[tuple[str, str, bool | None]] = []
    for row in figures.get("rows", []):
        if isinstance(row, dict) and row.get("target"):
            value = row["ratio"] if str(row["target"]).startswith("ratio") else row["wasmtube"]
            shown = "-" if value is None else f"{value:.3g}"
            found.append((f"{row['figure']}: {row['target']}", shown, row.get("met")))
    for target in figures.get("targets", []):
        if isinstance(target, dict) and "target" in target:
            value = target.get("value")
            shown = "-" if value is None else f"{value:.3g}"
            found.append((str(target["target"]), shown, target.get("met")))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test")
    parser.add_argument(
        "--only", nargs="+", metavar="SCENARIO", help="numbers or names of the scenarios to run"
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"), metavar="PATH")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    chosen = [
        s for s in SCENARIOS if not args.only or str(s.number) in args.only or s.name in args.only
    ]
    if not chosen:
        parser.error(f"no scenario matches {args.only}")
    results: dict[str, Any] = {
        "suite": "wasmtube benchmarks (issue 6)",
        "quick": args.quick,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_revision(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "scenarios": {},
    }
    suite_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in chosen:
            output = Path(tmp, f"{scenario.name}.json")
            code, seconds = run(scenario, args.quick, output)
            figures = json.loads(output.read_text()) if output.exists() else None
            results["scenarios"][scenario.name] = {
                "number": scenario.number,
                "arguments": list(scenario.quick if args.quick else scenario.full),
                "exit_code": code,
                "seconds": round(seconds, 1),
                "figures": figures,
            }
            results["seconds"] = round(time.perf_counter() - suite_start, 1)
            args.json.write_text(json.dumps(results, indent=2) + "\n")

    print(f"\n##### Summary ({results['seconds']:.0f} s in all; figures in {args.json})")
    for name, result in results["scenarios"].items():
        status = "ok" if result["exit_code"] == 0 else f"FAILED (exit {result['exit_code']})"
        print(f"[{result['number']}] {name}: {status}, {result['seconds']:.0f} s")
        for what, value, met in targets(name, result["figures"] or {}):
            verdict = {True: "met", False: "MISSED", None: "-"}[met]
            print(f"    {verdict:6} {value:>8}  {what}")
    if any(r["exit_code"] != 0 for r in results["scenarios"].values()):
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\n##### interrupted; the scenarios finished so far are in the JSON", flush=True)
        sys.exit(130)
