"""gRPC server reflection, grpc.reflection.v1 and v1alpha, that finds every symbol.

Generic clients (grpcurl, grpcui, Postman, ghz) learn the daemon's API from
this service alone, so every question they may ask must get an answer:

- list_services: every service the daemon serves, these two included.
- file_containing_symbol: any fully-qualified name a schema defines
  (package, service, method, message at any depth, field, oneof, enum, enum
  value, extension). grpcio-reflection asks the descriptor pool, which under
  protobuf's upb backend does not find methods by full name, so `grpcurl
  describe wasmtube.v1.Wasmtube.Call` used to fail; here a SymbolIndex, built
  once at start in plain Python from the served FileDescriptorProtos, answers
  every lookup, and the pool is only used to collect those files.
- file_by_filename, file_containing_extension: as above, by name or by
  (message, field number).
- all_extension_numbers_of_type: the numbers of the known extensions of a
  message the daemon serves, none being an empty answer (grpcurl asks it of
  the messages it sends and would stop on an error); NOT_FOUND only for a
  name that is no such message.

A file is always sent with every file it imports, directly or not, the
asked-for file first: grpcurl takes the first as the answer and needs the
others to build it. Every request gets exactly one response, in order; one
that cannot be answered gets an error_response (NOT_FOUND, INVALID_ARGUMENT)
and the stream goes on.

Reflected descriptors normally carry no comments, yet the .proto's comments
are the API's documentation. proto/generate.sh therefore writes
wasmtube.binpb beside this module: a FileDescriptorSet of wasmtube.proto and
its imports with source info. Each file in it is served in place of the
pool's copy when the two describe the same schema, so grpcurl describe shows
the comments; if it is stale or missing, the pool's copy is served (without
comments) and a warning says so: what is served must always be the schema
the daemon really runs.

v1 and v1alpha have the same messages under two package names; one
ReflectionServicer class serves both, built with one or the other module of
message classes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from types import ModuleType
from typing import Any, TypeAlias

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as v1alpha_grpc

from .reflection_v1 import reflection_pb2 as v1_pb2
from .reflection_v1 import reflection_pb2_grpc as v1_grpc

__all__ = [
    "DESCRIPTOR_SET",
    "REFLECTION_SERVICES",
    "ReflectionServicer",
    "SymbolIndex",
    "documented_files",
    "enable_reflection",
    "pool_files",
]

log = logging.getLogger(__name__)

# The committed FileDescriptorSet with source info (see the module docstring).
DESCRIPTOR_SET = "wasmtube.binpb"
REFLECTION_SERVICES = (
    v1_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name,
    v1alpha_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name,
)

Request: TypeAlias = v1_pb2.ServerReflectionRequest | v1alpha_pb2.ServerReflectionRequest
Response: TypeAlias = v1_pb2.ServerReflectionResponse | v1alpha_pb2.ServerReflectionResponse
FileProto: TypeAlias = descriptor_pb2.FileDescriptorProto

_NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
_INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]


@dataclass(frozen=True)
class SymbolIndex:
    """Everything reflection can be asked about a fixed set of files.

    Built once from FileDescriptorProtos that must be closed under imports
    (every file a served file imports is served too), so that each answer
    can carry its file's dependencies.
    """

    services: tuple[str, ...]
    # File name -> that file, then everything it imports, serialized.
    closures: Mapping[str, tuple[bytes, ...]]
    # Fully-qualified symbol -> the name of the file defining it.
    symbols: Mapping[str, str]
    messages: frozenset[str]
    # Extended message -> field number -> the file defining the extension.
    extensions: Mapping[str, Mapping[int, str]]

    @classmethod
    def build(cls, files: Iterable[FileProto], services: Iterable[str]) -> SymbolIndex:
        by_name = {file.name: file for file in files}
        symbols: dict[str, str] = {}
        messages: set[str] = set()
        extensions: dict[str, dict[int, str]] = {}
        for file in by_name.values():
            missing = sorted(set(file.dependency) - by_name.keys())
            if missing:
                raise ValueError(f"{file.name} imports files that are not served: {missing}")
            for kind, name in _symbols(file):
                # The first file wins: only packages, which many files share,
                # can repeat in a consistent pool.
                symbols.setdefault(name, file.name)
                if kind == "message":
                    messages.add(name)
            for extension in _extensions(file):
                extendee = extension.extendee.removeprefix(".")
                extensions.setdefault(extendee, {})[extension.number] = file.name
        services = tuple(dict.fromkeys(services))
        for service in services:
            if service not in symbols:
                raise ValueError(f"service {service} is in none of the served files")
        serialized = {name: file.SerializeToString() for name, file in by_name.items()}
        closures = {
            name: tuple(serialized[n] for n in _with_imports(name, by_name)) for name in by_name
        }
        return cls(services, closures, symbols, frozenset(messages), extensions)

    def file_of(self, symbol: str) -> str | None:
        """The file defining `symbol` (a leading dot, as in type names, is allowed)."""
        return self.symbols.get(symbol.removeprefix("."))


def _symbols(file: FileProto) -> Iterator[tuple[str, str]]:
    """(kind, full name) of everything `file` defines, packages included."""
    parts = file.package.split(".") if file.package else []
    for i in range(len(parts)):
        yield "package", ".".join(parts[: i + 1])
    scope = f"{file.package}." if file.package else ""
    for message in file.message_type:
        yield from _message_symbols(scope, message)
    for enum in file.enum_type:
        yield from _enum_symbols(scope, enum)
    for extension in file.extension:
        yield "extension", scope + extension.name
    for service in file.service:
        name = scope + service.name
        yield "service", name
        for method in service.method:
            yield "method", f"{name}.{method.name}"


def _message_symbols(
    scope: str, message: descriptor_pb2.DescriptorProto
) -> Iterator[tuple[str, str]]:
    name = scope + message.name
    yield "message", name
    for field in message.field:
        yield "field", f"{name}.{field.name}"
    for oneof in message.oneof_decl:
        yield "oneof", f"{name}.{oneof.name}"
    for extension in message.extension:
        yield "extension", f"{name}.{extension.name}"
    for nested in message.nested_type:
        yield from _message_symbols(f"{name}.", nested)
    for enum in message.enum_type:
        yield from _enum_symbols(f"{name}.", enum)


def _enum_symbols(
    scope: str, enum: descriptor_pb2.EnumDescriptorProto
) -> Iterator[tuple[str, str]]:
    name = scope + enum.name
    yield "enum", name
    for value in enum.value:
        # An enum value's full name is a sibling of its enum's (C++ scoping:
        # wasmtube.v1.PIXEL_FORMAT_RGB8); under the enum's name it is found
        # too, as some clients spell it so.
        yield "enum value", scope + value.name
        yield "enum value", f"{name}.{value.name}"


def _extensions(file: FileProto) -> Iterator[descriptor_pb2.FieldDescriptorProto]:
    yield from file.extension
    pending = list(file.message_type)
    while pending:
        message = pending.pop()
        yield from message.extension
        pending.extend(message.nested_type)


def _with_imports(name: str, files: Mapping[str, FileProto]) -> list[str]:
    """`name`, then every file it imports directly or not, each once."""
    order = [name]
    seen = {name}
    for current in order:  # grows as it goes: a breadth-first walk
        for dependency in files[current].dependency:
            if dependency not in seen:
                seen.add(dependency)
                order.append(dependency)
    return order


def pool_files(
    services: Iterable[str], pool: descriptor_pool.DescriptorPool | None = None
) -> dict[str, FileProto]:
    """The files defining `services` and everything they import, as the
    descriptor pool (by default the generated modules') has them."""
    pool = pool if pool is not None else descriptor_pool.Default()
    pending = [pool.FindServiceByName(name).file for name in services]
    files: dict[str, FileProto] = {}
    while pending:
        file = pending.pop()
        if file.name not in files:
            files[file.name] = descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb)
            pending.extend(file.dependencies)
    return files


