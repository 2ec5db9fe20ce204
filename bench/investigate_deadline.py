"""Investigation: how late is an endless guest loop stopped, past its deadline?

Answered: within an epoch tick or two (docs/perf-notes/costs-of-isolation.md).

Calls a function that never returns, with the server's --call-timeout as the
only deadline, and prints how long after that deadline DEADLINE_EXCEEDED
arrives (gRPC round trip included).

    python bench/investigate_deadline.py [--timeout 0.2] [--calls 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import wasmtime
from _daemon import daemon

from wasmtube.v1 import wasmtube_pb2 as pb

FOREVER = """
(module
  (memory (export "memory") 1)
  (func (export "forever") (param i32 i32) (result i32) (loop $l (br $l)) (i32.const 0)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=0.2)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "loop.wasm").write_bytes(wasmtime.wat2wasm(FOREVER))
        options = ("--modules", directory, "--call-timeout", str(args.timeout))
        with daemon(*options) as running:
            stub = running.stub
            request = pb.CallRequest(module="loop", function="forever", json="{}")
            late = []
            for _ in range(args.calls):
                start = time.perf_counter()
                try:
                    stub.Call(request)
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
                late.append((time.perf_counter() - start - args.timeout) * 1000)
    print(f"endless loop, --call-timeout {args.timeout} s, {args.calls} calls:")
    print(
        f"  answered after the deadline: p50 {statistics.median(late):.1f} ms, "
        f"max {max(late):.1f} ms (budget: 100 ms)"
    )


if __name__ == "__main__":
    main()
