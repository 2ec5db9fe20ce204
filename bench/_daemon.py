"""Start a wasmtube daemon in a subprocess for a benchmark, and stop it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(channel: grpc.Channel, timeout: float = 60) -> None:
    """Wait until health says SERVING: the module directory has loaded."""
    health = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="wasmtube.v1.Wasmtube")
    deadline = time.monotonic() + timeout
    while health.Check(request).status != health_pb2.HealthCheckResponse.SERVING:
        if time.monotonic() > deadline:
            raise TimeoutError("the daemon did not load its modules in time")
        time.sleep(0.01)


def wait_listening(
    channel: grpc.Channel, process: subprocess.Popen[bytes], timeout: float = 30
) -> None:
    """Wait until the daemon accepts connections; fail at once if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            grpc.channel_ready_future(channel).result(timeout=0.25)
            return
        except grpc.FutureTimeoutError:
            if process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError("the daemon did not listen in time") from None


def daemon_command(address: str, metrics_listen: str, *options: str) -> list[str]:
    """The command line of a daemon on `address`, logging warnings only."""
    return [
        sys.executable,
        "-m",
        "wasmtube_server",
        "--listen",
        address,
        "--metrics-listen",
        metrics_listen,
        "--log-level",
        "warning",
        *options,
    ]


class Running(NamedTuple):
    pid: int
    address: str
    stub: pb_grpc.WasmtubeStub


@contextmanager
def daemon(*options: str, env: dict[str, str] | None = None) -> Iterator[Running]:
    """A daemon on a free port with `options`, ready to call; `env`, if given,
    is its whole environment."""
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(daemon_command(address, "off", *options), env=env)
    channel = grpc.insecure_channel(address)
    try:
        wait_listening(channel, process)
        wait_serving(channel)
        yield Running(process.pid, address, pb_grpc.WasmtubeStub(channel))
    finally:
        channel.close()
        process.terminate()
        process.wait()
