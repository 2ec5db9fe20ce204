"""What the standard gRPC health service says, and why.

The daemon serves (SERVING) only when nothing stands in the way: its module
directory has been loaded, it is not draining, and the directory exists.
Each obstacle is a reason; while any is there health says NOT_SERVING, and
every Check response carries the reasons in its trailing metadata
(`wasmtube-not-serving`), which `grpcurl -v` shows, since the health
protocol's response has no field for them.

Every method runs on the server's event loop.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

__all__ = ["REASON_METADATA", "Health"]

REASON_METADATA = "wasmtube-not-serving"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Health(HealthServicer):
    """grpc_health's servicer for the overall server ("") and `services`,
    driven by named reasons not to serve."""

    def __init__(self, services: tuple[str, ...], starting: str) -> None:
        super().__init__()
        self._services = ("", *services)
        # Why the daemon does not serve, by kind; none: it serves.
        self._reasons: dict[str, str] = {"starting": starting}
        for service in self._services:
            self._server_status[service] = _NOT_SERVING

    @property
    def serving(self) -> bool:
        return not self._reasons

    async def set_reason(self, kind: str, reason: str | None) -> None:
        """Record (or with None, clear) a reason of this `kind` not to serve."""
        if reason is None:
            self._reasons.pop(kind, None)
        else:
            self._reasons[kind] = reason
        status = _SERVING if self.serving else _NOT_SERVING
        for service in self._services:
            await self.set(service, status)

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if self._reasons and request.service in self._services:
            context.set_trailing_metadata(((REASON_METADATA, "; ".join(self._reasons.values())),))
        return await super().Check(request, context)
