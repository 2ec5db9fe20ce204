"""Every bad request gets a precise status and a message a person can act on,
and the daemon keeps serving its modules afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from conftest import RunningDaemon, json_module, wait_until, wat
from wasmtube.v1 import wasmtube_pb2 as pb

# Functions of a module that misbehaves in every way a guest can, on purpose.
BAD_GUEST = wat("""
(module
  (memory (export "memory") 1)
  (data (i32.const 2048) "\\ff\\fe{not json")
  (func (export "ok") (param i32 i32) (result i32)
    (i32.store8 (local.get 0) (i32.const 0x7b))
    (i32.store8 (i32.add (local.get 0) (i32.const 1)) (i32.const 0x7d))
    (i32.const 2))
  (func (export "trap") (param i32 i32) (result i32) unreachable)
  (func (export "divide_by_zero") (param i32 i32) (result i32)
    (i32.div_u (i32.const 1) (i32.const 0)))
  (func (export "oob_access") (param i32 i32) (result i32)
    (i32.load (i32.const 0x7ffffff0)))
  (func (export "length_past_memory") (param i32 i32) (result i32) (i32.const 65536))
  (func (export "negative_length") (param i32 i32) (result i32) (i32.const -1))
  (func (export "not_utf8") (param i32 i32) (result i32)
    (memory.copy (local.get 0) (i32.const 2048) (i32.const 11)) (i32.const 11))
  (func (export "not_json") (param i32 i32) (result i32)
    (memory.copy (local.get 0) (i32.const 2050) (i32.const 9)) (i32.const 9))
  ;; 5,000 [ then 5,000 ]: valid JSON, nested deeper than Python's parser follows.
  (func (export "deep_json") (param $ptr i32) (param i32) (result i32) (local $i i32)
    (loop $fill
      (i32.store8 (i32.add (local.get $ptr) (local.get $i)) (i32.const 0x5b))
      (i32.store8 (i32.add (local.get $ptr) (i32.add (local.get $i) (i32.const 5000)))
        (i32.const 0x5d))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 5000))))
    (i32.const 10000))
  (func (export "wrong_signature") (param i64) (result i32) (i32.const 0))
  (func (export "image_ok") (param i32 i32 i32 i32) (result i32)
    (i32.store8 (local.get 0) (i32.const 0x7b))
    (i32.store8 (i32.add (local.get 0) (i32.const 1)) (i32.const 0x7d))
    (i32.const 2))
  (global (export "not_a_function") i32 (i32.const 7)))
