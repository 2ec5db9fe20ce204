"""Hot reload against real files: add, replace by rename or in place, break, remove."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from conftest import RunningDaemon, deploy, json_module, sha256, wait_until, wat

V1 = json_module('{"version":1}')
V2 = json_module('{"version":2}')


@pytest.fixture
def daemon(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    deploy(modules_dir, "m", V1)
    return start_daemon(modules_dir)


def test_new_file_adds_a_module(daemon: RunningDaemon) -> None:
    deploy(daemon.modules_dir, "added", V2)
    info = daemon.wait_generation("added", 1)
    assert info.sha256 == sha256(V2)
    assert daemon.call("added", "get").json == '{"version":2}'


@pytest.mark.parametrize("atomic", [True, False], ids=["rename", "in-place"])
def test_changed_file_serves_the_new_version(daemon: RunningDaemon, atomic: bool) -> None:
    first = daemon.call("m", "get")
    assert (first.json, first.module_sha256, first.generation) == ('{"version":1}', sha256(V1), 1)

    deploy(daemon.modules_dir, "m", V2, atomic=atomic)
    daemon.wait_generation("m", 2)
    second = daemon.call("m", "get")
    assert (second.json, second.module_sha256, second.generation) == (
        '{"version":2}',
        sha256(V2),
        2,
    )
    assert daemon.metric("wasmtube_module_reloads_total", module="m", result="success") == 2.0


def test_cp_then_mv_from_a_temp_name(daemon: RunningDaemon) -> None:
    # The README's recipe: cp x.wasm .x.tmp && mv .x.tmp x.wasm
    tmp = daemon.modules_dir / ".m.tmp"
    tmp.write_bytes(V2)
    os.rename(tmp, daemon.modules_dir / "m.wasm")
    assert daemon.wait_generation("m", 2).sha256 == sha256(V2)
    assert ".m" not in daemon.modules()


@pytest.mark.parametrize(
    "broken",
    [b"garbage", V2[: len(V2) // 2], b"", b'(module (memory (export "memory") 1))'],
    ids=["garbage", "truncated", "empty", "wat-text"],
)
def test_broken_file_never_replaces_the_working_version(
    daemon: RunningDaemon, broken: bytes
) -> None:
    deploy(daemon.modules_dir, "m", broken)
    info = wait_until(
        lambda: daemon.modules()["m"].last_error and daemon.modules()["m"], what="the load error"
    )
    assert (info.generation, info.sha256) == (1, sha256(V1))
    assert info.last_error_at.seconds > 0
    assert daemon.call("m", "get").json == '{"version":1}'
    assert daemon.metric("wasmtube_module_reloads_total", module="m", result="failure") >= 1

    # A good file afterwards loads at once, and the error is gone.
    deploy(daemon.modules_dir, "m", V2)
    info = daemon.wait_generation("m", 2)
    assert info.last_error == ""
    assert daemon.call("m", "get").json == '{"version":2}'


@pytest.mark.parametrize(
    ("module", "words"),
    [
        (wat('(module (import "env" "f" (func)) (memory (export "memory") 1))'), "env.f"),
        (
            wat('(module (func (export "f") (param i32 i32) (result i32) (i32.const 0)))'),
            "no linear memory",
        ),
        (
            wat('(module (memory (export "memory") 1) (func $s unreachable) (start $s))'),
            "cannot be instantiated",
        ),
    ],
    ids=["unknown-import", "no-memory", "start-traps"],
)
def test_module_that_cannot_run_is_refused_with_the_reason(
    daemon: RunningDaemon, module: bytes, words: str
) -> None:
    deploy(daemon.modules_dir, "m", module)
    info = wait_until(lambda: daemon.modules()["m"].last_error and daemon.modules()["m"])
    assert words in info.last_error
    assert daemon.call("m", "get").json == '{"version":1}'


def test_removed_file_makes_the_module_not_found(daemon: RunningDaemon) -> None:
    (daemon.modules_dir / "m.wasm").unlink()
    wait_until(lambda: "m" not in daemon.modules(), what="removal")
    with pytest.raises(grpc.RpcError) as info:
        daemon.call("m", "get")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert daemon.metric("wasmtube_modules_loaded") == 0

    # Coming back continues the generation count instead of restarting it.
    deploy(daemon.modules_dir, "m", V2)
    assert daemon.wait_generation("m", 2).sha256 == sha256(V2)


def test_touching_a_file_does_not_reload(daemon: RunningDaemon) -> None:
    path = daemon.modules_dir / "m.wasm"
    os.utime(path)
    deploy(daemon.modules_dir, "m", V1)  # same bytes, new inode
    deploy(daemon.modules_dir, "other", V2)  # a change after, to know events were handled
    daemon.wait_generation("other", 1)
    assert daemon.modules()["m"].generation == 1


def test_files_that_are_not_modules_are_ignored(daemon: RunningDaemon) -> None:
    (daemon.modules_dir / "notes.txt").write_text("hello")
    (daemon.modules_dir / ".hidden.wasm").write_bytes(V2)
    (daemon.modules_dir / "bad name.wasm").write_bytes(V2)
    deploy(daemon.modules_dir, "marker", V2)
    daemon.wait_generation("marker", 1)
    assert set(daemon.modules()) == {"m", "marker"}


# `slow` sleeps for `seconds` in WASI poll_oneoff (a wall-clock sleep, whatever
# the machine's load), then answers which version it is.
SLOW = """
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 4096) "{{\\"version\\":{version}}}")
  (func (export "slow") (param i32 i32) (result i32)
    (i32.store8 (i32.const 8200) (i32.const 0))   ;; a clock subscription
    (i32.store (i32.const 8208) (i32.const 1))    ;; the monotonic clock
    (i64.store (i32.const 8216) (i64.const {nanoseconds}))
    (drop (call $poll (i32.const 8192) (i32.const 8704) (i32.const 1) (i32.const 9216)))
    (memory.copy (local.get 0) (i32.const 4096) (i32.const 13))
    (i32.const 13)))
"""


def slow_module(version: int, seconds: float) -> bytes:
    return wat(SLOW.format(version=version, nanoseconds=int(seconds * 1e9)))


@pytest.mark.slow
def test_call_in_flight_finishes_on_the_version_it_started_on(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    slow_v1, fast_v2 = slow_module(1, 3.0), slow_module(2, 0)
    deploy(modules_dir, "s", slow_v1)
    daemon = start_daemon(modules_dir, wasi=True)

    answered: list[tuple[object, float]] = []
    caller = threading.Thread(
        target=lambda: answered.append((daemon.call("s", "slow"), time.monotonic()))
    )
    caller.start()
    wait_until(lambda: daemon.metric("wasmtube_calls_running", module="s") == 1)
    deploy(modules_dir, "s", fast_v2)
    daemon.wait_generation("s", 2)
    v2_serving = time.monotonic()
    assert daemon.call("s", "slow").json == '{"version":2}'

    caller.join(timeout=60)
    ((response, returned),) = answered
    # Version 2 served before the call that started on version 1 returned,
    # and that call finished on version 1.
    assert v2_serving < returned
    assert response.json == '{"version":1}'
    assert response.module_sha256 == sha256(slow_v1)
    assert response.generation == 1
