"""What wasmtime says went wrong, on one line.

wasmtime's errors and traps are a chain printed over several lines: a
summary ("failed to parse WebAssembly module", or "error while executing at
wasm backtrace:" and a backtrace), then "Caused by:" and one cause a line,
numbered when there are several ("0: failed to call ...", "1: requested len
... exceeds limit ..."), where an outer cause often ends with the inner one's
text. The causes are what a module author can act on; the summary says which
stage failed.
"""

from __future__ import annotations

import re

__all__ = ["causes", "summary"]

_CAUSED_BY = "Caused by:"
_NUMBERED = re.compile(r"^\d+:\s*")


def causes(text: str) -> str:
    """The causes after "Caused by:", outermost first, joined with ": " (an
    inner cause the outer one already ends with is said once); the first line
    of `text` if it lists none."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if _CAUSED_BY in lines:
        said: list[str] = []
        for line in lines[lines.index(_CAUSED_BY) + 1 :]:
            cause = _NUMBERED.sub("", line)
            if not said or not said[-1].endswith(cause):
                said.append(cause)
        if said:
            return ": ".join(said)
    return lines[0] if lines else ""


def summary(text: str) -> str:
    """The first line of `text`, then its causes: the whole chain on one line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    cause = causes(text)
    head = lines[0].rstrip(":")
    return head if cause == lines[0] else f"{head}: {cause}"
