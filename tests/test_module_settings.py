"""Per-module settings in NAME.toml beside NAME.wasm: read at load, reloaded
with the module, and a bad file keeps the settings that serve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from conftest import RunningDaemon, deploy, sha256, wait_until, wat

# `config` returns the module's config object; `offset` the last digit of the
# seed offset it was called with; `calls` how many calls its instance has
# served; `grow` "1" if memory could grow by 4 pages, else "0"; `spin` loops.
CONFIGURED = wat("""
(module
  (import "wasmtube" "config" (func $config (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (func (export "wasmtube_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "config") (param i32) (param i32) (result i64)
    (local $n i32)
    (local.set $n (call $config (i32.const 0) (i32.const 0)))
    (drop (call $config (i32.const 8192) (local.get $n)))
    (i64.or (i64.shl (i64.const 8192) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
  (func (export "config_outside") (param i32) (param i32) (result i64)
    (if (i32.ne (call $config (i32.const 0x7ffffff0) (i32.const 100)) (i32.const -1))
      (then unreachable))
    (i32.store8 (i32.const 4096) (i32.const 0x30))
    (i64.or (i64.shl (i64.const 4096) (i64.const 32)) (i64.const 1)))
  (func (export "offset") (param $o i32) (param i32) (result i32)
    (i32.store8 (local.get $o) (i32.add (i32.const 0x30) (i32.rem_u (local.get $o) (i32.const 10))))
    (i32.const 1))
  (func (export "calls") (param $o i32) (param i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (local.get $o) (i32.add (i32.const 0x30) (global.get $calls)))
    (i32.const 1))
  (func (export "grow") (param $o i32) (param i32) (result i32)
    (i32.store8 (local.get $o)
      (select (i32.const 0x30) (i32.const 0x31)
        (i32.eq (memory.grow (i32.const 4)) (i32.const -1))))
    (i32.const 1))
  (func (export "spin") (param i32) (param i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))
""")


def write_settings(directory: Path, name: str, text: str) -> None:
    """Replace NAME.toml atomically, as a deployer would."""
    tmp = directory / f".{name}.toml.tmp"
    tmp.write_text(text)
    tmp.replace(directory / f"{name}.toml")


@pytest.fixture
def configured(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    deploy(modules_dir, "configured", CONFIGURED)
    write_settings(
        modules_dir,
        "configured",
        'seed_offset = 7\n\n[config]\ngreeting = "Hello"\nsizes = [1, 2]\nwhen = 2026-11-25\n',
    )
    return start_daemon(modules_dir)


def test_a_module_without_a_file_runs_with_the_daemons_options(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "plain", CONFIGURED)
    daemon = start_daemon(modules_dir, call_timeout=4, max_memory=8 << 20)
    assert daemon.call("plain", "config").json == "{}"
    assert daemon.call("plain", "offset").json == "2"  # the default offset, 42
    settings = daemon.modules()["plain"].settings
    assert (settings.seed_offset, settings.instance_policy) == (42, "pooled")
    assert (settings.call_timeout_seconds, settings.max_memory_bytes) == (4, 8 << 20)
    assert (settings.config_json, settings.file_sha256) == ("{}", "")


def test_the_guest_reads_its_config_and_seed_offset(configured: RunningDaemon) -> None:
    response = configured.call("configured", "config")
    assert response.json == '{"greeting":"Hello","sizes":[1,2],"when":"2026-11-25"}'
    assert configured.call("configured", "offset").json == "7"
    # A range outside linear memory gets -1, not a trap.
    assert configured.call("configured", "config_outside").json == "0"
    info = configured.modules()["configured"]
    assert info.settings.seed_offset == 7
    text = (configured.modules_dir / "configured.toml").read_bytes()
    assert info.settings.file_sha256 == sha256(text)


def test_changing_the_file_reloads_the_module_with_new_settings(
    configured: RunningDaemon,
) -> None:
    write_settings(configured.modules_dir, "configured", '[config]\ngreeting = "Hi"\n')
    info = configured.wait_generation("configured", 2)
    assert info.settings.seed_offset == 42
    response = configured.call("configured", "config")
    assert (response.json, response.generation) == ('{"greeting":"Hi"}', 2)
    assert configured.call("configured", "offset").json == "2"
    # Removing the file goes back to the daemon's options.
    (configured.modules_dir / "configured.toml").unlink()
    configured.wait_generation("configured", 3)
    assert configured.call("configured", "config").json == "{}"


def test_a_bad_file_is_reported_and_the_previous_settings_stay(
    configured: RunningDaemon,
) -> None:
    write_settings(configured.modules_dir, "configured", "seed_offset = \n")

    error = wait_until(
        lambda: configured.modules()["configured"].last_error, what="the settings error"
    )
    assert "configured.toml: is not valid TOML" in error
    assert configured.metric(
        "wasmtube_module_load_failures_total", module="configured", reason="settings"
    )
    response = configured.call("configured", "config")
    assert (response.generation, configured.call("configured", "offset").json) == (1, "7")
    assert '"greeting":"Hello"' in response.json
    # Fixing the file loads it and clears the error.
    write_settings(configured.modules_dir, "configured", "seed_offset = 3\n")
    info = configured.wait_generation("configured", 2)
    assert info.last_error == ""
    assert configured.call("configured", "offset").json == "3"


def test_a_module_with_a_bad_file_is_not_loaded_and_says_why(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    cases = {
        "unknown_key": ("timeout = 3\n", "unknown setting 'timeout'; the settings are"),
        "long_timeout": (
            "call_timeout = 60\n",
            "call_timeout = 60 is longer than the daemon allows any call (--call-timeout 10)",
        ),
        "big_memory": (
            'max_memory = "1GiB"\n',
            "max_memory = '1GiB' is more than the daemon allows any instance (--max-memory",
        ),
        "bad_size": ('max_memory = "lots"\n', "max_memory: 'lots' is not a size"),
        "bad_policy": (
            'instance_policy = "shared"\n',
            "instance_policy must be one of 'fresh', 'pooled', got 'shared'",
        ),
        "bad_offset": ("seed_offset = -1\n", "seed_offset must be an integer from 0 to 2^31-1"),
        "bad_config": ("config = 3\n", "config must be a table ([config]), got 3"),
        "not_utf8": ("# \udcff\n", "is not UTF-8 text"),
    }
    for name, (text, _) in cases.items():
        deploy(modules_dir, name, CONFIGURED)
        (modules_dir / f"{name}.toml").write_bytes(text.encode("utf-8", "surrogateescape"))
    daemon = start_daemon(modules_dir)
    modules = daemon.modules()
    for name, (_, message) in cases.items():
        assert message in modules[name].last_error, name
        assert modules[name].last_error.startswith(str(modules_dir / f"{name}.toml"))
        with pytest.raises(grpc.RpcError) as info:
            daemon.call(name, "offset")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "its file failed to load" in info.value.details()


def test_instance_policy_and_the_operators_override(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    for name in ("fresh", "overridden"):
        deploy(modules_dir, name, CONFIGURED)
        write_settings(modules_dir, name, 'instance_policy = "fresh"\n')
    deploy(modules_dir, "pooled", CONFIGURED)
    daemon = start_daemon(
        modules_dir, module_concurrency=1, module_policies={"overridden": "pooled"}
    )
    assert [daemon.call("fresh", "calls").json for _ in range(3)] == ["1", "1", "1"]
    assert [daemon.call("pooled", "calls").json for _ in range(3)] == ["1", "2", "3"]
    # --module-policy names the module explicitly: it wins over the file.
    assert [daemon.call("overridden", "calls").json for _ in range(2)] == ["1", "2"]
    assert daemon.modules()["overridden"].settings.instance_policy == "pooled"


def test_a_module_may_lower_its_memory_cap(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "roomy", CONFIGURED)
    deploy(modules_dir, "tight", CONFIGURED)
    write_settings(modules_dir, "tight", 'max_memory = "192KiB"\ninstance_policy = "fresh"\n')
    daemon = start_daemon(modules_dir)
    assert daemon.call("roomy", "grow").json == "1"
    assert daemon.call("tight", "grow").json == "0"
    assert daemon.modules()["tight"].settings.max_memory_bytes == 192 * 1024


def test_a_module_may_shorten_its_call_timeout(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "quick", CONFIGURED)
    write_settings(modules_dir, "quick", "call_timeout = 0.2\n")
    daemon = start_daemon(modules_dir, call_timeout=5)
    with pytest.raises(grpc.RpcError) as info:
        daemon.call("quick", "spin")
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Stopped by the module's 0.2 s, not the daemon's 5 s.
    assert "ran past its 0.2 s deadline" in info.value.details()


def test_a_memory_cap_below_the_modules_initial_memory_is_refused(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "big", wat('(module (memory (export "memory") 3))'))
    write_settings(modules_dir, "big", 'max_memory = "128KiB"\n')
    daemon = start_daemon(modules_dir)
    assert (
        "max_memory = 131072 bytes in big.toml is less than the 196608 bytes the module's "
        "memory starts with" in daemon.modules()["big"].last_error
    )
    assert daemon.metric("wasmtube_module_load_failures_total", module="big", reason="settings")
