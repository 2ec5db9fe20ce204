"""Every Prometheus metric the daemon exports, registered on a given registry.

Tests pass a fresh CollectorRegistry; the daemon passes its own. Label values
for module and function are only ever names that exist, so random names in
bad requests cannot grow the number of series without bound.
"""

from __future__ import annotations

import itertools
import threading
from bisect import bisect_left as _bucket_of
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["UNKNOWN_LABEL", "CallCounts", "Metrics"]

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
# The `le` labels, as prometheus-client's Histogram writes them.
_BUCKET_LABELS = (*(floatToGoString(b) for b in _CALL_BUCKETS), "+Inf")


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

    Counting at scrape time instead of on every call keeps two labelled gauge
    updates (~2 us each) off the call path.
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


class _Series:
    """One thread's counts for one (module, function)."""

    __slots__ = ("buckets", "codes", "sum")

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        # Calls per duration bucket (not cumulative); the last is +Inf.
        self.buckets = [0] * (len(_CALL_BUCKETS) + 1)
        self.sum = 0.0

    def add(self, other: _Series) -> None:
        """Add `other`'s counts (another thread's) to these."""
        for code, count in list(other.codes.items()):
            self.codes[code] = self.codes.get(code, 0) + count
        for i, count in enumerate(other.buckets):
            self.buckets[i] += count
        self.sum += other.sum


class _CallTally(Collector):
    """wasmtube_calls_total and wasmtube_call_duration_seconds, counted per thread.

    Every call ends with one count and one duration. prometheus-client's
    Counter and Histogram take a lock for each of their three updates and
    search the buckets in Python: 3.5 us a call in a hot loop, a quarter of
    the handler's own time. Here each thread counts in series only it writes
    (so no lock is needed, and none is lost: plain `+=` is safe with a single
    writer), and a scrape adds the threads' counts up. Each series only grows,
    so neither do the sums ever go back.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        # Every thread's series, the finished threads' too: their calls count.
        # As long as the list of threads that ever called: calls run on the
        # handler pool, whose threads (at most --max-workers) live as long as
        # the server.
        self._threads: list[dict[tuple[str, str], _Series]] = []

    def record(self, module: str, function: str, code: str, seconds: float) -> None:
        try:
            series: dict[tuple[str, str], _Series] = self._local.series
        except AttributeError:
            series = self._local.series = {}
            self._threads.append(series)
        key = (module, function)
        counts = series.get(key)
        if counts is None:
            counts = series[key] = _Series()
        codes = counts.codes
        codes[code] = codes.get(code, 0) + 1
        # bisect_left: a duration equal to a bound belongs to that bucket (le).
        counts.buckets[_bucket_of(_CALL_BUCKETS, seconds)] += 1
        counts.sum += seconds

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        calls, durations = self._families()
        totals: dict[tuple[str, str], _Series] = {}
        # Copies (list(...)) are taken in one C call each, under the GIL, so a
        # thread adding a series meanwhile cannot break the iteration.
        for series in list(self._threads):
            for key, counts in list(series.items()):
                totals.setdefault(key, _Series()).add(counts)
        for (module, function), total in sorted(totals.items()):
            for code, count in sorted(total.codes.items()):
                calls.add_metric([module, function, code], count)
            cumulative = itertools.accumulate(total.buckets)
            durations.add_metric(
                [module, function],
                buckets=list(zip(_BUCKET_LABELS, cumulative, strict=True)),
                sum_value=total.sum,
            )
        return iter((calls, durations))

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, HistogramMetricFamily]:
        return (
            CounterMetricFamily(
                "wasmtube_calls",
                "Calls answered, by module, function and gRPC status code.",
                labels=["module", "function", "code"],
            ),
            HistogramMetricFamily(
                "wasmtube_call_duration_seconds",
                "Time from receiving a call to answering it, by module and function.",
                labels=["module", "function"],
            ),
        )


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._calls = _CallTally()
        registry.register(self._calls)
        # The one update on every call's path, looked up once.
        self.call_finished = self._calls.record
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
