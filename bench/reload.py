"""Hot reload: file-write-to-serving latency, restart time with and without
the compiled-module cache, and memory after many reloads.

    python bench/reload.py [--deploys 100] [--reloads 1000]

1. Write-to-serving: a daemon (subprocess, default settings) watches a
   directory; each deploy renames a new version into place and the clock runs
   until ListModules shows the new generation. Small module and ~1.5 MB one.
2. Restart: time for a daemon in this process to load a directory holding the
   ~1.5 MB module: no cache, cold cache (compile + store), warm cache.
3. Memory: RSS of a daemon process after 50 and after --reloads reloads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _daemon import daemon
from _modules import large_module, small_module
from prometheus_client import CollectorRegistry

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc
from wasmtube_server import Config, Daemon


def deploy(directory: Path, data: bytes) -> None:
    tmp = directory / ".m.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, directory / "m.wasm")


def generation(stub: pb_grpc.WasmtubeStub) -> int:
    modules = stub.ListModules(pb.ListModulesRequest()).modules
    return next((m.generation for m in modules if m.name == "m"), 0)


def write_to_serving(versions: list[bytes], deploys: int) -> list[float]:
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


def load_seconds(modules: Path, cache: Path | None) -> float:
    config = Config(modules_dir=modules, listen="127.0.0.1:0", metrics_listen=None, cache_dir=cache)
    instance = Daemon(config, registry=CollectorRegistry())
    start = time.perf_counter()
    instance.start()
    instance.wait_ready()
    elapsed = time.perf_counter() - start
    instance.stop(0)
    return elapsed


def rss_after_reloads(reloads: int) -> tuple[int, int]:
    versions = [small_module(1), small_module(2)]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        deploy(directory, versions[0])
        with daemon("--modules", tmp, "--reload-debounce", "0") as running:
            pid, stub = running.pid, running.stub
            rss_50 = 0
            for i in range(reloads):
                deploy(directory, versions[(i + 1) % 2])
                while generation(stub) < i + 2:
                    time.sleep(0.0005)
                if i == 49:
                    rss_50 = _rss(pid)
            return rss_50, _rss(pid)


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=100)
    parser.add_argument("--reloads", type=int, default=1000)
    args = parser.parse_args()

    print(f"write-to-serving, {args.deploys} deploys each (ms):")
    for label, versions in [
        ("small module", [small_module(1), small_module(2)]),
        ("1.5 MB module", [large_module(1), large_module(2)]),
    ]:
        samples = write_to_serving(versions, args.deploys)
        print(
            f"  {label:14} p50 {statistics.median(samples):7.1f}   "
            f"p99 {percentile(samples, 99):7.1f}   ({len(versions[0]) / 1e6:.2f} MB)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        modules, cache = Path(tmp, "modules"), Path(tmp, "cache")
        modules.mkdir()
        (modules / "m.wasm").write_bytes(large_module(1))
        none = statistics.median(load_seconds(modules, None) for _ in range(3))
        cold = load_seconds(modules, cache)
        warm = statistics.median(load_seconds(modules, cache) for _ in range(5))
    print("restart, load of a directory with the 1.5 MB module (ms):")
    print(
        f"  no cache {none * 1000:7.1f}   cold cache {cold * 1000:7.1f}   "
        f"warm cache {warm * 1000:7.1f}   ({none / warm:.0f}x faster warm)"
    )

    rss_50, rss_end = rss_after_reloads(args.reloads)
    print(
        f"daemon RSS after 50 reloads {rss_50 / 2**20:.1f} MiB, after {args.reloads}: "
        f"{rss_end / 2**20:.1f} MiB ({(rss_end / rss_50 - 1) * 100:+.1f}%)"
    )


if __name__ == "__main__":
    sys.exit(main())
