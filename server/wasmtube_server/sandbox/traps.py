"""Turning what stopped a guest call into the error a caller should see."""

from __future__ import annotations

import wasmtime

from ..errors import (
    GuestExited,
    GuestFuelExhausted,
    GuestHostCallFailed,
    GuestOutOfMemory,
    GuestTimedOut,
    GuestTrap,
)
from .causes import causes

__all__ = ["Usage", "host_error", "timed_out", "trap_cause", "trap_error"]

MIB = 1024 * 1024
# wasmtime-py offers no callback for a refused memory.grow or table.grow, so
# "out of memory" is inferred: a trap while a memory or table the guest grew
# is past this share of its cap. A guest grows in chunks (Rust's allocator
# asks for what one allocation needs), so being one page short of the cap is
# too strict a test.
OUT_OF_MEMORY_SHARE = 0.75

_REASONS: dict[wasmtime.TrapCode, str] = {
    wasmtime.TrapCode.UNREACHABLE: "unreachable",
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "out_of_bounds",
    wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS: "out_of_bounds",
    wasmtime.TrapCode.STACK_OVERFLOW: "stack_overflow",
    wasmtime.TrapCode.OUT_OF_FUEL: "fuel",
    wasmtime.TrapCode.INTERRUPT: "timeout",
}


class Usage:
    """How much of its caps an instance used, read after it trapped.

    A memory or table counts only if it grew during the instance's life: one
    that starts near its cap says nothing about a refused grow.
    """

    __slots__ = ("max_memory", "max_table_elements", "memory_size", "table_size")

    def __init__(
        self, memory_size: int, max_memory: int, table_size: int = 0, max_table_elements: int = 0
    ) -> None:
        # Bytes of linear memory if it grew, else 0.
        self.memory_size = memory_size
        self.max_memory = max_memory
        # Elements of the largest exported table that grew, else 0.
        self.table_size = table_size
        self.max_table_elements = max_table_elements


def timed_out(function: str, seconds: float, reported: str = "") -> GuestTimedOut:
    return GuestTimedOut(
        f"function {function!r} ran past its {_seconds(seconds)} s deadline and was stopped"
        + _after(reported),
        "timeout",
    )


def _seconds(seconds: float) -> str:
    """0.48, 3, 600: two significant digits, but never an exponent."""
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.2g}"


def _after(reported: str) -> str:
    """What the guest passed to wasmtube.fail before it was stopped, for the
    end of a message."""
    return f" (after it had called wasmtube.fail with {reported})" if reported else ""


def trap_error(
    trap: wasmtime.Trap, function: str, seconds: float, usage: Usage, reported: str = ""
) -> GuestTrap:
    """The error for a trap in `function`, which had `seconds` to run.

    A guest that cannot grow its memory or a table gets -1 from memory.grow
    or table.grow, not a trap; it then typically aborts (Rust's allocation
    failure is `unreachable`). So a trap with a grown memory or table near
    its cap is reported as running out of memory. `reported` describes what
    the guest passed to wasmtube.fail before trapping: the trap wins, since
    the guest did not finish the call, but the message keeps what it said.
    """
    code = trap.trap_code
    if code is wasmtime.TrapCode.INTERRUPT:
        return timed_out(function, seconds, reported)
    after = _after(reported)
    if code is wasmtime.TrapCode.OUT_OF_FUEL:
        return GuestFuelExhausted(
            f"function {function!r} used up its fuel (--fuel) and was stopped{after}", "fuel"
        )
    cause = trap_cause(trap)
    if usage.memory_size > OUT_OF_MEMORY_SHARE * usage.max_memory:
        return GuestOutOfMemory(
            f"function {function!r} ran out of memory: its linear memory grew to "
            f"{usage.memory_size / MIB:.1f} MiB of the {usage.max_memory / MIB:.0f} MiB cap "
            f"(--max-memory, or max_memory in its settings file), then it trapped: "
            f"{cause}{after}",
            "memory",
        )
    if usage.max_table_elements and (
        usage.table_size > OUT_OF_MEMORY_SHARE * usage.max_table_elements
    ):
        return GuestOutOfMemory(
            f"function {function!r} ran out of table space: a table it exports grew to "
            f"{usage.table_size} elements of the {usage.max_table_elements} cap "
            f"(--max-table-elements), then it trapped: {cause}{after}",
            "table",
        )
    reason = _REASONS.get(code, "other") if code is not None else "other"
    kind = reason.replace("_", " ")
    return GuestTrap(f"function {function!r} trapped ({kind}): {cause}{after}", reason)


def host_error(error: wasmtime.WasmtimeError, function: str, reported: str = "") -> GuestTrap:
    """The error for a guest call that a host function ended with an error.

    wasmtube's own host functions never raise, so this is WASI's doing on the
    guest's behalf: proc_exit, or a call it refused outright (a pointer
    outside linear memory, a resource limit).
    """
    after = _after(reported)
    if isinstance(error, wasmtime.ExitTrap):
        return GuestExited(
            f"function {function!r} exited with status {error.code} (WASI proc_exit) "
            f"instead of returning{after}",
            "exit",
        )
    return GuestHostCallFailed(
        f"function {function!r} was stopped by a WASI call it made wrongly: "
        f"{causes(str(error)) or 'no cause given'}{after}",
        "host",
    )


def trap_cause(trap: wasmtime.Trap) -> str:
    # wasmtime's message is a backtrace followed by "Caused by:" and the cause;
    # the cause is what a caller can act on.
    return causes(trap.message) or "trap"
