"""Bring the registry in line with the files in the module directory.

The directory is the truth: whatever events arrived, syncing a name reads its
files as they are now: NAME.wasm and, if there is one, its settings NAME.toml.
The content hashes decide whether anything changed, so a touched file or a
repeated event never reloads. A directory that is missing holds no modules.

Every file is hostile: only regular files (or symlinks to them) are read, and
never more than --max-module-size bytes (files.py). A file that is there but
cannot be read is a failed load, shown in ListModules like a bad module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from ..config import Config, parse_pull
from ..errors import SettingsError
from .files import FileRefused, format_size, read_regular_file
from .names import MODULE_SUFFIX, SETTINGS_SUFFIX, module_name_of
from .registry import LoadOutcome, ModuleRegistry
from .settings import MAX_SETTINGS_SIZE, ModuleSettings, parse_settings

__all__ = ["DirectoryLoader"]

log = logging.getLogger(__name__)


class DirectoryLoader:
    def __init__(self, directory: Path, registry: ModuleRegistry, config: Config) -> None:
        self.directory = directory
        self._registry = registry
        self._config = config
        # The start-up scan and the watcher may sync at the same time: one at
        # a time, or one deploy could be loaded twice.
        self._lock = threading.Lock()
        # Modules pulled from registries (--pull) are the puller's: a file of
        # the same name is ignored, whenever it appears.
        self._pulled = frozenset(parse_pull(config.pull))

    def module_names_on_disk(self) -> set[str]:
        """The names of the module files in the directory; none if it is missing."""
        names: set[str] = set()
        try:
            paths = list(self.directory.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            # Deleted or unmounted: the watcher waits for it to come back.
            return names
        for path in paths:
            name = module_name_of(path)
            if name is not None:
                names.add(name)
            elif path.suffix == MODULE_SUFFIX and not path.name.startswith("."):
                log.warning("ignoring %s: its stem is not a valid module name", path)
        return names

    def sync(
        self, names: Iterable[str] | None = None, noticed_at: float | None = None
    ) -> dict[str, LoadOutcome | None]:
        """Sync `names`, or every module on disk or loaded when None.

        `noticed_at` is when the change was first seen (time.monotonic()).
        Returns what happened to each name: a LoadOutcome, or None if removed
        or absent.
        """
        with self._lock:
            if names is None:
                names = self.module_names_on_disk() | self._registry.names()
            names = set(names)
            for name in sorted(names & self._pulled):
                path = self.directory / f"{name}{MODULE_SUFFIX}"
                if path.exists():
                    log.warning("ignoring %s: module %s is pulled from a registry", path, name)
            return {name: self._sync_one(name, noticed_at) for name in sorted(names - self._pulled)}

    def _sync_one(self, name: str, noticed_at: float | None) -> LoadOutcome | None:
        path = self.directory / f"{name}{MODULE_SUFFIX}"
        settings_path = self.directory / f"{name}{SETTINGS_SUFFIX}"
        try:
            wasm = read_regular_file(path, *self._module_limit())
            if wasm is None:
                self._registry.remove(name)
                return None
            settings = self._read_settings(name, settings_path)
        except FileRefused as e:
            self._registry.record_failure(name, str(e), e.reason)
            return LoadOutcome.FAILED
        except SettingsError as e:
            self._registry.record_failure(name, f"{settings_path}: {e}", e.reason)
            return LoadOutcome.FAILED
        return self._registry.load(name, wasm, path, noticed_at, settings)

    def _read_settings(self, name: str, path: Path) -> ModuleSettings:
        data = read_regular_file(path, *self._settings_limit())
        if data is None:
            return ModuleSettings.defaults(self._config, name)
        return parse_settings(data, name, self._config)

    def _module_limit(self) -> tuple[int, str]:
        """The most bytes a module file may hold, and how to name that limit."""
        limit = self._config.max_module_size
        return limit, f"--max-module-size {format_size(limit)}"

    def _settings_limit(self) -> tuple[int, str]:
        """The most bytes a settings file may hold, and how to name that limit."""
        if self._config.max_module_size < MAX_SETTINGS_SIZE:
            return self._module_limit()
        return MAX_SETTINGS_SIZE, f"the {format_size(MAX_SETTINGS_SIZE)} a settings file may hold"
