"""Live instances of a compiled module, each in a Store of its own.

wasmtime's rules shape this file: a Store must never be used by two threads at
once, a Func or Memory used with another Store aborts the process, and a Store
frees its instances only when it is dropped. So a GuestInstance bundles one
Store with the exports taken from it, and only one call holds it at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import wasmtime

from ..errors import ModuleLoadError
from .compiled import MEMORY_EXPORT, CompiledModule

__all__ = ["GuestInstance", "InstancePool"]


class GuestInstance:
    """One instance with its own Store; never shared between threads."""

    __slots__ = ("_funcs", "_instance", "memory", "store")

    def __init__(self, compiled: CompiledModule, engine: wasmtime.Engine) -> None:
        self.store = wasmtime.Store(engine)
        try:
            self._instance = compiled.instance_pre.instantiate(self.store)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
            raise ModuleLoadError(f"cannot be instantiated: {e}") from e
        memory = self._instance.exports(self.store)[MEMORY_EXPORT]
        assert isinstance(memory, wasmtime.Memory)  # checked by compile_module
        self.memory = memory
        self._funcs: dict[str, wasmtime.Func] = {}

    def func(self, name: str) -> wasmtime.Func:
        """The export `name` of this instance, looked up once."""
        func = self._funcs.get(name)
        if func is None:
            export = self._instance.exports(self.store)[name]
            assert isinstance(export, wasmtime.Func)  # checked by compile_module
            func = self._funcs[name] = export
        return func


class InstancePool:
    """Warm instances of one module version, handed to one call at a time.

    An instance that saw an error is dropped instead of returned: a trap can
    leave its memory and globals in any state.
    """

    def __init__(self, compiled: CompiledModule, engine: wasmtime.Engine, max_idle: int) -> None:
        self._compiled = compiled
        self._engine = engine
        self._max_idle = max_idle
        self._idle: list[GuestInstance] = []
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Instantiate once now, so a module that cannot start fails at load."""
        instance = GuestInstance(self._compiled, self._engine)
        self._release(instance)

    @contextmanager
    def acquire(self) -> Iterator[GuestInstance]:
        with self._lock:
            instance = self._idle.pop() if self._idle else None
        if instance is None:
            instance = GuestInstance(self._compiled, self._engine)
        yield instance
        # Reached only when the call raised nothing; otherwise the instance
        # is dropped here, and its Store with it.
        self._release(instance)

    def _release(self, instance: GuestInstance) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(instance)

    @property
    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)
