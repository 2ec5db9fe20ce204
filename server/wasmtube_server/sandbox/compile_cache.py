"""Compiled modules on disk, so a restart skips the compile.

An entry is keyed by the module's SHA-256 and a fingerprint of everything
that shapes compiled code (wasmtime's version, the engine's settings, the
machine), so a stale entry is never even looked at. Each entry carries the
SHA-256 of its own bytes: wasmtime trusts what it deserializes, so a torn or
corrupted entry must be caught before it gets there. A bad entry is deleted
and the module compiled again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import wasmtime

__all__ = ["CompileCache"]

log = logging.getLogger(__name__)

_MAGIC = b"wasmtube-cwasm-1\n"
_DIGEST_SIZE = 32
_SUFFIX = ".cwasm"


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
            directory.mkdir(parents=True, exist_ok=True)
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
        header = len(_MAGIC) + _DIGEST_SIZE
        payload = memoryview(data)[header:]
        if (
            data[: len(_MAGIC)] != _MAGIC
            or hashlib.sha256(payload).digest() != data[len(_MAGIC) : header]
        ):
            log.warning("compile cache: %s is corrupt; compiling again", path.name)
            path.unlink(missing_ok=True)
            self._on_lookup("invalid")
            return None
        try:
            module = wasmtime.Module.deserialize(self._engine, bytes(payload))
        except wasmtime.WasmtimeError as e:
            log.warning("compile cache: %s does not load (%s); compiling again", path.name, e)
            path.unlink(missing_ok=True)
            self._on_lookup("invalid")
            return None
        os.utime(path)  # recently used: pruned last
        self._on_lookup("hit")
        return module

    def store(self, wasm_sha256: str, module: wasmtime.Module) -> None:
        """Save a compilation; failures are logged, never raised."""
        payload = bytes(module.serialize())
        data = _MAGIC + hashlib.sha256(payload).digest() + payload
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
