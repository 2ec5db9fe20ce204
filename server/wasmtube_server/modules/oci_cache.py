"""Modules pulled from registries, kept on disk so a restart needs no registry.

With --cache-dir, every module a puller has verified is written to
`modules/sha256-<hex>.wasm` in the compile cache's private directory (the
one only the daemon's user can write to: a cached module is code the daemon
runs), and `modules/index.json` records, for each pulled name, the
reference it was pulled from, the manifest digest and the module layer:

    {"version": 1, "modules": {"hello": {"reference": "registry.example.com/wasm/hello:v1",
      "digest": "sha256:...", "layer": "sha256:...", "size": 1234}}}

At start a puller serves its name's entry if the reference is the same as
configured, before asking the registry: a pod restarted while the registry
is down serves the version it last pulled. Nothing read back is trusted:
the module must hash to its layer digest and have its size, or it is
deleted and the registry asked again.

Every file is written to a temporary name and renamed, so a reader never
sees half of one; all of them are opened relative to the directory, held
open for the daemon's life, and never through a symlink. The index holds
the configured names only: entries of names no longer pulled, and modules
no entry names, are deleted at the next write. One daemon per --cache-dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dir_files import TEMPORARY_PREFIX, unlink_file, write_file

__all__ = ["CachedModule", "PulledModuleCache"]

log = logging.getLogger(__name__)

_DIRECTORY = "modules"
_INDEX = "index.json"
_INDEX_VERSION = 1
_MAX_INDEX_SIZE = 1 << 20
_MODULE_FILE = re.compile(r"sha256-([a-f0-9]{64})\.wasm")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")
_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
_OPEN_FILE = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW


@dataclass(frozen=True, slots=True)
class CachedModule:
    """A verified module read back from the cache, and where it was pulled from."""

    reference: str
    # The manifest digest it was pulled at.
    digest: str
    # The module layer's digest: sha256 of `wasm`.
    layer: str
    wasm: bytes


class PulledModuleCache:
    def __init__(self, private_directory: Path, names: Iterable[str]) -> None:
        """Keep modules in `private_directory`/modules; `private_directory`
        must be one only the daemon's user can write to (the compile
        cache's). `names` are the modules pulled: the index keeps only those."""
        self._names = frozenset(names)
        self.directory = private_directory / _DIRECTORY
        try:
            self._fd = _open_private(private_directory)
        except OSError as e:
            raise OSError(f"cannot keep pulled modules in {self.directory}: {e}") from e
        weakref.finalize(self, os.close, self._fd)
        # Pullers of several modules store at once: one writer of the index.
        self._lock = threading.Lock()
        self._index = self._read_index()

    def lookup(self, name: str, reference: str) -> CachedModule | None:
        """The module last pulled for `name` from `reference`, verified; else None."""
        with self._lock:
            entry = self._index.get(name)
        if entry is None or entry["reference"] != reference:
            return None
        wasm = self.module(entry["layer"], entry["size"])
        if wasm is None:
            return None
        return CachedModule(reference, entry["digest"], entry["layer"], wasm)

    def module(self, layer: str, size: int) -> bytes | None:
        """The module with digest `layer` and `size` bytes if it is on disk
        and intact; a damaged one is deleted."""
        name = _file_name(layer)
        try:
            fd = os.open(name, _OPEN_FILE, dir_fd=self._fd)
            with os.fdopen(fd, "rb") as f:
                wasm = f.read(size + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("pulled-module cache: cannot read %s: %s", self.directory / name, e)
            return None
        actual = f"sha256:{hashlib.sha256(wasm).hexdigest()}"
        if len(wasm) != size or actual != layer:
            log.warning(
                "pulled-module cache: %s is damaged (%d bytes, %s; expected %d bytes, %s): "
                "deleted, the module is pulled again",
                self.directory / name,
                len(wasm),
                actual,
                size,
                layer,
            )
            unlink_file(self._fd, name)
            return None
        return wasm

    def store(self, name: str, reference: str, digest: str, layer: str, wasm: bytes) -> None:
        """Keep `wasm` (already verified against `layer`) as what `name` was
        pulled at; failures are logged, never raised: the cache only helps."""
        entry = {"reference": reference, "digest": digest, "layer": layer, "size": len(wasm)}
        with self._lock:
            try:
                write_file(self._fd, _file_name(layer), wasm)
                index = {n: e for n, e in self._index.items() if n in self._names}
                index[name] = entry
                document = {"version": _INDEX_VERSION, "modules": index}
                write_file(
                    self._fd, _INDEX, json.dumps(document, indent=1, sort_keys=True).encode()
                )
            except OSError as e:
                log.warning("pulled-module cache: cannot write to %s: %s", self.directory, e)
                return
            self._index = index
            self._prune({e["layer"] for e in index.values()})

    def _read_index(self) -> dict[str, dict[str, Any]]:
        try:
            fd = os.open(_INDEX, _OPEN_FILE, dir_fd=self._fd)
            with os.fdopen(fd, "rb") as f:
                document = json.loads(f.read(_MAX_INDEX_SIZE))
            entries = document["modules"]
            if document.get("version") != _INDEX_VERSION or not isinstance(entries, dict):
                raise ValueError(f"not an index of version {_INDEX_VERSION}")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning(
                "pulled-module cache: ignoring %s (%s): modules are pulled again",
                self.directory / _INDEX,
                e,
            )
            return {}
        return {name: entry for name, entry in entries.items() if _valid_entry(entry)}

    def _prune(self, keep: set[str]) -> None:
        """Delete modules no entry names, and temporary files left by a crash."""
        with os.scandir(self._fd) as entries:
            names = [e.name for e in entries]
        for name in names:
            match = _MODULE_FILE.fullmatch(name)
            if (match is not None and f"sha256:{match.group(1)}" not in keep) or (
                name.startswith(TEMPORARY_PREFIX)
            ):
                unlink_file(self._fd, name)


def _file_name(layer: str) -> str:
    return f"sha256-{layer.removeprefix('sha256:')}.wasm"


def _valid_entry(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("reference"), str)
        and isinstance(entry.get("digest"), str)
        and isinstance(entry.get("layer"), str)
        and _SHA256.fullmatch(entry["layer"]) is not None
        and isinstance(entry.get("size"), int)
        and entry["size"] >= 0
    )


def _open_private(parent: Path) -> int:
    """The `modules` directory in `parent`, created if missing, held open;
    PermissionError unless it is the daemon user's and private."""
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(_DIRECTORY, 0o700, dir_fd=parent_fd)
        fd = os.open(_DIRECTORY, _OPEN_DIRECTORY, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)
    status = os.fstat(fd)
    if status.st_uid not in (0, os.geteuid()) or status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise PermissionError(
            f"{parent / _DIRECTORY} is not the daemon user's private directory (owner uid "
            f"{status.st_uid}, mode {stat.S_IMODE(status.st_mode):04o}); remove it"
        )
    return fd
