"""Hostile files in the module directory: FIFOs, devices, directories, dangling
symlinks and files too big to read. Each is a failed load with a reason a
person can act on, and never stops the daemon from serving every other module."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from conftest import RunningDaemon, deploy, is_serving, json_module, sha256, wait_until
from wasmtube_server.modules.watcher import ModuleWatcher

GOOD = json_module('{"good":true}')
X = json_module('{"x":true}')
# Small enough to write files just over it quickly; every module here fits.
LIMIT = 4096


def custom_section(content_size: int) -> bytes:
    """A wasm custom section named "p" whose content is `content_size` bytes."""
    content = b"\x01p" + b"\0" * (content_size - 2)
    return b"\x00" + leb128(len(content)) + content


def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def padded(module: bytes, size: int) -> bytes:
    """`module` with a custom section that makes it exactly `size` bytes: a
    valid module of that size."""
    for content_size in range(size - len(module), 1, -1):
        data = module + custom_section(content_size)
        if len(data) == size:
            return data
    raise AssertionError(f"cannot pad {len(module)} bytes to {size}")


# Each shape puts something hostile at `path`, in a directory `home` outside
# the module directory for whatever it links to; with the words its error
# must have and the reason it is counted under.
Shape = Callable[[Path, Path], None]


def fifo(path: Path, home: Path) -> None:
    os.mkfifo(path)


def dev_zero(path: Path, home: Path) -> None:
    path.symlink_to("/dev/zero")


def symlink_to_directory(path: Path, home: Path) -> None:
    target = home / "a-directory"
    target.mkdir(exist_ok=True)
    path.symlink_to(target)


def directory(path: Path, home: Path) -> None:
    path.mkdir()


def dangling(path: Path, home: Path) -> None:
    path.symlink_to(home / "nothing-here")


def one_byte_over(path: Path, home: Path) -> None:
    path.write_bytes(padded(X, LIMIT + 1))


def sparse_huge(path: Path, home: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(1 << 40)


def longer_than_its_size(path: Path, home: Path) -> None:
    # A regular file whose size says 0 and which reads many kilobytes: what a
    # file that grows while it is read looks like to the loader.
    path.symlink_to("/proc/self/maps")


MODULE_SHAPES = [
    pytest.param(fifo, "is a FIFO, not a regular file", "not_regular_file", id="fifo"),
    pytest.param(
        dev_zero,
        "is a symlink to /dev/zero, a character device, not a regular file",
        "not_regular_file",
        id="dev-zero",
    ),
    pytest.param(symlink_to_directory, "a directory, not a regular file", "not_regular_file",
                 id="symlink-to-directory"),
    pytest.param(directory, "is a directory, not a regular file", "not_regular_file",
                 id="directory"),
    pytest.param(dangling, "which does not exist (a dangling symlink)", "dangling_symlink",
                 id="dangling-symlink"),
    pytest.param(one_byte_over, f"is {LIMIT + 1} bytes, more than --max-module-size 4 KiB",
                 "too_large", id="one-byte-over"),
    pytest.param(sparse_huge, f"is {1 << 40} bytes, more than --max-module-size 4 KiB",
                 "too_large", id="sparse-1TiB"),
    pytest.param(longer_than_its_size, "more than --max-module-size 4 KiB (it grew",
                 "too_large", id="grows-while-read"),
]  # fmt: skip


def failed(daemon: RunningDaemon, name: str) -> str:
    """Wait for `name`'s load error in ListModules and return it."""
    return wait_until(
        lambda: (m := daemon.modules().get(name)) is not None and m.last_error,
        what=f"the load error of {name}",
    )


def failures(daemon: RunningDaemon, name: str, reason: str) -> float:
    value = daemon.metric("wasmtube_module_load_failures_total", module=name, reason=reason)
    return value or 0


def assert_refused(daemon: RunningDaemon, name: str, words: str, reason: str) -> None:
    """`name` failed with `words` and `reason`, and every other module serves."""
    error = failed(daemon, name)
    assert words in error
    assert failures(daemon, name, reason) >= 1
    assert daemon.modules()[name].generation == 0
    assert daemon.call("good", "get").json == '{"good":true}'
    assert is_serving(daemon.address)


@pytest.mark.parametrize(("shape", "words", "reason"), MODULE_SHAPES)
def test_a_hostile_module_file_present_at_start_fails_and_the_rest_serves(
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    tmp_path: Path,
    shape: Shape,
    words: str,
    reason: str,
) -> None:
    deploy(modules_dir, "good", GOOD)
    shape(modules_dir / "x.wasm", tmp_path)
    daemon = start_daemon(modules_dir, max_module_size=LIMIT)
    assert_refused(daemon, "x", words, reason)
    # The loader is not stuck on it: a module deployed afterwards loads.
    deploy(modules_dir, "later", X)
    assert daemon.wait_generation("later", 1).sha256 == sha256(X)


