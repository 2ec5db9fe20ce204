"""wasmtube: call sandboxed WebAssembly functions served by a wasmtube daemon.

This package is the light client. It needs only grpcio, protobuf and click;
numpy and Pillow are used when the caller passes their objects, and nothing
from the daemon (wasmtime, wasmtube_server) is imported here.
"""

from importlib.metadata import PackageNotFoundError, version

from wasmtube._aio import AsyncClient
from wasmtube._client import Client
from wasmtube.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    ResultDecodeError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    WasmtubeError,
    from_rpc_error,
)

try:
    __version__ = version("wasmtube")
except PackageNotFoundError:
    # Running from a source tree that was never installed.
    __version__ = "0+unknown"

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "Cancelled",
    "Client",
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
    "__version__",
    "from_rpc_error",
]
