"""Files in a directory held open by its descriptor: the caches' private
directories, so renaming directories around them can slip nothing in.

Every name is relative to the descriptor and never followed if it is a
symlink; files are written whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import secrets

__all__ = ["TEMPORARY_PREFIX", "unlink_file", "write_file"]

# Names starting with this are files being written: never read, pruned.
TEMPORARY_PREFIX = ".tmp-"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW


def write_file(directory: int, name: str, data: bytes, suffix: str = "") -> None:
    """Write `data` to `name` in `directory` (a descriptor), mode 0600: into
    a temporary file first, then renamed, so a reader never sees half a file.
    `suffix` ends the temporary file's name too."""
    tmp = f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}{suffix}"
    fd = os.open(tmp, _CREATE, 0o600, dir_fd=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
    except OSError:
        unlink_file(directory, tmp)
        raise


def unlink_file(directory: int, name: str) -> None:
    """Delete `name` from `directory` (a descriptor), if it is there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=directory)
