"""Exceptions raised by the wasmtube client, one class per gRPC status code.

Modelled on google-api-core's exceptions: callers catch `wasmtube.NotFound`
instead of inspecting `grpc.RpcError.code()`, and every class still carries the
status code and the server's message for logging.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "ResultDecodeError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "WasmtubeError",
    "from_rpc_error",
]


class WasmtubeError(Exception):
    """Base class of every error the client raises on purpose."""

    # The status code this class stands for; None for errors found client side.
    grpc_status_code: ClassVar[grpc.StatusCode | None] = None

    code: grpc.StatusCode | None
    message: str
    rpc_error: grpc.RpcError | None

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        rpc_error: grpc.RpcError | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # The base class is also the fallback for codes without a subclass, so
        # it must be able to carry a code other than its class attribute.
        self.code = code if code is not None else self.grpc_status_code
        self.rpc_error = rpc_error

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"{self.code.name}: {self.message}"


class Cancelled(WasmtubeError):
    grpc_status_code = grpc.StatusCode.CANCELLED


class Unknown(WasmtubeError):
    grpc_status_code = grpc.StatusCode.UNKNOWN


class InvalidArgument(WasmtubeError):
    grpc_status_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(WasmtubeError):
    grpc_status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(WasmtubeError):
    grpc_status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(WasmtubeError):
    grpc_status_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(WasmtubeError):
    grpc_status_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(WasmtubeError):
    grpc_status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(WasmtubeError):
    grpc_status_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(WasmtubeError):
    grpc_status_code = grpc.StatusCode.ABORTED


class OutOfRange(WasmtubeError):
    grpc_status_code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(WasmtubeError):
    grpc_status_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(WasmtubeError):
    grpc_status_code = grpc.StatusCode.INTERNAL


class Unavailable(WasmtubeError):
    grpc_status_code = grpc.StatusCode.UNAVAILABLE


class DataLoss(WasmtubeError):
    grpc_status_code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(WasmtubeError):
    grpc_status_code = grpc.StatusCode.UNAUTHENTICATED


class ResultDecodeError(WasmtubeError):
    """The call succeeded but its result is not a JSON document."""

    json_text: str

    def __init__(self, message: str, *, json_text: str = "") -> None:
        super().__init__(message)
        # Kept so the caller can log or salvage what the guest produced.
        self.json_text = json_text


# The one place that ties codes to classes: each class declares its own code.
_CLASS_BY_CODE: dict[grpc.StatusCode, type[WasmtubeError]] = {
    cls.grpc_status_code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
    if cls.grpc_status_code is not None
}


def from_rpc_error(err: grpc.RpcError) -> WasmtubeError:
    """Translate a gRPC error into the matching `WasmtubeError` subclass.

    Use as `raise from_rpc_error(e) from e`; the original stays reachable as
    `rpc_error` too, for callers that want its trailing metadata.
    """
    # grpc.RpcError itself declares neither code() nor details(); only the
    # concrete errors raised by a call (which are also grpc.Call) have them.
    code_method = getattr(err, "code", None)
    code = code_method() if callable(code_method) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN

    details_method = getattr(err, "details", None)
    if callable(details_method):
        details = details_method()
        message = details if isinstance(details, str) else ""
    else:
        message = str(err)

    cls = _CLASS_BY_CODE.get(code, WasmtubeError)
    return cls(message, code=code, rpc_error=err)
