"""Watch the module directory and sync the modules that changed, debounced.

Events only say *where* to look; the loader reads the files as they are once
the directory has been quiet for `debounce` seconds, so a burst of events from
one deploy (create, write, close, rename) leads to one sync. A file written in
place is left alone while it is open for writing (inotify reports the close),
so a slow copy is not loaded half-written; a writer that never closes is
loaded anyway after `max_write_wait` seconds. Nor does any change wait longer
than that for quiet: a file that changes without end (a log appended to, a
writer that never stops) must not hold up every other deploy. Events for files
that are neither modules nor settings do not count as noise at all.

`mode` picks how changes are noticed: "events" (inotify), "poll" (stat every
`poll_interval` seconds: NFS, EFS and other volumes without inotify), or
"auto" (events, falling back to polling if inotify cannot start).

The directory itself may go away: a sync tool or a volume remount deletes it
and creates it again, or a symlink to it is swapped. An observer then watches
nothing for ever: inotify stays on the old inode or stops, and polling stops
once a scan fails. So after every event and every `poll_interval` seconds the
watcher checks that the directory at the path is the one watched (its
st_dev and st_ino; a new directory may reuse the inode number, so the
observer's own "deleted" event for it, and its emitter having stopped, count
too). When it is gone, every module is removed (the directory is the truth,
and a missing one holds no modules, as an empty one does) and
`on_directory_missing(reason)` is told; once a directory is there again, it is
watched, fully synced, and `on_directory_missing(None)` is told.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .loader import DirectoryLoader
from .names import MODULE_SUFFIX, SETTINGS_SUFFIX, module_of_file

__all__ = ["ModuleWatcher"]

log = logging.getLogger(__name__)

# Which directory is at the path: its (st_dev, st_ino), or why there is none.
DirectoryState = tuple[int, int] | str
# What a batch is: the names to sync (None: every name), and when first noticed.
Batch = tuple[set[str] | None, float]


class _Wake(Enum):
    """Why the watcher thread woke up without a batch to sync."""

    STOP = "stop"
    CHECK_DIRECTORY = "check_directory"


def _ignore(reason: str | None) -> None:
    pass


class ModuleWatcher(FileSystemEventHandler):
    def __init__(
        self,
        loader: DirectoryLoader,
        debounce: float,
        mode: str = "auto",
        poll_interval: float = 1.0,
        on_directory_missing: Callable[[str | None], None] = _ignore,
    ) -> None:
        self._loader = loader
        self._directory = loader.directory
        self._debounce = debounce
        self._mode = mode
        self._poll_interval = poll_interval
        # Told why the directory is missing, from the watcher's thread; then
        # None once it is back, watched and synced.
        self._on_directory_missing = on_directory_missing
        # Module names to sync, with the time each was first noticed.
        self._pending: dict[str, float] = {}
        self._full_sync_since: float | None = None
        # Names written in place and not closed yet, with when writing began.
        self._writing: dict[str, float] = {}
        self._max_write_wait = max(2.0, 20 * debounce)
        self._last_event = 0.0
        self._stopping = False
        # Which directory the observer watches (a string while it is missing),
        # when to look at the path again, whether an event came since, and
        # whether one said the watched directory itself was deleted or moved.
        self._watched: DirectoryState = ""
        self._check_directory_at = 0.0
        self._event_since_check = False
        self._directory_went = False
        # The path the observer watches: symlinks resolved, as inotify does
        # not follow them, and as the observer names the directory in events.
        self._watched_path = ""
        self._changed = threading.Condition()
        self._observer: BaseObserver | None = None
        self._thread = threading.Thread(target=self._run, name="wasmtube-reload", daemon=True)

    @property
    def observer_name(self) -> str:
        return type(self._observer).__name__ if self._observer else "none"

    def start(self) -> None:
        # Looked at before the observer starts: a swap in between is seen at
        # the first check, and only costs one more full sync.
        self._watched = self._directory_now()
        self._observer = self._start_observer(strict=True)
        self._check_directory_at = time.monotonic() + self._poll_interval
        log.info("watching %s with %s", self._directory, self.observer_name)
        self._thread.start()

    def _start_observer(self, *, strict: bool) -> BaseObserver:
        """A started observer of the directory; OSError if there is none.

        `strict` (at start-up): with mode "events", fail if inotify cannot
        start. Later there is nobody to fail to, and polling beats watching
        nothing.
        """
        if self._mode != "poll":
            try:
                return self._started(Observer())
            except (FileNotFoundError, NotADirectoryError):
                raise
            except OSError as e:
                if self._mode == "events" and strict:
                    raise
                # inotify watches or instances exhausted: still deploy, slower.
                log.warning(
                    "file events unavailable (%s); polling every %ss instead",
                    e,
                    self._poll_interval,
                )
        return self._started(PollingObserver(timeout=self._poll_interval))

    def _started(self, observer: BaseObserver) -> BaseObserver:
        self._watched_path = os.path.realpath(self._directory)
        observer.schedule(self, self._watched_path, recursive=False)
        observer.start()
        return observer

    def stop(self) -> None:
        if not self._thread.is_alive():
            return  # never started, or already stopped
        with self._changed:
            self._stopping = True
            observer = self._observer
            self._changed.notify_all()
        if observer is not None:
            observer.stop()
        self._thread.join(timeout=5)
        if observer is not None:
            _stop_observer(observer)

    # Called on watchdog's thread.
    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        now = time.monotonic()
        with self._changed:
            relevant = event.is_directory
            if relevant:
                # It may be about the directory itself: look at it again.
                self._event_since_check = True
                self._directory_went |= self._is_directory_gone(event)
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                if raw:
                    relevant |= self._note(Path(os.fsdecode(raw)), event.event_type, now)
            if relevant:
                self._last_event = now
                self._changed.notify_all()

    def _is_directory_gone(self, event: FileSystemEvent) -> bool:
        """Whether `event` says the watched directory itself was deleted or moved."""
        return (
            event.is_directory
            and event.event_type in ("deleted", "moved")
            and os.fsdecode(event.src_path) == self._watched_path
        )

    def _note(self, path: Path, kind: str, now: float) -> bool:
        """Note what a change of `path` means; False if it concerns no module."""
        name = module_of_file(path)
        if name is not None:
            self._pending.setdefault(name, now)
            if kind == "modified" and path.suffix in (MODULE_SUFFIX, SETTINGS_SUFFIX):
                self._writing.setdefault(name, now)
            elif kind in ("closed", "deleted", "moved", "created"):
                self._writing.pop(name, None)
            return True
        if path.name.startswith(".."):
            # Kubernetes swaps a `..data` symlink to update a ConfigMap volume:
            # every module file may now point at new content.
            if self._full_sync_since is None:
                self._full_sync_since = now
            return True
        if path.suffix == MODULE_SUFFIX:
            log.debug("ignoring event for %s", path)
        return False

    def _run(self) -> None:
        try:
            while True:
                self._follow_directory()
                with self._changed:
                    batch = self._next_batch()
                if batch is _Wake.STOP:
                    return
                if batch is not _Wake.CHECK_DIRECTORY:
                    self._sync(*batch)
        finally:
            self._replace_observer(None)

    def _sync(self, names: set[str] | None, noticed_at: float) -> None:
        try:
            self._loader.sync(names, noticed_at)
        except Exception:
            # A reload must never kill the watcher: the next event retries.
            log.exception("syncing module directory %s failed", self._directory)

    def _next_batch(self) -> Batch | _Wake:
        """Wait (lock held) for a quiet directory, a stop, or the time to look
        at the directory itself again."""
        while True:
            if self._stopping:
                return _Wake.STOP
            if self._event_since_check or time.monotonic() >= self._check_directory_at:
                return _Wake.CHECK_DIRECTORY
            ready = self._ready_names()
            if not (ready or self._full_sync_since):
                self._changed.wait(self._idle_wait())
                continue
            wait_more = self._debounce_left(ready)
            if wait_more > 0:
                self._changed.wait(wait_more)
                continue
            if self._full_sync_since is not None:
                noticed_at = min([self._full_sync_since, *self._pending.values()])
                self._pending.clear()
                self._writing.clear()
                self._full_sync_since = None
                return None, noticed_at
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

    def _debounce_left(self, ready: set[str]) -> float:
        """How much longer to wait for quiet before syncing `ready` (or the
        full sync due): never past max_write_wait since the first of them
        was noticed, so changes that never stop cannot hold them up."""
        now = time.monotonic()
        noticed = [self._pending[name] for name in ready]
        if self._full_sync_since is not None:
            noticed.append(self._full_sync_since)
        quiet_left = self._debounce - (now - self._last_event)
        return min(quiet_left, min(noticed) + self._max_write_wait - now)

    def _idle_wait(self) -> float:
        """How long to sleep with nothing ready: until the next look at the
        directory, or sooner if names still being written may become ready."""
        wait = max(0.0, self._check_directory_at - time.monotonic())
        return min(wait, self._max_write_wait) if self._writing else wait

    # The directory itself, on the watcher's thread.

    def _follow_directory(self) -> None:
        """Look at which directory is at the path; if it is not the watched
        one, wait for one to be there and watch it instead."""
        with self._changed:
            self._event_since_check = False
            self._check_directory_at = time.monotonic() + self._poll_interval
            went, self._directory_went = self._directory_went, False
        now = self._directory_now()
        if now == self._watched and not went and self._observer_watching():
            return
        if isinstance(now, str):
            self._lose_directory(now)
            back = self._wait_for_directory()
            if back is None:
                return  # stopping
            self._watch_directory(back, was_missing=True)
        else:
            log.warning(
                "module directory %s was replaced (deleted or renamed and created again, or "
                "a symlink to it swapped); watching the directory now there",
                self._directory,
            )
            self._watch_directory(now, was_missing=False)

    def _observer_watching(self) -> bool:
        """Whether the observer still watches: each kind stops by itself
        once its directory is deleted."""
        observer = self._observer
        emitters = observer.emitters if observer is not None else ()
        return bool(emitters) and all(e.is_alive() and e.should_keep_running() for e in emitters)

    def _directory_now(self) -> DirectoryState:
        """Which directory is at the path, or why there is none.

        An error that says nothing about whether it is there (EIO or ESTALE
        on a network volume, often brief) changes nothing: the next look tells.
        """
        try:
            status = os.stat(self._directory)
        except (FileNotFoundError, NotADirectoryError):
            return f"module directory {self._directory} does not exist"
        except OSError as e:
            log.debug("cannot stat module directory %s: %s", self._directory, e)
            return self._watched
        if not stat.S_ISDIR(status.st_mode):
            return f"module directory {self._directory} is not a directory"
        return status.st_dev, status.st_ino

    def _lose_directory(self, reason: str) -> None:
        """Stop watching a directory that is gone, and remove its modules."""
        lost_at = time.monotonic()
        if not isinstance(self._watched, str):
            log.warning(
                "%s (deleted, renamed or unmounted): its modules are removed until it is "
                "back; looking for it every %g s",
                reason,
                self._poll_interval,
            )
        self._watched = reason
        self._replace_observer(None)
        self._tell_directory_missing(reason)
        # Missing holds no modules, as an empty directory does.
        self._sync(None, lost_at)

    def _wait_for_directory(self) -> tuple[int, int] | None:
        """Wait until a directory is at the path; None when stopping."""
        while True:
            with self._changed:
                if self._stopping or self._changed.wait_for(
                    lambda: self._stopping, self._poll_interval
                ):
                    return None
            now = self._directory_now()
            if not isinstance(now, str):
                return now

    def _watch_directory(self, identity: tuple[int, int], *, was_missing: bool) -> None:
        """Watch the directory now at the path, then sync every module.

        The observer starts before the sync, so a file that lands in between
        is seen. If the directory goes again meanwhile, the next look says so.
        """
        noticed_at = time.monotonic()
        try:
            observer = self._start_observer(strict=False)
        except OSError as e:
            log.warning("cannot watch module directory %s: %s", self._directory, e)
            self._watched = ""  # not this one: the next look tries again
            return
        self._watched = identity
        self._replace_observer(observer)
        with self._changed:
            self._pending.clear()
            self._writing.clear()
            self._full_sync_since = None
        self._sync(None, noticed_at)
        if was_missing:
            log.info(
                "module directory %s is back: watching it again with %s, %d modules",
                self._directory,
                self.observer_name,
                len(self._loader.module_names_on_disk()),
            )
            self._tell_directory_missing(None)

    def _replace_observer(self, observer: BaseObserver | None) -> None:
        """Make `observer` the one that watches (None: none) and stop the old one."""
        with self._changed:
            if self._stopping and observer is not None:
                # stop() has taken the current one: this one must not outlive it.
                retired: BaseObserver | None = observer
            else:
                retired, self._observer = self._observer, observer
        if retired is not None:
            _stop_observer(retired)

    def _tell_directory_missing(self, reason: str | None) -> None:
        try:
            self._on_directory_missing(reason)
        except Exception:
            log.exception("on_directory_missing(%r) failed", reason)


def _stop_observer(observer: BaseObserver) -> None:
    observer.stop()
    if observer.is_alive():
        observer.join(timeout=5)
