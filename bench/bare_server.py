"""The baseline for gRPC benchmarks: a bare grpcio server with wasmtube's proto.

Its Call answers with the request's JSON, no sandbox, no checks: the floor
the Python gRPC stack sets. Sent an image, it answers {"width":W,"height":H,
"bytes":N} without reading the pixels: the floor for receiving them. It is
grpcio's default, synchronous server (the daemon runs on grpc.aio), with the
daemon's message limits and worker pool.

    python bench/bare_server.py 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import time

import grpc

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc
from wasmtube_server.admission.workers import WorkerPool


class BareEcho(pb_grpc.WasmtubeServicer):
    def Call(self, request: pb.CallRequest, context: grpc.ServicerContext) -> pb.CallResponse:
        if request.WhichOneof("input") == "image":
            image = request.image
            answer = f'{{"width":{image.width},"height":{image.height},"bytes":{len(image.data)}}}'
            return pb.CallResponse(json=answer, module_sha256="0" * 64, generation=1)
        return pb.CallResponse(json=request.json, module_sha256="0" * 64, generation=1)


class CostlyEcho(BareEcho):
    """BareEcho, with a handler that costs what the options say."""

    def __init__(self, spin_us: float, release_gil: bool) -> None:
        self._spin_seconds = spin_us / 1e6
        # ctypes releases the GIL around every call into a CDLL's function.
        self._c_call = ctypes.CDLL(None).getpid if release_gil else None

    def Call(self, request: pb.CallRequest, context: grpc.ServicerContext) -> pb.CallResponse:
        end = time.perf_counter() + self._spin_seconds
        while time.perf_counter() < end:
            pass
        if self._c_call is not None:
            self._c_call()
        return super().Call(request, context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="host:port to listen on")
    parser.add_argument("--spin-us", type=float, default=0.0, help="Python to run per call")
    parser.add_argument("--release-gil", action="store_true", help="one GIL-releasing C call")
    args = parser.parse_args()
    size = 64 << 20
    server = grpc.server(
        WorkerPool(max_workers=68),
        options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)],
    )
    costly = args.spin_us > 0 or args.release_gil
    servicer = CostlyEcho(args.spin_us, args.release_gil) if costly else BareEcho()
    pb_grpc.add_WasmtubeServicer_to_server(servicer, server)
    server.add_insecure_port(args.address)
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
