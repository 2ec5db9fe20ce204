"""Start a wasmtube daemon in a subprocess for a benchmark, and stop it."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def daemon(*options: str) -> Iterator[tuple[int, pb_grpc.WasmtubeStub]]:
    """A daemon on a free port with `options`; yields its pid and a stub."""
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wasmtube_server",
            "--listen",
            address,
            "--metrics-listen",
            "off",
            "--log-level",
            "warning",
            *options,
        ],
    )
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield process.pid, pb_grpc.WasmtubeStub(channel)
    finally:
        channel.close()
        process.terminate()
        process.wait()
