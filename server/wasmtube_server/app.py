"""The daemon's lifecycle: start everything, serve, stop in order.

`Daemon` is what tests and embedders use (start on port 0, read the bound
ports, stop); `run()` is what the CLI calls: it adds signal handling and
blocks until SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from .calls import Caller
from .config import UNIX_PREFIX, Config, split_host_port
from .executor import HandlerPool
from .gate import CallGate
from .interceptors import TokenAuthInterceptor
from .listeners import bind_listeners
from .loader import DirectoryLoader
from .metrics import Metrics
from .registry import ModuleRegistry
from .sandbox import Limits, Runtime
from .service import SERVICE, WasmtubeService, add_to_server
from .watcher import ModuleWatcher

__all__ = ["Daemon", "run"]

log = logging.getLogger(__name__)

# How often the main thread wakes to run signal handlers (see run()).
SIGNAL_CHECK_SECONDS = 0.2
# gRPC threads kept beyond --max-workers for health checks and reflection.
SPARE_THREADS = 4
SERVICE_NAME = SERVICE.full_name


class Daemon:
    def __init__(self, config: Config, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.metrics = Metrics(registry if registry is not None else CollectorRegistry())
        self.runtime = Runtime(
            Limits(
                call_timeout=config.call_timeout,
                fuel=config.fuel,
                max_memory=config.max_memory,
                max_table_elements=config.max_table_elements,
                wasi=config.wasi,
                cache_dir=config.cache_dir,
                cache_max_entries=config.cache_max_entries,
                guest_log_rate=config.guest_log_rate,
            ),
            on_cache_lookup=self.metrics.cache_lookup,
            on_guest_log_dropped=self.metrics.guest_log_dropped,
        )
        self.modules = ModuleRegistry(self.runtime, self.metrics, config)
        self.loader = DirectoryLoader(config.modules_dir, self.modules, config)
        self._watcher = ModuleWatcher(
            self.loader, config.reload_debounce, config.watch, config.poll_interval
        )
        self._loading = threading.Thread(
            target=self._load_directory, name="wasmtube-initial-load", daemon=True
        )
        self._health = health.HealthServicer()
        self._gate = CallGate(config.max_workers)
        self._grpc: grpc.Server | None = None
        self._handlers: HandlerPool | None = None
        self._metrics_http: WSGIServer | None = None
        self.addresses: list[str] = []
        self.metrics_port = 0

    def start(self) -> None:
        """Serve at once; load the module directory in the background.

        Health says NOT_SERVING until every module has been loaded (see
        wait_ready); meanwhile ListModules shows progress and calls to modules
        not loaded yet get UNAVAILABLE.
        """
        directory = self.config.modules_dir
        if not directory.is_dir():
            raise FileNotFoundError(f"module directory {directory} does not exist")
        self.runtime.start()
        for service in ("", SERVICE_NAME):
            self._health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._start_metrics()
        self._start_grpc()
        # Watch before the first scan, so a file that lands in between is seen.
        self._watcher.start()
        self._loading.start()

    def _load_directory(self) -> None:
        started = time.monotonic()
        self.loader.sync()
        self.modules.ready.set()
        for service in ("", SERVICE_NAME):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "wasmtube serving %d modules from %s on %s (loaded in %.3f s)",
            len(self.modules.names()),
            self.config.modules_dir,
            self.address,
            time.monotonic() - started,
        )

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the module directory has been loaded; False on timeout."""
        return self.modules.ready.wait(timeout)

    @property
    def address(self) -> str:
        """The first address the daemon listens on, with its real port."""
        return self.addresses[0]

    @property
    def port(self) -> int:
        """The port of the first TCP address; 0 if it listens on sockets only."""
        for address in self.addresses:
            if not address.startswith(UNIX_PREFIX):
                return int(address.rpartition(":")[2])
        return 0

    def _start_grpc(self) -> None:
        size = self.config.max_message_size
        self._handlers = HandlerPool(
            # Threads beyond the call cap keep health checks answered.
            max_workers=self.config.max_workers + SPARE_THREADS,
            thread_name_prefix="wasmtube-grpc",
        )
        server = grpc.server(
            self._handlers,
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                # One daemon per port: a second one must fail, not share it.
                ("grpc.so_reuseport", 0),
            ],
            interceptors=self._interceptors(),
        )
        add_to_server(
            WasmtubeService(
                self.modules,
                Caller(self.modules, self.config.check_output),
                self.metrics,
                self.config.call_timeout,
                self._gate,
            ),
            server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        self.addresses = bind_listeners(server, self.config)
        server.start()
        self._grpc = server

    def _interceptors(self) -> list[grpc.ServerInterceptor]:
        # Each interceptor runs on every RPC, in gRPC's one polling thread:
        # only those asked for. The call cap and drain are in CallGate.
        token_file = self.config.auth_token_file
        if token_file is None:
            return []
        try:
            token = token_file.read_text().strip()
        except OSError as e:
            raise OSError(f"cannot read the auth token file: {e}") from e
        if not token:
            raise ValueError(f"the auth token file {token_file} is empty")
        return [TokenAuthInterceptor(token, open_services=(health.SERVICE_NAME,))]

    def _start_metrics(self) -> None:
        if self.config.metrics_listen is None:
            return
        host, port = split_host_port(self.config.metrics_listen, option="metrics_listen")
        http_server, _ = start_http_server(port, addr=host, registry=self.metrics.registry)
        self._metrics_http = http_server
        self.metrics_port = http_server.server_port

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let running ones finish within `grace`, free everything.

        While draining, health says NOT_SERVING and new calls get UNAVAILABLE;
        calls still running when the grace period ends are cancelled.
        """
        grace = self.config.grace if grace is None else grace
        for service in ("", SERVICE_NAME):
            self._health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._gate.start_draining()
        if self._grpc is not None:
            if not self._gate.wait_idle(grace):
                log.warning(
                    "%d calls still running after %s s; cancelling them", self._gate.running, grace
                )
            self._grpc.stop(0).wait()
            log.info("stopped")
        self._watcher.stop()
        if self._loading.is_alive():
            self._loading.join(timeout=5)
        self.runtime.stop()
        if self._handlers is not None:
            # Let handlers finish sending what they have (every guest has
            # just been interrupted), as the process must not exit under them.
            self._handlers.shutdown(wait=True)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()

    def __enter__(self) -> Daemon:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully."""
    daemon = Daemon(config)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop_requested.is_set():
            # A second signal: someone wants out now, running calls or not.
            log.warning("received %s again, exiting at once", name)
            os._exit(1)
        log.info("received %s: draining, running calls get up to %s s", name, config.grace)
        stop_requested.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        daemon.start()
        # Python runs signal handlers in the main thread only, and a signal
        # the kernel hands to another thread does not wake a main thread
        # blocked in an untimed wait: wake up now and then to run them.
        while not stop_requested.wait(SIGNAL_CHECK_SECONDS):
            pass
    finally:
        daemon.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
