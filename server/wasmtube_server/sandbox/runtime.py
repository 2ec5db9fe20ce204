"""The wasmtime Engine every module runs on, with the limits every call gets.

Time is bounded by epoch interruption: a ticker thread advances the engine's
epoch every TICK seconds and each Store is armed with a deadline in ticks, so
a guest in an endless loop traps with INTERRUPT shortly after its deadline.
Fuel (optional) bounds instructions instead. Space is capped per Store, for
the whole instance: its one linear memory, the elements of each of its few
tables, and the count of instances, memories and tables.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from ..config import Config
from .compile_cache import CompileCache
from .host import HOST_MODULE, HostFunctions
from .wasi import WASI_MODULE, Interrupts, WasiShim

__all__ = ["MAX_TABLES", "TICK_SECONDS", "Limits", "Runtime", "ticks"]

# Epoch granularity: a deadline fires at most one tick late. The tick is
# short against any call timeout, and long enough that the ticker thread costs
# next to nothing (docs/benchmarks.md).
TICK_SECONDS = 0.01
# Tables an instance may have. Toolchains emit one (the indirect function
# table), a few more with reference types; 8 leaves room for those while
# bounding what tables can hold to 8 x max_table_elements x 8 bytes (4 MiB at
# the default cap), next to the linear memory cap.
MAX_TABLES = 8
# Each instance has its own Store, so a Store holds exactly one instance and
# (the calling conventions pass pointers into it) one linear memory.
_INSTANCES_PER_STORE = 1
_MEMORIES_PER_STORE = 1


@dataclass(frozen=True, slots=True)
class Limits:
    """What bounds every call and instance: the daemon's options (Config,
    where each is documented and has its default) as the sandbox needs them."""

    call_timeout: float
    fuel: int | None
    max_memory: int
    max_table_elements: int
    wasi: bool
    cache_dir: Path | None
    cache_max_entries: int
    guest_log_rate: float

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        return cls(
            call_timeout=config.call_timeout,
            fuel=config.fuel,
            max_memory=config.max_memory,
            max_table_elements=config.max_table_elements,
            wasi=config.wasi,
            cache_dir=config.cache_dir,
            cache_max_entries=config.cache_max_entries,
            guest_log_rate=config.guest_log_rate,
        )


def ticks(seconds: float) -> int:
    """Epoch ticks for a deadline `seconds` away; one more, since the current
    tick is already partly over."""
    return max(1, math.ceil(seconds / TICK_SECONDS)) + 1


class Runtime:
    """One Engine and Linker, shared by all modules and threads."""

    def __init__(
        self,
        limits: Limits,
        on_cache_lookup: Callable[[str], None] = lambda result: None,
        on_guest_log_dropped: Callable[[str], None] = lambda module: None,
    ) -> None:
        self.limits = limits
        fuel = limits.fuel is not None
        config = wasmtime.Config()
        config.cranelift_opt_level = "speed"
        config.epoch_interruption = True
        # Memories grow in place, inside their address reservation, so the
        # host can keep each instance's base address (see memory.py).
        config.memory_may_move = False
        # Fuel instruments every block, so only pay for it when asked to.
        config.consume_fuel = fuel
        # Proposals wasmtime enables by default that the sandbox cannot bound
        # or the calling conventions cannot use, turned off so that a module
        # needing one fails to load, naming it, instead of failing later:
        # more than one linear memory (only memory 0 is exported, capped and
        # passed pointers), 64-bit memories (the conventions pass i32
        # pointers), shared memories and atomics (threads: a wait could block
        # a host thread past any deadline), and GC (its heap is a second,
        # separately capped store of memory beside the linear memory).
        config.wasm_multi_memory = False
        config.wasm_memory64 = False
        config.wasm_threads = False
        config.wasm_gc = False
        self.engine = wasmtime.Engine(config)
        # Every setting above that changes compiled code, for the cache key.
        settings = (
            f"opt=speed epoch=1 fuel={int(fuel)} may_move=0 "
            "multi_memory=0 memory64=0 threads=0 gc=0"
        )
        self.cache = (
            CompileCache(
                limits.cache_dir,
                self.engine,
                settings,
                limits.cache_max_entries,
                on_cache_lookup,
            )
            if limits.cache_dir is not None
            else None
        )
        self.linker = wasmtime.Linker(self.engine)
        self.host = HostFunctions(limits.guest_log_rate, on_guest_log_dropped)
        self.host.define(self.linker)
        self.interrupts = Interrupts()
        if limits.wasi:
            self.linker.define_wasi()
            # Over wasmtime's own: the WASI functions that could run past a
            # call's deadline (see wasi.py).
            WasiShim(self.host.instance_of, self.interrupts).define(self.linker)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="wasmtube-epoch", daemon=True)

    def start(self) -> None:
        self._ticker.start()

    def interrupt_all(self) -> None:
        """Make every guest call running now end at once, as timed out.

        Advancing the epoch past the longest deadline any Store can have
        makes running guest code trap with INTERRUPT at its next check, and
        host functions that wait for a call (wasi.py) return at once and end
        it. Calls armed afterwards run as usual.
        """
        for _ in range(math.ceil(self.limits.call_timeout / TICK_SECONDS) + 2):
            self.engine.increment_epoch()
        self.interrupts.interrupt()

    def stop(self) -> None:
        """Stop the ticker, and first interrupt every guest still running:
        without ticks no deadline would ever pass, and a guest in an endless
        loop would spin on after shutdown, or a WASI sleep wait it out."""
        self.interrupt_all()
        self.interrupts.close()
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout=1)

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.engine.increment_epoch()

    def provides(self, import_module: str, name: str) -> bool:
        """Whether the import `import_module.name` can be satisfied."""
        if import_module == HOST_MODULE:
            return name in HostFunctions.NAMES
        return self.limits.wasi and import_module == WASI_MODULE

    def new_store(self, max_memory: int) -> wasmtime.Store:
        """A Store for one instance, bounded as a whole: one linear memory of
        at most `max_memory` bytes, at most MAX_TABLES tables of at most
        max_table_elements elements each (GuestInstance arms it before
        instantiating).

        At a cap memory.grow and table.grow return -1 (they do not trap), and
        a module that starts beyond one cannot be instantiated.
        """
        store = wasmtime.Store(self.engine)
        store.set_limits(
            memory_size=max_memory,
            table_elements=self.limits.max_table_elements,
            instances=_INSTANCES_PER_STORE,
            tables=MAX_TABLES,
            memories=_MEMORIES_PER_STORE,
        )
        if self.limits.wasi:
            # No preopened directories, no environment, no arguments; stdio is
            # discarded. A guest gets clocks and randomness, nothing else.
            store.set_wasi(wasmtime.WasiConfig())
        return store
