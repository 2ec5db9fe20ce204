"""Turning a wasmtime Trap into the error a caller should see."""

from __future__ import annotations

import wasmtime

from ..errors import GuestFuelExhausted, GuestOutOfMemory, GuestTimedOut, GuestTrap

__all__ = ["trap_cause", "trap_error"]

MIB = 1024 * 1024
# wasmtime-py offers no callback for a refused memory.grow, so "out of memory"
# is inferred: a trap while linear memory is past this share of the cap. A
# guest grows in chunks (Rust's allocator asks for what one allocation needs),
# so being one page short of the cap is too strict a test.
OUT_OF_MEMORY_SHARE = 0.75

_REASONS: dict[wasmtime.TrapCode, str] = {
    wasmtime.TrapCode.UNREACHABLE: "unreachable",
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "out_of_bounds",
    wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS: "out_of_bounds",
    wasmtime.TrapCode.STACK_OVERFLOW: "stack_overflow",
    wasmtime.TrapCode.OUT_OF_FUEL: "fuel",
    wasmtime.TrapCode.INTERRUPT: "timeout",
}


def trap_error(
    trap: wasmtime.Trap, function: str, seconds: float, memory_size: int, max_memory: int
) -> GuestTrap:
    """The error for a trap in `function`, which had `seconds` to run.

    A guest that cannot grow its memory gets -1 from memory.grow, not a trap;
    it then typically aborts (Rust's allocation failure is `unreachable`). So a
    trap with memory near the cap is reported as out of memory.
    """
    code = trap.trap_code
    cause = trap_cause(trap)
    if code is wasmtime.TrapCode.INTERRUPT:
        return GuestTimedOut(
            f"function {function!r} ran past its {seconds:.2g} s deadline and was stopped",
            "timeout",
        )
    if code is wasmtime.TrapCode.OUT_OF_FUEL:
        return GuestFuelExhausted(
            f"function {function!r} used up its fuel (--fuel) and was stopped", "fuel"
        )
    if memory_size > OUT_OF_MEMORY_SHARE * max_memory:
        return GuestOutOfMemory(
            f"function {function!r} ran out of memory: its linear memory grew to "
            f"{memory_size / MIB:.1f} MiB of the {max_memory / MIB:.0f} MiB cap "
            f"(--max-memory, or max_memory in its settings file), then it trapped: {cause}",
            "memory",
        )
    reason = _REASONS.get(code, "other") if code is not None else "other"
    kind = reason.replace("_", " ")
    return GuestTrap(f"function {function!r} trapped ({kind}): {cause}", reason)


def trap_cause(trap: wasmtime.Trap) -> str:
    # wasmtime's message is a backtrace followed by "Caused by:" and the cause;
    # the cause is what a caller can act on.
    lines = [line.strip() for line in trap.message.strip().splitlines() if line.strip()]
    if "Caused by:" in lines:
        after = lines[lines.index("Caused by:") + 1 :]
        if after:
            return " ".join(after)
    return lines[0] if lines else "trap"
