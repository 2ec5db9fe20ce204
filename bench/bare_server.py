"""The baseline for gRPC benchmarks: a bare grpcio server with wasmtube's proto.

Its Call answers with the request's JSON, no sandbox, no checks: the floor
the Python gRPC stack sets. Sent an image, it answers {"width":W,"height":H,
"bytes":N} without reading the pixels: the floor for receiving them. Same
server settings as the daemon (sync server, its thread pool, message limits).

    python bench/bare_server.py 127.0.0.1:PORT
"""

from __future__ import annotations

import signal
import sys

import grpc

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc
from wasmtube_server.executor import HandlerPool


class BareEcho(pb_grpc.WasmtubeServicer):
    def Call(self, request: pb.CallRequest, context: grpc.ServicerContext) -> pb.CallResponse:
        if request.WhichOneof("input") == "image":
            image = request.image
            answer = f'{{"width":{image.width},"height":{image.height},"bytes":{len(image.data)}}}'
            return pb.CallResponse(json=answer, module_sha256="0" * 64, generation=1)
        return pb.CallResponse(json=request.json, module_sha256="0" * 64, generation=1)


def main() -> None:
    size = 64 << 20
    server = grpc.server(
        HandlerPool(max_workers=68),
        options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)],
    )
    pb_grpc.add_WasmtubeServicer_to_server(BareEcho(), server)
    server.add_insecure_port(sys.argv[1])
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
