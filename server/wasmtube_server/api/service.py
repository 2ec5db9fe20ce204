"""The Wasmtube servicer: requests in, responses or statuses out, metrics at the edge.

It runs on grpc.aio's event loop. Receiving a request, admitting it and
answering happen on the loop, where waiting costs a coroutine and holds no
thread. So a client that opens streams and never sends their bytes holds
nothing but its own streams (at most --max-connection-streams per
connection, each for at most --receive-timeout), and health checks are
answered whatever the guests do.

`Call` and `CallStream` share one path (`_answer`): the request is resolved
into an Invocation (modules/resolve.py, requests.py), admitted (a call slot
and a slot of its module, admission/), run on the loop or a worker thread
(admission/placement.py, sandbox/invocation.py), and answered
(responses.py). A stream differs only in holding a stream slot and a lease
on one instance for its whole life.
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

from wasmtube.v1 import wasmtube_pb2 as pb

from ..admission import CallSlots, StreamSlots, WorkerPool
from ..admission.placement import INLINE_SLICE_SECONDS
from ..errors import GuestError, GuestTrap, InvalidArgument, ReceiveTimedOut, WasmtubeError
from ..metrics import UNKNOWN_LABEL, Metrics
from ..modules.registry import LoadedModule, ModuleRegistry
from ..modules.resolve import Resolver
from ..sandbox import CallLabel, ExportedFunction, Invocation, Lease, Output, SliceExpired, invoke
from .requests import Undecodable, call_deserializer, lenient, payload_of
from .responses import check_json_output, module_info, response_of
from .wire import WithPixels

__all__ = ["SERVICE", "WasmtubeService", "add_to_server"]

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["Wasmtube"]


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
        metrics: Metrics,
        *,
        call_timeout: float,
        receive_timeout: float,
        check_output: bool,
        call_slots: CallSlots,
        stream_slots: StreamSlots,
        workers: WorkerPool,
    ) -> None:
        self._registry = registry
        self._resolver = Resolver(registry)
        self._metrics = metrics
        self._call_timeout = call_timeout
        self._receive_timeout = receive_timeout
        self._check_output = check_output
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
        request = await self._receive(context)
        if request is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the Call request has no message: send one"
            )
        return await self._answer(request, context, None)

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
                request = await self._receive(context, idle_stream=True)
                if request is None:
                    return
                await context.write(await self._answer(request, context, stream, index))
        finally:
            self._metrics.streams_open.dec()
            self._stream_slots.give_back()
            if stream.lease is not None:
                stream.lease.release()

    async def ListModules(
        self, request: pb.ListModulesRequest | Undecodable, context: grpc.aio.ServicerContext
    ) -> pb.ListModulesResponse:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message("ListModules"))
        return pb.ListModulesResponse(modules=[module_info(s) for s in self._registry.statuses()])

    def end_idle_streams(self) -> None:
        """On drain: end every stream waiting for its next message."""
        for task in list(self._idle_streams):
            task.cancel()

    async def _receive(self, context: grpc.aio.ServicerContext, idle_stream: bool = False) -> Any:
        """The next request message, or None at the end of the stream.

        Waits at most --receive-timeout. A stream waiting for its next
        message ends with UNAVAILABLE at once when the daemon drains.
        """
        task = asyncio.current_task() if idle_stream else None
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
                + ("; a stream must send its next message within it" if idle_stream else "")
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

    async def _answer(
        self,
        request: Any,
        context: grpc.aio.ServicerContext,
        stream: _Stream | None,
        index: int = 0,
    ) -> pb.CallResponse:
        """The response to one call (a Call, or message `index` of a stream),
        or the abort that ends its RPC with a status."""
        started = time.perf_counter()
        call_id = next(self._call_ids)
        pixels = None
        if isinstance(request, WithPixels):
            request, pixels = request.request, request.pixels
        # Labels stay "_unknown" until the names are known to exist.
        module_label = function_label = UNKNOWN_LABEL
        code = grpc.StatusCode.OK
        error: Exception | None = None
        try:
            if isinstance(request, Undecodable):
                raise InvalidArgument(request.message("Call" if stream is None else "CallStream"))
            if stream is None:
                module = self._resolver.module(request.module)
                module_label = module.name
                function = self._resolver.function(module, request.function)
            else:
                module, function = self._stream_target(stream, request)
            module_label, function_label = module.name, function.name
            invocation = self._invocation(request, module, function, pixels, context, call_id)
            if stream is not None and stream.lease is None:
                stream.lease = Lease(module.pool)
            output = await self._run(invocation, module, stream.lease if stream else None)
            if self._check_output and isinstance(output, str):
                check_json_output(function.name, output)
            return response_of(output, module)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as e:
            code = e.status_code() if isinstance(e, WasmtubeError) else grpc.StatusCode.INTERNAL
            error = e
        finally:
            self._finished(request, module_label, function_label, code, started, call_id)
        prefix = "" if stream is None else f"message {index} of the stream: "
        await self._refuse(context, error, code, module_label, function_label, prefix)
        raise AssertionError("grpc.aio.ServicerContext.abort returned")

    def _invocation(
        self,
        request: pb.CallRequest,
        module: LoadedModule,
        function: ExportedFunction,
        pixels: memoryview | None,
        context: grpc.aio.ServicerContext,
        call_id: int,
    ) -> Invocation:
        """The call `request` asks for: due by the caller's deadline, capped by
        --call-timeout and the module's own call_timeout."""
        settings = module.settings
        budget = min(self._call_timeout, settings.call_timeout)
        remaining = context.time_remaining()
        if remaining is not None:
            budget = min(budget, remaining)
        return Invocation(
            module.pool,
            function,
            payload_of(request, function, pixels),
            settings.seed_offset,
            time.monotonic() + budget,
            budget,
            CallLabel(module.name, function.name, call_id),
        )

    def _stream_target(
        self, stream: _Stream, request: pb.CallRequest
    ) -> tuple[LoadedModule, ExportedFunction]:
        """The module version and function of the stream; the first message sets them."""
        if stream.module is None or stream.function is None:
            stream.module = self._resolver.module(request.module)
            stream.function = self._resolver.function(stream.module, request.function)
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

    async def _run(
        self, invocation: Invocation, module: LoadedModule, lease: Lease | None
    ) -> Output:
        """Run `invocation`, holding a call slot and a slot of its module for
        as long as the guest runs: on the event loop if its function is
        known to be quick (admission/placement.py), else on a worker thread."""
        call_slots, module_slots = self._call_slots, module.slots
        call_slots.take()
        try:
            await module_slots.take(invocation.deadline)
        except BaseException:
            call_slots.give_back()
            raise

        def give_back() -> None:
            module_slots.give_back()
            call_slots.give_back()

        placement = module.placement
        name = invocation.function.name
        if lease is None and placement.inline(name):
            started = time.perf_counter()
            try:
                output = invoke(invocation, None, INLINE_SLICE_SECONDS)
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
            work = self._workers.submit(invoke, invocation, lease)
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
        self._metrics.call_finished(module, function, code.name, seconds)
        if log.isEnabledFor(logging.DEBUG):
            named = (
                ("", "") if isinstance(request, Undecodable) else (request.module, request.function)
            )
            log.debug(
                "call %s.%s [call %x] %s %.3f ms",
                named[0][:64],
                named[1][:64],
                call_id,
                code.name,
                seconds * 1000,
                # One field, since LogRecord already has a `module` attribute.
                extra={
                    "call": {
                        "module": named[0][:64],
                        "function": named[1][:64],
                        "call_id": f"{call_id:x}",
                        "status": code.name,
                        "duration_ms": round(seconds * 1000, 3),
                    }
                },
            )


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
            request_deserializer=call_deserializer(),
            response_serializer=pb.CallResponse.SerializeToString,
        ),
        "CallStream": grpc.stream_stream_rpc_method_handler(
            service.CallStream,
            request_deserializer=call_deserializer(),
            response_serializer=pb.CallResponse.SerializeToString,
        ),
        "ListModules": grpc.unary_unary_rpc_method_handler(
            service.ListModules,
            request_deserializer=lenient(pb.ListModulesRequest.FromString),
            response_serializer=pb.ListModulesResponse.SerializeToString,
        ),
    }
    unserved = {m.name for m in SERVICE.methods} - set(handlers)
    if unserved:
        raise RuntimeError(f"no handler for {sorted(unserved)}: add them to add_to_server")
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
