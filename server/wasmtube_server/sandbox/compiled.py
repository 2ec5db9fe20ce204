"""A module file compiled and checked, ready to be instantiated many times."""

from __future__ import annotations

from dataclasses import dataclass

import wasmtime

from ..errors import ModuleLoadError
from .abi import CallingConvention, classify, describe_signature

__all__ = ["CompiledModule", "ExportedFunction", "compile_module"]

WASM_MAGIC = b"\0asm"
MEMORY_EXPORT = "memory"


@dataclass(frozen=True, slots=True)
class ExportedFunction:
    name: str
    signature: str
    # None when no calling convention fits the signature: listed, not callable.
    convention: CallingConvention | None


@dataclass(frozen=True, slots=True)
class CompiledModule:
    module: wasmtime.Module
    # InstancePre does the import resolution once; each call only instantiates.
    instance_pre: wasmtime.InstancePre
    functions: dict[str, ExportedFunction]

    @property
    def callable_functions(self) -> list[ExportedFunction]:
        return [f for f in self.functions.values() if f.convention is not None]


def compile_module(engine: wasmtime.Engine, wasm: bytes) -> CompiledModule:
    """Compile `wasm` and check that wasmtube can call it.

    Raises ModuleLoadError with a message a module author can act on.
    """
    # wasmtime-py would parse anything not starting with NUL as WAT text; a
    # module file must be a binary, so refuse text (or garbage) up front.
    if not wasm.startswith(WASM_MAGIC):
        raise ModuleLoadError(
            f"not a WebAssembly binary: it does not start with the \\0asm magic "
            f"({len(wasm)} bytes; a truncated or half-written file?)"
        )
    try:
        module = wasmtime.Module(engine, wasm)
    except wasmtime.WasmtimeError as e:
        raise ModuleLoadError(f"does not compile: {_first_line(e)}") from e

    if module.imports:
        names = ", ".join(f"{i.module}.{i.name}" for i in module.imports)
        raise ModuleLoadError(
            f"imports {names}, which wasmtube does not provide; a module may import nothing"
        )

    exports = {e.name: e.type for e in module.exports}
    if not isinstance(exports.get(MEMORY_EXPORT), wasmtime.MemoryType):
        raise ModuleLoadError(
            f"exports no linear memory named {MEMORY_EXPORT!r}; the host passes input through it"
        )
    functions = {
        name: ExportedFunction(name, describe_signature(ty), classify(ty))
        for name, ty in exports.items()
        if isinstance(ty, wasmtime.FuncType)
    }
    try:
        instance_pre = wasmtime.Linker(engine).instantiate_pre(module)
    except wasmtime.WasmtimeError as e:
        raise ModuleLoadError(f"cannot be instantiated: {_first_line(e)}") from e
    return CompiledModule(module, instance_pre, functions)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
