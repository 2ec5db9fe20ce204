"""The gRPC servicer: requests in, responses or statuses out, metrics at the edge."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc

from .calls import Caller
from .errors import GuestError, GuestTrap, InvalidArgument, WasmtubeError
from .gate import CallGate
from .metrics import UNKNOWN_LABEL, Metrics
from .registry import LoadedModule, ModuleRegistry, ModuleStatus
from .sandbox import ExportedFunction, GuestInstance, Output, PixelFormat
from .wire import ZERO_COPY_MIN_BYTES, WithPixels, split_pixels

__all__ = ["SERVICE", "Undecodable", "WasmtubeService", "add_to_server"]

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["Wasmtube"]

_OK = grpc.StatusCode.OK
# An enum member's .name is a descriptor call, and hashing one for a dict
# lookup runs Enum.__hash__ in Python; the common case needs neither.
_CODE_NAMES = {code: code.name for code in grpc.StatusCode}


class Undecodable:
    """Stands in for a request whose bytes did not parse.

    grpcio answers a deserialisation failure with INTERNAL "Exception
    deserializing request!", which blames the server. The usual cause is the
    caller's: a string field (such as `json`) holding bytes that are not UTF-8,
    which protobuf refuses and clients in some languages do not check. So the
    servicer gets this instead, and answers INVALID_ARGUMENT.
    """

    __slots__ = ("error",)

    def __init__(self, error: DecodeError) -> None:
        self.error = error


def _undecodable_message(method: str, request: Undecodable) -> str:
    return (
        f"the request to /{SERVICE.full_name}/{method} is not a valid protobuf message "
        f"(string fields such as json must be UTF-8): {request.error}"
    )


def _call_deserializer() -> Callable[[bytes], Any]:
    """Parse a CallRequest leniently; a large one with an image becomes
    WithPixels, its pixels left in place (wire.py)."""
    parse = _lenient(pb.CallRequest.FromString)

    def deserialize(data: bytes) -> Any:
        if len(data) >= ZERO_COPY_MIN_BYTES:
            try:
                split = split_pixels(data)
            except DecodeError as e:
                return Undecodable(e)
            if split is not None:
                return split
        return parse(data)

    return deserialize


def _lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def lenient_parse(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as e:
            return Undecodable(e)

    return lenient_parse


class WasmtubeService(pb_grpc.WasmtubeServicer):
    def __init__(
        self,
        registry: ModuleRegistry,
        caller: Caller,
        metrics: Metrics,
        call_timeout: float,
        gate: CallGate,
    ) -> None:
        self._registry = registry
        self._caller = caller
        self._metrics = metrics
        self._call_timeout = call_timeout
        self._gate = gate
        # Ids that tie a call's debug log line to the lines its guest logged.
        self._call_ids = itertools.count(1)

    def Call(self, request: Any, context: grpc.ServicerContext) -> pb.CallResponse:
        started = time.perf_counter()
        pixels = None
        if request.__class__ is WithPixels:
            request, pixels = request.request, request.pixels
        deadline = time.monotonic() + self._budget(context)
        call_id = next(self._call_ids)
        # Labels stay "_unknown" until the names are known to exist.
        module_label = function_label = UNKNOWN_LABEL
        code = _OK
        try:
            if request.__class__ is Undecodable:
                raise InvalidArgument(_undecodable_message("Call", request))
            module = self._caller.module(request)
            module_label = module.name
            function = self._caller.function(request, module)
            function_label = function.name
            gate = self._gate
            gate.enter()
            try:
                output = self._caller.call(request, module, function, deadline, call_id, pixels)
            finally:
                gate.leave()
            return _respond(output, module)
        except Exception as e:
            code = _status_of(e)
            self._refuse(context, e, code, module_label, function_label)
        finally:
            self._finished(request, module_label, function_label, code, started, call_id)

    def CallStream(
        self, requests: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[pb.CallResponse]:
        """One call per request message, all on one instance held for the stream.

        The stream is bound to the module version and function of its first
        message: a reload meanwhile serves new streams, not this one. Each
        message's guest call takes a slot of the module's limiter, as a Call
        does; between messages the instance waits, warm, for the next frame.
        """
        try:
            self._gate.enter()
        except WasmtubeError as e:
            _abort(context, e.status_code(), e.message)
        stream = _Stream()
        self._metrics.streams_open.inc()
        try:
            for index, request in enumerate(requests):
                yield self._stream_call(stream, index, request, context)
        finally:
            self._metrics.streams_open.dec()
            self._gate.leave()
            if stream.instance is not None and stream.instance_usable and stream.module:
                stream.module.pool.give(stream.instance)

    def _stream_call(
        self, stream: _Stream, index: int, request: Any, context: grpc.ServicerContext
    ) -> pb.CallResponse:
        started = time.perf_counter()
        deadline = time.monotonic() + self._budget(context)
        call_id = next(self._call_ids)
        module_label = function_label = UNKNOWN_LABEL
        code = _OK
        pixels = None
        if request.__class__ is WithPixels:
            request, pixels = request.request, request.pixels
        try:
            if isinstance(request, Undecodable):
                raise InvalidArgument(_undecodable_message("CallStream", request))
            module, function = self._stream_target(stream, index, request)
            module_label, function_label = module.name, function.name
            if stream.instance is None:
                stream.instance = module.pool.take()
            try:
                output = self._caller.call(
                    request, module, function, deadline, call_id, pixels, held=stream.instance
                )
            except GuestError as e:
                stream.instance_usable = e.instance_usable
                raise
            except WasmtubeError:
                stream.instance_usable = False
                raise
            return _respond(output, module)
        except Exception as e:
            code = _status_of(e)
            if not isinstance(e, WasmtubeError):
                stream.instance_usable = False
            prefix = f"message {index} of the stream: "
            self._refuse(context, e, code, module_label, function_label, prefix)
        finally:
            self._finished(request, module_label, function_label, code, started, call_id)

    def _stream_target(
        self, stream: _Stream, index: int, request: pb.CallRequest
    ) -> tuple[LoadedModule, ExportedFunction]:
        """The module version and function of the stream; the first message sets them."""
        if stream.module is None or stream.function is None:
            stream.module = self._caller.module(request)
            stream.function = self._caller.function(request, stream.module)
            return stream.module, stream.function
        named = (request.module, request.function)
        if named != ("", "") and named != (stream.module.name, stream.function.name):
            raise InvalidArgument(
                f"a stream calls one function: message {index} names "
                f"{request.module[:64]}.{request.function[:64]}, but the stream calls "
                f"{stream.module.name}.{stream.function.name}; leave module and function "
                f"empty after the first message, or open another stream"
            )
        return stream.module, stream.function

    def _refuse(
        self,
        context: grpc.ServicerContext,
        error: Exception,
        code: grpc.StatusCode,
        module: str,
        function: str,
        prefix: str = "",
    ) -> NoReturn:
        """End the RPC with `error`'s status, counting guest failures."""
        if isinstance(error, GuestTrap):
            self._metrics.trapped(module, function, error.reason)
        elif isinstance(error, GuestError):
            self._metrics.guest_failed(module, function, _CODE_NAMES[code])
        if isinstance(error, WasmtubeError):
            _abort(context, code, prefix + error.message)
        # A bug of ours: answer INTERNAL and keep serving.
        log.exception("call %s.%s failed unexpectedly", module, function)
        _abort(context, code, f"internal error in wasmtube: {type(error).__name__}: {error}")

    def _finished(
        self,
        request: pb.CallRequest | Undecodable,
        module: str,
        function: str,
        code: grpc.StatusCode,
        started: float,
        call_id: int,
    ) -> None:
        seconds = time.perf_counter() - started
        code_name = "OK" if code is _OK else _CODE_NAMES[code]
        self._metrics.call_finished(module, function, code_name, seconds)
        if log.isEnabledFor(logging.DEBUG):
            named = (
                ("", "") if isinstance(request, Undecodable) else (request.module, request.function)
            )
            log.debug(
                "call %s.%s [call %x] %s %.3f ms",
                named[0][:64],
                named[1][:64],
                call_id,
                code_name,
                seconds * 1000,
                # One field, since LogRecord already has a `module` attribute.
                extra={
                    "call": {
                        "module": named[0][:64],
                        "function": named[1][:64],
                        "call_id": f"{call_id:x}",
                        "status": code_name,
                        "duration_ms": round(seconds * 1000, 3),
                    }
                },
            )

    def _budget(self, context: grpc.ServicerContext) -> float:
        """Seconds this call may take: the caller's deadline, capped by ours."""
        remaining = context.time_remaining()
        if remaining is None:
            return self._call_timeout
        return min(remaining, self._call_timeout)

    def ListModules(
        self, request: pb.ListModulesRequest, context: grpc.ServicerContext
    ) -> pb.ListModulesResponse:
        if isinstance(request, Undecodable):
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                _undecodable_message("ListModules", request),
            )
        return pb.ListModulesResponse(modules=[_module_info(s) for s in self._registry.statuses()])


