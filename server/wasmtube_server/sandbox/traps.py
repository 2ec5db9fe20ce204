"""Turning a wasmtime Trap into a short reason and a readable sentence."""

from __future__ import annotations

import wasmtime

__all__ = ["describe_trap"]

_REASONS: dict[wasmtime.TrapCode, str] = {
    wasmtime.TrapCode.UNREACHABLE: "unreachable",
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "out_of_bounds",
    wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS: "out_of_bounds",
    wasmtime.TrapCode.STACK_OVERFLOW: "stack_overflow",
    wasmtime.TrapCode.OUT_OF_FUEL: "fuel",
    wasmtime.TrapCode.INTERRUPT: "timeout",
}


def describe_trap(trap: wasmtime.Trap) -> tuple[str, str]:
    """(reason, detail): a stable label for metrics and the trap's own words."""
    code = trap.trap_code
    reason = _REASONS.get(code, "other") if code is not None else "other"
    return reason, _cause(trap.message)


def _cause(message: str) -> str:
    # wasmtime's message is a backtrace followed by "Caused by:" and the cause;
    # the cause is what a caller can act on.
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if "Caused by:" in lines:
        after = lines[lines.index("Caused by:") + 1 :]
        if after:
            return " ".join(after)
    return lines[0] if lines else "trap"
