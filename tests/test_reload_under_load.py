"""Reloads under load fail no call, and reloading does not grow memory."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from conftest import RunningDaemon, deploy, json_module, sha256
from wasmtube.v1 import wasmtube_pb2 as pb

VERSIONS = {1: json_module('{"version":1}'), 2: json_module('{"version":2}')}


def test_fifty_redeploys_under_four_callers_fail_no_call(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "m", VERSIONS[1])
    daemon = start_daemon(modules_dir)
    version_of = {sha256(data): v for v, data in VERSIONS.items()}
    request = pb.CallRequest(module="m", function="get", json="{}")
    stop = threading.Event()
    answers: list[tuple[float, str, str]] = []
    failures: list[grpc.RpcError] = []

    def caller() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = daemon.stub.Call(request, timeout=10)
            except grpc.RpcError as e:
                failures.append(e)
                continue
            answers.append((sent, response.json, response.module_sha256))

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for thread in callers:
        thread.start()
    for i in range(50):  # 50 deploys over 20 s, alternating the two versions
        time.sleep(0.4)
        deploy(modules_dir, "m", VERSIONS[2 if i % 2 == 0 else 1])
    last_deploy = time.monotonic()
    final = 1  # the 50th deploy (i = 49) put version 1 in place
    time.sleep(1.5)
    stop.set()
    for thread in callers:
        thread.join()

    assert failures == []
    assert len(answers) > 1000
    for _, output, module_sha256 in answers:
        # Every answer came from the version its hash names.
        assert json.loads(output)["version"] == version_of[module_sha256]
    late = [output for sent, output, _ in answers if sent > last_deploy + 1.0]
    assert late and all(json.loads(o)["version"] == final for o in late)
    # One reload per deploy: 50 deploys after generation 1.
    assert daemon.modules()["m"].generation == 51


def test_a_thousand_reloads_do_not_grow_memory(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "m", VERSIONS[1])
    daemon = start_daemon(modules_dir, reload_debounce=0.0)
    registry = daemon.daemon.modules
    baseline = 0
    for i in range(1000):
        deploy(modules_dir, "m", VERSIONS[2 if i % 2 == 0 else 1])
        deadline = time.monotonic() + 10
        while registry.get("m").generation < i + 2:
            assert time.monotonic() < deadline, f"reload {i + 1} did not happen"
            time.sleep(0.001)
        daemon.call("m", "get")  # each version serves, and its pool fills
        if i == 49:
            baseline = _rss()
    assert registry.get("m").generation == 1001
    assert _rss() <= baseline * 1.10, (baseline, _rss())


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