""")


@pytest.fixture
def bad_daemon(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    (modules_dir / "bad.wasm").write_bytes(BAD_GUEST)
    (modules_dir / "good.wasm").write_bytes(json_module('{"good":true}'))
    return start_daemon(modules_dir)


def call_error(daemon: RunningDaemon, request: pb.CallRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        daemon.stub.Call(request)
    return info.value


def json_call(module: str, function: str, text: str = "{}") -> pb.CallRequest:
    return pb.CallRequest(module=module, function=function, json=text)


def image_call(module: str, function: str, data: bytes, width: int, height: int) -> pb.CallRequest:
    image = pb.Image(data=data, width=width, height=height)
    return pb.CallRequest(module=module, function=function, image=image)


# (request, expected code, words the message must contain)
CASES: dict[str, tuple[pb.CallRequest, grpc.StatusCode, str]] = {
    "unknown module": (
        json_call("nope", "ok"),
        grpc.StatusCode.NOT_FOUND,
        "module 'nope' is not loaded",
    ),
    "unknown function": (
        json_call("bad", "nope"),
        grpc.StatusCode.NOT_FOUND,
        "exports no function 'nope'",
    ),
    "export that is not a function": (
        json_call("bad", "not_a_function"),
        grpc.StatusCode.NOT_FOUND,
        "no function",
    ),
    "empty module name": (
        json_call("", "ok"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "module name is empty",
    ),
    "empty function name": (
        json_call("bad", ""),
        grpc.StatusCode.INVALID_ARGUMENT,
        "function name is empty",
    ),
    "module name with a slash": (
        json_call("../bad", "ok"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a plain file stem",
    ),
    "module name with dot-dot": (
        json_call("bad..x", "ok"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a plain file stem",
    ),
    "module name with NUL": (
        json_call("bad\0", "ok"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a plain file stem",
    ),
    "module name of 10 KB": (
        json_call("a" * 10_000, "ok"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a plain file stem",
    ),
    "hidden module name": (
        json_call(".bad", "ok"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a plain file stem",
    ),
    "function name with NUL": (
        json_call("bad", "ok\0"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a valid export name",
    ),
    "invalid JSON": (
        json_call("bad", "ok", "{'a': 1}"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not valid JSON",
    ),
    "JSON with trailing data": (
        json_call("bad", "ok", '{"a": 1} {"b": 2}'),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Extra data at line 1 column 10",
    ),
    "JSON nested 100,000 deep": (
        json_call("bad", "ok", "[" * 100_000 + "]" * 100_000),
        grpc.StatusCode.INVALID_ARGUMENT,
        "nests arrays and objects too deeply",
    ),
    "no input at all": (
        pb.CallRequest(module="bad", function="ok"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "no input",
    ),
    "image to a JSON function": (
        image_call("bad", "ok", bytes(3), 1, 1),
        grpc.StatusCode.INVALID_ARGUMENT,
        "send CallRequest.json",
    ),
    "JSON to an image function": (
        json_call("bad", "image_ok"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "send CallRequest.image",
    ),
    "image size mismatch": (
        image_call("bad", "image_ok", bytes(3), 10, 10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "300 bytes",
    ),
    "image of zero width": (
        image_call("bad", "image_ok", b"", 0, 10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "0x10",
    ),
    "image sizes that overflow 32 bits": (
        image_call("bad", "image_ok", bytes(12), 65536, 65536),
        grpc.StatusCode.INVALID_ARGUMENT,
        "12884901888 bytes",
    ),
    "wrong-signature function": (
        json_call("bad", "wrong_signature"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "(i64) -> i32",
    ),
    "guest trap": (json_call("bad", "trap"), grpc.StatusCode.INTERNAL, "unreachable"),
    "guest divides by zero": (
        json_call("bad", "divide_by_zero"),
        grpc.StatusCode.INTERNAL,
        "divide by zero",
    ),
    "guest reads out of bounds": (
        json_call("bad", "oob_access"),
        grpc.StatusCode.INTERNAL,
        "out of bounds",
    ),
    "output length past memory": (
        json_call("bad", "length_past_memory"),
        grpc.StatusCode.INTERNAL,
        "output length 65536",
    ),
    "negative output length": (
        json_call("bad", "negative_length"),
        grpc.StatusCode.INTERNAL,
        "output length -1",
    ),
    "output not UTF-8": (json_call("bad", "not_utf8"), grpc.StatusCode.INTERNAL, "not UTF-8"),
    "input larger than linear memory": (
        json_call("bad", "ok", json.dumps("x" * 70_000)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "does not fit in the guest's linear memory",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_request_gets_precise_status(bad_daemon: RunningDaemon, case: str) -> None:
    request, code, words = CASES[case]
    error = call_error(bad_daemon, request)
    assert error.code() == code, error.details()
    assert words.lower() in error.details().lower()
    # The daemon still serves, and lost no module.
    assert bad_daemon.call("good", "get").json == '{"good":true}'
    assert bad_daemon.call("bad", "ok").json == "{}"
    assert set(bad_daemon.modules()) == {"bad", "good"}


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("not_json", "returned 9 characters that are not JSON"),
        ("deep_json", "returned 10000 characters of JSON that nest too deeply to be checked"),
    ],
)
def test_output_that_cannot_be_checked_as_json_is_refused_with_check_output(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, function: str, message: str
) -> None:
    (modules_dir / "bad.wasm").write_bytes(BAD_GUEST)
    daemon = start_daemon(modules_dir, check_output=True)
    error = call_error(daemon, json_call("bad", function))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert message in error.details()
    assert daemon.call("bad", "ok").json == "{}"
    assert daemon.metric("wasmtube_calls_total", module="bad", function=function, code="INTERNAL")


def test_output_is_passed_on_unparsed_without_check_output(bad_daemon: RunningDaemon) -> None:
    # The default: only UTF-8 is checked (see "output not UTF-8" above).
    assert bad_daemon.call("bad", "not_json").json == "{not json"


def test_module_that_failed_to_load_says_why(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    (modules_dir / "broken.wasm").write_bytes(b"\0asm\x01\0\0\0garbage")
    daemon = start_daemon(modules_dir)
    error = call_error(daemon, json_call("broken", "f"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "failed to load" in error.details()


def test_trapped_instance_is_not_reused(bad_daemon: RunningDaemon) -> None:
    # After a trap the next call on the same module runs on a sound instance.
    for _ in range(3):
        call_error(bad_daemon, json_call("bad", "trap"))
        assert bad_daemon.call("bad", "ok").json == "{}"


def test_request_over_the_message_limit_names_the_limit(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    (modules_dir / "good.wasm").write_bytes(json_module("{}"))
    daemon = start_daemon(modules_dir, max_message_size=64 * 1024)
    error = call_error(daemon, json_call("good", "echo", json.dumps("x" * 100_000)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "65536" in error.details()
    assert daemon.call("good", "get").json == "{}"


def test_load_failure_is_logged_with_the_serving_generation(
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (modules_dir / "m.wasm").write_bytes(json_module("{}"))
    daemon = start_daemon(modules_dir)
    with caplog.at_level("ERROR", logger="wasmtube_server"):
        (modules_dir / "m.wasm").write_bytes(b"\0asm broken")
        wait_until(lambda: daemon.modules()["m"].last_error)
    (record,) = [r for r in caplog.records if "failed to load" in r.getMessage()]
    assert "module m failed to load, generation 1 keeps serving" in record.getMessage()
    assert "does not compile" in record.getMessage()


def _field(number: int, data: bytes) -> bytes:
    """One length-delimited protobuf field, written by hand."""
    return bytes([number << 3 | 2, len(data)]) + data


@pytest.mark.parametrize(
    "raw",
    [
        _field(1, b"good") + _field(2, b"echo") + _field(3, b'{"args":"\xff"}'),
        _field(1, b"go\xc3od") + _field(2, b"echo") + _field(3, b"{}"),
        b"\xff\xff\xff",
    ],
    ids=["json-not-utf8", "module-not-utf8", "not-protobuf"],
)
def test_undecodable_request_is_invalid_argument(bad_daemon: RunningDaemon, raw: bytes) -> None:
    # Python's protobuf refuses to build such requests; other languages' may not.
    call = bad_daemon.channel.unary_unary(
        "/wasmtube.v1.Wasmtube/Call",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as info:
        call(raw)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in info.value.details()
    assert bad_daemon.call("good", "get").json == '{"good":true}'


def test_undecodable_list_modules_request_is_invalid_argument(bad_daemon: RunningDaemon) -> None:
    call = bad_daemon.channel.unary_unary(
        "/wasmtube.v1.Wasmtube/ListModules",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as info:
        call(b"\xff\xff\xff")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "/wasmtube.v1.Wasmtube/ListModules is not a valid protobuf message" in (
        info.value.details()
    )
    assert set(bad_daemon.modules()) == {"bad", "good"}
