"""The compiled-module cache: restarts skip the compile, and a bad entry is
recompiled, never trusted."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import GUEST_WASM, RunningDaemon, deploy, json_module

MAGIC = b"wasmtube-cwasm-2\n"


@pytest.fixture
def cached(modules_dir: Path, tmp_path: Path) -> Path:
    deploy(modules_dir, "guest", GUEST_WASM.read_bytes())
    deploy(modules_dir, "small", json_module('{"small":true}'))
    return tmp_path / "cache"


def module_hash(entry: bytes) -> bytes:
    """The SHA-256 of the module an entry says it was compiled from."""
    return entry[len(MAGIC) + 32 : len(MAGIC) + 64]


def lookups(daemon: RunningDaemon, result: str) -> float:
    return daemon.metric("wasmtube_compile_cache_lookups_total", result=result) or 0


def restart(start_daemon, daemon: RunningDaemon, **options: object) -> RunningDaemon:
    daemon.close()
    return start_daemon(daemon.modules_dir, **options)


def test_a_restart_loads_from_the_cache(start_daemon, modules_dir: Path, cached: Path) -> None:
    first = start_daemon(modules_dir, cache_dir=cached)
    assert (lookups(first, "miss"), lookups(first, "hit")) == (2, 0)
    assert len(list(cached.glob("*.cwasm"))) == 2

    second = restart(start_daemon, first, cache_dir=cached)
    assert (lookups(second, "miss"), lookups(second, "hit")) == (0, 2)
    assert second.call("guest", "echo", '{"args":"cached"}').json == '{"args":"cached"}'
    assert second.call("small", "get").json == '{"small":true}'


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1000],  # torn write
        lambda data: data[:-7] + bytes(b ^ 0xFF for b in data[-7:]),  # flipped bits
        lambda data: b"not a cache entry",
        # Self-consistent header around bytes that are no compiled module.
        lambda data: (
            MAGIC
            + hashlib.sha256(module_hash(data) + b"x" * 999).digest()
            + module_hash(data)
            + b"x" * 999
        ),
    ],
    ids=["truncated", "corrupt", "garbage", "valid-digest-invalid-module"],
)
def test_a_bad_entry_is_recompiled(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cached: Path, damage
) -> None:
    first = start_daemon(modules_dir, cache_dir=cached)
    for entry in cached.glob("*.cwasm"):
        entry.write_bytes(damage(entry.read_bytes()))

    second = restart(start_daemon, first, cache_dir=cached)
    assert lookups(second, "invalid") == 2
    assert all(m.last_error == "" for m in second.modules().values())
    assert second.call("guest", "echo", '{"args":"x"}').json == '{"args":"x"}'

    # The entries were rewritten whole: the next restart hits.
    third = restart(start_daemon, second, cache_dir=cached)
    assert lookups(third, "hit") == 2


def test_entries_of_other_engine_settings_are_not_used(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cached: Path
) -> None:
    # Fuel changes the compiled code: those entries must not be shared.
    first = start_daemon(modules_dir, cache_dir=cached)
    second = restart(start_daemon, first, cache_dir=cached, fuel=10_000_000)
    assert (lookups(second, "hit"), lookups(second, "miss")) == (0, 2)
    assert second.call("small", "get").json == '{"small":true}'
    assert len(list(cached.glob("*.cwasm"))) == 4


def test_a_cache_that_cannot_be_written_does_not_stop_loading(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cached: Path
) -> None:
    first = start_daemon(modules_dir, cache_dir=cached)
    for entry in cached.glob("*.cwasm"):
        entry.unlink()
        entry.mkdir()  # the entry's name is taken: writing it fails

    second = restart(start_daemon, first, cache_dir=cached)
    assert lookups(second, "invalid") == 2
    assert second.call("small", "get").json == '{"small":true}'
    assert all(m.last_error == "" for m in second.modules().values())


def test_a_cache_dir_that_is_a_file_fails_at_start(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "cache"
    not_a_directory.write_text("")
    with pytest.raises(OSError, match="as the compile cache"):
        start_daemon(modules_dir, cache_dir=not_a_directory)


def test_cache_dir_is_created(start_daemon, modules_dir: Path, tmp_path: Path) -> None:
    deploy(modules_dir, "small", json_module("{}"))
    directory = tmp_path / "a" / "b"
    start_daemon(modules_dir, cache_dir=directory)
    assert len(list(directory.glob("*.cwasm"))) == 1


def test_the_cache_keeps_the_most_recently_used_entries(
    start_daemon, modules_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    for i in range(10):
        deploy(modules_dir, f"m{i}", json_module(f'{{"m":{i}}}'))
    first = start_daemon(modules_dir, cache_dir=cache, cache_max_entries=10)
    assert len(list(cache.glob("*.cwasm"))) == 10

    # One more entry than the cap: the cache prunes down to 90% of it, and
    # the entry just written, the most recently used, stays.
    deploy(modules_dir, "newest", json_module('{"newest":true}'))
    first.wait_generation("newest", 1)
    entries = list(cache.glob("*.cwasm"))
    assert len(entries) == 9
    newest = hashlib.sha256(json_module('{"newest":true}')).hexdigest()
    assert any(entry.name.startswith(newest) for entry in entries)

    # Within the cap a restart loads everything kept from the cache.
    second = restart(start_daemon, first, cache_dir=cache, cache_max_entries=20)
    assert lookups(second, "hit") == 9
    assert lookups(second, "miss") == 2
