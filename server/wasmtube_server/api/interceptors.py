"""gRPC server interceptors: concerns that apply to every method."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

__all__ = ["TokenAuthInterceptor", "token_matches"]

_SCHEME = "bearer"


def token_matches(header: str | bytes | None, token: str) -> bool:
    """Whether an `authorization` header value carries `token` as a bearer
    token. The scheme is case-insensitive and may be followed by more than
    one space (RFC 7235); the token is compared in constant time."""
    if not isinstance(header, str):
        return False
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != _SCHEME:
        return False
    return hmac.compare_digest(credentials.strip(" ").encode(), token.encode())


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuse calls without `authorization: Bearer <token>`, before any handler runs.

    The health service stays open: the kubelet's gRPC probes cannot send a
    token, and health tells nothing about the modules.
    """

    def __init__(self, token: str, open_services: tuple[str, ...]) -> None:
        self._token = token
        self._open_prefixes = tuple(f"/{service}/" for service in open_services)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if handler_call_details.method.startswith(self._open_prefixes):
            return await continuation(handler_call_details)
        sent = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        if token_matches(sent, self._token):
            return await continuation(handler_call_details)
        message = (
            "missing authorization metadata: send 'authorization: Bearer <token>'"
            if sent is None
            else "the bearer token is not the one this daemon accepts"
        )
        return _refusal(
            grpc.StatusCode.UNAUTHENTICATED, message, await continuation(handler_call_details)
        )


def _refusal(
    code: grpc.StatusCode, message: str, handler: grpc.RpcMethodHandler | None
) -> grpc.RpcMethodHandler:
    """A handler that answers `code` at once, shaped like the one it replaces,
    which never reads the request."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    if handler is not None and handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse)
    if handler is not None and handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler is not None and handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)
