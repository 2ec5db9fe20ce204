"""Random requests at the running daemon: it never dies, every answer has a
defined status, and the set of loaded modules never changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from conftest import GUEST_WASM, RunningDaemon, deploy, json_module
from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube_server import Config, Daemon

DEFINED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
FUNCTIONS = [
    "echo",
    "hello",
    "image_size",
    "image_stats",
    "image_checksum",
    "grayscale",
    "box_blur",
    "show_config",
    "divide",
    "json_echo",
    "json_stats",
    "get",
    "busy",
    "wasmtube_alloc",
    "wasmtube_free",
    "memory",
    "__heap_base",
]

names = st.one_of(st.sampled_from(["wasm_test", "m", "ghost", "", "..", "a/b"]), st.text())
functions = st.one_of(st.sampled_from(FUNCTIONS), st.text(max_size=300))
json_texts = st.one_of(
    st.sampled_from(['{"args":"x"}', '{"arg":"y"}', "{}", "[]", '{"n":3}', "null"]),
    st.text(max_size=200),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
        ),
    ).map(repr),
)
images = st.builds(
    pb.Image,
    data=st.binary(max_size=400),
    width=st.one_of(st.integers(0, 12), st.sampled_from([65536, 2**32 - 1])),
    height=st.one_of(st.integers(0, 12), st.sampled_from([65536, 2**32 - 1])),
    format=st.integers(0, 5),
)
requests = st.builds(
    lambda module, function, json_text, image, use_image: pb.CallRequest(
        module=module, function=function, **({"image": image} if use_image else {"json": json_text})
    ),
    names,
    functions,
    json_texts,
    images,
    st.booleans(),
) | st.builds(pb.CallRequest, module=names, function=functions)


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    directory: Path = tmp_path_factory.mktemp("modules")
    (directory / "wasm_test.wasm").write_bytes(GUEST_WASM.read_bytes())
    deploy(directory, "m", json_module('{"m":1}'))
    daemon = Daemon(
        Config(
            modules_dir=directory,
            listen="127.0.0.1:0",
            metrics_listen="127.0.0.1:0",
            call_timeout=1.0,
        ),
        registry=CollectorRegistry(),
    )
    daemon.start()
    assert daemon.wait_ready(30)
    handle = RunningDaemon(daemon, daemon.metrics.registry)
    yield handle
    handle.close()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=requests)
def test_random_requests_get_defined_statuses(
    fuzz_daemon: RunningDaemon, request: pb.CallRequest
) -> None:
    before = fuzz_daemon.modules()
    try:
        fuzz_daemon.stub.Call(request, timeout=10)
        code = grpc.StatusCode.OK
    except grpc.RpcError as e:
        code = e.code()
        assert e.details(), "every error carries a message"
    assert code in DEFINED
    after = fuzz_daemon.modules()
    assert {n: (m.sha256, m.generation) for n, m in after.items()} == {
        n: (m.sha256, m.generation) for n, m in before.items()
    }
    assert set(after) == {"wasm_test", "m"}


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(stream=st.lists(requests, min_size=0, max_size=6))
def test_random_streams_get_defined_statuses(
    fuzz_daemon: RunningDaemon, stream: list[pb.CallRequest]
) -> None:
    messages = list(stream)
    answered = 0
    try:
        for _ in fuzz_daemon.stub.CallStream(iter(messages), timeout=20):
            answered += 1
        code = grpc.StatusCode.OK
    except grpc.RpcError as e:
        code = e.code()
        assert e.details().startswith(f"message {answered} of the stream: ")
    assert code in DEFINED
    assert answered <= len(messages)
    assert set(fuzz_daemon.modules()) == {"wasm_test", "m"}
    assert fuzz_daemon.metric("wasmtube_streams_open") == 0
