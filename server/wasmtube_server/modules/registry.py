"""Which version of each module serves calls, and how a new version replaces it.

A LoadedModule is immutable: a call takes a reference to one and finishes on
it, whatever reloads happen meanwhile. A reload compiles and instantiates the
new version first, outside the lock, and only then swaps one dict entry, so
calls never wait on a compile and never see a half-loaded module. The old
version is freed when the last call holding it returns.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from ..admission import ModuleSlots, Placement
from ..config import Config
from ..errors import ModuleLoadError, ModuleNotFound, SettingsError, StillLoading
from ..metrics import Metrics
from ..sandbox import CompiledModule, InstancePolicy, InstancePool, Runtime, compile_module
from .settings import ModuleSettings
from .source import FILE, ModuleSource

__all__ = ["LoadOutcome", "LoadedModule", "ModuleRegistry", "ModuleStatus"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModule:
    name: str
    sha256: str
    size_bytes: int
    generation: int
    loaded_at: datetime
    compiled: CompiledModule
    pool: InstancePool
    settings: ModuleSettings
    # Shared by every generation of the module, so a reload never doubles
    # the number of calls that may run at once.
    slots: ModuleSlots
    # Where this version's calls run: learnt anew by every version.
    placement: Placement = field(default_factory=Placement)
    # Where this version came from: a file, or a registry and the digest pulled.
    source: ModuleSource | None = None


@dataclass(frozen=True, slots=True)
class ModuleStatus:
    """What ListModules shows for one name: the serving version and the last failure."""

    name: str
    current: LoadedModule | None
    last_error: str
    last_error_at: datetime | None
    # Where the newest version was looked for, whether or not it loaded.
    source: ModuleSource | None = None


class LoadOutcome(Enum):
    LOADED = "loaded"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@dataclass(slots=True)
class _Entry:
    slots: ModuleSlots
    current: LoadedModule | None = None
    generation: int = 0
    last_error: str = ""
    last_error_at: datetime | None = None
    source: ModuleSource | None = None


class ModuleRegistry:
    def __init__(self, runtime: Runtime, metrics: Metrics, config: Config) -> None:
        self._runtime = runtime
        self._metrics = metrics
        self._config = config
        self._entries: dict[str, _Entry] = {}
        # The serving version of each name: what every call looks up, so a
        # single dict read (atomic under the GIL) with no lock.
        self._serving: dict[str, LoadedModule] = {}
        self._lock = threading.Lock()
        metrics.count_calls_from(self._serving_slots)
        # Set once the module directory has been loaded after start-up; until
        # then an unknown name may just not be loaded yet.
        self.ready = threading.Event()

    def serving(self, name: str) -> LoadedModule | None:
        """The version that serves `name` now, or None."""
        return self._serving.get(name)

    def get(self, name: str) -> LoadedModule:
        """The version that serves `name` now; raises ModuleNotFound or StillLoading."""
        module = self._serving.get(name)
        if module is not None:
            return module
        entry = self._entries.get(name)
        if entry is not None and entry.current is not None:
            return entry.current
        if not self.ready.is_set():
            raise StillLoading(
                f"module {name!r} is not loaded yet: wasmtube is still loading its module "
                f"directory after starting; retry shortly"
            )
        if entry is not None and entry.last_error:
            what = "its file" if entry.source is None or entry.source.kind == FILE else "it"
            raise ModuleNotFound(
                f"module {name!r} is not loaded: {what} failed to load: {entry.last_error}"
            )
        raise ModuleNotFound(f"module {name!r} is not loaded; see ListModules for the modules")

    def statuses(self) -> list[ModuleStatus]:
        """Every module that serves or whose newest file failed, by name."""
        with self._lock:
            return [
                ModuleStatus(name, e.current, e.last_error, e.last_error_at, e.source)
                for name, e in sorted(self._entries.items())
                if e.current is not None or e.last_error
            ]

    def names(self) -> set[str]:
        """Every name with a serving version or a failed file."""
        return {status.name for status in self.statuses()}

    def load(
        self,
        name: str,
        wasm: bytes,
        source: ModuleSource | Path | None = None,
        noticed_at: float | None = None,
        settings: ModuleSettings | None = None,
    ) -> LoadOutcome:
        """Make `wasm` with `settings` (the daemon's options if None) the
        serving version of `name`, unless it is already.

        `source` says where `wasm` came from (a Path is a file's); the same
        bytes found at another source (a tag moved to a manifest holding the
        same module) are not loaded again, but the new source is recorded.

        `noticed_at` is the time.monotonic() at which the change was first
        seen (a file event), for the reload latency metric. On failure the
        previous version keeps serving and the error is kept for ListModules.
        """
        sha256 = hashlib.sha256(wasm).hexdigest()
        if isinstance(source, Path):
            source = ModuleSource.file(source)
        if settings is None:
            settings = ModuleSettings.defaults(self._config, name)
        entry = self._entries.get(name)
        current = entry.current if entry is not None else None
        if current is not None and current.sha256 == sha256 and current.settings == settings:
            if source is not None and source != current.source:
                self._set_source(name, current, source)
            self.clear_failure(name)
            return LoadOutcome.UNCHANGED
        try:
            compiled, pool = self._build(name, wasm, sha256, settings, current)
        except ModuleLoadError as e:
            self.record_failure(name, f"{source or name}: {e}", e.reason, source=source)
            return LoadOutcome.FAILED
        self._swap_in(name, sha256, len(wasm), compiled, pool, settings, noticed_at, source)
        return LoadOutcome.LOADED

    def _set_source(self, name: str, current: LoadedModule, source: ModuleSource) -> None:
        """Record that the serving version's bytes were found at `source`."""
        with self._lock:
            entry = self._entry(name)
            if entry.current is current:
                entry.current = self._serving[name] = replace(current, source=source)
                entry.source = source

    def _build(
        self,
        name: str,
        wasm: bytes,
        sha256: str,
        settings: ModuleSettings,
        current: LoadedModule | None,
    ) -> tuple[CompiledModule, InstancePool]:
        """A new version's compiled module and its pool, instantiated once to
        prove it starts; raises ModuleLoadError. Runs outside the lock."""
        # A change of settings alone needs new instances, not a compile.
        if current is not None and current.sha256 == sha256:
            compiled = current.compiled
        else:
            compiled = compile_module(self._runtime, wasm, sha256)
        if compiled.initial_memory > settings.max_memory and settings.file_sha256:
            raise SettingsError(
                f"max_memory = {settings.max_memory} bytes in {name}.toml is less than "
                f"the {compiled.initial_memory} bytes the module's memory starts with"
            )
        pool = InstancePool(
            compiled,
            self._runtime,
            InstancePolicy(settings.instance_policy),
            self._config.max_idle_instances,
            settings.max_memory,
            settings.guest_config,
        )
        pool.warm_up()
        return compiled, pool

    def _swap_in(
        self,
        name: str,
        sha256: str,
        size: int,
        compiled: CompiledModule,
        pool: InstancePool,
        settings: ModuleSettings,
        noticed_at: float | None,
        source: ModuleSource | None = None,
    ) -> None:
        """Make a built version the one that serves `name`: one dict entry."""
        with self._lock:
            entry = self._entry(name)
            entry.generation += 1
            entry.source = source
            entry.current = self._serving[name] = LoadedModule(
                name=name,
                sha256=sha256,
                size_bytes=size,
                generation=entry.generation,
                loaded_at=datetime.now(UTC),
                compiled=compiled,
                pool=pool,
                settings=settings,
                slots=entry.slots,
                source=source,
            )
            entry.last_error, entry.last_error_at = "", None
            self._metrics.module_loaded(name, sha256, entry.generation, self._count_loaded())
            if noticed_at is not None:
                self._metrics.reload_duration.observe(time.monotonic() - noticed_at)
        log.info(
            "module %s loaded: generation %d, sha256 %s, %d bytes",
            name,
            entry.generation,
            sha256[:12],
            size,
        )

    def clear_failure(self, name: str) -> None:
        """The newest version of `name` is the one serving again: forget the failure."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                entry.last_error, entry.last_error_at = "", None

    def remove(self, name: str) -> bool:
        """Stop serving `name`; calls already running finish on their version."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or (entry.current is None and not entry.last_error):
                return False
            # The entry stays, so the generation keeps counting if the file
            # comes back: a (name, generation) pair never means two versions.
            entry.current, entry.last_error, entry.last_error_at = None, "", None
            self._serving.pop(name, None)
            self._metrics.module_removed(name, self._count_loaded())
        log.info("module %s removed", name)
        return True

    def record_failure(
        self, name: str, error: str, reason: str, *, source: ModuleSource | None = None
    ) -> None:
        """Keep why the newest version of `name` (from `source`, if known)
        could not be loaded; the version that serves, if any, keeps serving."""
        with self._lock:
            entry = self._entry(name)
            entry.last_error, entry.last_error_at = error, datetime.now(UTC)
            if source is not None:
                entry.source = source
            self._metrics.module_load_failed(name, reason)
        serving = entry.current
        if serving is not None:
            log.error(
                "module %s failed to load, generation %d keeps serving: %s",
                name,
                serving.generation,
                error,
            )
        else:
            log.error("module %s failed to load: %s", name, error)

    def _entry(self, name: str) -> _Entry:
        """The entry of `name`, created on first sight; call with the lock held."""
        entry = self._entries.get(name)
        if entry is None:
            slots = ModuleSlots(name, self._config.module_concurrency, self._config.module_queue)
            entry = self._entries[name] = _Entry(slots)
        return entry

    def _serving_slots(self) -> list[ModuleSlots]:
        return [module.slots for module in list(self._serving.values())]

    def _count_loaded(self) -> int:
        return sum(1 for e in self._entries.values() if e.current is not None)
