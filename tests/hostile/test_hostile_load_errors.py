"""A module that does not compile fails to load with wasmtime's cause, not
just the stage that failed: every shape of broken file says what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import RunningDaemon, deploy, json_module, wait_until, wat

GOOD = json_module('{"ok":true}')
HEADER = b"\0asm\x01\0\0\0"


@pytest.mark.parametrize(
    ("data", "cause"),
    [
        (GOOD[: len(GOOD) // 2], "unexpected end-of-file (at offset 0x"),
        (HEADER, None),  # a header alone is an empty module: no memory
        (HEADER + b"\xff" * 16, "malformed section id (at offset 0x8)"),
        (
            HEADER + bytes([0x01, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            "invalid var_u32: integer representation too long (at offset 0xe)",
        ),
        (b"\0asm\x02\0\0\0", "unknown binary version"),
        (
            wat('(module (memory (export "memory") 1) ' + "(table 1 funcref) " * 101 + ")"),
            "tables count exceeds limit of 100 (at offset 0x",
        ),
        (
            wat('(module (memory (export "memory") 1) ' + "(memory 1) " * 100 + ")"),
            "multiple memories (at offset 0x",
        ),
        (
            wat('(module (memory (export "memory") 65537))'),
            "memory size must be at most 0x10000 65536-byte pages (at offset 0x",
        ),
    ],
    ids=[
        "truncated",
        "header-only",
        "header-then-garbage",
        "overlong-leb128",
        "version-2",
        "101-tables",
        "101-memories",
        "memory-over-4-GiB",
    ],
)
def test_a_module_that_does_not_compile_says_why(
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    data: bytes,
    cause: str | None,
) -> None:
    deploy(modules_dir, "good", GOOD)
    deploy(modules_dir, "bad", data)
    daemon = start_daemon(modules_dir)
    error = daemon.modules()["bad"].last_error.partition("bad.wasm: ")[2]
    if cause is None:
        assert error == (
            "exports no linear memory named 'memory'; the host passes input through it"
        )
    else:
        assert error.startswith("does not compile: failed to parse WebAssembly module: ")
        assert cause in error
        assert "\n" not in error
    assert daemon.call("good", "get").json == '{"ok":true}'


def test_a_broken_replacement_keeps_the_old_version_and_says_why(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> None:
    deploy(modules_dir, "m", GOOD)
    daemon = start_daemon(modules_dir)
    deploy(modules_dir, "m", GOOD[:-3])
    info = daemon.wait_generation("m", 1)
    error = wait_until(lambda: daemon.modules()["m"].last_error, what="the load error")
    assert "does not compile: failed to parse WebAssembly module: " in error
    assert "unexpected end-of-file" in error
    assert info.generation == 1
    assert daemon.call("m", "get").json == '{"ok":true}'
