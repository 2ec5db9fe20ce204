"""The alloc ABI: payloads of any size up to the memory cap, and guests that lie."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from conftest import RunningDaemon, deploy, wat
from wasmtube.v1 import wasmtube_pb2 as pb


def image_request(function: str, pixels: np.ndarray, module: str = "wasm_test") -> pb.CallRequest:
    height, width, _ = pixels.shape
    image = pb.Image(data=pixels.tobytes(), width=width, height=height)
    return pb.CallRequest(module=module, function=function, image=image)


def reference_stats(pixels: np.ndarray) -> dict[str, object]:
    """What image_stats must answer, computed independently with numpy."""
    rgb = pixels.reshape(-1, 3).astype(np.uint64)
    luma = (77 * rgb[:, 0] + 150 * rgb[:, 1] + 29 * rgb[:, 2]) >> 8
    return {
        "width": pixels.shape[1],
        "height": pixels.shape[0],
        "mean": (rgb.sum(axis=0) / len(rgb)).tolist(),
        "histogram": np.bincount(luma, minlength=256).tolist(),
    }


@pytest.mark.slow
def test_a_4k_frame_is_processed_pixel_by_pixel(guest_daemon: RunningDaemon) -> None:
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, size=(2160, 3840, 3), dtype=np.uint8)  # 24.9 MB
    result = json.loads(guest_daemon.stub.Call(image_request("image_stats", frame)).json)
    expected = reference_stats(frame)
    assert result["histogram"] == expected["histogram"]
    assert result["mean"] == pytest.approx(expected["mean"], rel=1e-12)
    assert (result["width"], result["height"]) == (3840, 2160)


def test_image_checksum_reads_every_byte_of_a_frame(guest_daemon: RunningDaemon) -> None:
    rng = np.random.default_rng(3)
    for height, width in [(1080, 1920), (1, 1), (3, 5)]:
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        result = json.loads(guest_daemon.stub.Call(image_request("image_checksum", pixels)).json)
        assert result == {"width": width, "height": height, "sum": int(pixels.sum())}


def test_image_stats_on_small_odd_images(guest_daemon: RunningDaemon) -> None:
    rng = np.random.default_rng(1)
    for height, width in [(1, 1), (3, 5), (17, 2)]:
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        result = json.loads(guest_daemon.stub.Call(image_request("image_stats", pixels)).json)
        expected = reference_stats(pixels)
        assert result["histogram"] == expected["histogram"]
        assert result["mean"] == pytest.approx(expected["mean"])


def test_a_10_mb_json_document_round_trips(guest_daemon: RunningDaemon) -> None:
    document = json.dumps({"values": list(range(1_500_000))}, separators=(",", ":"))
    assert len(document) > 10_000_000
    response = guest_daemon.call("wasm_test", "json_echo", document)
    assert response.json == document
    stats = json.loads(guest_daemon.call("wasm_test", "json_stats", document).json)
    assert stats == {"bytes": len(document), "values": 1_500_002, "max_depth": 3}


def test_json_stats_counts_values(guest_daemon: RunningDaemon) -> None:
    stats = json.loads(guest_daemon.call("wasm_test", "json_stats", "[1,[2]]").json)
    assert stats == {"bytes": 7, "values": 4, "max_depth": 3}


@pytest.mark.slow
def test_repeated_large_calls_do_not_leak_guest_memory(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    # Pooled instances live on, so the host must free what it allocated.
    from conftest import GUEST_WASM

    (modules_dir / "wasm_test.wasm").write_bytes(GUEST_WASM.read_bytes())
    daemon = start_daemon(
        modules_dir, instance_policy="pooled", module_concurrency=1, max_memory=64 << 20
    )
    document = json.dumps(["x" * 1000] * 2000)  # 2 MB
    for _ in range(100):  # 200 MB in all, through one instance capped at 64 MiB
        assert daemon.call("wasm_test", "json_echo", document).json == document.replace(" ", "")


# A guest that exports the allocator and lies in every way it can.
LIAR = wat("""
(module
  (memory (export "memory") 2)
  (global $next (mut i32) (i32.const 1024))
  (func (export "wasmtube_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (local.get $p))
  (func (export "wasmtube_free") (param i32 i32))
  (func (export "echo") (param $p i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (func (export "ptr_past_memory") (param i32 i32) (result i64)
    (i64.const 0x0010000000000002))
  (func (export "length_past_memory") (param i32 i32) (result i64)
    (i64.const 0x00000400ffffffff))
  (func (export "negative") (param i32 i32) (result i64) (i64.const -1))
  (func (export "image") (param i32 i32 i32 i32) (result i64)
    (i32.store16 (i32.const 8) (i32.const 0x7d7b))
    (i64.const 0x0000000800000002)))
""")

NO_ALLOC = wat("""
(module
  (memory (export "memory") 1)
  (func (export "f") (param i32 i32) (result i64) (i64.const 0)))
""")

REFUSES = wat("""
(module
  (memory (export "memory") 1)
  (func (export "wasmtube_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "f") (param i32 i32) (result i64) (i64.const 0)))
""")

BAD_ALLOC = wat("""
(module
  (memory (export "memory") 1)
  (func (export "wasmtube_alloc") (param i32) (result i32) (i32.const 0x7ffffff0))
  (func (export "f") (param i32 i32) (result i64) (i64.const 0)))
""")


@pytest.fixture
def liars(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    for name, module in [
        ("liar", LIAR),
        ("no_alloc", NO_ALLOC),
        ("refuses", REFUSES),
        ("bad_alloc", BAD_ALLOC),
    ]:
        deploy(modules_dir, name, module)
    return start_daemon(modules_dir)


def test_an_honest_call_through_the_allocator(liars: RunningDaemon) -> None:
    assert liars.call("liar", "echo", '{"a":[1,2,3]}').json == '{"a":[1,2,3]}'
    image = pb.Image(data=bytes(12), width=2, height=2)
    response = liars.stub.Call(pb.CallRequest(module="liar", function="image", image=image))
    assert response.json == "{}"
    functions = {f.name: f for f in liars.modules()["liar"].functions}
    assert functions["echo"].calling_convention == pb.CALLING_CONVENTION_ALLOC_JSON
    assert functions["image"].calling_convention == pb.CALLING_CONVENTION_ALLOC_IMAGE


@pytest.mark.parametrize(
    ("module", "function", "code", "words"),
    [
        ("liar", "ptr_past_memory", grpc.StatusCode.INTERNAL, "outside its linear memory"),
        ("liar", "length_past_memory", grpc.StatusCode.INTERNAL, "outside its linear memory"),
        ("liar", "negative", grpc.StatusCode.INTERNAL, "outside its linear memory"),
        ("no_alloc", "f", grpc.StatusCode.FAILED_PRECONDITION, "exports no wasmtube_alloc"),
        ("refuses", "f", grpc.StatusCode.RESOURCE_EXHAUSTED, "could not allocate"),
        ("bad_alloc", "f", grpc.StatusCode.INTERNAL, "a buffer outside the guest's linear"),
    ],
)
def test_a_lying_guest_gets_a_clear_error(
    liars: RunningDaemon, module: str, function: str, code: grpc.StatusCode, words: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        liars.call(module, function, "{}")
    assert info.value.code() == code
    assert words in info.value.details()
    assert liars.call("liar", "echo", "[1]").json == "[1]"


# A guest that counts the host's wasmtube_alloc and wasmtube_free calls, to
# check how the host manages the input buffer. `counts` (seed ABI) answers
# [allocs,frees] as two digits.
BOOKKEEPER = wat("""
(module
  (memory (export "memory") 40)
  (global $top (mut i32) (i32.const 1024))
  (global $allocs (mut i32) (i32.const 0))
  (global $frees (mut i32) (i32.const 0))
  (func $alloc (export "wasmtube_alloc") (param $len i32) (result i32)
    (local $p i32)
    (global.set $allocs (i32.add (global.get $allocs) (i32.const 1)))
    (local.set $p (global.get $top))
    (global.set $top (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (func (export "wasmtube_free") (param $p i32) (param $len i32)
    (global.set $frees (i32.add (global.get $frees) (i32.const 1))))
  (func (export "in_place") (param $p i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (func (export "copy") (param $p i32) (param $len i32) (result i64)
    (local $out i32)
    (local.set $out (call $alloc (local.get $len)))
    (memory.copy (local.get $out) (local.get $p) (local.get $len))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (func (export "counts") (param $p i32) (param $len i32) (result i32)
    (i32.store8 (local.get $p) (i32.const 0x5b))
    (i32.store8 (i32.add (local.get $p) (i32.const 1))
                (i32.add (i32.const 0x30) (global.get $allocs)))
    (i32.store8 (i32.add (local.get $p) (i32.const 2)) (i32.const 0x2c))
    (i32.store8 (i32.add (local.get $p) (i32.const 3))
                (i32.add (i32.const 0x30) (global.get $frees)))
    (i32.store8 (i32.add (local.get $p) (i32.const 4)) (i32.const 0x5d))
    (i32.const 5)))
""")


@pytest.fixture
def bookkeeper(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    deploy(modules_dir, "books", BOOKKEEPER)
    # One instance, so every call below lands on the same one.
    return start_daemon(modules_dir, module_concurrency=1, max_idle_instances=1)


def counts(daemon: RunningDaemon) -> list[int]:
    return json.loads(daemon.call("books", "counts", "0").json)


def test_the_input_buffer_is_reused_and_in_place_output_is_not_freed(
    bookkeeper: RunningDaemon,
) -> None:
    text = json.dumps("x" * 100)
    for _ in range(3):
        assert bookkeeper.call("books", "in_place", text).json == text
    assert counts(bookkeeper) == [1, 0]  # one input buffer, kept; output in it


def test_output_outside_the_input_buffer_is_freed(bookkeeper: RunningDaemon) -> None:
    text = json.dumps("y" * 100)
    for _ in range(3):
        assert bookkeeper.call("books", "copy", text).json == text
    assert counts(bookkeeper) == [4, 3]  # the input buffer, and 3 outputs freed


def test_a_larger_input_replaces_the_buffer_and_a_huge_one_is_not_kept(
    bookkeeper: RunningDaemon,
) -> None:
    bookkeeper.call("books", "in_place", json.dumps("a" * 10))
    bookkeeper.call("books", "in_place", json.dumps("b" * 5))  # fits: reused
    bookkeeper.call("books", "in_place", json.dumps("c" * 20))  # the old one is freed
    assert counts(bookkeeper) == [2, 1]
    huge = json.dumps("d" * (1 << 21))  # 2 MiB: freed after its call
    assert bookkeeper.call("books", "in_place", huge).json == huge
    assert counts(bookkeeper) == [3, 3]
