"""Hostile clients: ones that open streams and never finish their requests,
hold CallStreams open and silent, or flood one connection. None of them may
stop the daemon from answering others, or hold more than a bounded share."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers.http2 import RawGrpcConnection, grpc_frame

from conftest import GUEST_WASM, RunningDaemon, wait_until
from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc

CALL = "/wasmtube.v1.Wasmtube/Call"
CALL_STREAM = "/wasmtube.v1.Wasmtube/CallStream"
ECHO = pb.CallRequest(module="wasm_test", function="echo", json='{"args":"hi"}')
TOKEN = "s3cret-token"
# HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS.
MAX_CONCURRENT_STREAMS = 3


@pytest.fixture
def start_guest(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, tmp_path: Path
) -> Callable[..., RunningDaemon]:
    def start(*, auth: bool = False, **options: object) -> RunningDaemon:
        (modules_dir / "wasm_test.wasm").write_bytes(GUEST_WASM.read_bytes())
        if auth:
            token_file = tmp_path / "token"
            token_file.write_text(TOKEN)
            options["auth_token_file"] = token_file
        return start_daemon(modules_dir, **options)

    return start


def answers_everyone(daemon: RunningDaemon, metadata: tuple[tuple[str, str], ...] = ()) -> None:
    """Health and calls are answered at once, whatever else holds the daemon."""
    with grpc.insecure_channel(daemon.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="wasmtube.v1.Wasmtube")
        assert health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        stub = pb_grpc.WasmtubeStub(channel)
        for _ in range(20):
            response = stub.Call(ECHO, timeout=5, metadata=metadata)
            assert response.json == '{"args":"hi"}'


def stall(connections: list[RawGrpcConnection], per_connection: int, body: bytes) -> list[int]:
    """Open `per_connection` Call streams on each connection, each sending
    `body` (maybe nothing) and never ending; the stream ids."""
    streams = []
    for connection in connections:
        connection.wait_settings()  # the server's stream limit, before opening
        for _ in range(per_connection):
            streams.append(connection.open(CALL, body))
    return streams


# Each shape holds requests half-sent: headers only, or a length prefix that
# promises more bytes than come.
SHAPES = {
    "headers-only": b"",
    "short-prefix": grpc_frame(b"\x0a\x03abc", promised=1000),
    "prefix-only": grpc_frame(b"", promised=64),
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
@pytest.mark.parametrize("auth", [False, True], ids=["open", "auth"])
def test_half_sent_requests_on_one_connection_hold_nothing(start_guest, shape, auth) -> None:
    # As many half-sent calls as one connection may open: more than the
    # daemon's call slots and worker threads together.
    daemon = start_guest(auth=auth, max_workers=8, receive_timeout=60)
    connection = RawGrpcConnection(daemon.daemon.port)
    try:
        stall([connection], 100, SHAPES[shape])
        connection.pump(0.2)
        assert not connection.closed
        metadata = (("authorization", f"Bearer {TOKEN}"),) if auth else ()
        answers_everyone(daemon, metadata)
    finally:
        connection.close()


def test_half_sent_requests_on_many_connections_hold_nothing(start_guest) -> None:
    daemon = start_guest(max_workers=8, receive_timeout=60)
    connections = [RawGrpcConnection(daemon.daemon.port) for _ in range(100)]
    try:
        stall(connections, 3, b"")
        answers_everyone(daemon)
    finally:
        for connection in connections:
            connection.close()


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_a_half_sent_request_ends_after_the_receive_timeout(start_guest, shape) -> None:
    daemon = start_guest(receive_timeout=0.5)
    connection = RawGrpcConnection(daemon.daemon.port)
    try:
        streams = stall([connection], 5, SHAPES[shape])

        def all_ended() -> bool:
            connection.pump(0.1)
            return all(connection.status(s) is not None for s in streams)

        wait_until(all_ended, timeout=10, what="the half-sent requests to time out")
        for stream in streams:
            trailers = connection.trailers[stream]
            assert trailers["grpc-status"] == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0])
            assert "--receive-timeout" in trailers.get("grpc-message", "")
        answers_everyone(daemon)
    finally:
        connection.close()


def test_a_connection_is_told_its_stream_limit(start_guest) -> None:
    daemon = start_guest(max_connection_streams=7)
    connection = RawGrpcConnection(daemon.daemon.port)
    try:
        connection.wait_settings()
        assert connection.remote_settings[MAX_CONCURRENT_STREAMS] == 7
    finally:
        connection.close()


class IdleStream:
    """A CallStream that sends one message, reads its answer, then stays silent."""

    def __init__(self, stub: pb_grpc.WasmtubeStub, timeout: float | None = None) -> None:
        self._release = threading.Event()
        self.responses = stub.CallStream(self._requests(), timeout=timeout)

    def _requests(self) -> Iterator[pb.CallRequest]:
        yield ECHO
        self._release.wait()

    def first(self) -> pb.CallResponse:
        return next(self.responses)

    def end(self) -> grpc.RpcError | None:
        """Let the stream finish; the error it ended with, if any."""
        self._release.set()
        try:
            for _ in self.responses:
                pass
        except grpc.RpcError as e:
            return e
        return None

    def close(self) -> None:
        self._release.set()
        self.responses.cancel()


def test_idle_streams_take_no_call_slot_and_a_bounded_number_of_stream_slots(
    start_guest,
) -> None:
    daemon = start_guest(max_workers=2, max_streams=4, receive_timeout=60)
    streams: list[IdleStream] = []
    try:
        # One after another: their first messages each take a call slot
        # while they run, and there are only two.
        for _ in range(4):
            streams.append(IdleStream(daemon.stub))
            assert streams[-1].first().json == '{"args":"hi"}'
        # More idle streams than call slots, and unary calls are still served.
        answers_everyone(daemon)
        extra = IdleStream(daemon.stub)
        error = extra.end()
        assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-streams" in (error.details() or "")
    finally:
        for stream in streams:
            stream.close()


def test_an_idle_stream_ends_after_the_receive_timeout(start_guest) -> None:
    daemon = start_guest(receive_timeout=0.5)
    stream = IdleStream(daemon.stub)
    try:
        assert stream.first().json == '{"args":"hi"}'
        with pytest.raises(grpc.RpcError) as info:
            next(stream.responses)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "--receive-timeout" in (info.value.details() or "")
        # Its slot is free again: a new stream works.
        again = IdleStream(daemon.stub)
        assert again.first().json == '{"args":"hi"}'
        again.close()
    finally:
        stream.close()


def test_a_drain_ends_idle_streams_at_once(start_guest) -> None:
    daemon = start_guest(receive_timeout=60)
    stream = IdleStream(daemon.stub)
    assert stream.first().json == '{"args":"hi"}'
    stopping = threading.Thread(target=lambda: daemon.daemon.stop(grace=30))
    stopping.start()
    try:
        with pytest.raises(grpc.RpcError) as info:
            next(stream.responses)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (info.value.details() or "")
        # Ended by the drain, not by the 30 s grace running out.
        stopping.join(timeout=10)
        assert not stopping.is_alive()
    finally:
        stream.close()
        stopping.join()
