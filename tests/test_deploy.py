"""One deploy, one reload: every way a new version arrives, with events and
with polling, including the kubelet's ConfigMap update."""

from __future__ import annotations

import os
import shutil
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import RunningDaemon, deploy, json_module, sha256, wait_until

V1 = json_module('{"version":1}')
V2 = json_module('{"version":2}')


MARKER = "zz_settled"
_settles: weakref.WeakKeyDictionary[RunningDaemon, int] = weakref.WeakKeyDictionary()


def settle(daemon: RunningDaemon) -> None:
    """Wait until the daemon has handled every file event so far: a marker
    module deployed now is loaded only after them (events are synced in
    order, and a poll scan sees the marker with or after them)."""
    count = _settles[daemon] = _settles.get(daemon, 0) + 1
    deploy(daemon.modules_dir, MARKER, json_module(f'{{"settled":{count}}}'))
    daemon.wait_generation(MARKER, count)


def loaded(daemon: RunningDaemon) -> dict[str, int]:
    """Each module's generation, the marker left out."""
    return {n: m.generation for n, m in daemon.modules().items() if n != MARKER}


def reloads(daemon: RunningDaemon, module: str, result: str = "success") -> float:
    return daemon.metric("wasmtube_module_reloads_total", module=module, result=result) or 0


@pytest.fixture(params=["events", "poll"])
def daemon(request, start_daemon: Callable[..., RunningDaemon], modules_dir: Path):
    deploy(modules_dir, "m", V1)
    return start_daemon(modules_dir, watch=request.param, poll_interval=0.1)


def in_place(directory: Path, data: bytes) -> None:
    (directory / "m.wasm").write_bytes(data)


def atomic_rename(directory: Path, data: bytes) -> None:
    deploy(directory, "m", data)


def copy_then_rename_from_elsewhere(directory: Path, data: bytes) -> None:
    staging = directory.parent / "staging"
    staging.mkdir(exist_ok=True)
    (staging / "m.wasm").write_bytes(data)
    os.rename(staging / "m.wasm", directory / "m.wasm")


def slow_writer(directory: Path, data: bytes) -> None:
    # A copy that pauses mid-file for longer than the debounce.
    with open(directory / "m.wasm", "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        time.sleep(0.4)
        f.write(data[len(data) // 2 :])


@pytest.mark.slow
@pytest.mark.parametrize("how", [in_place, atomic_rename, copy_then_rename_from_elsewhere])
def test_each_deploy_reloads_exactly_once(daemon: RunningDaemon, how) -> None:
    how(daemon.modules_dir, V2)
    info = daemon.wait_generation("m", 2)
    settle(daemon)
    info = daemon.modules()["m"]
    assert (info.generation, info.sha256, info.last_error) == (2, sha256(V2), "")
    assert reloads(daemon, "m") == 2
    assert reloads(daemon, "m", "failure") == 0
    assert daemon.call("m", "get").json == '{"version":2}'


def test_a_paused_in_place_writer_is_loaded_once_complete(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    # With file events the daemon waits for the writer to close the file, so
    # the half-written state is never even tried (polling cannot know).
    deploy(modules_dir, "m", V1)
    daemon = start_daemon(modules_dir, watch="events")
    slow_writer(modules_dir, V2)
    daemon.wait_generation("m", 2)
    settle(daemon)
    assert daemon.modules()["m"].generation == 2
    assert reloads(daemon, "m", "failure") == 0


def test_touch_and_identical_rewrite_do_not_reload(daemon: RunningDaemon) -> None:
    path = daemon.modules_dir / "m.wasm"
    os.utime(path)
    in_place(daemon.modules_dir, V1)
    atomic_rename(daemon.modules_dir, V1)
    settle(daemon)
    assert daemon.modules()["m"].generation == 1
    assert reloads(daemon, "m") == 1


def make_configmap(directory: Path, files: dict[str, bytes], version: int) -> None:
    """What the kubelet does to a ConfigMap volume, step by step: write a new
    timestamped directory, point `..data_tmp` at it, rename that over `..data`,
    and remove the old directory. Module files are symlinks through `..data`."""
    timestamped = directory / f"..2026_11_25_00_00_0{version}.000000001"
    timestamped.mkdir()
    for name, data in files.items():
        (timestamped / name).write_bytes(data)
    tmp_link = directory / "..data_tmp"
    tmp_link.symlink_to(timestamped.name)
    old = os.readlink(directory / "..data") if (directory / "..data").is_symlink() else None
    os.rename(tmp_link, directory / "..data")
    for name in files:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    if old:
        shutil.rmtree(directory / old)


@pytest.mark.parametrize("watch", ["events", "poll"])
def test_configmap_update_reloads_every_changed_module_once(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, watch: str
) -> None:
    a1, b1 = json_module('{"a":1}'), json_module('{"b":1}')
    a2, b2 = json_module('{"a":2}'), json_module('{"b":2}')
    unchanged = json_module('{"c":1}')
    make_configmap(modules_dir, {"a.wasm": a1, "b.wasm": b1, "c.wasm": unchanged}, 1)
    daemon = start_daemon(modules_dir, watch=watch, poll_interval=0.1)
    assert {n: m.generation for n, m in daemon.modules().items()} == {"a": 1, "b": 1, "c": 1}

    make_configmap(modules_dir, {"a.wasm": a2, "b.wasm": b2, "c.wasm": unchanged}, 2)
    daemon.wait_generation("a", 2)
    daemon.wait_generation("b", 2)
    settle(daemon)
    modules = daemon.modules()
    assert loaded(daemon) == {"a": 2, "b": 2, "c": 1}
    assert modules["a"].sha256 == sha256(a2) and modules["b"].sha256 == sha256(b2)
    assert daemon.call("a", "get").json == '{"a":2}'
    assert daemon.call("b", "get").json == '{"b":2}'
    assert reloads(daemon, "a", "failure") == reloads(daemon, "b", "failure") == 0


@pytest.mark.slow
def test_reload_metrics(daemon: RunningDaemon) -> None:
    atomic_rename(daemon.modules_dir, V2)
    daemon.wait_generation("m", 2)
    assert daemon.metric("wasmtube_module_generation", module="m") == 2
    assert daemon.metric("wasmtube_reload_duration_seconds_count") == 1
    # From the file event to serving: at least the debounce, well under a second.
    assert 0 < daemon.metric("wasmtube_reload_duration_seconds_sum") < 5
    in_place(daemon.modules_dir, b"\0asm\x01\0\0\0\x01")
    wait_until(lambda: daemon.modules()["m"].last_error)
    assert daemon.metric("wasmtube_module_load_failures_total", module="m", reason="compile") == 1
    in_place(daemon.modules_dir, b"text")
    wait_until(
        lambda: (
            daemon.metric("wasmtube_module_load_failures_total", module="m", reason="not_wasm") == 1
        )
    )
