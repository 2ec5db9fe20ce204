"""The asyncio wasmtube client (grpc.aio), with the same surface as `Client`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import grpc
import grpc.aio

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

__all__ = ["AsyncClient"]


class AsyncClient:
    """`Client` for asyncio: the same arguments, and every method awaitable.

    Use it as `async with AsyncClient(...) as client:`; the channel belongs
    to the event loop it was created on.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = None,
        channel: grpc.aio.Channel | None = None,
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
            self._channel = grpc.aio.secure_channel(target, credentials, channel_options(options))
        else:
            self._channel = grpc.aio.insecure_channel(target, channel_options(options))
        self._stub = wasmtube_pb2_grpc.WasmtubeStub(self._channel)

    async def close(self) -> None:
        """Close the channel if this client created it. Safe to call twice."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def call(
        self,
        module: str,
        function: str,
        data: Any = DEFAULT,
        *,
        output: str = "numpy",
        timeout: Timeout = DEFAULT,
    ) -> Any:
        """Call `module.function` with `data` as JSON; return the decoded result."""
        response = await self._call(json_request(module, function, data), timeout)
        return decode_result(response, output)

    async def call_raw(
        self, module: str, function: str, json_text: str, *, timeout: Timeout = DEFAULT
    ) -> wasmtube_pb2.CallResponse:
        """Send `json_text` unchanged; return the response message undecoded."""
        request = wasmtube_pb2.CallRequest(module=module, function=function, json=json_text)
        return await self._call(request, timeout)

    async def call_image(
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
        """Call an image function; return its decoded JSON, or the image it
        returned (see `Client.call_image`)."""
        request = image_request(module, function, image, width, height, format)
        return decode_result(await self._call(request, timeout), output)

    async def call_stream(
        self,
        module: str,
        function: str,
        inputs: Iterable[Any],
        *,
        output: str = "numpy",
        timeout: Timeout = DEFAULT,
    ) -> AsyncIterator[Any]:
        """Call `module.function` once per input over one CallStream; yield the
        results in order (see `Client.call_stream`)."""
        requests = (stream_request(module, function, item) for item in inputs)
        responses = self._stub.CallStream(
            requests, timeout=resolve_timeout(timeout, self.timeout), metadata=self._metadata
        )
        try:
            async for response in responses:
                yield decode_result(response, output)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        finally:
            responses.cancel()

    async def list_modules(self, *, timeout: Timeout = DEFAULT) -> list[wasmtube_pb2.ModuleInfo]:
        """Return the daemon's modules, as `wasmtube.v1.wasmtube_pb2.ModuleInfo`."""
        try:
            response = await self._stub.ListModules(
                wasmtube_pb2.ListModulesRequest(),
                timeout=resolve_timeout(timeout, self.timeout),
                metadata=self._metadata,
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return list(response.modules)

    async def _call(
        self, request: wasmtube_pb2.CallRequest, timeout: Timeout
    ) -> wasmtube_pb2.CallResponse:
        try:
            response: wasmtube_pb2.CallResponse = await self._stub.Call(
                request, timeout=resolve_timeout(timeout, self.timeout), metadata=self._metadata
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return response

    def __repr__(self) -> str:
        return f"AsyncClient(target={self.target!r}, timeout={self.timeout!r})"