def documented_files(
    files: Mapping[str, FileProto], descriptor_set: descriptor_pb2.FileDescriptorSet
) -> dict[str, FileProto]:
    """`files`, each replaced by its copy in `descriptor_set` (with source
    info) when that copy describes the same schema; the others unchanged."""
    served = dict(files)
    for documented in descriptor_set.file:
        current = files.get(documented.name)
        if current is None:
            continue
        if _schema(documented) == _schema(current):
            served[documented.name] = documented
        else:
            log.warning(
                "%s differs from the schema the daemon runs: reflection serves %s without "
                "its comments; run proto/generate.sh",
                DESCRIPTOR_SET,
                documented.name,
            )
    return served


def _schema(file: FileProto) -> FileProto:
    """`file` without what protoc writes differently for a descriptor set
    and for generated code: source info, and json_name where it is the
    default one (a descriptor set spells it out for every field)."""
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file)
    copy.ClearField("source_code_info")
    fields = list(copy.extension)
    pending = list(copy.message_type)
    while pending:
        message = pending.pop()
        fields.extend(message.field)
        fields.extend(message.extension)
        pending.extend(message.nested_type)
    for field in fields:
        if field.json_name == _default_json_name(field.name):
            field.ClearField("json_name")
    return copy


def _default_json_name(name: str) -> str:
    """protoc's default JSON name: underscores dropped, each next letter upper-cased."""
    parts = name.split("_")
    return parts[0] + "".join(part[:1].upper() + part[1:] for part in parts[1:])


