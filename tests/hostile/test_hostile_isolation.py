"""Under the pooled policy one instance serves caller after caller: none of
them can read what the host wrote into it or read out of it for an earlier
call. Each guest here reads memory it was not given, right after a call that
passed a card number."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from conftest import RunningDaemon, deploy, wat
from wasmtube.v1 import wasmtube_pb2 as pb

CARD = "4111111111111111"
CARD_JSON = json.dumps({"card": CARD}, separators=(",", ":"))
# A 16x1 RGB8 image whose bytes are the card number three times over.
CARD_IMAGE = pb.Image(width=16, height=1, format=pb.PIXEL_FORMAT_RGB8, data=(CARD * 3).encode())
SMALL_IMAGE = pb.Image(width=1, height=1, format=pb.PIXEL_FORMAT_RGB8, data=b"abc")
PEEK = 64  # bytes each peeking guest reads past its input
NOTHING = "\0" * PEEK

# Seed ABI: input at the offset, output read back from it.
SEED = wat("""
(module
  (import "wasmtube" "fail" (func $fail (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 60000) "no")
  (func $peek (param $p i32) (param $n i32) (result i32)
    ;; Answers the 64 bytes after its input.
    (memory.copy (local.get $p) (i32.add (local.get $p) (local.get $n)) (i32.const 64))
    (i32.const 64))
  (func (export "peek") (param $p i32) (param $n i32) (result i32)
    (call $peek (local.get $p) (local.get $n)))
  (func (export "peek_image") (param $p i32) (param $n i32) (param i32 i32) (result i32)
    (call $peek (local.get $p) (local.get $n)))
  (func (export "echo") (param $p i32) (param $n i32) (result i32) (local.get $n))
  (func (export "ignore_image") (param $p i32) (param $n i32) (param i32 i32) (result i32)
    (i32.const 0))
  (func (export "echo_twice") (param $p i32) (param $n i32) (result i32)
    ;; An output longer than the input: the input, then a copy of it.
    (memory.copy (i32.add (local.get $p) (local.get $n)) (local.get $p) (local.get $n))
    (i32.mul (local.get $n) (i32.const 2)))
  (func (export "refuse") (param $p i32) (param $n i32) (result i32)
    (call $fail (i32.const 3) (i32.const 60000) (i32.const 2)) (i32.const 0))
  (func (export "refuse_image") (param $p i32) (param $n i32) (param i32 i32) (result i32)
    (call $fail (i32.const 3) (i32.const 60000) (i32.const 2)) (i32.const 0)))
""")

_PACK = "(i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32)) (i64.const {n}))"

# Alloc ABI with a bump allocator and no wasmtube_free: the host keeps its
# input buffer between calls, and the guest answers from new allocations.
ALLOC = wat(f"""
(module
  (import "wasmtube" "fail" (func $fail (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 60000) "no")
  (global $bump (mut i32) (i32.const 1024))
  (func $alloc (export "wasmtube_alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (local.get $p)
      (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func $peek (param $p i32) (param $n i32) (result i64) (local $out i32)
    ;; Answers the 64 bytes after its input, copied to a new allocation.
    (local.set $out (call $alloc (i32.const 64)))
    (memory.copy (local.get $out) (i32.add (local.get $p) (local.get $n)) (i32.const 64))
    {_PACK.format(n=64)})
  (func (export "peek") (param $p i32) (param $n i32) (result i64)
    (call $peek (local.get $p) (local.get $n)))
  (func (export "peek_image") (param $p i32) (param $n i32) (param i32 i32) (result i64)
    (call $peek (local.get $p) (local.get $n)))
  (func (export "echo") (param $p i32) (param $n i32) (result i64)
    ;; Answers in place, inside the host's input buffer.
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
  (func (export "ignore_image") (param $p i32) (param $n i32) (param i32 i32) (result i64)
    (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)))
  (func (export "refuse") (param $p i32) (param $n i32) (result i64)
    (call $fail (i32.const 3) (i32.const 60000) (i32.const 2)) (i64.const 0))
  (func (export "refuse_image") (param $p i32) (param $n i32) (param i32 i32) (result i64)
    (call $fail (i32.const 3) (i32.const 60000) (i32.const 2)) (i64.const 0)))
""")

# Alloc ABI whose allocator hands out the block freed last, whatever its
# size: the output the host frees after call 1 is what call 2 allocates.
REUSING = wat(f"""
(module
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 1024))
  (global $freed (mut i32) (i32.const 0))
  (func $alloc (export "wasmtube_alloc") (param $n i32) (result i32) (local $p i32)
    (if (global.get $freed) (then
      (local.set $p (global.get $freed))
      (global.set $freed (i32.const 0))
      (return (local.get $p))))
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (local.get $p)
      (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "wasmtube_free") (param $p i32) (param $n i32) (global.set $freed (local.get $p)))
  (func (export "copy") (param $p i32) (param $n i32) (result i64) (local $out i32)
    ;; Answers a copy of its input in a new allocation.
    (local.set $out (call $alloc (local.get $n)))
    (memory.copy (local.get $out) (local.get $p) (local.get $n))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
  (func (export "fresh") (param $p i32) (param $n i32) (result i64) (local $out i32)
    ;; Answers a new 16-byte allocation as it finds it.
    (local.set $out (call $alloc (i32.const 16)))
    {_PACK.format(n=16)}))
""")


@pytest.fixture
def start_one(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> Callable[[bytes], RunningDaemon]:
    def start(wasm: bytes) -> RunningDaemon:
        deploy(modules_dir, "m", wasm)
        # One pooled instance, so every call lands on the same one unless it is dropped.
        return start_daemon(
            modules_dir, instance_policy="pooled", module_concurrency=1, max_idle_instances=1
        )

    return start


def call(daemon: RunningDaemon, function: str, input: str | pb.Image) -> pb.CallResponse:
    if isinstance(input, pb.Image):
        return daemon.stub.Call(pb.CallRequest(module="m", function=function, image=input))
    return daemon.stub.Call(pb.CallRequest(module="m", function=function, json=input))


def assert_no_card(output: str) -> None:
    assert not any(c.isdigit() for c in output), f"an earlier call's bytes leaked: {output!r}"


@pytest.mark.parametrize("wasm", [SEED, ALLOC], ids=["seed", "alloc"])
@pytest.mark.parametrize("first", ["echo", "peek"])
def test_the_next_caller_cannot_read_a_json_input(
    start_one: Callable[[bytes], RunningDaemon], wasm: bytes, first: str
) -> None:
    daemon = start_one(wasm)
    echoed = call(daemon, first, CARD_JSON).json
    assert echoed == (CARD_JSON if first == "echo" else NOTHING)
    output = call(daemon, "peek", "{}").json
    assert_no_card(output)
    assert output == NOTHING


def test_the_next_caller_cannot_read_a_longer_seed_output(
    start_one: Callable[[bytes], RunningDaemon],
) -> None:
    daemon = start_one(SEED)
    assert call(daemon, "echo_twice", CARD_JSON).json == CARD_JSON * 2
    output = call(daemon, "peek", "{}").json
    assert_no_card(output)
    assert output == NOTHING


@pytest.mark.parametrize("wasm", [SEED, ALLOC], ids=["seed", "alloc"])
def test_the_next_caller_cannot_read_an_image(
    start_one: Callable[[bytes], RunningDaemon], wasm: bytes
) -> None:
    daemon = start_one(wasm)
    assert call(daemon, "ignore_image", CARD_IMAGE).json == ""
    output = call(daemon, "peek_image", SMALL_IMAGE).json
    assert_no_card(output)
    assert output == NOTHING


@pytest.mark.parametrize("wasm", [SEED, ALLOC], ids=["seed", "alloc"])
@pytest.mark.parametrize(
    ("refuse", "input", "peek", "small"),
    [("refuse", CARD_JSON, "peek", "{}"), ("refuse_image", CARD_IMAGE, "peek_image", SMALL_IMAGE)],
    ids=["json", "image"],
)
def test_failing_on_purpose_keeps_the_instance_but_not_the_input(
    start_one: Callable[[bytes], RunningDaemon],
    wasm: bytes,
    refuse: str,
    input: str | pb.Image,
    peek: str,
    small: str | pb.Image,
) -> None:
    daemon = start_one(wasm)
    with pytest.raises(grpc.RpcError) as info:
        call(daemon, refuse, input)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    output = call(daemon, peek, small).json
    assert_no_card(output)
    assert output == NOTHING


def test_the_next_caller_cannot_read_an_output_the_host_freed(
    start_one: Callable[[bytes], RunningDaemon],
) -> None:
    daemon = start_one(REUSING)
    assert call(daemon, "copy", CARD_JSON).json == CARD_JSON
    # The guest's allocator hands call 2 the block of call 1's output.
    output = call(daemon, "fresh", "{}").json
    assert_no_card(output)
    assert output == "\0" * 16
