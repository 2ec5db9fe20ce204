"""The /metrics endpoint: prometheus-client's WSGI app on a server thread.

prometheus-client's own start_http_server checks for a stop only twice a
second, so every daemon stop would wait for it; this server checks every
STOP_CHECK_SECONDS.
"""

from __future__ import annotations

import socket
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

__all__ = ["MetricsServer"]

STOP_CHECK_SECONDS = 0.05


class _QuietHandler(WSGIRequestHandler):
    """No access log line for every scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _IPv6Server(ThreadingWSGIServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """Serves `registry` on http://HOST:PORT/metrics until stopped."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        server_class = _IPv6Server if ":" in host else ThreadingWSGIServer
        try:
            self._httpd = make_server(
                host, port, make_wsgi_app(registry), server_class, handler_class=_QuietHandler
            )
        except OSError as e:
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise OSError(
                f"cannot serve metrics on {address}: {e.strerror or e}; choose another "
                f"address with --metrics-listen, or turn the endpoint off with "
                f"--metrics-listen off"
            ) from e
        self.port: int = self._httpd.server_port
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": STOP_CHECK_SECONDS},
            name="wasmtube-metrics",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
