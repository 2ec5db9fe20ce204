"""CallStream: many calls over one stream, on one warm instance, in order,
with each message checked and limited like a Call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from conftest import RunningDaemon, deploy, wait_until, wat
from wasmtube import Client, DeadlineExceeded, NotFound
from wasmtube.v1 import wasmtube_pb2 as pb

# `calls`: how many calls this instance has served; `echo`: its input back;
# `spin`: an endless loop; `invert`: any image back inverted, in place.
STREAMED = wat("""
(module
  (import "wasmtube" "output_image" (func $output_image (param i32 i32 i32)))
  (memory (export "memory") 40)
  (global $calls (mut i32) (i32.const 0))
  (func (export "wasmtube_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "calls") (param $o i32) (param i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (local.get $o) (i32.add (i32.const 0x30) (global.get $calls)))
    (i32.const 1))
  (func (export "echo") (param i32) (param $n i32) (result i32) (local.get $n))
  (func (export "spin") (param i32) (param i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0))
  (func (export "invert") (param $p i32) (param $n i32) (param $w i32) (param $h i32)
                          (param $f i32) (result i64)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store8 (i32.add (local.get $p) (local.get $i))
          (i32.xor (i32.const 255) (i32.load8_u (i32.add (local.get $p) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $output_image (local.get $w) (local.get $h) (local.get $f))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n)))))
""")


@pytest.fixture
def streamed(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    deploy(modules_dir, "streamed", STREAMED)
    # Fresh: every Call gets a new instance, so only a stream can count past 1.
    return start_daemon(modules_dir, instance_policy="fresh", call_timeout=2)


def messages(function: str, *documents: str) -> Iterator[pb.CallRequest]:
    for index, document in enumerate(documents):
        # Only the first message needs to name the module and function.
        if index == 0:
            yield pb.CallRequest(module="streamed", function=function, json=document)
        else:
            yield pb.CallRequest(json=document)


def test_responses_come_back_in_order_from_one_warm_instance(streamed: RunningDaemon) -> None:
    responses = list(streamed.stub.CallStream(messages("calls", *["{}"] * 9)))
    assert [r.json for r in responses] == [str(n) for n in range(1, 10)]
    assert {(r.generation, r.module_sha256) for r in responses} == {
        (1, streamed.modules()["streamed"].sha256)
    }
    # Calls, with the fresh policy, each get a new instance.
    assert [streamed.call("streamed", "calls").json for _ in range(2)] == ["1", "1"]
    assert streamed.metric(
        "wasmtube_calls_total", module="streamed", function="calls", code="OK"
    ) == (9 + 2)


def test_each_message_is_checked_and_the_first_bad_one_ends_the_stream(
    streamed: RunningDaemon,
) -> None:
    documents = ["[1]", '"two"', "{not json", "[4]"]
    call = streamed.stub.CallStream(messages("echo", *documents))
    assert next(call).json == "[1]"
    assert next(call).json == '"two"'
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("message 2 of the stream: json is not valid JSON")


def test_a_stream_calls_one_function(streamed: RunningDaemon) -> None:
    requests = [
        pb.CallRequest(module="streamed", function="echo", json="1"),
        pb.CallRequest(module="streamed", function="echo", json="2"),
        pb.CallRequest(module="streamed", function="calls", json="3"),
    ]
    call = streamed.stub.CallStream(iter(requests))
    assert [next(call).json, next(call).json] == ["1", "2"]
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "message 2 of the stream: a stream calls one function" in info.value.details()
    assert "names streamed.calls, but the stream calls streamed.echo" in info.value.details()


def test_the_first_message_is_checked_like_a_call(streamed: RunningDaemon) -> None:
    requests = iter([pb.CallRequest(module="nope", function="echo", json="1")])
    with pytest.raises(grpc.RpcError) as info:
        list(streamed.stub.CallStream(requests))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details().startswith("message 0 of the stream: module 'nope' is not loaded")


@pytest.mark.slow
def test_every_message_gets_the_call_time_limit(streamed: RunningDaemon) -> None:
    call = streamed.stub.CallStream(messages("spin", "{}"))
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "message 0 of the stream: function 'spin' ran past its 2 s deadline" in (
        info.value.details()
    )
    # The module serves on.
    assert streamed.call("streamed", "echo", "[5]").json == "[5]"


def test_a_stream_finishes_on_its_version_while_a_reload_serves_new_calls(
    streamed: RunningDaemon,
) -> None:
    go_on = threading.Event()

    def requests() -> Iterator[pb.CallRequest]:
        yield pb.CallRequest(module="streamed", function="calls", json="{}")
        go_on.wait(10)
        yield pb.CallRequest(json="{}")

    call = streamed.stub.CallStream(requests())
    first = next(call)
    deploy(streamed.modules_dir, "streamed", STREAMED + _custom_section())
    streamed.wait_generation("streamed", 2)
    assert streamed.call("streamed", "echo", "1").generation == 2
    assert streamed.metric("wasmtube_streams_open") == 1
    go_on.set()
    second = next(call)
    assert (first.generation, second.generation) == (1, 1)
    assert second.json == "2"  # the same instance as the first message
    call.cancel()
    wait_until(lambda: streamed.metric("wasmtube_streams_open") == 0, what="the stream to close")


@pytest.mark.slow
def test_the_client_streams_frames_and_results(streamed: RunningDaemon) -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(5)]
    with Client(streamed.address) as client:
        results = list(client.call_stream("streamed", "invert", frames))
        assert len(results) == 5
        for frame, result in zip(frames, results, strict=True):
            np.testing.assert_array_equal(result, 255 - frame)
        assert list(client.call_stream("streamed", "echo", [1, {"a": 2}])) == [1, {"a": 2}]
        with pytest.raises(NotFound, match="message 0 of the stream: module 'streamed' exports no"):
            list(client.call_stream("streamed", "nope", [1]))
        with pytest.raises(DeadlineExceeded):
            list(client.call_stream("streamed", "spin", [{}]))


def test_an_unread_stream_holds_its_sender_back(streamed: RunningDaemon) -> None:
    """Back-pressure: while the caller reads no results, gRPC flow control
    stops the daemon's sends, so it stops reading frames, so the caller's
    request iterator is no longer pulled."""
    frame = pb.Image(data=bytes(512 * 512 * 3), width=512, height=512)
    pulled = 0
    total = 400  # 300 MiB of frames, were nothing held back

    def requests() -> Iterator[pb.CallRequest]:
        nonlocal pulled
        for _ in range(total):
            pulled += 1
            yield pb.CallRequest(module="streamed", function="invert", image=frame)

    call = streamed.stub.CallStream(requests())
    try:
        # Wait until the sender has stalled: no frame pulled for a while.
        seen = [-1]

        def stalled() -> bool:
            before, seen[0] = seen[0], pulled
            return before == pulled and pulled > 0

        wait_until(stalled, timeout=20, what="the request iterator to stall")
        print(f"frames pulled before the sender stalled: {pulled} of {total}")
        assert pulled < total / 2
        # Reading the results lets every frame through, in order.
        assert sum(1 for _ in call) == total
        assert pulled == total
    finally:
        call.cancel()


def _custom_section() -> bytes:
    """A custom section, so the module's bytes (and its version) change."""
    name = b"version"
    payload = bytes([len(name)]) + name + b"2"
    return bytes([0, len(payload)]) + payload
