"""Why a module cannot be loaded, in words its author can act on.

A module fails to load when wasmtime refuses to compile it or when its first
instance cannot be made within the caps a Store enforces (runtime.py). Either
way wasmtime's own cause is kept; where it names a cap or a proposal wasmtube
turns off, the message also says which flag or rule it is.
"""

from __future__ import annotations

import re

import wasmtime

from ..config import WASM_PAGE
from ..errors import ModuleLoadError
from .causes import causes, summary
from .runtime import MAX_TABLES

__all__ = ["compile_error", "instantiate_error"]

MIB = 1024 * 1024

# wasmtime's words when a module needs a proposal the Runtime turns off, and
# why it is off.
_PROPOSALS_OFF = (
    (
        ("multiple memories",),
        "wasmtube gives an instance one linear memory, the one it exports as 'memory'; "
        "the multi-memory proposal is off",
    ),
    (
        ("memory64 must be enabled",),
        "the calling conventions pass 32-bit pointers; the memory64 proposal is off",
    ),
    (
        ("threads must be enabled", "threads support is not enabled"),
        "shared memories and atomics are off (the threads proposal): "
        "an instance runs one call at a time",
    ),
    (
        ("the gc feature", "gc support is not enabled"),
        "the GC proposal is off: its heap would hold memory beside the capped linear memory",
    ),
)
_MEMORY_TOO_BIG = re.compile(r"memory minimum size of (\d+) pages exceeds memory limits")
_TABLE_TOO_BIG = re.compile(r"table minimum size of (\d+) elements exceeds table limits")
_TOO_MANY_TABLES = "table count too high"


def compile_error(error: wasmtime.WasmtimeError) -> ModuleLoadError:
    """The load error for a module wasmtime would not compile."""
    text = summary(str(error))
    for phrases, why in _PROPOSALS_OFF:
        if any(phrase in text for phrase in phrases):
            text = f"{text} ({why})"
            break
    return ModuleLoadError(f"does not compile: {text}", "compile")


def instantiate_error(
    error: wasmtime.WasmtimeError, max_memory: int, max_table_elements: int
) -> ModuleLoadError:
    """The load error for a module whose first instance could not be made
    under a memory cap of `max_memory` bytes and `max_table_elements`."""
    cause = causes(str(error))
    if match := _MEMORY_TOO_BIG.search(cause):
        pages = int(match[1])
        cause = (
            f"its linear memory starts at {pages} pages ({pages * WASM_PAGE / MIB:.1f} MiB), "
            f"more than the {max_memory / MIB:.1f} MiB cap on an instance's memory "
            f"(--max-memory, or max_memory in its settings file)"
        )
    elif match := _TABLE_TOO_BIG.search(cause):
        cause = (
            f"a table starts with {_elements(int(match[1]))}, more than the "
            f"{max_table_elements} a table may hold (--max-table-elements)"
        )
    elif _TOO_MANY_TABLES in cause:
        cause = f"it has more than the {MAX_TABLES} tables an instance may have ({cause})"
    return ModuleLoadError(f"cannot be instantiated: {cause}", "instantiate")


def _elements(count: int) -> str:
    return f"{count} element" if count == 1 else f"{count} elements"
