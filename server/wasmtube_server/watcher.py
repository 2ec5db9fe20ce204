"""Watch the module directory and sync the modules that changed, debounced.

Events only say *where* to look; the loader reads the files as they are when
the directory has been quiet for `debounce` seconds, so a burst of events from
one deploy (create, write, close, rename) leads to one sync.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .loader import DirectoryLoader
from .names import MODULE_SUFFIX, module_name_of

__all__ = ["ModuleWatcher"]

log = logging.getLogger(__name__)


class ModuleWatcher(FileSystemEventHandler):
    def __init__(self, loader: DirectoryLoader, debounce: float) -> None:
        self._loader = loader
        self._directory = loader.directory
        self._debounce = debounce
        self._pending: set[str] = set()
        self._full_sync = False
        self._last_event = 0.0
        self._stopping = False
        self._changed = threading.Condition()
        self._observer = Observer()
        self._thread = threading.Thread(target=self._run, name="wasmtube-reload", daemon=True)

    def start(self) -> None:
        self._observer.schedule(self, str(self._directory), recursive=False)
        self._observer.start()
        self._thread.start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return  # never started, or already stopped
        self._observer.stop()
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._observer.join(timeout=5)
        self._thread.join(timeout=5)

    # Called on watchdog's thread.
    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        with self._changed:
            for raw in paths:
                if raw:
                    self._note(Path(str(raw)))
            self._last_event = time.monotonic()
            self._changed.notify_all()

    def _note(self, path: Path) -> None:
        name = module_name_of(path)
        if name is not None:
            self._pending.add(name)
        elif path.name.startswith("..") or path == self._directory:
            # Kubernetes swaps a `..data` symlink to update a ConfigMap volume:
            # every module file may now point at new content.
            self._full_sync = True
        elif path.suffix == MODULE_SUFFIX:
            log.debug("ignoring event for %s", path)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not (self._pending or self._full_sync or self._stopping):
                    self._changed.wait()
                # Debounce: wait until no event arrived for `debounce` seconds.
                while not self._stopping:
                    quiet_for = time.monotonic() - self._last_event
                    if quiet_for >= self._debounce:
                        break
                    self._changed.wait(self._debounce - quiet_for)
                if self._stopping:
                    return
                names = None if self._full_sync else set(self._pending)
                self._pending.clear()
                self._full_sync = False
            try:
                self._loader.sync(names)
            except Exception:
                # A reload must never kill the watcher: the next event retries.
                log.exception("syncing module directory %s failed", self._directory)
