"""The gRPC servicer: requests in, responses or statuses out, metrics at the edge."""

from __future__ import annotations

import logging
import time
from typing import NoReturn

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc

from .calls import Caller
from .drain import Drain
from .errors import GuestTrap, WasmtubeError
from .metrics import UNKNOWN_LABEL, Metrics
from .registry import ModuleRegistry, ModuleStatus

__all__ = ["WasmtubeService"]

log = logging.getLogger(__name__)


class WasmtubeService(pb_grpc.WasmtubeServicer):
    def __init__(
        self,
        registry: ModuleRegistry,
        caller: Caller,
        metrics: Metrics,
        call_timeout: float,
        drain: Drain,
    ) -> None:
        self._registry = registry
        self._caller = caller
        self._metrics = metrics
        self._call_timeout = call_timeout
        self._drain = drain

    def Call(self, request: pb.CallRequest, context: grpc.ServicerContext) -> pb.CallResponse:
        started = time.perf_counter()
        deadline = time.monotonic() + self._budget(context)
        # Labels stay "_unknown" until the names are known to exist.
        module_label = function_label = UNKNOWN_LABEL
        code = grpc.StatusCode.OK
        try:
            module = self._caller.module(request)
            module_label = module.name
            function = self._caller.function(request, module)
            function_label = function.name
            with self._drain.call():
                result = self._caller.call(request, module, function, deadline)
            return pb.CallResponse(
                json=result.json,
                module_sha256=result.module.sha256,
                generation=result.module.generation,
            )
        except WasmtubeError as e:
            code = e.grpc_code
            if isinstance(e, GuestTrap):
                self._metrics.trapped(module_label, function_label, e.reason)
            _abort(context, code, e.message)
        except Exception as e:
            # A bug of ours: answer INTERNAL and keep serving.
            code = grpc.StatusCode.INTERNAL
            log.exception("call %s.%s failed unexpectedly", module_label, function_label)
            _abort(context, code, f"internal error in wasmtube: {type(e).__name__}: {e}")
        finally:
            seconds = time.perf_counter() - started
            self._metrics.call_finished(module_label, function_label, code.name, seconds)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "call %s.%s %s %.3f ms",
                    request.module[:64],
                    request.function[:64],
                    code.name,
                    seconds * 1000,
                    # One field, since LogRecord already has a `module` attribute.
                    extra={
                        "call": {
                            "module": request.module[:64],
                            "function": request.function[:64],
                            "status": code.name,
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
        return pb.ListModulesResponse(modules=[_module_info(s) for s in self._registry.statuses()])


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
            )
            for f in current.compiled.callable_functions
            if f.convention is not None
        )
    return info


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
