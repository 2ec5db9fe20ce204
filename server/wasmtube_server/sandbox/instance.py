"""Live instances of a compiled module, each in a Store of its own.

wasmtime's rules shape this file: a Store must never be used by two threads at
once, a Func or Memory used with another Store aborts the process, and a Store
frees its instances only when it is dropped. So a GuestInstance bundles one
Store with the exports taken from it, and only one call holds it at a time.
"""

from __future__ import annotations

import enum
import threading
import time

import wasmtime

from ..errors import ModuleLoadError
from .abi.conventions import FREE_EXPORT
from .call_state import CallLabel, CallState
from .compiled import MEMORY_EXPORT, CompiledModule
from .load_errors import instantiate_error
from .memory import LinearMemory
from .native import GuestFunc, context_address, export_by_name, set_epoch_deadline
from .runtime import Runtime, ticks
from .traps import Usage, trap_cause

__all__ = ["GuestInstance", "InstancePolicy", "InstancePool"]


class InstancePolicy(enum.Enum):
    # A new instance for every call: no call ever sees another call's memory.
    FRESH = "fresh"
    # Warm instances reused, one call at a time each: faster, shares memory
    # state between consecutive callers.
    POOLED = "pooled"


class GuestInstance:
    """One instance with its own Store; never shared between threads."""

    __slots__ = (
        "__weakref__",
        "_calls",
        "_compiled",
        "_context",
        "_fuel",
        "_instance",
        "current",
        "frees",
        "guest_config",
        "input_buffer",
        "max_memory",
        "memory",
        "runtime",
        "store",
        "wasi_clock_origin",
    )

    def __init__(
        self,
        compiled: CompiledModule,
        runtime: Runtime,
        max_memory: int | None = None,
        guest_config: bytes = b"{}",
    ) -> None:
        self.runtime = runtime
        # The cap on linear memory: the module's own (NAME.toml) or the daemon's.
        self.max_memory = max_memory or runtime.limits.max_memory
        self.store = runtime.new_store(self.max_memory)
        # After the Store's WASI context was made, so at or after the start of
        # the guest's WASI monotonic clock (see wasi.py).
        self.wasi_clock_origin = time.monotonic_ns()
        self._context = context_address(self.store)
        self._fuel = runtime.limits.fuel
        self._compiled = compiled
        # Start functions run during instantiation: they get a call's limits.
        self.arm(runtime.limits.call_timeout)
        try:
            self._instance = compiled.instance_pre.instantiate(self.store)
        except wasmtime.Trap as e:
            raise ModuleLoadError(f"cannot be instantiated: {trap_cause(e)}", "instantiate") from e
        except wasmtime.WasmtimeError as e:
            raise instantiate_error(e, self.max_memory, runtime.limits.max_table_elements) from e
        memory = export_by_name(self.store, self._instance, MEMORY_EXPORT)
        assert isinstance(memory, wasmtime.Memory)  # checked by compile_module
        self.memory = LinearMemory(self._context, memory)
        self._calls: dict[str, GuestFunc] = {}
        # Whether the guest exports the alloc ABI's free, for its outputs and
        # input buffers (compile_module has checked its type).
        self.frees = FREE_EXPORT in compiled.call_shapes
        # The alloc ABI's input buffer (pointer, capacity), kept between calls
        # of a pooled instance so most calls need no wasmtube_alloc.
        self.input_buffer: tuple[int, int] | None = None
        # The module's static configuration, for wasmtube.config.
        self.guest_config = guest_config
        runtime.host.register(self._context, self)

    def arm(self, seconds: float, label: CallLabel | None = None) -> None:
        """Start a call (`label`; None while instantiating): `seconds` of
        time, a full tank of fuel and a new CallState."""
        set_epoch_deadline(self._context, ticks(seconds))
        self.current = CallState(label, seconds)
        if self._fuel is not None:
            self.store.set_fuel(self._fuel)

    def usage(self) -> Usage:
        """How much of its caps the instance uses now, for telling a trap
        after a refused memory.grow or table.grow (see traps.py)."""
        memory_size = self.memory.current_size()
        grown_memory = memory_size if memory_size > self._compiled.initial_memory else 0
        largest_table = 0
        for name, minimum in self._compiled.table_exports:
            table = export_by_name(self.store, self._instance, name)
            if isinstance(table, wasmtime.Table):
                size = table.size(self.store)
                if size > minimum:
                    largest_table = max(largest_table, size)
        limits = self.runtime.limits
        return Usage(grown_memory, self.max_memory, largest_table, limits.max_table_elements)

    def func(self, name: str) -> GuestFunc:
        """A fast caller for export `name` of this instance, made once.

        Only for exports whose types compile_module recorded: i32 parameters
        and at most one i32 or i64 result.
        """
        call = self._calls.get(name)
        if call is None:
            func = export_by_name(self.store, self._instance, name)
            assert isinstance(func, wasmtime.Func)  # checked by compile_module
            params, result = self._compiled.call_shapes[name]
            call = self._calls[name] = GuestFunc(self.store, func, params, result)
        return call


class InstancePool:
    """Instances of one module version, handed to one call at a time.

    With POOLED, up to `max_idle` warm instances wait between calls. An
    instance that saw any error is dropped instead of returned: a trap or an
    interrupt can leave its memory and globals in any state.
    """

    def __init__(
        self,
        compiled: CompiledModule,
        runtime: Runtime,
        policy: InstancePolicy,
        max_idle: int,
        max_memory: int | None = None,
        guest_config: bytes = b"{}",
    ) -> None:
        self._compiled = compiled
        self._runtime = runtime
        self._max_memory = max_memory
        self._guest_config = guest_config
        self.policy = policy
        self._max_idle = max_idle if policy is InstancePolicy.POOLED else 0
        # Calls take and give instances on the event loop and on worker
        # threads alike.
        self._lock = threading.Lock()
        self._idle: list[GuestInstance] = []

    def warm_up(self) -> None:
        """Instantiate once now, so a module that cannot start fails at load."""
        self.give(self._new())

    def take(self) -> GuestInstance:
        """An instance for one call: a warm one if any waits, else a new one.

        Give it back with give() only if the call raised nothing; an instance
        that is not given back is dropped, and its Store with it.
        """
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new()

    def _new(self) -> GuestInstance:
        return GuestInstance(self._compiled, self._runtime, self._max_memory, self._guest_config)

    def give(self, instance: GuestInstance) -> None:
        """Return an instance after a call that succeeded."""
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(instance)
