"""Imports: nothing is provided unless asked for, and WASI comes without
files, environment or network."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import RunningDaemon, deploy, json_module, wait_until, wat

# Asks WASI for its environment and for preopened directory 3, and reports
# both as single digits: {"env":N,"preopen_errno":E}.
WASI_PROBE = wat("""
(module
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 2048) "{\\"env\\":0,\\"preopen_errno\\":0}")
  (func (export "probe") (param $at i32) (param i32) (result i32)
    (drop (call $env (i32.const 3000) (i32.const 3004)))
    (i32.store8 (i32.const 2055) (i32.add (i32.const 48) (i32.load (i32.const 3000))))
    (i32.store8 (i32.const 2073)
      (i32.add (i32.const 48) (call $prestat (i32.const 3) (i32.const 3008))))
    (memory.copy (local.get $at) (i32.const 2048) (i32.const 27))
    (i32.const 27)))
""")


def test_unprovided_import_fails_the_load_naming_it(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "m", json_module('{"v":1}'))
    daemon = start_daemon(modules_dir)
    deploy(modules_dir, "m", WASI_PROBE)
    info = wait_until(lambda: daemon.modules()["m"].last_error and daemon.modules()["m"])
    assert "wasi_snapshot_preview1.environ_sizes_get" in info.last_error
    assert "--wasi" in info.last_error
    # The working version keeps serving.
    assert daemon.call("m", "get").json == '{"v":1}'


def test_wasi_offers_no_environment_and_no_directories(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "w", WASI_PROBE)
    daemon = start_daemon(modules_dir, wasi=True)
    assert daemon.modules()["w"].last_error == ""
    answer = json.loads(daemon.call("w", "probe").json)
    assert answer["env"] == 0
    # 8 is WASI's EBADF: there is no preopened directory to open files under.
    assert answer["preopen_errno"] == 8


def test_wasi_does_not_offer_other_imports(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(
        modules_dir, "x", wat('(module (import "env" "abort" (func)) (memory (export "memory") 1))')
    )
    daemon = start_daemon(modules_dir, wasi=True)
    assert "env.abort" in daemon.modules()["x"].last_error
