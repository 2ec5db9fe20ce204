"""Reloads under load fail no call. (That reloading does not grow memory is
measured by bench/memory.py.)"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from conftest import RunningDaemon, deploy, json_module, sha256, wait_until
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

    def answered_since(moment: float, count: int) -> bool:
        return sum(1 for sent, _, _ in list(answers) if sent > moment) >= count

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for thread in callers:
        thread.start()
    try:
        for i in range(50):  # alternating the two versions, each under load
            deployed = time.monotonic()
            deploy(modules_dir, "m", VERSIONS[2 if i % 2 == 0 else 1])
            daemon.wait_generation("m", i + 2)
            wait_until(
                lambda since=deployed: answered_since(since, 8), what="calls across the reload"
            )
        final = 1  # the 50th deploy (i = 49) put version 1 in place
        settled = time.monotonic()
        wait_until(lambda: answered_since(settled, 20), what="calls after the last reload")
    finally:
        stop.set()
        for thread in callers:
            thread.join()

    assert failures == []
    for _, output, module_sha256 in answers:
        # Every answer came from the version its hash names.
        assert json.loads(output)["version"] == version_of[module_sha256]
    late = [output for sent, output, _ in answers if sent > settled]
    assert late and all(json.loads(o)["version"] == final for o in late)
    # One reload per deploy: 50 deploys after generation 1.
    assert daemon.modules()["m"].generation == 51
