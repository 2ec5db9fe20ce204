"""gRPC server interceptors: concerns that apply to every method."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

__all__ = ["CallCapInterceptor", "TokenAuthInterceptor", "UndecodableRequestInterceptor"]


class _Undecodable:
    """Stands in for a request whose bytes did not parse."""

    __slots__ = ("error",)

    def __init__(self, error: DecodeError) -> None:
        self.error = error


class UndecodableRequestInterceptor(grpc.ServerInterceptor):
    """Answer INVALID_ARGUMENT, not INTERNAL, to a request that does not parse.

    grpcio answers a deserialisation failure with INTERNAL "Exception
    deserializing request!", which blames the server. The usual cause is the
    caller's: a string field (such as `json`) holding bytes that are not UTF-8,
    which protobuf refuses and clients in some languages do not check.
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        behaviour = handler.unary_unary
        method = handler_call_details.method

        def lenient_parse(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError as e:
                return _Undecodable(e)

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the request to {method} is not a valid protobuf message "
                    f"(string fields such as json must be UTF-8): {request.error}",
                )
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=lenient_parse,
            response_serializer=handler.response_serializer,
        )


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Refuse calls without `authorization: Bearer <token>`, before any handler runs.

    The health service stays open: the kubelet's gRPC probes cannot send a
    token, and health tells nothing about the modules.
    """

    def __init__(self, token: str, open_services: tuple[str, ...]) -> None:
        self._expected = f"Bearer {token}".encode()
        self._open_prefixes = tuple(f"/{service}/" for service in open_services)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        if handler_call_details.method.startswith(self._open_prefixes):
            return continuation(handler_call_details)
        sent = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        if isinstance(sent, str) and hmac.compare_digest(sent.encode(), self._expected):
            return continuation(handler_call_details)
        message = (
            "missing authorization metadata: send 'authorization: Bearer <token>'"
            if sent is None
            else "the bearer token is not the one this daemon accepts"
        )
        return _refusal(
            grpc.StatusCode.UNAUTHENTICATED, message, continuation(handler_call_details)
        )


def _refusal(
    code: grpc.StatusCode, message: str, handler: grpc.RpcMethodHandler | None
) -> grpc.RpcMethodHandler:
    """A handler that answers `code` at once, shaped like the one it replaces."""

    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    if handler is not None and handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse)
    if handler is not None and handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler is not None and handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class CallCapInterceptor(grpc.ServerInterceptor):
    """Refuse calls past `limit` at once with RESOURCE_EXHAUSTED.

    gRPC's own `maximum_concurrent_rpcs` counts health checks too, so a daemon
    busy with long calls would fail its liveness probe and be restarted,
    which makes overload worse. This cap counts only the methods of
    `services`; the server keeps a few threads beyond it for the rest.
    """

    def __init__(self, limit: int, services: tuple[str, ...]) -> None:
        self._limit = limit
        self._prefixes = tuple(f"/{service}/" for service in services)
        self._running = 0
        self._lock = threading.Lock()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if (
            handler is None
            or handler.unary_unary is None
            or not handler_call_details.method.startswith(self._prefixes)
        ):
            return handler
        behaviour = handler.unary_unary

        def capped(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                full = self._running >= self._limit
                if not full:
                    self._running += 1
            if full:
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"wasmtube is handling {self._limit} requests, its --max-workers limit; "
                    f"retry with backoff",
                )
            try:
                return behaviour(request, context)
            finally:
                with self._lock:
                    self._running -= 1

        return grpc.unary_unary_rpc_method_handler(
            capped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
