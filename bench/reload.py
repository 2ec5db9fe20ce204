"""Scenario 5: hot reload: file-write-to-serving latency, and restart time with and
without the compiled-module cache.

1. Write-to-serving: a daemon (subprocess, default settings, so a 50 ms
   reload debounce) watches a directory; each of --deploys deploys renames the
   other of two versions into place and the clock runs until ListModules shows
   the new generation. A small module and a ~1.5 MB one (3,000 functions).
   Baseline: compiling the same bytes in plain wasmtime-py (Module(engine,
   wasm), default Engine, in this process), the work no reload can skip.
2. Restart: time for a daemon (in this process: Daemon.start() until
   wait_ready()) to have a directory holding the ~1.5 MB module loaded, with
   no cache, a cold cache (compile and store) and a warm cache. Baselines:
   plain wasmtime-py compiling the module, and deserializing its compiled
   form (Module.deserialize), the floors of the two paths.
3. Memory (unless --reloads 0): RSS (VmRSS) of a daemon after --reloads
   reloads against the RSS after 50; bench/memory.py (scenario 6) measures
   the same, so the suite runs this script with --reloads 0.

    python bench/reload.py [--deploys 100] [--restarts 5] [--reloads 1000] [--json PATH]

Targets (issue 6): small module write-to-serving p50 < 100 ms and p99 < 250 ms;
restart from a warm cache < 20 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime
from _daemon import daemon
from _modules import large_module, small_module
from _suite import MIB, Row, Target, p99, print_table, write_json
from memory import deploy, generation, reloads_growth
from prometheus_client import CollectorRegistry

from wasmtube_server import Config, Daemon

TITLE = "Scenario 5: hot reload and restart"
BASELINE = "wasmtime-py"


def write_to_serving(versions: list[bytes], deploys: int) -> list[float]:
    """ms from each deploy's rename until ListModules shows the new generation."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        deploy(directory, versions[0])
        with daemon("--modules", tmp) as running:
            stub = running.stub
            while generation(stub) < 1:
                time.sleep(0.01)
            samples = []
            for i in range(deploys):
                start = time.perf_counter()
                deploy(directory, versions[(i + 1) % 2])
                while generation(stub) < i + 2:
                    time.sleep(0.002)  # polling harder would steal the daemon's CPU
                samples.append((time.perf_counter() - start) * 1000)
                time.sleep(0.05)
            return samples