@pytest.mark.parametrize(("shape", "words", "reason"), MODULE_SHAPES)
def test_a_hostile_module_file_created_while_running_fails_and_the_rest_serves(
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    tmp_path: Path,
    shape: Shape,
    words: str,
    reason: str,
) -> None:
    deploy(modules_dir, "good", GOOD)
    daemon = start_daemon(modules_dir, max_module_size=LIMIT)
    shape(modules_dir / "x.wasm", tmp_path)
    deploy(modules_dir, "later", X)
    assert daemon.wait_generation("later", 1).sha256 == sha256(X)
    assert_refused(daemon, "x", words, reason)


@pytest.mark.parametrize("watch", ["events", "poll"])
def test_a_fifo_replacing_a_serving_module_keeps_the_old_version_and_reloads_after(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, watch: str
) -> None:
    deploy(modules_dir, "good", GOOD)
    deploy(modules_dir, "x", X)
    daemon = start_daemon(modules_dir, watch=watch, poll_interval=0.1)
    os.mkfifo(modules_dir / ".x.fifo")
    os.rename(modules_dir / ".x.fifo", modules_dir / "x.wasm")
    assert "is a FIFO, not a regular file" in failed(daemon, "x")
    # Like any failed deploy: the version that served keeps serving.
    info = daemon.modules()["x"]
    assert (info.generation, info.sha256) == (1, sha256(X))
    assert daemon.call("x", "get").json == '{"x":true}'
    assert daemon.call("good", "get").json == '{"good":true}'

    deploy(modules_dir, "x", GOOD)
    info = wait_until(
        lambda: (m := daemon.modules().get("x")) and m.sha256 == sha256(GOOD) and m,
        what="x reloaded from a regular file",
    )
    assert info.last_error == ""
    assert daemon.call("x", "get").json == '{"good":true}'


