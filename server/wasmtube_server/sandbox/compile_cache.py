"""Compiled modules on disk, so a restart skips the compile.

An entry is keyed by the module's SHA-256 and a fingerprint of everything
that shapes compiled code (wasmtime's version, the engine's settings, the
machine), so a stale entry is never even looked at. wasmtime trusts what it
deserializes, so an entry must prove itself before it gets there: its header
holds the SHA-256 of the module it was compiled from and a SHA-256 over that
and the compiled bytes. A torn or corrupted entry, or one copied under another
module's name (which would run that module's code under this one's name and
hash), is deleted and the module compiled again.

A digest proves no author: anyone who can write to the cache directory can
make the daemon run native code of their choosing. So the directory, and each
directory above it, must be writable only by the daemon's user (or root); the
daemon refuses to start with any other (see check_private).

Layout of an entry: magic, SHA-256(module SHA-256 + payload), module SHA-256,
payload (wasmtime's serialized module).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import stat
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import wasmtime

__all__ = ["CompileCache", "check_private"]

log = logging.getLogger(__name__)

# Bumped whenever the layout changes: an entry of another layout is invalid.
_MAGIC = b"wasmtube-cwasm-2\n"
_DIGEST_SIZE = 32
_HEADER_SIZE = len(_MAGIC) + 2 * _DIGEST_SIZE
_SUFFIX = ".cwasm"
# A directory the daemon creates for the cache: no one else may write to it.
_PRIVATE_MODE = 0o700


class CompileCache:
    def __init__(
        self,
        directory: Path,
        engine: wasmtime.Engine,
        settings: str,
        max_entries: int,
        on_lookup: Callable[[str], None] = lambda result: None,
    ) -> None:
        self.directory = directory
        # Told "hit", "miss" or "invalid" on every load, for metrics.
        self._on_lookup = on_lookup
        self._engine = engine
        self._max_entries = max_entries
        identity = f"wasmtime {version('wasmtime')}; {platform.machine()}; {settings}"
        self._fingerprint = hashlib.sha256(identity.encode()).hexdigest()[:16]
        try:
            directory.mkdir(mode=_PRIVATE_MODE, parents=True, exist_ok=True)
            check_private(directory)
        except OSError as e:
            raise OSError(f"cannot use {directory} as the compile cache (--cache-dir): {e}") from e
        # Counted once here and kept up to date, so a store does not list the
        # directory (with 1,000 modules that was half of a cold start).
        self._entries = len(self._listing())

    def _path(self, wasm_sha256: str) -> Path:
        return self.directory / f"{wasm_sha256}-{self._fingerprint}{_SUFFIX}"

    def load(self, wasm_sha256: str) -> wasmtime.Module | None:
        """The cached compilation of the module with this hash, or None."""
        path = self._path(wasm_sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self._on_lookup("miss")
            return None
        except OSError as e:
            log.warning("compile cache: cannot read %s: %s", path, e)
            self._on_lookup("invalid")
            return None
        problem = _problem(data, bytes.fromhex(wasm_sha256))
        if problem is not None:
            log.warning("compile cache: %s %s; compiling again", path.name, problem)
            self._discard(path)
            return None
        try:
            module = wasmtime.Module.deserialize(self._engine, data[_HEADER_SIZE:])
        except wasmtime.WasmtimeError as e:
            log.warning("compile cache: %s does not load (%s); compiling again", path.name, e)
            self._discard(path)
            return None
        os.utime(path)  # recently used: pruned last
        self._on_lookup("hit")
        return module

    def _discard(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._on_lookup("invalid")

    def store(self, wasm_sha256: str, module: wasmtime.Module) -> None:
        """Save a compilation; failures are logged, never raised."""
        data = _entry(bytes.fromhex(wasm_sha256), bytes(module.serialize()))
        try:
            # Write then rename: a reader never sees half an entry.
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=_SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self._path(wasm_sha256))
        except OSError as e:
            log.warning("compile cache: cannot write to %s: %s", self.directory, e)
            return
        self._entries += 1
        if self._entries > self._max_entries:
            self._prune()

    def _listing(self) -> list[Path]:
        # Names starting with "." are other writers' temporary files.
        return [p for p in self.directory.glob(f"*{_SUFFIX}") if not p.name.startswith(".")]

    def _prune(self) -> None:
        """Keep the most recently used entries: down to 90% of max_entries, so
        that pruning, which lists the directory, happens once in many stores."""
        entries = []
        for path in self._listing():
            try:
                entries.append((path.stat().st_mtime, path))
            except FileNotFoundError:
                continue
        entries.sort(reverse=True)
        keep = max(1, self._max_entries * 9 // 10)
        for _, stale in entries[keep:]:
            stale.unlink(missing_ok=True)
        self._entries = min(len(entries), keep)


def _entry(module_sha256: bytes, payload: bytes) -> bytes:
    """An entry's bytes: the compiled `payload` of the module with that hash."""
    digest = hashlib.sha256(module_sha256 + payload).digest()
    return _MAGIC + digest + module_sha256 + payload


def _problem(data: bytes, module_sha256: bytes) -> str | None:
    """What makes `data` no entry for the module with that hash, or None."""
    if len(data) < _HEADER_SIZE or not data.startswith(_MAGIC):
        return "is not a cache entry of this version"
    digest = data[len(_MAGIC) : len(_MAGIC) + _DIGEST_SIZE]
    recorded = data[len(_MAGIC) + _DIGEST_SIZE : _HEADER_SIZE]
    if hashlib.sha256(memoryview(data)[len(_MAGIC) + _DIGEST_SIZE :]).digest() != digest:
        return "is corrupt"
    if recorded != module_sha256:
        return f"was compiled from another module (sha256 {recorded.hex()[:12]})"
    return None


def check_private(directory: Path) -> None:
    """Raise PermissionError unless only the daemon's user (or root) can
    change what `directory` holds: neither it nor a directory above it may be
    owned by another user or writable by group or others. Above it, a sticky
    directory such as /tmp is fine: there others cannot rename what is not
    theirs."""
    path = directory.resolve()
    _check_writers(path, sticky_is_enough=False)
    for parent in path.parents:
        _check_writers(parent, sticky_is_enough=True)


def _check_writers(path: Path, *, sticky_is_enough: bool) -> None:
    status = path.stat()
    mode = stat.S_IMODE(status.st_mode)
    if status.st_uid not in (0, os.geteuid()):
        who = f"its owner, uid {status.st_uid}, not the daemon's user"
    elif mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky_is_enough and mode & stat.S_ISVTX):
        who = "others" if mode & stat.S_IWOTH else "its group"
    else:
        return
    raise PermissionError(
        f"{path} is writable by {who} (mode {mode:04o}). A cache entry is native code the "
        f"daemon runs, so the cache directory and those above it must be writable only by "
        f"the daemon's user: chmod go-w {path}, or name a new directory inside a safe one, "
        f"which the daemon creates with mode 0700"
    )
