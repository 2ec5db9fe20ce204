"""Scenario 8: video frames over one CallStream vs one unary Call per frame.

The daemon serves the bundled Rust guest. A frame is 640x480 RGB8 (0.9 MB).
Per function, the same frames go to the daemon two ways, in rounds that
alternate between them so a noisy machine's drift spreads over both:
- unary (the baseline): one Call per frame, each waiting for its answer;
- stream: one CallStream per round carrying every frame of the round, the
  frames sent as fast as gRPC flow control lets them through.

Functions: `image_checksum` (reads every pixel, answers JSON) and `grayscale`
(answers a 640x480 GRAY8 image, so the frames come back too). Figures:
frames/s each way and their ratio; a ratio above 1 is what a stream saves per
frame (a call's setup, and the wait between one answer and the next frame).

    python bench/stream_frames.py [--frames 150] [--rounds 6] [--json PATH]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path

from _daemon import daemon
from _suite import Row, in_turns, print_table, write_json

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc

WIDTH, HEIGHT = 640, 480
FUNCTIONS = ("image_checksum", "grayscale")
TITLE = f"Scenario 8: {WIDTH}x{HEIGHT} RGB8 frames, one CallStream vs one unary Call per frame"
BASELINE = "unary Call"


def frame_images(count: int) -> list[pb.Image]:
    """`count` distinct frames of deterministic noise (a few, repeated)."""
    rng = random.Random(8)
    distinct = [rng.randbytes(WIDTH * HEIGHT * 3) for _ in range(4)]
    return [
        pb.Image(data=distinct[i % len(distinct)], width=WIDTH, height=HEIGHT) for i in range(count)
    ]


def unary(stub: pb_grpc.WasmtubeStub, function: str, frames: list[pb.Image]) -> float:
    """Seconds to send every frame as its own Call, one after another."""
    requests = [pb.CallRequest(module="wasm_test", function=function, image=f) for f in frames]
    start = time.perf_counter()
    for request in requests:
        stub.Call(request)
    return time.perf_counter() - start


def streamed(stub: pb_grpc.WasmtubeStub, function: str, frames: list[pb.Image]) -> float:
    """Seconds to send every frame over one CallStream and read every answer."""
    requests = [pb.CallRequest(image=f) for f in frames]
    requests[0].module, requests[0].function = "wasm_test", function
    start = time.perf_counter()
    answers = sum(1 for _ in stub.CallStream(iter(requests)))
    elapsed = time.perf_counter() - start
    if answers != len(frames):
        raise SystemExit(f"{answers} answers to {len(frames)} frames")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per round and way")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args()

    frames = frame_images(args.frames)
    rows: list[Row] = []
    ways: dict[str, Callable[[pb_grpc.WasmtubeStub, str, list[pb.Image]], float]] = {
        "unary": unary,
        "stream": streamed,
    }
    with daemon() as running:
        for function in FUNCTIONS:
            for way in ways.values():  # warm-up: instances, connections
                way(running.stub, function, frames[:5])
            seconds = dict.fromkeys(ways, 0.0)
            for round_ in range(args.rounds):
                order = in_turns(ways, round_)
                for name in order:
                    seconds[name] += ways[name](running.stub, function, frames)
            sent = args.frames * args.rounds
            rows.append(
                Row(
                    f"frames_per_s_{function}",
                    f"{function} frames/s",
                    sent / seconds["unary"],
                    sent / seconds["stream"],
                )
            )
    notes = [
        f"{args.frames} frames per round and way, {args.rounds} rounds; "
        f"{WIDTH * HEIGHT * 3 / 1e6:.2f} MB per frame",
        "image_checksum answers JSON; grayscale answers a GRAY8 image of the frame",
    ]
    print_table(TITLE, BASELINE, rows, notes)
    write_json(
        args.json,
        "stream_frames",
        TITLE,
        BASELINE,
        rows,
        {"frames": args.frames, "rounds": args.rounds, "width": WIDTH, "height": HEIGHT},
    )


if __name__ == "__main__":
    main()