def add_to_server(service: WasmtubeService, server: grpc.Server) -> None:
    """Serve `service`: the generated add_WasmtubeServicer_to_server, except that
    a request that does not parse reaches the method as Undecodable."""
    handlers = {
        "Call": grpc.unary_unary_rpc_method_handler(
            service.Call,
            request_deserializer=_call_deserializer(),
            response_serializer=pb.CallResponse.SerializeToString,
        ),
        "CallStream": grpc.stream_stream_rpc_method_handler(
            service.CallStream,
            request_deserializer=_call_deserializer(),
            response_serializer=pb.CallResponse.SerializeToString,
        ),
        "ListModules": grpc.unary_unary_rpc_method_handler(
            service.ListModules,
            request_deserializer=_lenient(pb.ListModulesRequest.FromString),
            response_serializer=pb.ListModulesResponse.SerializeToString,
        ),
    }
    unserved = {m.name for m in SERVICE.methods} - set(handlers)
    if unserved:
        raise RuntimeError(f"no handler for {sorted(unserved)}: add them to add_to_server")
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)


class _Stream:
    """What one CallStream holds between its messages."""

    __slots__ = ("function", "instance", "instance_usable", "module")

    def __init__(self) -> None:
        self.module: LoadedModule | None = None
        self.function: ExportedFunction | None = None
        self.instance: GuestInstance | None = None
        # False once a call left the instance in an unknown state (a trap).
        self.instance_usable = True


