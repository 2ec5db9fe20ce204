"""Modules from OCI registries: tag-move-to-serving latency against --pull-interval.

A daemon (subprocess, default settings but for --pull-interval) pulls module
`m` by tag from Debian's docker-registry on loopback. Two versions are
pushed once (`wasmtube push`'s code); each of --moves moves points the tag
at the other one (a manifest PUT, as `oras tag` does) and the clock runs
until ListModules shows the new generation: the daemon's next check of the
tag, the manifest and the module fetched and verified, the compile and the
swap. Between moves the script waits a part of an interval, so the moves
land at every phase of the daemon's polling: evenly spread (one move in
each of --moves equal slices of the interval, in random order), so the
phases themselves add no bias to the figures.

Reported per interval: median and p90 latency, and each as a ratio to the
interval. Polling alone gives half an interval on average, plus up to a
tenth either way of jitter: the median ratio should be near 0.5 plus the
fetch-and-load time over the interval, the p90 near 0.9 plus it. That time
is reported too: the daemon's wasmtube_reload_duration_seconds, from the
check that saw the new digest to the new version serving (manifest and
module fetched and verified, compiled, swapped in).

    python bench/oci_pull.py [--intervals 0.5 2] [--moves 40] [--json PATH]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from _daemon import daemon, free_port
from _modules import small_module
from _registry import registry
from _suite import Row, print_table, write_json
from memory import generation

from wasmtube.oci import build_artifact, parse_reference
from wasmtube.oci.distribution import RegistryClient

TITLE = "Modules from OCI registries: tag move to serving"
BASELINE = "interval"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def push(host: str, tag: str, wasm: bytes) -> bytes:
    """Push `wasm` to HOST/bench/m:TAG; the manifest's bytes."""
    artifact = build_artifact(wasm, "m.wasm", datetime.now(UTC))
    with RegistryClient(parse_reference(f"{host}/bench/m:{tag}"), insecure=True) as client:
        client.push(artifact)
    return artifact.manifest


def move_tag(host: str, manifest: bytes) -> None:
    request = urllib.request.Request(
        f"http://{host}/v2/bench/m/manifests/live",
        data=manifest,
        headers={"Content-Type": MANIFEST},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def latencies(
    host: str, manifests: list[bytes], interval: float, moves: int
) -> tuple[list[float], float]:
    """ms from each tag move until the daemon serves the version moved to,
    and the mean ms from the check that saw each new digest to serving."""
    rng = random.Random(1)
    move_tag(host, manifests[0])
    metrics = f"127.0.0.1:{free_port()}"
    with (
        tempfile.TemporaryDirectory() as tmp,
        daemon(
            "--modules",
            tmp,
            "--pull",
            f"m={host}/bench/m:live",
            "--registry-insecure",
            host,
            "--pull-interval",
            str(interval),
            "--metrics-listen",  # the last one given wins over daemon()'s "off"
            metrics,
        ) as running,
    ):
        stub = running.stub
        samples = []
        phases = [(slot + rng.random()) / moves for slot in range(moves)]
        rng.shuffle(phases)
        for i, phase in enumerate(phases):
            time.sleep(phase * interval)  # a phase of the polling
            start = time.perf_counter()
            move_tag(host, manifests[(i + 1) % 2])
            while generation(stub) < i + 2:
                time.sleep(0.002)
            samples.append((time.perf_counter() - start) * 1000)
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as page:
            text = page.read().decode()
        total, count = (
            float(line.split()[-1])
            for name in ("sum", "count")
            for line in text.splitlines()
            if line.startswith(f"wasmtube_reload_duration_seconds_{name} ")
        )
        return samples, total / count * 1000


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.5, 2.0])
    parser.add_argument("--moves", type=int, default=40, help="tag moves per interval")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args()

    rows: list[Row] = []
    samples: dict[str, list[float]] = {}
    versions = [small_module(1), small_module(2)]
    with registry() as host:
        manifests = [push(host, f"v{i + 1}", wasm) for i, wasm in enumerate(versions)]
        for interval in args.intervals:
            ms = interval * 1000
            ours, load_ms = latencies(host, manifests, interval, args.moves)
            samples[f"interval_{interval:g}s"] = ours
            key = f"{interval:g}".replace(".", "_")
            rows += [
                Row(
                    f"tag_move_p50_ms_{key}s",
                    f"--pull-interval {interval:g} s: tag move to serving p50, ms",
                    ms,
                    statistics.median(ours),
                ),
                Row(
                    f"tag_move_p90_ms_{key}s",
                    f"--pull-interval {interval:g} s: tag move to serving p90, ms",
                    ms,
                    p90(ours),
                ),
                Row(
                    f"tag_move_fetch_and_load_ms_{key}s",
                    f"--pull-interval {interval:g} s: fetch, verify and swap (mean), ms",
                    ms,
                    load_ms,
                ),
            ]
    notes = [
        f"{args.moves} moves per interval, at evenly spread phases of the interval; module "
        f"{len(versions[0])} B; registry: Debian's docker-registry on loopback",
        "ratio = latency / --pull-interval: polling alone gives ~0.5 (median) and ~0.9 (p90)",
    ]
    print_table(TITLE, BASELINE, rows, notes)
    write_json(
        args.json,
        "oci_pull",
        TITLE,
        BASELINE,
        rows,
        {"intervals": args.intervals, "moves": args.moves},
        samples_ms=samples,
    )


if __name__ == "__main__":
    main()
