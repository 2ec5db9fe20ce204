"""A module file compiled and checked, ready to be instantiated many times."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import wasmtime

from ..config import WASM_PAGE
from ..errors import ModuleLoadError
from .abi.conventions import (
    ALLOC_EXPORT,
    FORMAT_PARAMETERS,
    FREE_EXPORT,
    CallingConvention,
    classify,
    describe_signature,
)
from .causes import summary
from .host import HOST_MODULE, HostFunctions
from .load_errors import compile_error
from .runtime import Runtime

__all__ = ["CompiledModule", "ExportedFunction", "compile_module"]

WASM_MAGIC = b"\0asm"
MEMORY_EXPORT = "memory"


@dataclass(frozen=True, slots=True)
class ExportedFunction:
    name: str
    signature: str
    # None when no calling convention fits the signature: not callable.
    convention: CallingConvention | None
    # The convention's traits, looked up once here instead of on every call.
    uses_allocator: bool = False
    takes_image: bool = False
    # An image function that takes the pixel format as its fifth parameter,
    # and so accepts every format instead of RGB8 only.
    takes_format: bool = False

    @classmethod
    def of(cls, name: str, func_type: wasmtime.FuncType, has_allocator: bool) -> ExportedFunction:
        convention = classify(func_type, has_allocator)
        return cls(
            name,
            describe_signature(func_type),
            convention,
            uses_allocator=convention is not None and convention.uses_allocator,
            takes_image=convention is not None and convention.takes_image,
            takes_format=convention is not None
            and convention.takes_image
            and len(func_type.params) == FORMAT_PARAMETERS,
        )

    @property
    def why_not_callable(self) -> str:
        if self.signature.endswith("-> i64") and self.signature.count("i32") in (2, 4, 5):
            return (
                f"it returns i64 (the alloc ABI), but the module exports no "
                f"{ALLOC_EXPORT}(i32) -> i32 to receive its input"
            )
        return (
            "no calling convention accepts that: use (i32, i32) -> i32 or "
            "(i32, i32, i32, i32[, i32]) -> i32 (seed ABI), or (i32, i32) -> i64 or "
            "(i32, i32, i32, i32[, i32]) -> i64 with wasmtube_alloc (alloc ABI)"
        )


@dataclass(frozen=True, slots=True)
class CompiledModule:
    module: wasmtime.Module
    # InstancePre does the import resolution once; each call only instantiates.
    instance_pre: wasmtime.InstancePre
    functions: dict[str, ExportedFunction]
    # (i32 parameter count, result type "" | "i32" | "i64") of every export
    # the host calls: callable functions and the alloc ABI's helpers.
    call_shapes: dict[str, tuple[int, str]]
    # The size its linear memory starts at, which no memory cap may be below.
    initial_memory: int = 0
    # (name, initial elements) of the tables it exports: the only tables whose
    # size the host can read.
    table_exports: tuple[tuple[str, int], ...] = ()

    @property
    def callable_functions(self) -> list[ExportedFunction]:
        return [f for f in self.functions.values() if f.convention is not None]


def compile_module(runtime: Runtime, wasm: bytes, sha256: str) -> CompiledModule:
    """Compile `wasm` (whose hash is `sha256`) and check that wasmtube can call it.

    Uses and fills the runtime's compile cache. Raises ModuleLoadError with a
    message a module author can act on.
    """
    # wasmtime-py would parse anything not starting with NUL as WAT text; a
    # module file must be a binary, so refuse text (or garbage) up front.
    if not wasm.startswith(WASM_MAGIC):
        raise ModuleLoadError(
            f"not a WebAssembly binary: it does not start with the \\0asm magic "
            f"({len(wasm)} bytes; a truncated or half-written file?)",
            "not_wasm",
        )
    module = runtime.cache.load(sha256) if runtime.cache is not None else None
    if module is None:
        try:
            module = wasmtime.Module(runtime.engine, wasm)
        except wasmtime.WasmtimeError as e:
            raise compile_error(e) from e
        if runtime.cache is not None:
            runtime.cache.store(sha256, module)

    missing = [i for i in module.imports if not runtime.provides(i.module, i.name or "")]
    if missing:
        names = ", ".join(f"{i.module}.{i.name}" for i in missing)
        *others, last = [f"{HOST_MODULE}.{name}" for name in sorted(HostFunctions.NAMES)]
        host = f"{', '.join(others)} and {last}"
        offer = f"only {host}" if not runtime.limits.wasi else f"only {host} and WASI preview 1"
        raise ModuleLoadError(
            f"imports {names}, which wasmtube does not provide; a module may import {offer}"
            + ("" if runtime.limits.wasi else " (start the daemon with --wasi to offer WASI)"),
            "imports",
        )

    exports = {e.name: e.type for e in module.exports}
    if not isinstance(exports.get(MEMORY_EXPORT), wasmtime.MemoryType):
        raise ModuleLoadError(
            f"exports no linear memory named {MEMORY_EXPORT!r}; the host passes input through it",
            "no_memory",
        )
    has_allocator = _has_allocator(exports)
    functions = {
        name: ExportedFunction.of(name, ty, has_allocator)
        for name, ty in exports.items()
        if isinstance(ty, wasmtime.FuncType) and name not in (ALLOC_EXPORT, FREE_EXPORT)
    }
    call_shapes = {
        name: _call_shape(signature)
        for name, signature in _host_called(exports, functions, has_allocator).items()
    }
    try:
        instance_pre = runtime.linker.instantiate_pre(module)
    except wasmtime.WasmtimeError as e:
        raise ModuleLoadError(f"cannot be instantiated: {summary(str(e))}", "instantiate") from e
    memory = exports[MEMORY_EXPORT]
    assert isinstance(memory, wasmtime.MemoryType)
    initial_memory = memory.limits.min * WASM_PAGE
    tables = tuple(
        (name, ty.limits.min) for name, ty in exports.items() if isinstance(ty, wasmtime.TableType)
    )
    return CompiledModule(module, instance_pre, functions, call_shapes, initial_memory, tables)


_FREE_SIGNATURE = "(i32, i32) -> ()"


def _host_called(
    exports: Mapping[str, object], functions: dict[str, ExportedFunction], has_allocator: bool
) -> dict[str, str]:
    """Signatures of the exports the host calls, by name."""
    called = {f.name: f.signature for f in functions.values() if f.convention is not None}
    if has_allocator:
        called[ALLOC_EXPORT] = "(i32) -> i32"
        free = exports.get(FREE_EXPORT)
        # A free with another type is ignored rather than called wrongly.
        if isinstance(free, wasmtime.FuncType) and describe_signature(free) == _FREE_SIGNATURE:
            called[FREE_EXPORT] = _FREE_SIGNATURE
    return called


def _call_shape(signature: str) -> tuple[int, str]:
    params, _, result = signature.partition(" -> ")
    return params.count("i32"), "" if result == "()" else result


def _has_allocator(exports: Mapping[str, object]) -> bool:
    """Whether the module exports the alloc ABI's allocator with the right type."""
    alloc = exports.get(ALLOC_EXPORT)
    if not isinstance(alloc, wasmtime.FuncType):
        return False
    return describe_signature(alloc) == "(i32) -> i32"