# The ABI's pixel formats as the API's enum (the same numbers).
_WIRE_FORMATS = {
    PixelFormat.RGB8: pb.PIXEL_FORMAT_RGB8,
    PixelFormat.RGBA8: pb.PIXEL_FORMAT_RGBA8,
    PixelFormat.GRAY8: pb.PIXEL_FORMAT_GRAY8,
}


def _status_of(error: Exception) -> grpc.StatusCode:
    return error.status_code() if isinstance(error, WasmtubeError) else grpc.StatusCode.INTERNAL


def _respond(output: Output, module: LoadedModule) -> pb.CallResponse:
    """The response carrying `output` and the version that made it."""
    if isinstance(output, str):
        # One constructor call: the common case, on every JSON call.
        return pb.CallResponse(
            json=output, module_sha256=module.sha256, generation=module.generation
        )
    response = pb.CallResponse(module_sha256=module.sha256, generation=module.generation)
    # Filled in place: an Image passed to the constructor would be copied,
    # pixels and all.
    image = response.image
    image.data = output.data
    image.width = output.width
    image.height = output.height
    image.format = _WIRE_FORMATS[output.format]
    return response


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the RPC with `code`; grpc's abort raises, which this makes known."""
    context.abort(code, message)
    raise AssertionError("grpc.ServicerContext.abort returned")


def _module_info(status: ModuleStatus) -> pb.ModuleInfo:
    info = pb.ModuleInfo(name=status.name, last_error=status.last_error)
    if status.last_error_at is not None:
        info.last_error_at.CopyFrom(_timestamp(status.last_error_at.timestamp()))
    current = status.current
    if current is not None:
        info.sha256 = current.sha256
        info.generation = current.generation
        info.size_bytes = current.size_bytes
        info.loaded_at.CopyFrom(_timestamp(current.loaded_at.timestamp()))
        info.functions.extend(
            pb.FunctionInfo(
                name=f.name,
                signature=f.signature,
                calling_convention=pb.CallingConvention.Name(f.convention.value),
                image_formats=_image_formats(f),
            )
            for f in current.compiled.callable_functions
            if f.convention is not None
        )
        settings = current.settings
        info.settings.CopyFrom(
            pb.ModuleSettings(
                seed_offset=settings.seed_offset,
                instance_policy=settings.instance_policy,
                call_timeout_seconds=settings.call_timeout,
                max_memory_bytes=settings.max_memory,
                config_json=settings.config_json.decode("utf-8"),
                file_sha256=settings.file_sha256,
            )
        )
    return info


def _image_formats(function: ExportedFunction) -> list[pb.PixelFormat]:
    if not function.takes_image:
        return []
    if not function.takes_format:
        return [pb.PIXEL_FORMAT_RGB8]
    return list(_WIRE_FORMATS.values())


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
