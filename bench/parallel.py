"""Two CPU-bound calls at once vs one after another, over gRPC.

The bundled guest's `busy` spins n rounds of xorshift. On a machine with at
least 2 cores, 2 concurrent calls should take about as long as 1, because
guest code runs without the GIL: the speedup printed is
(time for 2 calls in sequence) / (time for 2 calls at once).

    python bench/parallel.py [--rounds 500000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from _daemon import daemon

from wasmtube.v1 import wasmtube_pb2 as pb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    request = pb.CallRequest(
        module="wasm_test", function="busy", json=json.dumps({"n": args.rounds})
    )
    with daemon("--module-concurrency", "2") as running, ThreadPoolExecutor(2) as pool:
        stub = running.stub
        stub.Call(request)  # warm-up
        sequential, parallel = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            stub.Call(request)
            stub.Call(request)
            sequential.append(time.perf_counter() - start)
            start = time.perf_counter()
            list(pool.map(lambda _: stub.Call(request), range(2)))
            parallel.append(time.perf_counter() - start)
    seq, par = statistics.median(sequential), statistics.median(parallel)
    print(f"2 calls of busy(n={args.rounds:,}), median of {args.repeat}:")
    print(f"  one after another: {seq * 1000:8.1f} ms")
    print(f"  at once:           {par * 1000:8.1f} ms")
    print(f"  speedup:           {seq / par:8.2f}x (2.00x is perfect on 2 cores)")


if __name__ == "__main__":
    main()
