"""Bring the registry in line with the files in the module directory.

The directory is the truth: whatever events arrived, syncing a name reads its
files as they are now: NAME.wasm and, if there is one, its settings NAME.toml.
The content hashes decide whether anything changed, so a touched file or a
repeated event never reloads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from .config import Config
from .errors import SettingsError
from .names import MODULE_SUFFIX, SETTINGS_SUFFIX, module_name_of
from .registry import LoadOutcome, ModuleRegistry
from .settings import ModuleSettings, parse_settings

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

    def module_names_on_disk(self) -> set[str]:
        names = set()
        for path in self.directory.iterdir():
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
            return {name: self._sync_one(name, noticed_at) for name in sorted(names)}

    def _sync_one(self, name: str, noticed_at: float | None) -> LoadOutcome | None:
        path = self.directory / f"{name}{MODULE_SUFFIX}"
        try:
            # Follows symlinks, as Kubernetes ConfigMap volumes need.
            wasm = path.read_bytes()
        except FileNotFoundError:
            self._registry.remove(name)
            return None
        except OSError as e:
            self._registry.record_failure(name, f"{path}: cannot be read: {e}", "read")
            return LoadOutcome.FAILED
        settings_path = self.directory / f"{name}{SETTINGS_SUFFIX}"
        try:
            settings = self._read_settings(name, settings_path)
        except SettingsError as e:
            self._registry.record_failure(name, f"{settings_path}: {e}", e.reason)
            return LoadOutcome.FAILED
        return self._registry.load(name, wasm, path, noticed_at, settings)

    def _read_settings(self, name: str, path: Path) -> ModuleSettings:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return ModuleSettings.defaults(self._config, name)
        except OSError as e:
            raise SettingsError(f"cannot be read: {e}") from e
        return parse_settings(data, name, self._config)
