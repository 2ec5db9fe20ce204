"""What counts as a module name or a function name in a request or a file."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InvalidArgument

__all__ = [
    "MODULE_SUFFIX",
    "SETTINGS_SUFFIX",
    "check_function_name",
    "check_module_name",
    "is_module_name",
    "module_name_of",
    "module_of_file",
]

MODULE_SUFFIX = ".wasm"
# NAME.toml beside NAME.wasm holds the module's settings (settings.py).
SETTINGS_SUFFIX = ".toml"
MAX_NAME_LENGTH = 128
# A plain file stem: no path separators, no leading dot (hidden and temporary
# files such as `.x.tmp` are never modules), nothing a shell or URL mangles.
_MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def is_module_name(name: str) -> bool:
    return (
        len(name) <= MAX_NAME_LENGTH
        and _MODULE_NAME.fullmatch(name) is not None
        and ".." not in name
    )


def check_module_name(name: str) -> None:
    """Raise InvalidArgument unless `name` could be the stem of a module file."""
    if not name:
        raise InvalidArgument("module name is empty; set CallRequest.module")
    if not is_module_name(name):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise InvalidArgument(
            f"module name {shown!r} is not a plain file stem: use at most {MAX_NAME_LENGTH} "
            f"letters, digits, '_', '-' or '.', not starting with '.' and without '..'"
        )


def check_function_name(name: str) -> None:
    if not name:
        raise InvalidArgument("function name is empty; set CallRequest.function")
    if len(name) > MAX_NAME_LENGTH or "\0" in name:
        shown = name[:40].replace("\0", "\\0")
        raise InvalidArgument(
            f"function name {shown!r}... is not a valid export name: at most "
            f"{MAX_NAME_LENGTH} characters, no NUL"
        )


def module_name_of(path: Path) -> str | None:
    """The module a file in the module directory holds, or None if it holds none."""
    if path.suffix != MODULE_SUFFIX:
        return None
    name = path.name[: -len(MODULE_SUFFIX)]
    return name if is_module_name(name) else None


def module_of_file(path: Path) -> str | None:
    """The module a file belongs to: its code (NAME.wasm) or its settings
    (NAME.toml); None for any other file."""
    if path.suffix == SETTINGS_SUFFIX:
        name = path.name[: -len(SETTINGS_SUFFIX)]
        return name if is_module_name(name) else None
    return module_name_of(path)
