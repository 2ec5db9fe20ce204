"""Every Prometheus metric the daemon exports, registered on a given registry.

Tests pass a fresh CollectorRegistry; the daemon passes its own. Label values
for module and function are only ever names that exist, so random names in
bad requests cannot grow the number of series without bound.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

__all__ = ["UNKNOWN_LABEL", "Metrics"]

# `*_created` series double the page and no dashboard reads them.
disable_created_metrics()

# The label value used when a request names a module or function that does not exist.
UNKNOWN_LABEL = "_unknown"

# From 100 us (an echo call) to 10 s (a heavy image filter).
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


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.calls = Counter(
            "wasmtube_calls_total",
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
        self.calls_running = Gauge(
            "wasmtube_calls_running",
            "Calls running in a guest now, by module.",
            ["module"],
            registry=registry,
        )
        self.calls_waiting = Gauge(
            "wasmtube_calls_waiting",
            "Calls waiting for a free instance now, by module.",
            ["module"],
            registry=registry,
        )
        self.reloads = Counter(
            "wasmtube_module_reloads_total",
            "Attempts to load a new module file, by result: success, failure or removed.",
            ["module", "result"],
            registry=registry,
        )
        self.load_failures = Counter(
            "wasmtube_module_load_failures_total",
            "Module files that could not be loaded, by reason: not_wasm, compile, imports, "
            "no_memory, instantiate, read.",
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

    def call_finished(self, module: str, function: str, code: str, seconds: float) -> None:
        self.calls.labels(module, function, code).inc()
        self.call_duration.labels(module, function).observe(seconds)

    def cache_lookup(self, result: str) -> None:
        self.compile_cache.labels(result).inc()

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
