"""Reading one file of the module directory, where every file is hostile.

Only a regular file (or a symlink to one: Kubernetes ConfigMap volumes are
symlinks) can hold a module or its settings. Anything else is refused before
a byte is read: opening a FIFO waits for a writer for ever, and reading a
device such as /dev/zero never ends. Every read is bounded, so neither a huge
(or sparse) file nor one that grows while it is read can make the daemon read
without end.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["FileRefused", "format_size", "read_regular_file"]

# Never blocks on a FIFO swapped in after the type check, never leaks into
# child processes, and a terminal device never becomes the controlling one.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_CHUNK = 1 << 20
# A symlink's target is shown in errors (ListModules, the log), but it is any
# bytes its author chose: shown as valid UTF-8, and only so much of it.
_MAX_SHOWN_TARGET = 200

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(Exception):
    """The file exists but cannot be read as a module's file.

    The message is for the person who put the file there; `reason` is a short
    stable label for wasmtube_module_load_failures_total.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def format_size(size: int) -> str:
    """`size` bytes as people write limits: "64 MiB", "512 KiB" or "1000 bytes"."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def read_regular_file(path: Path, limit: int, limit_text: str) -> bytes | None:
    """The bytes of the regular file at `path`, or None if there is none.

    Raises FileRefused if `path` is anything but a regular file (or a symlink
    to one), holds more than `limit` bytes (`limit_text` names that limit for
    the message, e.g. "--max-module-size 64 MiB"), or cannot be read.
    """
    try:
        # Checked before opening: opening a device can have side effects.
        _check_file(path, os.stat(path), limit, limit_text)
        fd = os.open(path, _OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        _refuse_if_dangling(path)
        return None
    except OSError as e:
        raise FileRefused(f"{path}: cannot be read: {e}", "read") from e
    try:
        # The name may point elsewhere since the stat: the open file decides.
        _check_file(path, os.fstat(fd), limit, limit_text)
        data = _read_at_most(fd, limit + 1)
    except OSError as e:
        raise FileRefused(f"{path}: cannot be read: {e}", "read") from e
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileRefused(
            f"{path} is more than {limit_text} (it grew while being read)", "too_large"
        )
    return data


def _check_file(path: Path, status: os.stat_result, limit: int, limit_text: str) -> None:
    """Refuse anything but a regular file of at most `limit` bytes."""
    if not stat.S_ISREG(status.st_mode):
        raise FileRefused(
            f"{_described(path)} {_kind(status.st_mode)}, not a regular file: "
            f"only regular files (or symlinks to them) are read",
            "not_regular_file",
        )
    if status.st_size > limit:
        raise FileRefused(f"{path} is {status.st_size} bytes, more than {limit_text}", "too_large")


def _refuse_if_dangling(path: Path) -> None:
    """Refuse a symlink whose target is missing: that file is there, but broken."""
    try:
        is_link = stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return  # nothing there at all: the file is absent
    if is_link:
        raise FileRefused(
            f"{_described(path)} which does not exist (a dangling symlink)",
            "dangling_symlink",
        )


def _described(path: Path) -> str:
    """`path`, and where it points if it is a symlink, to begin a sentence."""
    try:
        target = os.readlink(path)
    except OSError:
        return f"{path} is"
    shown = os.fsencode(target).decode("utf-8", "backslashreplace")
    if len(shown) > _MAX_SHOWN_TARGET:
        shown = shown[:_MAX_SHOWN_TARGET] + "..."
    return f"{path} is a symlink to {shown},"


def _kind(mode: int) -> str:
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a special file"


def _read_at_most(fd: int, count: int) -> bytes:
    """Up to `count` bytes from `fd`: fewer only at end of file."""
    chunks = []
    left = count
    while left > 0:
        chunk = os.read(fd, min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