def _descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The committed descriptor set; empty (with a warning) when it is not installed."""
    resource = resources.files(__package__).joinpath(DESCRIPTOR_SET)
    try:
        data = resource.read_bytes()
    except OSError as e:
        log.warning("reflection serves no comments: cannot read %s: %s", DESCRIPTOR_SET, e)
        data = b""
    return descriptor_pb2.FileDescriptorSet.FromString(data)


class ReflectionServicer:
    """The ServerReflection service of one protocol version, whose message
    classes are in `messages` (v1_pb2 or v1alpha_pb2: the same shapes)."""

    def __init__(self, index: SymbolIndex, messages: ModuleType) -> None:
        self._index = index
        self._messages = messages

    async def ServerReflectionInfo(
        self, request_iterator: AsyncIterator[Request], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Response]:
        async for request in request_iterator:
            yield self.answer(request)

    def answer(self, request: Request) -> Response:
        """The one response to `request`: what it asks for, or an error_response."""
        index = self._index
        kind = request.WhichOneof("message_request")
        if kind == "list_services":
            services = [{"name": name} for name in index.services]
            return self._response(request, list_services_response={"service": services})
        if kind == "file_by_filename":
            name = request.file_by_filename
            return self._files(request, name if name in index.closures else None, name)
        if kind == "file_containing_symbol":
            symbol = request.file_containing_symbol
            return self._files(request, index.file_of(symbol), symbol)
        if kind == "file_containing_extension":
            wanted = request.file_containing_extension
            extendee = wanted.containing_type.removeprefix(".")
            file = index.extensions.get(extendee, {}).get(wanted.extension_number)
            what = f"extension {wanted.extension_number} of {wanted.containing_type}"
            return self._files(request, file, what)
        if kind == "all_extension_numbers_of_type":
            name = request.all_extension_numbers_of_type.removeprefix(".")
            if name not in index.messages:
                return self._error(request, _NOT_FOUND, f"message type not found: {name}")
            numbers = sorted(index.extensions.get(name, {}))
            return self._response(
                request,
                all_extension_numbers_response={
                    "base_type_name": name,
                    "extension_number": numbers,
                },
            )
        return self._error(request, _INVALID_ARGUMENT, "the request asks for nothing")

    def _files(self, request: Request, file: str | None, what: str) -> Response:
        if file is None:
            return self._error(request, _NOT_FOUND, f"not found: {what}")
        closure = self._index.closures[file]
        return self._response(request, file_descriptor_response={"file_descriptor_proto": closure})

    def _error(self, request: Request, code: int, message: str) -> Response:
        return self._response(
            request, error_response={"error_code": code, "error_message": message}
        )

    def _response(self, request: Request, **answer: Any) -> Response:
        response: Response = self._messages.ServerReflectionResponse(
            valid_host=request.host, original_request=request, **answer
        )
        return response


def enable_reflection(server: grpc.aio.Server, services: Iterable[str]) -> SymbolIndex:
    """Serve reflection v1 and v1alpha on `server` for `services` (by full
    name) and for reflection itself; the index both answer from."""
    names = tuple(dict.fromkeys((*services, *REFLECTION_SERVICES)))
    files = documented_files(pool_files(names), _descriptor_set())
    index = SymbolIndex.build(files.values(), names)
    v1_grpc.add_ServerReflectionServicer_to_server(ReflectionServicer(index, v1_pb2), server)
    v1alpha_grpc.add_ServerReflectionServicer_to_server(
        ReflectionServicer(index, v1alpha_pb2), server
    )
    return index
