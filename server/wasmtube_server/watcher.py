"""Watch the module directory and sync the modules that changed, debounced.

Events only say *where* to look; the loader reads the files as they are once
the directory has been quiet for `debounce` seconds, so a burst of events from
one deploy (create, write, close, rename) leads to one sync. A file written in
place is left alone while it is open for writing (inotify reports the close),
so a slow copy is not loaded half-written; a writer that never closes is
loaded anyway after `max_write_wait` seconds.

`mode` picks how changes are noticed: "events" (inotify), "poll" (stat every
`poll_interval` seconds: NFS, EFS and other volumes without inotify), or
"auto" (events, falling back to polling if inotify cannot start).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .loader import DirectoryLoader
from .names import MODULE_SUFFIX, SETTINGS_SUFFIX, module_of_file

__all__ = ["ModuleWatcher"]

log = logging.getLogger(__name__)


class ModuleWatcher(FileSystemEventHandler):
    def __init__(
        self,
        loader: DirectoryLoader,
        debounce: float,
        mode: str = "auto",
        poll_interval: float = 1.0,
    ) -> None:
        self._loader = loader
        self._directory = loader.directory
        self._debounce = debounce
        self._mode = mode
        self._poll_interval = poll_interval
        # Module names to sync, with the time each was first noticed.
        self._pending: dict[str, float] = {}
        self._full_sync_since: float | None = None
        # Names written in place and not closed yet, with when writing began.
        self._writing: dict[str, float] = {}
        self._max_write_wait = max(2.0, 20 * debounce)
        self._last_event = 0.0
        self._stopping = False
        self._changed = threading.Condition()
        self._observer: BaseObserver | None = None
        self._thread = threading.Thread(target=self._run, name="wasmtube-reload", daemon=True)

    @property
    def observer_name(self) -> str:
        return type(self._observer).__name__ if self._observer else "none"

    def start(self) -> None:
        self._observer = self._start_observer()
        log.info("watching %s with %s", self._directory, self.observer_name)
        self._thread.start()

    def _start_observer(self) -> BaseObserver:
        if self._mode != "poll":
            observer: BaseObserver = Observer()
            try:
                observer.schedule(self, str(self._directory), recursive=False)
                observer.start()
                return observer
            except OSError as e:
                if self._mode == "events":
                    raise
                # inotify watches or instances exhausted: still deploy, slower.
                log.warning(
                    "file events unavailable (%s); polling every %ss instead",
                    e,
                    self._poll_interval,
                )
        observer = PollingObserver(timeout=self._poll_interval)
        observer.schedule(self, str(self._directory), recursive=False)
        observer.start()
        return observer

    def stop(self) -> None:
        if not self._thread.is_alive():
            return  # never started, or already stopped
        if self._observer is not None:
            self._observer.stop()
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._observer is not None:
            self._observer.join(timeout=5)
        self._thread.join(timeout=5)

    # Called on watchdog's thread.
    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        now = time.monotonic()
        with self._changed:
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                if raw:
                    self._note(Path(str(raw)), event.event_type, now)
            self._last_event = now
            self._changed.notify_all()

    def _note(self, path: Path, kind: str, now: float) -> None:
        name = module_of_file(path)
        if name is not None:
            self._pending.setdefault(name, now)
            if kind == "modified" and path.suffix in (MODULE_SUFFIX, SETTINGS_SUFFIX):
                self._writing.setdefault(name, now)
            elif kind in ("closed", "deleted", "moved", "created"):
                self._writing.pop(name, None)
        elif path.name.startswith(".."):
            # Kubernetes swaps a `..data` symlink to update a ConfigMap volume:
            # every module file may now point at new content.
            if self._full_sync_since is None:
                self._full_sync_since = now
        elif path.suffix == MODULE_SUFFIX:
            log.debug("ignoring event for %s", path)

    def _run(self) -> None:
        while True:
            with self._changed:
                batch = self._next_batch()
                if batch is None:
                    return
            names, noticed_at = batch
            try:
                self._loader.sync(names, noticed_at)
            except Exception:
                # A reload must never kill the watcher: the next event retries.
                log.exception("syncing module directory %s failed", self._directory)

    def _next_batch(self) -> tuple[set[str] | None, float] | None:
        """Wait (lock held) for a quiet directory; None when stopping."""
        while True:
            while not (self._ready_names() or self._full_sync_since or self._stopping):
                self._changed.wait(self._recheck_in())
            if self._stopping:
                return None
            quiet_for = time.monotonic() - self._last_event
            if quiet_for < self._debounce:
                self._changed.wait(self._debounce - quiet_for)
                continue
            ready = self._ready_names()
            if self._full_sync_since is not None:
                noticed_at = min([self._full_sync_since, *self._pending.values()])
                self._pending.clear()
                self._writing.clear()
                self._full_sync_since = None
                return None, noticed_at
            if not ready:
                continue
            noticed_at = min(self._pending[name] for name in ready)
            for name in ready:
                del self._pending[name]
                self._writing.pop(name, None)
            return ready, noticed_at

    def _ready_names(self) -> set[str]:
        """Pending names not still being written (or written for too long)."""
        now = time.monotonic()
        started = self._writing.get
        return {n for n in self._pending if now - started(n, -math.inf) > self._max_write_wait}

    def _recheck_in(self) -> float | None:
        """How long to sleep when only names still being written are pending."""
        return self._max_write_wait if self._writing else None
