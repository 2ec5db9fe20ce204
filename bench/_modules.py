"""Modules for benchmarks, written in WAT and assembled with wasmtime."""

from __future__ import annotations

import wasmtime


def small_module(version: int) -> bytes:
    """A tiny seed-ABI module whose `get` answers {"version":N}."""
    text = f'{{"version":{version}}}'
    escaped = text.replace('"', '\\"')
    return bytes(
        wasmtime.wat2wasm(f"""
        (module (memory (export "memory") 1)
          (data (i32.const 4096) "{escaped}")
          (func (export "get") (param i32 i32) (result i32)
            (memory.copy (local.get 0) (i32.const 4096) (i32.const {len(text)}))
            (i32.const {len(text)})))
        """)
    )


def large_module(version: int, functions: int = 3000, steps: int = 12) -> bytes:
    """~1.5 MB of code in 3,000 functions: a compile of about half a second."""
    step = (
        "(local.set $x (i32.add (i32.rotl (local.get $x) (i32.const 5)) "
        "(i32.mul (local.get $b) (i32.const {k}))))"
        "(if (i32.gt_u (local.get $x) (local.get $b)) "
        "(then (local.set $x (i32.mul (local.get $x) (i32.const {m})))) "
        "(else (local.set $x (i32.xor (local.get $x) (i32.const {k})))))"
    )
    bodies = "\n".join(
        f"(func $f{i} (param $a i32) (param $b i32) (result i32) (local $x i32)"
        + " ".join(step.format(k=i * 31 + j + version, m=j * 7 + 3) for j in range(steps))
        + " (local.get $x))"
        for i in range(functions)
    )
    return bytes(
        wasmtime.wat2wasm(f"""
        (module (memory (export "memory") 1) {bodies}
          (func (export "get") (param i32 i32) (result i32)
            (i32.store16 (local.get 0) (i32.const 0x7d7b)) (i32.const 2)))
        """)
    )
