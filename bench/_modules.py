"""Modules for benchmarks, written in WAT and assembled with wasmtime."""

from __future__ import annotations

from typing import NamedTuple

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


# An alloc-ABI echo: `echo` returns its input's own place, packed ptr << 32 | len.
# The allocator is a stack, so the host's wasmtube_free of the newest buffer
# gives the space back and a pooled instance does not grow call after call.
ECHO_WAT = """
(module
  (memory (export "memory") 2)
  (global $top (mut i32) (i32.const 1024))
  (func (export "wasmtube_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $top))
    (if (i64.gt_u (i64.add (i64.extend_i32_u (local.get $p)) (i64.extend_i32_u (local.get $len)))
                  (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
      (then (return (i32.const 0))))
    (global.set $top (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (func (export "wasmtube_free") (param $p i32) (param $len i32)
    (if (i32.eq (i32.add (local.get $p) (local.get $len)) (global.get $top))
      (then (global.set $top (local.get $p)))))
  (func (export "echo") (param $p i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))))
"""


def echo_module() -> bytes:
    """The alloc-ABI echo above, assembled: no parsing, the least a guest can do."""
    return bytes(wasmtime.wat2wasm(ECHO_WAT))


class AllocExports(NamedTuple):
    """An alloc-ABI module instantiated with wasmtime-py's public API alone."""

    store: wasmtime.Store
    memory: wasmtime.Memory
    alloc: wasmtime.Func
    free: wasmtime.Func
    function: wasmtime.Func


def plain_instance(store: wasmtime.Store, module: wasmtime.Module) -> wasmtime.Instance:
    """`module` instantiated the way a wasmtime-py user would. The bundled guest
    imports wasmtube's host functions (wasmtube.fail, ...); here they return
    zeros and do nothing, which is all the benchmarked functions need."""
    linker = wasmtime.Linker(store.engine)
    linker.define_unknown_imports_as_default_values(store, module)
    return linker.instantiate(store, module)


def alloc_exports(wasm: bytes, function: str) -> AllocExports:
    """A warm instance of `wasm` on a default Engine: no deadline, no limits."""
    store = wasmtime.Store(wasmtime.Engine())
    exports = plain_instance(store, wasmtime.Module(store.engine, wasm)).exports(store)
    memory, alloc, free, called = (
        exports["memory"],
        exports["wasmtube_alloc"],
        exports["wasmtube_free"],
        exports[function],
    )
    assert isinstance(memory, wasmtime.Memory)
    assert isinstance(alloc, wasmtime.Func) and isinstance(free, wasmtime.Func)
    assert isinstance(called, wasmtime.Func)
    return AllocExports(store, memory, alloc, free, called)
