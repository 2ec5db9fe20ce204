"""The synchronous wasmtube client: JSON and images in, decoded JSON or images out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import grpc

from wasmtube._requests import (
    DEFAULT,
    DEFAULT_TARGET,
    Timeout,
    auth_metadata,
    channel_options,
    decode_result,
    image_request,
    json_request,
    resolve_timeout,
    stream_request,
)
from wasmtube.errors import from_rpc_error
from wasmtube.v1 import wasmtube_pb2, wasmtube_pb2_grpc

if TYPE_CHECKING:
    from wasmtube._images import ImageInput

__all__ = ["Client"]


class Client:
    """A connection to one wasmtube daemon.

    `target` is `host:port` or `unix:///path/to.sock`. `timeout` is the
    default deadline in seconds for every call (None: no deadline); each
    method's `timeout` keyword overrides it for that call, `timeout=None`
    included. `credentials` (from `grpc.ssl_channel_credentials`) turn on TLS
    or mutual TLS; `token` is sent as `authorization: Bearer <token>` for a
    daemon started with --auth-token-file. Pass `channel` to bring your own:
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
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._metadata = auth_metadata(token)
        self._owns_channel = channel is None
        if channel is not None:
            self._channel = channel
        elif credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, channel_options(options))
        else:
            self._channel = grpc.insecure_channel(target, channel_options(options))
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
        output: str = "numpy",
        timeout: Timeout = DEFAULT,
    ) -> Any:
        """Call `module.function` with `data` as JSON; return the decoded result.

        `data` defaults to `{}`; `None` is sent as JSON `null`. A function that
        returns an image gives it as `output` asks (see `call_image`).
        """
        response = self._call(json_request(module, function, data), timeout)
        return decode_result(response, output)

    def call_raw(
        self, module: str, function: str, json_text: str, *, timeout: Timeout = DEFAULT
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
        format: str | None = None,
        output: str = "numpy",
        timeout: Timeout = DEFAULT,
    ) -> Any:
        """Call an image function; return its decoded JSON, or the image it returned.

        `image` is raw pixel bytes (with `width` and `height`), a uint8 numpy
        array (HxWx3 RGB8, HxWx4 RGBA8, HxW GRAY8) or a Pillow image.
        `format` ("rgb8", "rgba8", "gray8") says what raw bytes hold and what
        a Pillow image is converted to; both default to RGB8, which every
        image function takes. An image result comes back as `output` asks:
        "numpy" (an array shaped like the input kinds above), "pil" (a Pillow
        image) or "message" (the `wasmtube.v1.Image` message).
        """
        request = image_request(module, function, image, width, height, format)
        return decode_result(self._call(request, timeout), output)

    def call_stream(
        self,
        module: str,
        function: str,
        inputs: Iterable[Any],
        *,
        output: str = "numpy",
        timeout: Timeout = DEFAULT,
    ) -> Iterator[Any]:
        """Call `module.function` once per input over one CallStream; yield the
        results in order.

        Each input is a numpy array or Pillow image (sent as an image) or any
        JSON value. The daemon runs the whole stream on one warm instance, and
        gRPC flow control holds `inputs` back while results go unread. The
        first call that fails raises its error and ends the stream; `timeout`
        bounds the whole stream.
        """
        requests = (stream_request(module, function, item) for item in inputs)
        responses = self._stub.CallStream(
            requests, timeout=resolve_timeout(timeout, self.timeout), metadata=self._metadata
        )
        try:
            for response in responses:
                yield decode_result(response, output)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        finally:
            responses.cancel()

    def list_modules(self, *, timeout: Timeout = DEFAULT) -> list[wasmtube_pb2.ModuleInfo]:
        """Return the daemon's modules, as `wasmtube.v1.wasmtube_pb2.ModuleInfo`."""
        try:
            response = self._stub.ListModules(
                wasmtube_pb2.ListModulesRequest(),
                timeout=resolve_timeout(timeout, self.timeout),
                metadata=self._metadata,
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return list(response.modules)

    def _call(
        self, request: wasmtube_pb2.CallRequest, timeout: Timeout
    ) -> wasmtube_pb2.CallResponse:
        try:
            response: wasmtube_pb2.CallResponse = self._stub.Call(
                request, timeout=resolve_timeout(timeout, self.timeout), metadata=self._metadata
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return response

    def __repr__(self) -> str:
        return f"Client(target={self.target!r}, timeout={self.timeout!r})"