def test_a_module_of_exactly_the_limit_loads(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    exact = padded(X, LIMIT)
    deploy(modules_dir, "x", exact)
    daemon = start_daemon(modules_dir, max_module_size=LIMIT)
    assert daemon.modules()["x"].sha256 == sha256(exact)
    assert daemon.call("x", "get").json == '{"x":true}'


def test_a_symlink_to_a_regular_file_is_a_module(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, tmp_path: Path
) -> None:
    # What a Kubernetes ConfigMap volume holds: x.wasm -> ..data/x.wasm.
    data = modules_dir / "..data"
    data.mkdir()
    (data / "x.wasm").write_bytes(X)
    (modules_dir / "x.wasm").symlink_to(Path("..data") / "x.wasm")
    daemon = start_daemon(modules_dir)
    assert daemon.call("x", "get").json == '{"x":true}'


def too_big_settings(path: Path, home: Path) -> None:
    path.write_text("#" * (1 << 20) + "\n")


SETTINGS_SHAPES = [
    pytest.param(fifo, "x.toml is a FIFO, not a regular file", "not_regular_file", id="fifo"),
    pytest.param(dev_zero, "x.toml is a symlink to /dev/zero, a character device",
                 "not_regular_file", id="dev-zero"),
    pytest.param(dangling, "x.toml is a symlink to", "dangling_symlink", id="dangling-symlink"),
    pytest.param(too_big_settings,
                 f"x.toml is {(1 << 20) + 1} bytes, more than the 1 MiB a settings file may hold",
                 "too_large", id="over-1MiB"),
]  # fmt: skip


@pytest.mark.parametrize(("shape", "words", "reason"), SETTINGS_SHAPES)
def test_a_hostile_settings_file_fails_its_module_only(
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    tmp_path: Path,
    shape: Shape,
    words: str,
    reason: str,
) -> None:
    deploy(modules_dir, "good", GOOD)
    deploy(modules_dir, "x", X)
    shape(modules_dir / "x.toml", tmp_path)
    daemon = start_daemon(modules_dir)
    assert_refused(daemon, "x", words, reason)


@pytest.mark.parametrize(("shape", "words", "reason"), SETTINGS_SHAPES)
def test_a_hostile_settings_file_keeps_the_serving_version(
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    tmp_path: Path,
    shape: Shape,
    words: str,
    reason: str,
) -> None:
    deploy(modules_dir, "good", GOOD)
    deploy(modules_dir, "x", X)
    (modules_dir / "x.toml").write_text("call_timeout = 1.5\n")
    daemon = start_daemon(modules_dir)
    shape(modules_dir / ".x.toml.tmp", tmp_path)
    os.replace(modules_dir / ".x.toml.tmp", modules_dir / "x.toml")
    assert words in failed(daemon, "x")
    assert failures(daemon, "x", reason) >= 1
    info = daemon.modules()["x"]
    assert (info.generation, info.sha256) == (1, sha256(X))
    assert daemon.call("x", "get").json == '{"x":true}'


# The module directory itself: deleted and created again, renamed away, or
# swapped behind a symlink. The daemon follows whatever directory is at the
# path, with either kind of watcher.

NEW = json_module('{"new":true}')


@pytest.fixture(params=["events", "poll"])
def watch(request: pytest.FixtureRequest) -> str:
    return request.param


def watched(start_daemon: Callable[..., RunningDaemon], directory: Path, watch: str):
    return start_daemon(directory, watch=watch, poll_interval=0.1)


def recreate_with_new_modules(directory: Path) -> None:
    directory.mkdir()
    deploy(directory, "new", NEW)
    deploy(directory, "good", NEW)


def assert_follows_the_new_directory(daemon: RunningDaemon) -> None:
    """Only the new directory's modules serve, in their new versions."""
    wait_until(
        lambda: (
            {n: m.sha256 for n, m in daemon.modules().items()}
            == {"new": sha256(NEW), "good": sha256(NEW)}
        ),
        what="the new directory's modules",
    )
    assert daemon.call("new", "get").json == '{"new":true}'
    assert daemon.call("good", "get").json == '{"new":true}'
    # Watched, not just scanned once: a later deploy loads too.
    deploy(daemon.modules_dir, "later", X)
    assert daemon.wait_generation("later", 1).sha256 == sha256(X)
    assert is_serving(daemon.address)


def test_a_deleted_directory_removes_its_modules_and_a_new_one_is_watched(
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    watch: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deploy(modules_dir, "good", GOOD)
    deploy(modules_dir, "x", X)
    daemon = watched(start_daemon, modules_dir, watch)
    with caplog.at_level(logging.INFO, logger="wasmtube_server.modules.watcher"):
        shutil.rmtree(modules_dir)
        wait_until(lambda: daemon.modules() == {}, what="every module removed")
        with pytest.raises(grpc.RpcError) as refused:
            daemon.call("good", "get")
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert daemon.metric("wasmtube_modules_loaded") == 0
        recreate_with_new_modules(modules_dir)
        assert_follows_the_new_directory(daemon)
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert any(
        level == logging.WARNING and f"module directory {modules_dir} does not exist" in message
        for level, message in said
    ), said
    assert any(
        level == logging.INFO and f"module directory {modules_dir} is back" in message
        for level, message in said
    ), said


def test_a_directory_deleted_and_created_again_at_once_is_followed(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, watch: str
) -> None:
    # Faster than any look at the directory: what some sync tools do.
    deploy(modules_dir, "good", GOOD)
    deploy(modules_dir, "x", X)
    daemon = watched(start_daemon, modules_dir, watch)
    shutil.rmtree(modules_dir)
    recreate_with_new_modules(modules_dir)
    assert_follows_the_new_directory(daemon)


def test_a_directory_renamed_away_and_another_created_is_followed(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, watch: str
) -> None:
    deploy(modules_dir, "good", GOOD)
    deploy(modules_dir, "x", X)
    daemon = watched(start_daemon, modules_dir, watch)
    modules_dir.rename(modules_dir.with_name("old-modules"))
    recreate_with_new_modules(modules_dir)
    assert_follows_the_new_directory(daemon)
    # The old directory, still there under another name, is no longer watched.
    deploy(modules_dir.with_name("old-modules"), "ghost", GOOD)
    deploy(modules_dir, "marker", GOOD)
    daemon.wait_generation("marker", 1)
    assert "ghost" not in daemon.modules()


def test_a_symlink_swapped_to_another_directory_is_followed(
    start_daemon: Callable[..., RunningDaemon], tmp_path: Path, watch: str
) -> None:
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir()
    deploy(first, "good", GOOD)
    deploy(first, "x", X)
    live = tmp_path / "live"
    live.symlink_to(first)
    daemon = watched(start_daemon, live, watch)
    assert set(daemon.modules()) == {"good", "x"}

    recreate_with_new_modules(second)
    swap = tmp_path / ".live.tmp"
    swap.symlink_to(second)
    os.replace(swap, live)  # ln -sfn v2 live, atomically
    assert_follows_the_new_directory(daemon)


def test_health_is_not_serving_while_the_directory_is_missing(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, watch: str
) -> None:
    deploy(modules_dir, "good", GOOD)
    daemon = watched(start_daemon, modules_dir, watch)
    assert is_serving(daemon.address)
    shutil.rmtree(modules_dir)
    wait_until(lambda: not is_serving(daemon.address), what="health NOT_SERVING")
    recreate_with_new_modules(modules_dir)
    wait_until(lambda: is_serving(daemon.address), what="health SERVING again")
    assert daemon.call("new", "get").json == '{"new":true}'


def test_the_watcher_tells_when_the_directory_goes_and_comes_back(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, watch: str
) -> None:
    # The contract the daemon's health relies on, with a watcher of our own
    # on the daemon's loader: told why while missing, then None once the
    # directory is back and synced.
    deploy(modules_dir, "good", GOOD)
    daemon = watched(start_daemon, modules_dir, watch)
    told: list[str | None] = []
    watcher = ModuleWatcher(daemon.daemon.loader, 0.05, watch, 0.1, told.append)
    watcher.start()
    try:
        shutil.rmtree(modules_dir)
        wait_until(lambda: told, what="the directory reported missing")
        assert told == [f"module directory {modules_dir} does not exist"]
        recreate_with_new_modules(modules_dir)
        wait_until(lambda: len(told) == 2, what="the directory reported back")
        assert told[1] is None
        # Synced before it says so: the new modules already serve.
        assert daemon.call("new", "get").json == '{"new":true}'
    finally:
        watcher.stop()


# The compile cache (--cache-dir): its entries are native code the daemon
# runs, so an entry must prove which module it was compiled from, and no one
# but the daemon's user may write there.

A = json_module('{"module":"a"}')
B = json_module('{"module":"b"}')


def entry_of(cache: Path, module: bytes) -> Path:
    (entry,) = cache.glob(f"{sha256(module)}-*.cwasm")
    return entry


def cache_lookups(daemon: RunningDaemon, result: str) -> float:
    return daemon.metric("wasmtube_compile_cache_lookups_total", result=result) or 0


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_an_entry_copied_over_another_modules_entry_is_not_trusted(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cache: Path
) -> None:
    deploy(modules_dir, "a", A)
    deploy(modules_dir, "b", B)
    start_daemon(modules_dir, cache_dir=cache).close()
    # B's compiled code under A's name: a valid entry, of the wrong module.
    shutil.copyfile(entry_of(cache, B), entry_of(cache, A))

    daemon = start_daemon(modules_dir, cache_dir=cache)
    response = daemon.call("a", "get")
    assert (response.json, response.module_sha256) == ('{"module":"a"}', sha256(A))
    assert daemon.call("b", "get").json == '{"module":"b"}'
    assert (cache_lookups(daemon, "invalid"), cache_lookups(daemon, "hit")) == (1, 1)
    daemon.close()

    # A's entry was compiled again and rewritten: the next start hits both.
    again = start_daemon(modules_dir, cache_dir=cache)
    assert (cache_lookups(again, "invalid"), cache_lookups(again, "hit")) == (0, 2)
    assert again.call("a", "get").json == '{"module":"a"}'


def test_an_entry_of_the_previous_layout_is_compiled_again(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cache: Path
) -> None:
    deploy(modules_dir, "a", A)
    start_daemon(modules_dir, cache_dir=cache).close()
    entry = entry_of(cache, A)
    # The first layout: magic, SHA-256 of the payload, payload; no module hash.
    payload = entry.read_bytes()[len(b"wasmtube-cwasm-2\n") + 64 :]
    entry.write_bytes(b"wasmtube-cwasm-1\n" + hashlib.sha256(payload).digest() + payload)

    daemon = start_daemon(modules_dir, cache_dir=cache)
    assert cache_lookups(daemon, "invalid") == 1
    assert daemon.call("a", "get").json == '{"module":"a"}'


def test_the_cache_directory_the_daemon_creates_is_private(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cache: Path
) -> None:
    deploy(modules_dir, "a", A)
    start_daemon(modules_dir, cache_dir=cache / "compiled")
    assert stat.S_IMODE((cache / "compiled").stat().st_mode) == 0o700
    assert entry_of(cache / "compiled", A)


def own_directory(shared: Path) -> Path:
    """Where the daemon keeps entries when others can write to --cache-dir."""
    return shared / f"wasmtube-{os.geteuid()}"


@pytest.mark.parametrize(
    "mode", [0o777, 0o770, 0o1777, 0o722], ids=["world", "group", "sticky-world", "write-only"]
)
def test_entries_never_go_where_others_can_write(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cache: Path, mode: int
) -> None:
    # A Kubernetes emptyDir is mode 0777 (2777 with an fsGroup).
    deploy(modules_dir, "a", A)
    cache.mkdir()
    cache.chmod(mode)
    start_daemon(modules_dir, cache_dir=cache).close()
    assert not list(cache.glob("*.cwasm"))
    assert stat.S_IMODE(own_directory(cache).stat().st_mode) == 0o700
    assert entry_of(own_directory(cache), A)
    again = start_daemon(modules_dir, cache_dir=cache)
    assert cache_lookups(again, "hit") == 1


def test_an_entry_planted_where_others_can_write_is_never_read(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cache: Path, tmp_path: Path
) -> None:
    deploy(modules_dir, "a", A)
    deploy(modules_dir, "b", B)
    private = tmp_path / "private"
    start_daemon(modules_dir, cache_dir=private).close()
    cache.mkdir()
    cache.chmod(0o777)
    # A valid entry of B under A's name, where anyone could have put it.
    shutil.copyfile(entry_of(private, B), cache / entry_of(private, A).name)

    daemon = start_daemon(modules_dir, cache_dir=cache)
    assert daemon.call("a", "get").json == '{"module":"a"}'
    assert (cache_lookups(daemon, "miss"), cache_lookups(daemon, "hit")) == (2, 0)


def test_the_cache_directory_is_held_open_while_the_daemon_runs(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cache: Path
) -> None:
    # Whoever can write to the shared directory can rename the daemon's own
    # away and put another there: the daemon keeps using the one it opened.
    deploy(modules_dir, "a", A)
    cache.mkdir()
    cache.chmod(0o777)
    daemon = start_daemon(modules_dir, cache_dir=cache)
    own_directory(cache).rename(cache / "moved")
    own_directory(cache).mkdir(mode=0o700)

    deploy(modules_dir, "b", B)
    daemon.wait_generation("b", 1)
    assert entry_of(cache / "moved", B)
    assert not list(own_directory(cache).iterdir())


def test_a_symlink_in_place_of_the_daemons_own_directory_is_refused(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cache: Path, tmp_path: Path
) -> None:
    cache.mkdir()
    cache.chmod(0o777)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    own_directory(cache).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match=re.escape(f"cannot use {cache} as the compile cache")):
        start_daemon(modules_dir, cache_dir=cache)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_a_directory_of_another_user_in_place_of_the_daemons_own_is_refused(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cache: Path
) -> None:
    cache.mkdir()
    cache.chmod(0o777)
    own_directory(cache).mkdir(mode=0o700)
    os.chown(own_directory(cache), 4321, -1)
    with pytest.raises(OSError, match="is not its own private directory \\(owner uid 4321"):
        start_daemon(modules_dir, cache_dir=cache)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_a_cache_directory_of_another_user_gets_a_private_one_inside(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cache: Path
) -> None:
    deploy(modules_dir, "a", A)
    cache.mkdir(mode=0o700)
    os.chown(cache, 4321, -1)
    start_daemon(modules_dir, cache_dir=cache)
    assert entry_of(own_directory(cache), A)


# Files that change without end must not hold up every other module's deploy.


def append_forever(path: Path, stop: threading.Event) -> None:
    with open(path, "ab") as f:
        while not stop.wait(0.002):
            f.write(b"x")
            f.flush()


def create_and_delete_forever(path: Path, stop: threading.Event) -> None:
    while not stop.wait(0.002):
        path.write_bytes(b"x")
        path.unlink()


@pytest.mark.parametrize(
    ("noise", "name"),
    [(append_forever, "noise.log"), (create_and_delete_forever, "junk.txt"),
     (append_forever, "w.wasm")],
    ids=["appended-log", "created-and-deleted", "module-written-for-ever"],
)  # fmt: skip
def test_a_file_changing_without_end_does_not_stop_other_deploys(
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    noise: Callable[[Path, threading.Event], None],
    name: str,
) -> None:
    deploy(modules_dir, "good", GOOD)
    daemon = start_daemon(modules_dir, watch="events")
    stop = threading.Event()
    writer = threading.Thread(target=noise, args=(modules_dir / name, stop))
    writer.start()
    try:
        deploy(modules_dir, "x", X)
        assert daemon.wait_generation("x", 1).sha256 == sha256(X)
        deploy(modules_dir, "good", X)
        assert daemon.wait_generation("good", 2).sha256 == sha256(X)
    finally:
        stop.set()
        writer.join()
