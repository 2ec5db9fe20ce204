"""The synchronous wasmtube client: JSON and images in, decoded JSON out."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import grpc

from wasmtube._images import to_rgb8
from wasmtube.errors import ResultDecodeError, from_rpc_error
from wasmtube.v1 import wasmtube_pb2, wasmtube_pb2_grpc

if TYPE_CHECKING:
    from wasmtube._images import ImageInput

__all__ = [
    "DEFAULT",
    "DEFAULT_CHANNEL_OPTIONS",
    "DEFAULT_TARGET",
    "MAX_MESSAGE_BYTES",
    "Client",
    "decode_result",
]

DEFAULT_TARGET: Final = "127.0.0.1:50051"

# gRPC's 4 MiB default receive limit is a 1.4-megapixel RGB8 image; raise both
# directions so ordinary photos fit in one request.
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024

DEFAULT_CHANNEL_OPTIONS: Final[tuple[tuple[str, Any], ...]] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)


class _Default(enum.Enum):
    # A sentinel, because None already means something for both arguments that
    # use it: "no deadline" for timeout and JSON null for data.
    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default.DEFAULT

Timeout = float | None | _Default


class Client:
    """A connection to one wasmtube daemon.

    `timeout` is the default deadline in seconds for every call (None: no
    deadline); each method's `timeout` keyword overrides it for that call,
    `timeout=None` included. Pass `channel` to bring your own (for TLS, say):
    the client then uses it as is and `close()` leaves it open. `options` are
    extra channel arguments, applied over `DEFAULT_CHANNEL_OPTIONS` key by key.

    Every gRPC failure is raised as a `wasmtube.errors.WasmtubeError` subclass.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = None,
        channel: grpc.Channel | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.target = target
        self.timeout = timeout
        if channel is None:
            merged = dict(DEFAULT_CHANNEL_OPTIONS)
            merged.update(options)
            self._channel = grpc.insecure_channel(target, options=list(merged.items()))
            self._owns_channel = True
        else:
            self._channel = channel
            self._owns_channel = False
        self._stub = wasmtube_pb2_grpc.WasmtubeStub(self._channel)

    def close(self) -> None:
        """Close the channel if this client created it. Safe to call twice."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(
        self,
        module: str,
        function: str,
        data: Any = DEFAULT,
        *,
        timeout: Timeout = DEFAULT,
    ) -> Any:
        """Call `module.function` with `data` as JSON; return the decoded result.

        `data` defaults to `{}`; `None` is sent as JSON `null`. Raises
        `TypeError`/`ValueError` if `data` is not JSON-serialisable (NaN and
        infinities included, as JSON has no spelling for them).
        """
        if data is DEFAULT:
            data = {}
        json_text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return decode_result(self.call_raw(module, function, json_text, timeout=timeout))

    def call_raw(
        self,
        module: str,
        function: str,
        json_text: str,
        *,
        timeout: Timeout = DEFAULT,
    ) -> wasmtube_pb2.CallResponse:
        """Send `json_text` unchanged; return the response message undecoded.

        For callers who want `module_sha256` and `generation`, or who have the
        JSON already serialised.
        """
        request = wasmtube_pb2.CallRequest(module=module, function=function, json=json_text)
        return self._call(request, timeout)

    def call_image(
        self,
        module: str,
        function: str,
        image: ImageInput,
        width: int | None = None,
        height: int | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> Any:
        """Call an image function; return the decoded JSON result.

        `image` is raw RGB8 bytes (with `width` and `height`), an HxWx3 uint8
        numpy array or a Pillow image; see `wasmtube._images.to_rgb8`.
        """
        data, columns, rows = to_rgb8(image, width, height)
        request = wasmtube_pb2.CallRequest(
            module=module,
            function=function,
            image=wasmtube_pb2.Image(data=data, width=columns, height=rows),
        )
        return decode_result(self._call(request, timeout))

    def list_modules(self, *, timeout: Timeout = DEFAULT) -> list[wasmtube_pb2.ModuleInfo]:
        """Return the daemon's modules, as `wasmtube.v1.wasmtube_pb2.ModuleInfo`."""
        try:
            response = self._stub.ListModules(
                wasmtube_pb2.ListModulesRequest(), timeout=self._timeout(timeout)
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return list(response.modules)

    def _call(
        self, request: wasmtube_pb2.CallRequest, timeout: Timeout
    ) -> wasmtube_pb2.CallResponse:
        try:
            response: wasmtube_pb2.CallResponse = self._stub.Call(
                request, timeout=self._timeout(timeout)
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return response

    def _timeout(self, timeout: Timeout) -> float | None:
        return self.timeout if isinstance(timeout, _Default) else timeout

    def __repr__(self) -> str:
        return f"Client(target={self.target!r}, timeout={self.timeout!r})"


def decode_result(response: wasmtube_pb2.CallResponse) -> Any:
    """Decode a call's JSON result; raise `ResultDecodeError` if it is not JSON."""
    try:
        return json.loads(response.json)
    except json.JSONDecodeError as e:
        raise ResultDecodeError(
            f"the result of the call is not valid JSON: {e}", json_text=response.json
        ) from e
