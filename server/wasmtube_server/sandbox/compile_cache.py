"""Compiled modules on disk, so a restart skips the compile.

An entry is keyed by the module's SHA-256 and a fingerprint of everything
that shapes compiled code (wasmtime's version, the engine's settings, the
machine), so a stale entry is never even looked at. wasmtime trusts what it
deserializes, so an entry must prove itself before it gets there: its header
holds the SHA-256 of the module it was compiled from and a SHA-256 over that
and the compiled bytes. A torn or corrupted entry, or one copied under another
module's name (which would run that module's code under this one's name and
hash), is deleted and the module compiled again.

A digest proves no author: whoever can write an entry can make the daemon run
native code of their choosing. So entries live only in a directory that no
one but the daemon's user (or root) can write to, and the daemon holds it open
for its whole life, so renaming directories around it later changes nothing.
If --cache-dir is such a directory, entries go there; if others can write to
it (a Kubernetes emptyDir is mode 0777), they go in a directory of the
daemon's own inside it, `wasmtube-<uid>`, mode 0700. One of that name that
is not the daemon's own and private is refused: the daemon does not start.

Layout of an entry: magic, SHA-256(module SHA-256 + payload), module SHA-256,
payload (wasmtime's serialized module).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import stat
import weakref
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import wasmtime

from ..dir_files import unlink_file, write_file

__all__ = ["CompileCache"]

log = logging.getLogger(__name__)

# Bumped whenever the layout changes: an entry of another layout is invalid.
_MAGIC = b"wasmtube-cwasm-2\n"
_DIGEST_SIZE = 32
_HEADER_SIZE = len(_MAGIC) + 2 * _DIGEST_SIZE
_SUFFIX = ".cwasm"
# Directories the daemon creates for the cache: no one else may write to them.
_PRIVATE_MODE = 0o700
_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# An entry is never a symlink: one is refused (ELOOP) like a corrupt entry.
_OPEN_ENTRY = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW


class CompileCache:
    def __init__(
        self,
        directory: Path,
        engine: wasmtime.Engine,
        settings: str,
        max_entries: int,
        on_lookup: Callable[[str], None] = lambda result: None,
    ) -> None:
        # Told "hit", "miss" or "invalid" on every load, for metrics.
        self._on_lookup = on_lookup
        self._engine = engine
        self._max_entries = max_entries
        identity = f"wasmtime {version('wasmtime')}; {platform.machine()}; {settings}"
        self._fingerprint = hashlib.sha256(identity.encode()).hexdigest()[:16]
        try:
            # Where entries are, and that directory held open: every entry
            # is opened relative to it, never by path.
            self.directory, self._fd = _open_private_directory(directory)
        except OSError as e:
            raise OSError(f"cannot use {directory} as the compile cache (--cache-dir): {e}") from e
        weakref.finalize(self, os.close, self._fd)
        # Counted once here and kept up to date, so a store does not list the
        # directory (with 1,000 modules that was half of a cold start).
        self._entries = len(self._listing())

    def _name(self, wasm_sha256: str) -> str:
        return f"{wasm_sha256}-{self._fingerprint}{_SUFFIX}"

    def load(self, wasm_sha256: str) -> wasmtime.Module | None:
        """The cached compilation of the module with this hash, or None."""
        name = self._name(wasm_sha256)
        try:
            data = self._read(name)
        except FileNotFoundError:
            self._on_lookup("miss")
            return None
        except OSError as e:
            log.warning("compile cache: cannot read %s: %s", self.directory / name, e)
            self._on_lookup("invalid")
            return None
        problem = _problem(data, bytes.fromhex(wasm_sha256))
        if problem is not None:
            log.warning("compile cache: %s %s; compiling again", name, problem)
            self._discard(name)
            return None
        try:
            module = wasmtime.Module.deserialize(self._engine, data[_HEADER_SIZE:])
        except wasmtime.WasmtimeError as e:
            log.warning("compile cache: %s does not load (%s); compiling again", name, e)
            self._discard(name)
            return None
        os.utime(name, dir_fd=self._fd)  # recently used: pruned last
        self._on_lookup("hit")
        return module

    def _read(self, name: str) -> bytes:
        fd = os.open(name, _OPEN_ENTRY, dir_fd=self._fd)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def _discard(self, name: str) -> None:
        unlink_file(self._fd, name)
        self._on_lookup("invalid")

    def store(self, wasm_sha256: str, module: wasmtime.Module) -> None:
        """Save a compilation; failures are logged, never raised."""
        data = _entry(bytes.fromhex(wasm_sha256), bytes(module.serialize()))
        try:
            write_file(self._fd, self._name(wasm_sha256), data, _SUFFIX)
        except OSError as e:
            log.warning("compile cache: cannot write to %s: %s", self.directory, e)
            return
        self._entries += 1
        if self._entries > self._max_entries:
            self._prune()

    def _listing(self) -> list[os.DirEntry[str]]:
        with os.scandir(self._fd) as entries:
            return [e for e in entries if e.name.endswith(_SUFFIX) and not e.name.startswith(".")]

    def _prune(self) -> None:
        """Keep the most recently used entries: down to 90% of max_entries, so
        that pruning, which lists the directory, happens once in many stores."""
        entries = []
        for entry in self._listing():
            try:
                entries.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
            except FileNotFoundError:
                continue
        entries.sort(reverse=True)
        keep = max(1, self._max_entries * 9 // 10)
        for _, stale in entries[keep:]:
            unlink_file(self._fd, stale)
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


def _open_private_directory(directory: Path) -> tuple[Path, int]:
    """A directory only the daemon's user (or root) can write to, held open:
    `directory` itself if it is one (created if missing), else its own
    directory inside it."""
    directory.mkdir(mode=_PRIVATE_MODE, parents=True, exist_ok=True)
    fd = os.open(directory, _OPEN_DIRECTORY)
    status = os.fstat(fd)
    if _is_private(status):
        return directory, fd
    try:
        own, own_fd = _open_own_directory(directory, fd)
    finally:
        os.close(fd)
    log.info(
        "compile cache: %s is writable by other users (owner uid %d, mode %04o), so "
        "compiled modules are kept in %s, writable only by this one",
        directory,
        status.st_uid,
        stat.S_IMODE(status.st_mode),
        own,
    )
    return own, own_fd


def _open_own_directory(shared: Path, shared_fd: int) -> tuple[Path, int]:
    """The daemon user's own directory in `shared`, created if missing, held
    open; PermissionError if the one there is not that user's and private."""
    name = f"wasmtube-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, _PRIVATE_MODE, dir_fd=shared_fd)
    # Not a symlink: one would let whoever made it choose the directory.
    fd = os.open(name, _OPEN_DIRECTORY | os.O_NOFOLLOW, dir_fd=shared_fd)
    status = os.fstat(fd)
    if not _is_private(status):
        os.close(fd)
        raise PermissionError(
            f"{shared} is writable by other users, and {shared / name}, where the daemon "
            f"keeps compiled modules then, is not its own private directory (owner uid "
            f"{status.st_uid}, mode {stat.S_IMODE(status.st_mode):04o}). A cache entry is "
            f"native code the daemon runs: remove {shared / name}, or give --cache-dir a "
            f"directory only the daemon's user can write to"
        )
    return shared / name, fd


def _is_private(status: os.stat_result) -> bool:
    """Whether only the daemon's user (or root) can add or replace entries."""
    return status.st_uid in (0, os.geteuid()) and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
