"""The seed's own test guest runs unchanged, called through the generated stub."""

from __future__ import annotations

import json

from conftest import GUEST_WASM, RunningDaemon, sha256
from wasmtube.v1 import wasmtube_pb2 as pb


def test_echo_returns_its_input_exactly(guest_daemon: RunningDaemon) -> None:
    response = guest_daemon.call("wasm_test", "echo", '{"args":"Hello World!"}')
    assert response.json == '{"args":"Hello World!"}'
    assert response.module_sha256 == sha256(GUEST_WASM.read_bytes())
    assert response.generation == 1


def test_echo_drops_extra_fields_like_the_seed(guest_daemon: RunningDaemon) -> None:
    response = guest_daemon.call("wasm_test", "echo", '{"args":"x","other":[1,2,3]}')
    assert json.loads(response.json) == {"args": "x"}


def test_image_size_reports_the_image_sizes(guest_daemon: RunningDaemon) -> None:
    image = pb.Image(data=bytes(256 * 256 * 3), width=256, height=256)
    response = guest_daemon.stub.Call(
        pb.CallRequest(module="wasm_test", function="image_size", image=image)
    )
    assert json.loads(response.json) == {"width": 256, "height": 256}


def test_image_size_with_a_non_square_image(guest_daemon: RunningDaemon) -> None:
    image = pb.Image(data=bytes(17 * 5 * 3), width=17, height=5)
    response = guest_daemon.stub.Call(
        pb.CallRequest(module="wasm_test", function="image_size", image=image)
    )
    assert json.loads(response.json) == {"width": 17, "height": 5}


def test_hello_greets(guest_daemon: RunningDaemon) -> None:
    response = guest_daemon.call("wasm_test", "hello", '{"arg":"World"}')
    assert "Hello, World" in json.loads(response.json)["message"]


def test_list_modules_describes_the_guest(guest_daemon: RunningDaemon) -> None:
    info = guest_daemon.modules()["wasm_test"]
    assert info.sha256 == sha256(GUEST_WASM.read_bytes())
    assert info.generation == 1
    assert info.size_bytes == GUEST_WASM.stat().st_size
    assert info.last_error == ""
    assert info.loaded_at.seconds > 0
    functions = {f.name: f for f in info.functions}
    assert set(functions) >= {"echo", "image_size", "hello"}
    # The ABI's own exports are plumbing, not functions to call.
    assert not set(functions) & {"wasmtube_alloc", "wasmtube_free"}
    assert functions["echo"].calling_convention == pb.CALLING_CONVENTION_SEED_JSON
    assert functions["echo"].signature == "(i32, i32) -> i32"
    assert functions["image_size"].calling_convention == pb.CALLING_CONVENTION_SEED_IMAGE
    assert functions["image_size"].signature == "(i32, i32, i32, i32) -> i32"


def test_the_bundled_guest_is_the_wasm_test_build() -> None:
    # The bundled module is the package's example: it must be a real binary.
    data = GUEST_WASM.read_bytes()
    assert data[:4] == b"\0asm"
