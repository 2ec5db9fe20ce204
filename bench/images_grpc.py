"""Scenario 3: RGB8 images over gRPC, wasmtube's `image_checksum` vs a bare grpcio server.

wasmtube serves the bundled Rust guest's `image_checksum` (alloc ABI: the
pixels are copied into the guest, which reads every byte of them, eight at a
time, and answers their sum: the least work that still reads every pixel).
The baseline is bench/bare_server.py, which receives the same request bytes
and answers the image's size without reading the pixels: the floor the
Python gRPC stack sets. Both servers are separate processes running at the
same time; this process is the load generator. It sends the same
pre-serialized request to both, one call at a time (concurrency 1), in rounds
that alternate between the servers so a noisy machine's drift spreads over
both. Sizes: 1920x1080 (6.2 MB) and 3840x2160 (24.9 MB).

Figures per size: MB/s of pixels (total pixel bytes / total call time; 1 MB =
10^6 bytes) and per-call latency p50 and p99 in ms. One more row puts the time
wasmtube adds over the bare server (p50 difference) beside the guest's own
work measured in this process with plain wasmtime-py (copy the pixels in, call
`image_checksum`, free; no gRPC): a ratio near 1 means nearly all the added time
is the guest reading the pixels, which no host can save.

    python bench/images_grpc.py [--seconds 6] [--rounds 6] [--json PATH]

--seconds is the time per server and size, split over --rounds rounds.

Target (issue 6): wasmtube's MB/s at least 0.8x the bare server's, at both sizes.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable

import grpc
from _daemon import daemon
from _modules import alloc_exports
from _suite import (
    Row,
    Target,
    bare_server,
    in_turns,
    p99,
    print_table,
    rounds_parser,
    write_json,
)

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube_server import BUNDLED_MODULES_DIR

SIZES = ((1920, 1080), (3840, 2160))
METHOD = "/wasmtube.v1.Wasmtube/Call"
TITLE = "Scenario 3: RGB8 images over gRPC, concurrency 1: wasmtube image_checksum vs bare grpcio"
BASELINE = "bare grpcio"

Caller = Callable[[bytes], pb.CallResponse]


def pixels(width: int, height: int) -> bytes:
    """Deterministic random RGB8 pixels."""
    return random.Random(width * height).randbytes(width * height * 3)


def caller(channel: grpc.Channel) -> Caller:
    """Call with an already-serialized CallRequest: both servers get the very same bytes."""
    return channel.unary_unary(
        METHOD,
        request_serializer=lambda raw: raw,
        response_deserializer=pb.CallResponse.FromString,
    )


def check(response: pb.CallResponse, data: bytes, width: int, height: int) -> None:
    """wasmtube's answer must be the sum of every byte."""
    stats = json.loads(response.json)
    if (stats["width"], stats["height"], stats["sum"]) != (width, height, sum(data)):
        raise SystemExit(f"image_checksum answered {response.json[:200]}")


def guest_alone_ms(data: bytes, width: int, height: int, repeat: int = 7) -> float:
    """Median ms of copy-in + image_checksum + frees in plain wasmtime-py, one warm instance."""
    wasm = (BUNDLED_MODULES_DIR / "wasm_test.wasm").read_bytes()
    store, memory, alloc, free, stats = alloc_exports(wasm, "image_checksum")
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        pointer = alloc(store, len(data))
        memory.write(store, data, pointer)
        packed = stats(store, pointer, len(data), width, height)
        free(store, pointer, len(data))
        free(store, packed >> 32, packed & 0xFFFFFFFF)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def timed_calls(call: Caller, request: bytes, seconds: float) -> list[float]:
    """Calls one after another for about `seconds`, at least one; seconds per call."""
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while not samples or time.perf_counter() < end:
        start = time.perf_counter()
        call(request)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    args = rounds_parser(__doc__, 6.0, 6, "per server and size").parse_args()

    rows: list[Row] = []
    notes: list[str] = []
    with (
        bare_server() as bare,
        daemon() as running,
        grpc.insecure_channel(bare.address) as bare_channel,
        grpc.insecure_channel(running.address) as our_channel,
    ):
        callers = {"bare": caller(bare_channel), "wasmtube": caller(our_channel)}
        for width, height in SIZES:
            data = pixels(width, height)
            request = pb.CallRequest(
                module="wasm_test",
                function="image_checksum",
                image=pb.Image(data=data, width=width, height=height),
            ).SerializeToString()
            check(callers["wasmtube"](request), data, width, height)
            callers["bare"](request)  # warm-up
            samples: dict[str, list[float]] = {"bare": [], "wasmtube": []}
            for round_ in range(args.rounds):
                order = in_turns(callers, round_)
                for name in order:
                    samples[name] += timed_calls(callers[name], request, args.seconds / args.rounds)
            mb_per_s = {name: len(data) / 1e6 * len(s) / sum(s) for name, s in samples.items()}
            label = f"{width}x{height}"
            rows += [
                Row(
                    f"mb_per_s_{label}",
                    f"{label} MB/s",
                    mb_per_s["bare"],
                    mb_per_s["wasmtube"],
                    Target(">=", 0.8),
                ),
                Row(
                    f"p50_ms_{label}",
                    f"{label} p50 ms",
                    statistics.median(samples["bare"]) * 1000,
                    statistics.median(samples["wasmtube"]) * 1000,
                ),
                Row(
                    f"p99_ms_{label}",
                    f"{label} p99 ms",
                    p99(samples["bare"]) * 1000,
                    p99(samples["wasmtube"]) * 1000,
                ),
            ]
            added = statistics.median(samples["wasmtube"]) - statistics.median(samples["bare"])
            rows.append(
                Row(
                    f"added_ms_{label}",
                    f"{label} ms added (p50)",
                    guest_alone_ms(data, width, height),
                    added * 1000,
                    extra={"baseline_is": "the guest alone in wasmtime-py, no gRPC"},
                )
            )
            budget = (1 / 0.8 - 1) * statistics.median(samples["bare"]) * 1000
            notes.append(
                f"{label}: {len(data) / 1e6:.1f} MB per call; calls: bare "
                f"{len(samples['bare'])}, wasmtube {len(samples['wasmtube'])}; "
                f"the 0.8x target leaves {budget:.1f} ms per call over the bare server"
            )
    notes.append(
        "ms added: wasmtube's p50 minus the bare server's, beside (baseline column) the "
        "guest's own work in plain wasmtime-py"
    )

    print_table(TITLE, BASELINE, rows, notes)
    write_json(
        args.json,
        "images_grpc",
        TITLE,
        BASELINE,
        rows,
        {"seconds": args.seconds, "rounds": args.rounds, "concurrency": 1},
    )


if __name__ == "__main__":
    main()
