"""The daemon's /metrics against the real Prometheus tools, not just our own parser.

test_metrics.py reads the page with prometheus-client's parser, which is lenient
and written by the same people as the code that renders it. Here a real
Prometheus server scrapes the daemon and answers PromQL queries, and promtool
lints the page, so a format or naming mistake that only the real consumers
notice fails CI. Both binaries come from Debian's `prometheus` package.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import grpc
import pytest
from helpers.tools import require_tool

from conftest import GUEST_WASM, RunningDaemon, deploy, free_port, json_module, wait_until

INSTALL = "apt-get install -y --no-install-recommends prometheus"
JOB = "wasmtube"
# Seconds to wait for Prometheus to start (0.2 s here), and for a query to show
# a value. Scrapes come every 1 s, but Prometheus 2.42 hands new targets to its
# scrape manager at most every 5 s (no flag changes that), so the first scrape
# lands ~5 s after start; the rest is slack for a loaded CI machine.
START_TIMEOUT = 30.0
QUERY_TIMEOUT = 30.0


def binary(name: str) -> str:
    """The path of a Prometheus tool (Debian's package puts them in /usr/bin)."""
    return require_tool(name, INSTALL, candidates=(f"/usr/bin/{name}",))


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"


class Prometheus:
    """A running Prometheus server and its HTTP query API."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The series an instant query returns now."""
        answer = self.get("/api/v1/query", query=promql)
        assert answer["status"] == "success", f"{promql}: {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The value of the one series `promql` returns, or None if it returns none."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, f"{promql} returned {len(result)} series: {result}"
        return float(result[0]["value"][1])

    def diagnosis(self) -> str:
        """What to read when a check fails: the scrape targets' health and the log."""
        try:
            targets = self.get("/api/v1/targets")["data"]["activeTargets"]
            health = "\n".join(
                f"  {t['scrapeUrl']}: {t['health']} {t['lastError']!r}" for t in targets
            )
        except (OSError, ValueError, KeyError) as e:
            health = f"  (could not read /api/v1/targets: {e})"
        exited = self.process.poll()
        state = "running" if exited is None else f"exited with {exited}"
        return f"Prometheus {state}; targets:\n{health}\nits stderr, last lines:\n{tail(self.log)}"

    def wait_value(self, promql: str, expected: float, timeout: float = QUERY_TIMEOUT) -> None:
        """Poll until `promql` returns `expected`: a scrape lands once a second."""
        deadline = time.monotonic() + timeout
        last: float | None = None
        while time.monotonic() < deadline and self.process.poll() is None:
            last = self.value(promql)
            if last == expected:
                return
            time.sleep(0.2)
        pytest.fail(
            f"{promql} was {last}, not {expected}, after {timeout}s\n{self.diagnosis()}",
            pytrace=False,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_ready(process: subprocess.Popen[bytes], url: str) -> bool:
    """True once /-/ready answers 200 (TSDB open, scraping started); False if the
    process exits or START_TIMEOUT passes first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # Not listening yet, or 503 while the TSDB opens.
        time.sleep(0.1)
    return False


def start_prometheus(directory: Path, target: str) -> Prometheus:
    """Start /usr/bin/prometheus scraping `target` (host:port) every second."""
    prometheus, promtool = binary("prometheus"), binary("promtool")
    directory.mkdir()
    config = directory / "prometheus.yml"
    # scrape_timeout must not exceed scrape_interval; both 1 s keeps the test short.
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    # A config mistake reads better from promtool than from a server that won't start.
    checked = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, f"promtool check config:\n{checked.stdout}{checked.stderr}"

    # free_port() only finds a port that was free: another process may take it
    # before Prometheus binds, so a failed start is tried again on a new port.
    for attempt in range(3):
        port = free_port()
        log = directory / f"prometheus-{attempt}.log"
        with open(log, "wb") as log_file:
            process = launch(prometheus, config, directory / f"data-{attempt}", port, log_file)
        server = Prometheus(process, port, log)
        if wait_ready(process, server.url):
            return server
        server.stop()
    pytest.fail(f"Prometheus did not start in 3 tries:\n{tail(log)}", pytrace=False)


def launch(
    prometheus: str, config: Path, data: Path, port: int, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            # Loopback only: nothing outside this machine should reach the test server.
            f"--web.listen-address=127.0.0.1:{port}",
            # A fresh, empty TSDB in the test's tmp dir: nothing to replay, so it is
            # ready in ~0.2 s, and no state leaks from /var/lib/prometheus.
            f"--storage.tsdb.path={data}",
            # The API is all the test uses; warnings and errors are still logged,
            # and the test reads scrape errors from /api/v1/targets instead.
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def prometheus(guest_daemon: RunningDaemon, tmp_path: Path) -> Iterator[Prometheus]:
    """A real Prometheus scraping `guest_daemon`; always stopped after the test."""
    server = start_prometheus(
        tmp_path / "prometheus", f"127.0.0.1:{guest_daemon.daemon.metrics_port}"
    )
    try:
        yield server
    finally:
        server.stop()


def test_prometheus_scrapes_calls_and_traps(
    guest_daemon: RunningDaemon, prometheus: Prometheus
) -> None:
    calls = 'wasmtube_calls_total{module="wasm_test",function="echo",code="%s"}'
    # The first scrape (~5 s after start, see QUERY_TIMEOUT) succeeded before any
    # call, so the counts below can only come from later scrapes: Prometheus
    # followed the page as it changed, not just read it once.
    prometheus.wait_value(f'up{{job="{JOB}"}}', 1)
    assert prometheus.query(calls % "OK") == [], prometheus.diagnosis()

    for _ in range(3):
        assert json.loads(guest_daemon.call("wasm_test", "echo", '{"args":"x"}').json) == {
            "args": "x"
        }
    # `echo` without `args`: the guest refuses it with wasmtube.fail.
    with pytest.raises(grpc.RpcError) as error:
        guest_daemon.call("wasm_test", "echo", "{}")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # `panic` panics in the guest: a trap, answered INTERNAL.
    with pytest.raises(grpc.RpcError) as error:
        guest_daemon.call("wasm_test", "panic", "{}")
    assert error.value.code() == grpc.StatusCode.INTERNAL

    prometheus.wait_value(calls % "OK", 3)
    prometheus.wait_value(calls % "INVALID_ARGUMENT", 1)
    prometheus.wait_value(
        'wasmtube_calls_total{module="wasm_test",function="panic",code="INTERNAL"}', 1
    )
    # The histogram's series made it through too, and the trap counter (summed
    # over `reason`: which kind a Rust panic is belongs to test_errors.py).
    prometheus.wait_value(
        'wasmtube_call_duration_seconds_count{module="wasm_test",function="echo"}', 4
    )
    prometheus.wait_value('sum(wasmtube_traps_total{module="wasm_test",function="panic"})', 1)
    prometheus.wait_value("wasmtube_modules_loaded", 1)
    # The process series every dashboard reads.
    for series in ("process_resident_memory_bytes", "process_cpu_seconds_total"):
        prometheus.wait_value(f'count({series}{{job="{JOB}"}} > 0)', 1)
    prometheus.wait_value(f'up{{job="{JOB}"}}', 1)


def test_promtool_finds_no_problems_in_metrics(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, tmp_path: Path
) -> None:
    promtool = binary("promtool")
    (modules_dir / "wasm_test.wasm").write_bytes(GUEST_WASM.read_bytes())
    # A compile cache, so the cache lookup counter has samples too.
    daemon = start_daemon(modules_dir, cache_dir=tmp_path / "cache")

    # Every kind of sample the daemon can have: calls by code, a trap, an unknown
    # name, a reload after start (reload histogram, module info) and a failed load.
    for _ in range(3):
        daemon.call("wasm_test", "echo", '{"args":"x"}')
    for module, function, json_text in [
        ("wasm_test", "panic", "{}"),
        ("wasm_test", "nope", "{}"),
        ("ghost", "get", "{}"),
    ]:
        with pytest.raises(grpc.RpcError):
            daemon.call(module, function, json_text)
    deploy(modules_dir, "extra", json_module('{"v":1}'))
    daemon.wait_generation("extra", 1)
    deploy(modules_dir, "broken", b"not wasm")
    wait_until(
        lambda: daemon.metric("wasmtube_module_load_failures_total", module="broken"),
        what="the failed load of broken.wasm",
    )

    text = daemon.metrics_text()
    # promtool passing an empty page would prove nothing: check what it was given.
    for sample in [
        "wasmtube_calls_total{",
        "wasmtube_call_duration_seconds_bucket{",
        "wasmtube_traps_total{",
        "wasmtube_module_reloads_total{",
        "wasmtube_module_load_failures_total{",
        "wasmtube_reload_duration_seconds_bucket{",
        "wasmtube_compile_cache_lookups_total{",
        "wasmtube_module_generation{",
        "wasmtube_module_info{",
        "wasmtube_modules_loaded ",
    ]:
        assert sample in text, f"no {sample} sample on the page:\n{text}"

    # promtool exits 3 on lint problems and 1 on parse errors, and prints each
    # problem as "metric_name: what is wrong"; a clean page gives no output at all.
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    report = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not report, (
        f"promtool check metrics exited {result.returncode}:\n{report}"
    )
