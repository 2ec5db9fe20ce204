"""The daemon's lifecycle: start everything, serve, stop in order.

`Daemon` is what tests and embedders use (start on port 0, read the bound
ports, stop); `run()` is what the CLI calls: it adds signal handling and
blocks until SIGTERM or SIGINT.

The gRPC server is grpc.aio's, on an event loop of its own thread
("wasmtube-grpc"), so that waiting for a client's bytes never holds a
thread; guests run on the worker threads (admission/workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from .admission import CallSlots, StreamSlots, WorkerPool
from .api.health import Health
from .api.interceptors import TokenAuthInterceptor
from .api.listeners import bind_listeners
from .api.reflection import enable_reflection
from .api.service import SERVICE, WasmtubeService, add_to_server
from .config import UNIX_PREFIX, Config, split_host_port
from .metrics import Metrics
from .metrics_http import MetricsServer
from .modules.loader import DirectoryLoader
from .modules.oci import Puller
from .modules.registry import ModuleRegistry
from .modules.watcher import ModuleWatcher
from .sandbox import Limits, Runtime

__all__ = ["Daemon", "run"]

log = logging.getLogger(__name__)

# How often the main thread wakes to run signal handlers (see run()).
SIGNAL_CHECK_SECONDS = 0.2
# After the drain, how long RPCs still in flight (refused ones being
# answered, requests still arriving) get before the server cancels them.
SERVER_STOP_GRACE = 1.0
# The drain ends once no call has been refused for this long (or the grace
# period is over): clients told UNAVAILABLE have gone elsewhere, so stopping
# the server cuts off no call that is on its way. (grpc's server answers a
# call that reaches it in the last moment before it stops with CANCELLED.)
QUIET_SECONDS = 0.25
SERVICE_NAME = SERVICE.full_name

_T = TypeVar("_T")


class Daemon:
    def __init__(self, config: Config, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.metrics = Metrics(registry if registry is not None else CollectorRegistry())
        self.runtime = Runtime(
            Limits.from_config(config),
            on_cache_lookup=self.metrics.cache_lookup,
            on_guest_log_dropped=self.metrics.guest_log_dropped,
        )
        self.modules = ModuleRegistry(self.runtime, self.metrics, config)
        self.loader = DirectoryLoader(config.modules_dir, self.modules, config)
        # Modules from OCI registries (--pull), kept beside the compiled ones.
        cache = self.runtime.cache.directory if self.runtime.cache is not None else None
        self.puller = Puller(config, self.modules, self.metrics, cache)
        self._watcher = ModuleWatcher(
            self.loader,
            config.reload_debounce,
            config.watch,
            config.poll_interval,
            on_directory_missing=self._directory_missing,
        )
        self._loading = threading.Thread(
            target=self._load_directory, name="wasmtube-initial-load", daemon=True
        )
        self._workers = WorkerPool(config.max_workers, thread_name_prefix="wasmtube-worker")
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="wasmtube-grpc", daemon=True
        )
        # Made on the loop (start()): they belong to it.
        self._health: Health | None = None
        self._service: WasmtubeService | None = None
        self._call_slots: CallSlots | None = None
        self._grpc: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        # The --health-listen address with its real port, once started.
        self.health_address = ""
        self._metrics_http: MetricsServer | None = None
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
        self._start_metrics()
        self._loop_thread.start()
        self._on_loop(self._start_grpc())
        # Watch before the first scan, so a file that lands in between is seen.
        self._watcher.start()
        self.puller.start()
        self._loading.start()

    def _on_loop(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run `work` on the server's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _load_directory(self) -> None:
        started = time.monotonic()
        self.loader.sync()
        self.puller.wait_started()
        self.modules.ready.set()
        self._on_loop(self._health_reason("starting", None))
        log.info(
            "wasmtube serving %d modules from %s on %s, metrics on %s (loaded in %.3f s)",
            len(self.modules.names()),
            self.config.modules_dir,
            ", ".join(self.addresses),
            self.metrics_url or "off (--metrics-listen off)",
            time.monotonic() - started,
        )

    async def _health_reason(self, kind: str, reason: str | None) -> None:
        assert self._health is not None
        await self._health.set_reason(kind, reason)

    def _directory_missing(self, reason: str | None) -> None:
        """Told by the watcher why the module directory is missing, or None
        once it is back: no module can serve meanwhile."""
        # Not waited for: the loop may be stopping.
        asyncio.run_coroutine_threadsafe(self._health_reason("directory", reason), self._loop)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the module directory has been loaded; False on timeout."""
        return self.modules.ready.wait(timeout)

    @property
    def metrics_url(self) -> str:
        """Where Prometheus scrapes, with the real port; "" when off."""
        if self._metrics_http is None or self.config.metrics_listen is None:
            return ""
        host, _ = split_host_port(self.config.metrics_listen, option="metrics_listen")
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.metrics_port}/metrics"

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

    async def _start_grpc(self) -> None:
        config = self.config
        size = config.max_message_size
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                ("grpc.max_concurrent_streams", config.max_connection_streams),
                # One daemon per port: a second one must fail, not share it.
                ("grpc.so_reuseport", 0),
            ],
            interceptors=self._interceptors(),
        )
        self._call_slots = CallSlots(config.max_workers)
        self._service = WasmtubeService(
            self.modules,
            self.metrics,
            call_timeout=config.call_timeout,
            receive_timeout=config.receive_timeout,
            check_output=config.check_output,
            call_slots=self._call_slots,
            stream_slots=StreamSlots(config.max_streams),
            workers=self._workers,
        )
        add_to_server(self._service, server)
        self._health = Health(
            (SERVICE_NAME,), starting=f"loading the module directory {config.modules_dir}"
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        enable_reflection(server, (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME))
        self.addresses = bind_listeners(server, config)
        await server.start()
        self._grpc = server
        if config.health_listen is not None:
            self._health_server = await self._start_health_server(config.health_listen)

    async def _start_health_server(self, address: str) -> grpc.aio.Server:
        """A plaintext server for probes: the health service and nothing else
        (any other method there is UNIMPLEMENTED), sharing the main server's
        health status."""
        assert self._health is not None
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        host, _ = split_host_port(address, option="health_listen")
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as e:
            raise RuntimeError(f"cannot listen on {address} (--health-listen): {e}") from e
        await server.start()
        self.health_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return server

    def _interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        # Each interceptor runs on every RPC: only those asked for. The call
        # slots and the drain are in admission/slots.py.
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
        self._metrics_http = MetricsServer(self.metrics.registry, host, port)
        self.metrics_port = self._metrics_http.port

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let running ones finish within `grace`, free everything.

        While draining, health says NOT_SERVING, new calls get UNAVAILABLE and
        streams waiting for their next message end with UNAVAILABLE; guests
        still running when the grace period ends are interrupted.
        """
        grace = self.config.grace if grace is None else grace
        if self._loop_thread.is_alive():
            self._on_loop(self._drain(grace))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=5)
        self._watcher.stop()
        self.puller.stop()
        if self._loading.is_alive():
            self._loading.join(timeout=5)
        self.runtime.stop()
        # Every guest has just been interrupted: the workers end at once.
        self._workers.shutdown(wait=True)
        if self._metrics_http is not None:
            self._metrics_http.stop()

    async def _drain(self, grace: float) -> None:
        if self._grpc is None:
            return
        assert self._call_slots is not None and self._service is not None
        await self._health_reason("draining", "wasmtube is shutting down")
        self._call_slots.start_draining()
        self._service.end_idle_streams()
        try:
            async with asyncio.timeout(grace):
                await self._call_slots.idle()
                await self._call_slots.quiet(QUIET_SECONDS)
        except TimeoutError:
            if self._call_slots.taken:
                log.warning(
                    "%d calls still running after %s s; interrupting them",
                    self._call_slots.taken,
                    grace,
                )
                self.runtime.interrupt_all()
                # Interrupted guests end at once; their calls are answered
                # (and counted) before the server stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SERVER_STOP_GRACE):
                        await self._call_slots.idle()
        await self._grpc.stop(SERVER_STOP_GRACE)
        if self._health_server is not None:
            await self._health_server.stop(0)
        log.info("stopped")

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
