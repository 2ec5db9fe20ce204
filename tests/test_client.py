"""The friendly Client against the real daemon: JSON, images, listing, errors."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from PIL import Image

import wasmtube
from conftest import GUEST_WASM, RunningDaemon, sha256
from wasmtube import errors


@pytest.fixture
def client(guest_daemon: RunningDaemon) -> wasmtube.Client:
    with wasmtube.Client(guest_daemon.address, timeout=10) as client:
        yield client


def test_call_sends_json_and_decodes_the_result(client: wasmtube.Client) -> None:
    assert client.call("wasm_test", "echo", {"args": "Hello World!"}) == {"args": "Hello World!"}
    assert client.call("wasm_test", "hello", {"arg": "Ada"}) == {"message": "Hello, Ada!"}


def test_call_raw_returns_the_serving_version(client: wasmtube.Client) -> None:
    response = client.call_raw("wasm_test", "echo", '{"args":"x"}')
    assert json.loads(response.json) == {"args": "x"}
    assert response.module_sha256 == sha256(GUEST_WASM.read_bytes())
    assert response.generation == 1


def test_call_image_with_raw_bytes(client: wasmtube.Client) -> None:
    result = client.call_image("wasm_test", "image_size", bytes(7 * 3 * 3), width=7, height=3)
    assert result == {"width": 7, "height": 3}


def test_call_image_with_a_numpy_array(client: wasmtube.Client) -> None:
    array = np.zeros((48, 64, 3), dtype=np.uint8)  # H x W x 3
    assert client.call_image("wasm_test", "image_size", array) == {"width": 64, "height": 48}
    # A non-contiguous view is sent as its own pixels, not the parent's.
    view = np.zeros((100, 100, 3), dtype=np.uint8)[::2, ::4]
    assert client.call_image("wasm_test", "image_size", view) == {"width": 25, "height": 50}


def test_call_image_with_a_pillow_image_of_any_mode(client: wasmtube.Client) -> None:
    for mode in ("RGB", "RGBA", "L", "P"):
        image = Image.new(mode, (33, 21))
        assert client.call_image("wasm_test", "image_size", image) == {"width": 33, "height": 21}


def test_call_image_rejects_arrays_that_are_no_pixel_format(client: wasmtube.Client) -> None:
    for array in (np.zeros((4, 4, 2), dtype=np.uint8), np.zeros((4, 4, 3), dtype=np.float32)):
        with pytest.raises(ValueError, match=r"HxWx3 \(RGB8\), HxWx4 \(RGBA8\) or HxW \(GRAY8\)"):
            client.call_image("wasm_test", "image_size", array)
    with pytest.raises(ValueError, match="width"):
        client.call_image("wasm_test", "image_size", bytes(12))
    with pytest.raises(ValueError, match="format='rgb8' but an array of shape \\(4, 4\\)"):
        client.call_image("wasm_test", "image_size", np.zeros((4, 4), np.uint8), format="rgb8")
    # A GRAY8 array is an image, but image_size takes RGB8 only: the daemon says so.
    with pytest.raises(wasmtube.InvalidArgument, match="takes RGB8 images only"):
        client.call_image("wasm_test", "image_size", np.zeros((4, 4), dtype=np.uint8))


def test_list_modules(client: wasmtube.Client) -> None:
    (info,) = client.list_modules()
    assert info.name == "wasm_test"
    assert {f.name for f in info.functions} >= {"echo", "image_size", "hello"}


@pytest.mark.parametrize(
    ("call", "error_class", "code"),
    [
        (lambda c: c.call("nope", "echo"), wasmtube.NotFound, grpc.StatusCode.NOT_FOUND),
        (lambda c: c.call("wasm_test", "nope"), wasmtube.NotFound, grpc.StatusCode.NOT_FOUND),
        (
            lambda c: c.call("a/b", "echo"),
            wasmtube.InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda c: c.call_raw("wasm_test", "echo", "{"),
            wasmtube.InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda c: c.call_image("wasm_test", "image_size", bytes(5), width=2, height=2),
            wasmtube.InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda c: c.call("wasm_test", "echo", {"no_args": 1}),
            wasmtube.InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda c: c.call("wasm_test", "panic", {}),
            wasmtube.Internal,
            grpc.StatusCode.INTERNAL,
        ),
        (
            lambda c: c.call("wasm_test", "echo", {"args": "x" * 2_000_000}),
            wasmtube.ResourceExhausted,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
    ],
    ids=[
        "unknown-module",
        "unknown-function",
        "bad-name",
        "bad-json",
        "image-size",
        "guest-refuses-input",
        "trap",
        "too-large",
    ],
)
def test_failures_raise_one_class_per_code(client, call, error_class, code) -> None:
    with pytest.raises(error_class) as info:
        call(client)
    assert info.value.code == code
    assert isinstance(info.value, wasmtube.WasmtubeError)
    assert info.value.message
    assert isinstance(info.value.__cause__, grpc.RpcError)


def test_unreachable_daemon_raises_unavailable() -> None:
    with wasmtube.Client("127.0.0.1:1", timeout=2) as client, pytest.raises(wasmtube.Unavailable):
        client.list_modules()


def test_every_code_has_its_class() -> None:
    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        classes = [
            c
            for c in vars(errors).values()
            if isinstance(c, type) and getattr(c, "grpc_status_code", None) is code
        ]
        assert len(classes) == 1, code
