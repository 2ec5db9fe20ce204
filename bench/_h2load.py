"""Load from h2load, nghttp2's HTTP/2 load generator, written in C.

On this 2-core machine a Python gRPC client needs about a core of its own to
keep 8 calls in flight, so the servers it measures get the other one, and
part of what the figure shows is the client. h2load sends the same gRPC
frames over one HTTP/2 connection for a fraction of that CPU.

h2load knows HTTP/2, not gRPC: a failed call is still HTTP 200, with its
status in the trailers. So each run is checked by the response bytes: every
call must have returned one gRPC frame exactly as long as the expected
response. A call that failed sends no frame, and the check fails.

    sudo apt-get install nghttp2-client
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from google.protobuf.message import Message

__all__ = ["GENERATOR", "GENERATOR_NAME", "H2LOAD", "h2load_rate"]

H2LOAD = shutil.which("h2load")
# The load generator the gRPC benchmarks use: h2load if installed, else the
# Python client (echo_grpc.load takes either name).
GENERATOR = "h2load" if H2LOAD is not None else "python"
# How the benchmarks' notes name it.
GENERATOR_NAME = "h2load" if H2LOAD is not None else "the Python client"
METHOD_PATH = "/wasmtube.v1.Wasmtube/Call"

_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")
_REQUESTS = re.compile(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded")
_DATA = re.compile(r"traffic: .*? \((\d+)\) data")


def _frame(message: Message) -> bytes:
    """A gRPC length-prefixed message: no compression flag, big-endian length."""
    body = message.SerializeToString()
    return b"\0" + struct.pack(">I", len(body)) + body


def h2load_rate(
    address: str, streams: int, seconds: float, request: Message, response: Message
) -> tuple[int, float]:
    """(calls, seconds): `streams` calls in flight on one connection for about
    `seconds`, each of them answered with a message as long as `response`."""
    if H2LOAD is None:
        raise RuntimeError("h2load is not installed: apt-get install nghttp2-client")
    with tempfile.NamedTemporaryFile(suffix=".grpc") as body:
        Path(body.name).write_bytes(_frame(request))
        run = subprocess.run(
            [
                H2LOAD,
                "--clients=1",
                f"--max-concurrent-streams={streams}",
                # No --warm-up-time: its calls would count in the bytes
                # received but not in the calls done. Callers warm up first.
                f"--duration={round(seconds * 1000)}ms",
                f"--data={body.name}",
                "--header=content-type: application/grpc",
                "--header=te: trailers",
                f"http://{address}{METHOD_PATH}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    out = run.stdout
    finished, requests, data = _FINISHED.search(out), _REQUESTS.search(out), _DATA.search(out)
    if finished is None or requests is None or data is None:
        raise RuntimeError(f"cannot read h2load's report:\n{out}")
    took = float(finished[1]) / (1000 if finished[2] == "ms" else 1)
    done, succeeded = int(requests[1]), int(requests[2])
    frame = len(_frame(response))
    if done == 0 or succeeded != done or int(data[1]) != done * frame:
        raise RuntimeError(
            f"h2load: {done} calls done, {succeeded} succeeded, {data[1]} bytes of responses "
            f"where each call should return {frame}: some calls failed\n{out}"
        )
    return done, took
