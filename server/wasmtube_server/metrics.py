"""Every Prometheus metric the daemon exports, registered on a given registry.

Tests pass a fresh CollectorRegistry; the daemon passes its own. Label values
for module and function are only ever names that exist, so random names in
bad requests cannot grow the number of series without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["UNKNOWN_LABEL", "CallCounts", "Metrics"]

# `*_created` series double the page and no dashboard reads them.
disable_created_metrics()

# The label value used when a request names a module or function that does not exist.
UNKNOWN_LABEL = "_unknown"

# From the quickest call over gRPC to the longest --call-timeout a heavy
# image filter would need.
_CALL_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class CallCounts(Protocol):
    """What a module's slots tell the metrics at scrape time."""

    @property
    def name(self) -> str: ...

    @property
    def running(self) -> int: ...

    @property
    def waiting(self) -> int: ...


class _CallCountsCollector(Collector):
    """wasmtube_calls_running and _waiting, read from the modules' slots when scraped.

    The slots count their calls anyway; the metrics read them when scraped.
    """

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[CallCounts]] = list

    def describe(self) -> Iterator[Metric]:
        # Without this the registry would call collect() at registration.
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        running, waiting = self._families()
        for counts in self.source():
            running.add_metric([counts.name], counts.running)
            waiting.add_metric([counts.name], counts.waiting)
        return iter((running, waiting))

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "wasmtube_calls_running",
                "Calls running in a guest now, by module.",
                labels=["module"],
            ),
            GaugeMetricFamily(
                "wasmtube_calls_waiting",
                "Calls waiting for a free instance now, by module.",
                labels=["module"],
            ),
        )


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # process_* (resident memory, CPU seconds, open file descriptors, start
        # time) and python_info, which every dashboard expects.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.calls = Counter(
            "wasmtube_calls",
            "Calls answered, by module, function and gRPC status code.",
            ["module", "function", "code"],
            registry=registry,
        )
        self.call_duration = Histogram(
            "wasmtube_call_duration_seconds",
            "Time from receiving a call to answering it, by module and function.",
            ["module", "function"],
            buckets=_CALL_BUCKETS,
            registry=registry,
        )
        self.traps = Counter(
            "wasmtube_traps_total",
            "Guest traps, by module, function and kind of trap.",
            ["module", "function", "reason"],
            registry=registry,
        )
        self.guest_errors = Counter(
            "wasmtube_guest_errors_total",
            "Calls a guest failed on purpose with wasmtube.fail, by module, function and the "
            "gRPC status code it chose.",
            ["module", "function", "code"],
            registry=registry,
        )
        self.guest_log_dropped_lines = Counter(
            "wasmtube_guest_log_lines_dropped_total",
            "Lines guests logged with wasmtube.log past --guest-log-rate, by module.",
            ["module"],
            registry=registry,
        )
        self.streams_open = Gauge(
            "wasmtube_streams_open",
            "CallStreams in progress, each holding one instance between its messages "
            "(their messages count in wasmtube_calls_total as calls).",
            registry=registry,
        )
        self._call_counts = _CallCountsCollector()
        registry.register(self._call_counts)
        self.reloads = Counter(
            "wasmtube_module_reloads_total",
            "Attempts to load a new module file, by result: success, failure or removed.",
            ["module", "result"],
            registry=registry,
        )
        self.load_failures = Counter(
            "wasmtube_module_load_failures_total",
            "Module files that could not be loaded, by reason: not_wasm, compile, imports, "
            "no_memory, instantiate, read, settings.",
            ["module", "reason"],
            registry=registry,
        )
        self.reload_duration = Histogram(
            "wasmtube_reload_duration_seconds",
            "Time from the first file event of a deploy to the new version serving.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.module_generation = Gauge(
            "wasmtube_module_generation",
            "The generation of each module that serves calls: +1 on every reload.",
            ["module"],
            registry=registry,
        )
        self.compile_cache = Counter(
            "wasmtube_compile_cache_lookups_total",
            "Compiled-module cache lookups, by result: hit, miss or invalid (corrupt or "
            "unloadable, so compiled again).",
            ["result"],
            registry=registry,
        )
        self.modules_loaded = Gauge(
            "wasmtube_modules_loaded",
            "Modules that currently serve calls.",
            registry=registry,
        )
        self.module_info = Gauge(
            "wasmtube_module_info",
            "1 for the version of each module that serves calls.",
            ["module", "sha256", "generation"],
            registry=registry,
        )
        # The label set each module's info series has now, to remove it on change.
        self._info_labels: dict[str, tuple[str, str, str]] = {}
        # Modules pulled from OCI registries (--pull): modules/oci.py.
        self.pulls = Counter(
            "wasmtube_module_pulls",
            "Pull attempts of modules from OCI registries (--pull), by module and result: "
            "updated (a new version serves), unchanged, cached (served from --cache-dir at "
            "start), load_failed (fetched and verified, but did not load), or why the registry "
            "failed: unreachable, tls, unauthorized, not_found, refused, digest_mismatch (bytes "
            "that do not match their digest, never served), bad_artifact, too_large, credentials, "
            "error (unexpected, logged with a traceback).",
            ["module", "result"],
            registry=registry,
        )
        self.pull_last_success = Gauge(
            "wasmtube_module_pull_last_success_timestamp_seconds",
            "When each pulled module's registry last answered a pull (Unix time).",
            ["module"],
            registry=registry,
        )

    def module_pulled(self, module: str, result: str) -> None:
        self.pulls.labels(module, result).inc()
        if result in ("updated", "unchanged", "load_failed"):
            self.pull_last_success.labels(module).set_to_current_time()

    def call_finished(self, module: str, function: str, code: str, seconds: float) -> None:
        self.calls.labels(module, function, code).inc()
        self.call_duration.labels(module, function).observe(seconds)

    def count_calls_from(self, source: Callable[[], Iterable[CallCounts]]) -> None:
        """Where wasmtube_calls_running and _waiting come from: one entry per module."""
        self._call_counts.source = source

    def cache_lookup(self, result: str) -> None:
        self.compile_cache.labels(result).inc()

    def guest_log_dropped(self, module: str) -> None:
        self.guest_log_dropped_lines.labels(module).inc()

    def guest_failed(self, module: str, function: str, code: str) -> None:
        self.guest_errors.labels(module, function, code).inc()

    def trapped(self, module: str, function: str, reason: str) -> None:
        self.traps.labels(module, function, reason).inc()

    def module_loaded(self, module: str, sha256: str, generation: int, loaded: int) -> None:
        self.reloads.labels(module, "success").inc()
        self._set_info(module, (module, sha256, str(generation)))
        self.module_generation.labels(module).set(generation)
        self.modules_loaded.set(loaded)

    def module_load_failed(self, module: str, reason: str) -> None:
        self.reloads.labels(module, "failure").inc()
        self.load_failures.labels(module, reason).inc()

    def module_removed(self, module: str, loaded: int) -> None:
        self.reloads.labels(module, "removed").inc()
        self._set_info(module, None)
        self.module_generation.remove(module)
        self.modules_loaded.set(loaded)

    def _set_info(self, module: str, labels: tuple[str, str, str] | None) -> None:
        old = self._info_labels.pop(module, None)
        if old is not None:
            self.module_info.remove(*old)
        if labels is not None:
            self.module_info.labels(*labels).set(1)
            self._info_labels[module] = labels