def timed_ms(action: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def compile_ms(wasm: bytes, times: int) -> list[float]:
    """Plain wasmtime-py compiles of `wasm`, each on a fresh default Engine."""
    return timed_ms(lambda: wasmtime.Module(wasmtime.Engine(), wasm), times)


def deserialize_ms(wasm: bytes, times: int) -> list[float]:
    engine = wasmtime.Engine()
    compiled = bytes(wasmtime.Module(engine, wasm).serialize())
    return timed_ms(lambda: wasmtime.Module.deserialize(engine, compiled), times)


def load_ms(modules: Path, cache: Path | None) -> float:
    """ms for a daemon in this process to start and load `modules`."""
    config = Config(modules_dir=modules, listen="127.0.0.1:0", metrics_listen=None, cache_dir=cache)
    instance = Daemon(config, registry=CollectorRegistry())
    start = time.perf_counter()
    instance.start()
    instance.wait_ready()
    elapsed = time.perf_counter() - start
    instance.stop(0)
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=100, help="per module size")
    parser.add_argument("--restarts", type=int, default=5, help="per cache state")
    parser.add_argument("--reloads", type=int, default=1000, help="0: skip the memory part")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args()

    rows: list[Row] = []
    notes: list[str] = []
    samples: dict[str, list[float]] = {}
    small, large = [small_module(1), small_module(2)], [large_module(1), large_module(2)]
    for label, versions, target_p50, target_p99, compiles in [
        (
            "small",
            small,
            Target("<", 100, "wasmtube", "ms"),
            Target("<", 250, "wasmtube", "ms"),
            50,
        ),
        ("1.5 MB", large, None, None, min(args.deploys, 10)),
    ]:
        ours = samples[f"write_to_serving_{label}"] = write_to_serving(versions, args.deploys)
        base = samples[f"compile_{label}"] = compile_ms(versions[0], compiles)
        key = label.replace(" ", "").replace(".", "_").lower()
        rows += [
            Row(
                f"write_to_serving_p50_ms_{key}",
                f"{label} module write-to-serving p50, ms",
                statistics.median(base),
                statistics.median(ours),
                target_p50,
            ),
            Row(
                f"write_to_serving_p99_ms_{key}",
                f"{label} module write-to-serving p99, ms",
                p99(base),
                p99(ours),
                target_p99,
            ),
        ]
        notes.append(
            f"{label} module: {len(versions[0]):,} B, {len(ours)} deploys, baseline: "
            f"{len(base)} compiles"
        )

    with tempfile.TemporaryDirectory() as tmp:
        modules, cache = Path(tmp, "modules"), Path(tmp, "cache")
        modules.mkdir()
        wasm = large[0]
        (modules / "m.wasm").write_bytes(wasm)
        (Path(tmp, "warm-up")).mkdir()
        load_ms(Path(tmp, "warm-up"), None)  # the first daemon in a process pays one-off costs
        compiled = compile_ms(wasm, args.restarts)
        deserialized = deserialize_ms(wasm, args.restarts)
        none: list[float] = []
        cold: list[float] = []
        warm: list[float] = []
        for _ in range(args.restarts):  # interleaved, so drift spreads over all three
            none.append(load_ms(modules, None))
            for entry in cache.glob("*"):
                entry.unlink()
            cold.append(load_ms(modules, cache))
            warm.append(load_ms(modules, cache))
    samples |= {
        "restart_compile": compiled,
        "restart_deserialize": deserialized,
        "restart_none": none,
        "restart_cold": cold,
        "restart_warm": warm,
    }
    rows += [
        Row(
            "restart_no_cache_ms",
            "restart 1.5 MB, no cache, ms",
            statistics.median(compiled),
            statistics.median(none),
        ),
        Row(
            "restart_cold_cache_ms",
            "restart 1.5 MB, cold cache, ms",
            statistics.median(compiled),
            statistics.median(cold),
        ),
        Row(
            "restart_warm_cache_ms",
            "restart 1.5 MB, warm cache, ms",
            statistics.median(deserialized),
            statistics.median(warm),
            Target("<", 20, "wasmtube", "ms"),
        ),
        Row(
            "restart_speedup",
            "no cache / warm cache (x)",
            statistics.median(compiled) / statistics.median(deserialized),
            statistics.median(none) / statistics.median(warm),
        ),
    ]
    notes.append(
        f"restarts: medians of {args.restarts}; baselines: compile (no cache, cold cache) "
        "and Module.deserialize (warm cache) in plain wasmtime-py"
    )

    if args.reloads > 0:
        warm_rss, end_rss, _ = reloads_growth(50, args.reloads)
        rows += [
            Row("reloads_rss_warm_mib", "RSS after 50 reloads, MiB", None, warm_rss / MIB),
            Row(
                "reloads_rss_end_mib",
                f"RSS after {args.reloads:,} more reloads, MiB",
                None,
                end_rss / MIB,
            ),
            Row(
                "reloads_growth",
                f"growth over {args.reloads:,} reloads (x)",
                None,
                end_rss / warm_rss,
                Target("<=", 1.10, on="wasmtube"),
            ),
        ]

    print_table(TITLE, BASELINE, rows, notes)
    write_json(
        args.json,
        "reload",
        TITLE,
        BASELINE,
        rows,
        {"deploys": args.deploys, "restarts": args.restarts, "reloads": args.reloads},
        samples_ms=samples,
    )


if __name__ == "__main__":
    main()
