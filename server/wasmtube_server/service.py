"""The gRPC servicer: requests in, responses or statuses out, metrics at the edge.

It runs on grpc.aio's event loop. Receiving a request, admitting it and
answering happen on the loop, where waiting costs a coroutine and holds no
thread; only the guest runs on a worker thread. So a client that opens
streams and never sends their bytes holds nothing but its own streams (at
most --max-connection-streams per connection, each for at most
--receive-timeout), and health checks are answered whatever the guests do.

`Call` and `CallStream` share one path (`_answer`): resolve the request
into an Invocation, take a call slot and a module slot, run it on a worker
thread, answer. A stream differs only in holding a stream slot and a lease on
one instance for its whole life.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from wasmtube.v1 import wasmtube_pb2 as pb

from .admission import CallSlots, StreamSlots, WorkerPool
from .admission.placement import INLINE_SLICE_SECONDS
from .calls import Caller, Invocation, SliceExpired
from .errors import (
    GuestError,
    GuestTrap,
    InvalidArgument,
    ReceiveTimedOut,
    WasmtubeError,
)
from .metrics import UNKNOWN_LABEL, Metrics
from .registry import LoadedModule, ModuleRegistry, ModuleStatus
from .sandbox import ExportedFunction, Lease, Output, PixelFormat
from .wire import ZERO_COPY_MIN_BYTES, WithPixels, split_pixels

__all__ = ["SERVICE", "Undecodable", "WasmtubeService", "add_to_server"]

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["Wasmtube"]

_OK = grpc.StatusCode.OK


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


class _Stream:
    """What one CallStream holds between its messages: the module version
    and function its first message named, and its lease on an instance."""

    __slots__ = ("function", "lease", "module")

    def __init__(self) -> None:
        self.module: LoadedModule | None = None
        self.function: ExportedFunction | None = None
        self.lease: Lease | None = None


class WasmtubeService:
    def __init__(
        self,
        registry: ModuleRegistry,
        caller: Caller,
        metrics: Metrics,
        call_timeout: float,
        receive_timeout: float,
        call_slots: CallSlots,
        stream_slots: StreamSlots,
        workers: WorkerPool,
    ) -> None:
        self._registry = registry
        self._caller = caller
        self._metrics = metrics
        self._call_timeout = call_timeout
        self._receive_timeout = receive_timeout
        self._call_slots = call_slots
        self._stream_slots = stream_slots
        self._workers = workers
        # Ids that tie a call's debug log line to the lines its guest logged.
        self._call_ids = itertools.count(1)
        # Streams waiting for their next message: ended at once on drain.
        self._idle_streams: set[asyncio.Task[Any]] = set()

    async def Call(self, _requests: Any, context: grpc.aio.ServicerContext) -> pb.CallResponse:
        # Served as client-streaming, so the wait for the request's bytes can
        # time out (a unary handler is only called once they have arrived);
        # a unary client sends one message, which is all this reads.
        request = await self._receive(context, "Call")
        if request is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the Call request has no message: send one"
            )
        return await self._answer(request, context, None, "")

    async def CallStream(self, _requests: Any, context: grpc.aio.ServicerContext) -> None:
        """One call per request message, all on one instance leased for the stream.

        The stream is bound to the module version and function of its first
        message: a reload meanwhile serves new streams, not this one.
        """
        try:
            self._call_slots.refuse_if_draining()
            self._stream_slots.take()
        except WasmtubeError as e:
            await context.abort(e.status_code(), e.message)
        stream = _Stream()
        self._metrics.streams_open.inc()
        try:
            for index in itertools.count():
                request = await self._receive(context, "CallStream", idle=True)
                if request is None:
                    return
                prefix = f"message {index} of the stream: "
                await context.write(await self._answer(request, context, stream, prefix))
        finally:
            self._metrics.streams_open.dec()
            self._stream_slots.give_back()
            if stream.lease is not None:
                stream.lease.release()

    async def _receive(
        self, context: grpc.aio.ServicerContext, method: str, idle: bool = False
    ) -> Any:
        """The next request message, or None at the end of the stream.

        Waits at most --receive-timeout; a stream waiting for its next message
        is `idle`, and ends with UNAVAILABLE at once when the daemon drains.
        """
        task = asyncio.current_task() if idle else None
        if task is not None:
            self._idle_streams.add(task)
        try:
            if task is not None and self._call_slots.draining:
                raise asyncio.CancelledError  # the drain came first
            async with asyncio.timeout(self._receive_timeout):
                message = await context.read()
        except TimeoutError:
            error = ReceiveTimedOut(
                f"no complete request message arrived within {self._receive_timeout:g} s "
                f"(--receive-timeout)"
                + ("; a stream must send its next message within it" if idle else "")
            )
            await context.abort(error.status_code(), error.message)
        except asyncio.CancelledError:
            if task is None or not self._call_slots.draining:
                raise
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "wasmtube is shutting down and ended this idle stream; open a new one",
            )
        finally:
            if task is not None:
                self._idle_streams.discard(task)
        return None if message is grpc.aio.EOF else message

    def end_idle_streams(self) -> None:
        """On drain: end every stream waiting for its next message."""
        for task in list(self._idle_streams):
            task.cancel()

    async def _answer(
        self,
        request: Any,
        context: grpc.aio.ServicerContext,
        stream: _Stream | None,
        prefix: str,
    ) -> pb.CallResponse:
        """The response to one call (a Call, or one message of a stream), or
        the abort that ends its RPC with a status."""
        started = time.perf_counter()
        call_id = next(self._call_ids)
        pixels = None
        if request.__class__ is WithPixels:
            request, pixels = request.request, request.pixels
        # Labels stay "_unknown" until the names are known to exist.
        module_label = function_label = UNKNOWN_LABEL
        code = _OK
        error: Exception | None = None
        try:
            if request.__class__ is Undecodable:
                method = "Call" if stream is None else "CallStream"
                raise InvalidArgument(_undecodable_message(method, request))
            if stream is None:
                module = self._caller.module(request)
                module_label = module.name
                function = self._caller.function(request, module)
            else:
                module, function = self._stream_target(stream, request)
            module_label, function_label = module.name, function.name
            deadline = time.monotonic() + self._budget(context)
            invocation = self._caller.invocation(
                request, module, function, deadline, call_id, pixels
            )
            if stream is not None and stream.lease is None:
                stream.lease = Lease(module.pool)
            output = await self._run(invocation, stream.lease if stream else None)
            return _respond(output, module)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as e:
            code = _status_of(e)
            error = e
        finally:
            self._finished(request, module_label, function_label, code, started, call_id)
        await self._refuse(context, error, code, module_label, function_label, prefix)
        raise AssertionError("grpc.aio.ServicerContext.abort returned")

    def _resolve(self, request: pb.CallRequest) -> tuple[LoadedModule, ExportedFunction]:
        module = self._caller.module(request)
        return module, self._caller.function(request, module)

    async def _run(self, invocation: Invocation, lease: Lease | None) -> Output:
        """Run `invocation`, holding a call slot and a slot of its module for
        as long as the guest runs: on the event loop if its function is
        known to be quick (admission/placement.py), else on a worker thread."""
        call_slots, module_slots = self._call_slots, invocation.module.slots
        call_slots.take()
        try:
            await module_slots.take(invocation.deadline)
        except BaseException:
            call_slots.give_back()
            raise

        def give_back() -> None:
            module_slots.give_back()
            call_slots.give_back()

        placement = invocation.module.placement
        name = invocation.function.name
        if lease is None and placement.inline(name):
            started = time.perf_counter()
            try:
                output = self._caller.run(invocation, None, INLINE_SLICE_SECONDS)
            except SliceExpired:
                placement.overran(name)
            except BaseException:
                give_back()
                raise
            else:
                placement.ran(name, time.perf_counter() - started)
                give_back()
                return output
        try:
            work = self._workers.submit(self._caller.run, invocation, lease)
        except BaseException:
            give_back()
            raise
        try:
            return await _outcome(work)
        finally:
            # A call cancelled by its client still runs until its guest
            # returns (by its deadline at the latest): its slots stay taken
            # until then, or the limits would not hold.
            _when_done(work, give_back)

    def _stream_target(
        self, stream: _Stream, request: pb.CallRequest
    ) -> tuple[LoadedModule, ExportedFunction]:
        """The module version and function of the stream; the first message sets them."""
        if stream.module is None or stream.function is None:
            stream.module, stream.function = self._resolve(request)
            return stream.module, stream.function
        named = (request.module, request.function)
        if named != ("", "") and named != (stream.module.name, stream.function.name):
            raise InvalidArgument(
                f"a stream calls one function: this message names "
                f"{request.module[:64]}.{request.function[:64]}, but the stream calls "
                f"{stream.module.name}.{stream.function.name}; leave module and function "
                f"empty after the first message, or open another stream"
            )
        return stream.module, stream.function

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext,
        error: Exception | None,
        code: grpc.StatusCode,
        module: str,
        function: str,
        prefix: str,
    ) -> None:
        """End the RPC with `error`'s status, counting guest failures."""
        if isinstance(error, GuestTrap):
            self._metrics.trapped(module, function, error.reason)
        elif isinstance(error, GuestError):
            self._metrics.guest_failed(module, function, code.name)
        if isinstance(error, WasmtubeError):
            await context.abort(code, prefix + error.message)
        # A bug of ours: answer INTERNAL and keep serving.
        log.error("call %s.%s failed unexpectedly", module, function, exc_info=error)
        await context.abort(
            code, f"{prefix}internal error in wasmtube: {type(error).__name__}: {error}"
        )

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
        code_name = code.name
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

    def _budget(self, context: grpc.aio.ServicerContext) -> float:
        """Seconds this call may take: the caller's deadline, capped by ours."""
        remaining = context.time_remaining()
        if remaining is None:
            return self._call_timeout
        return min(remaining, self._call_timeout)

    async def ListModules(
        self, request: pb.ListModulesRequest | Undecodable, context: grpc.aio.ServicerContext
    ) -> pb.ListModulesResponse:
        if isinstance(request, Undecodable):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, _undecodable_message("ListModules", request)
            )
        return pb.ListModulesResponse(modules=[_module_info(s) for s in self._registry.statuses()])


async def _outcome(work: futures.Future[Output]) -> Output:
    """The result of `work`, awaited on the event loop.

    If the RPC ends meanwhile (its caller cancelled, or its deadline passed),
    the guest still runs on a worker thread until its own deadline, which is
    never later than the caller's: wait for it, so that the call's real
    outcome (a trap, a timeout) is what its metrics count.
    """
    result = asyncio.wrap_future(work)
    try:
        return await asyncio.shield(result)
    except asyncio.CancelledError:
        if work.cancel():
            raise  # never started
        return await result


def _when_done(work: futures.Future[Any], release: Callable[[], None]) -> None:
    """Call `release` on this event loop once `work` is done: now if it is,
    else when its thread finishes it."""
    if work.done():
        release()
        return
    loop = asyncio.get_running_loop()
    work.add_done_callback(lambda _: loop.call_soon_threadsafe(release))


def add_to_server(service: WasmtubeService, server: grpc.aio.Server) -> None:
    """Serve `service`: the generated handlers, except that a request that
    does not parse reaches the method as Undecodable, and Call is received
    as a client stream (see WasmtubeService.Call)."""
    handlers = {
        "Call": grpc.stream_unary_rpc_method_handler(
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
