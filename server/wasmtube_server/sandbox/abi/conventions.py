"""Calling conventions: how the host passes input to a guest function.

The convention of each exported function is decided once, at load time, from
its WebAssembly signature and the module's exports, so a call never guesses.
"""

from __future__ import annotations

import enum

import wasmtime

__all__ = [
    "ALLOC_EXPORT",
    "FORMAT_PARAMETERS",
    "FREE_EXPORT",
    "CallingConvention",
    "classify",
    "describe_signature",
]

# The alloc ABI's exports: `wasmtube_alloc(len: i32) -> i32` (required) and
# `wasmtube_free(ptr: i32, len: i32)` (optional). They are not callable functions.
ALLOC_EXPORT = "wasmtube_alloc"
FREE_EXPORT = "wasmtube_free"


class CallingConvention(enum.Enum):
    """Values match `wasmtube.v1.CallingConvention`."""

    # f(offset: i32, length: i32) -> i32: JSON in at offset, JSON out at offset.
    SEED_JSON = 1
    # f(offset: i32, length: i32, width: i32, height: i32[, format: i32]) -> i32:
    # pixels in; RGB8 only unless the function takes the format.
    SEED_IMAGE = 2
    # f(ptr: i32, length: i32) -> i64: input in a buffer from wasmtube_alloc,
    # output where the packed (ptr << 32 | length) result says.
    ALLOC_JSON = 3
    # f(ptr: i32, length: i32, width: i32, height: i32[, format: i32]) -> i64.
    ALLOC_IMAGE = 4

    @property
    def takes_image(self) -> bool:
        return self in (CallingConvention.SEED_IMAGE, CallingConvention.ALLOC_IMAGE)

    @property
    def uses_allocator(self) -> bool:
        return self in (CallingConvention.ALLOC_JSON, CallingConvention.ALLOC_IMAGE)


_SIGNATURES: dict[str, CallingConvention] = {
    "(i32, i32) -> i32": CallingConvention.SEED_JSON,
    "(i32, i32, i32, i32) -> i32": CallingConvention.SEED_IMAGE,
    "(i32, i32) -> i64": CallingConvention.ALLOC_JSON,
    "(i32, i32, i32, i32) -> i64": CallingConvention.ALLOC_IMAGE,
    "(i32, i32, i32, i32, i32) -> i32": CallingConvention.SEED_IMAGE,
    "(i32, i32, i32, i32, i32) -> i64": CallingConvention.ALLOC_IMAGE,
}
# An image function with this many parameters also takes the pixel format, so
# it accepts every format; with four it only ever gets RGB8, which is all a
# seed guest (which ignores the length) could read correctly.
FORMAT_PARAMETERS = 5


def classify(func_type: wasmtime.FuncType, has_allocator: bool) -> CallingConvention | None:
    """The convention a function of this type is called with, or None."""
    convention = _SIGNATURES.get(describe_signature(func_type))
    if convention is not None and convention.uses_allocator and not has_allocator:
        return None
    return convention


def describe_signature(func_type: wasmtime.FuncType) -> str:
    """A function type as people write it: `(i32, i32) -> i32`."""
    params = ", ".join(str(t) for t in func_type.params)
    results = [str(t) for t in func_type.results]
    if not results:
        return f"({params}) -> ()"
    if len(results) == 1:
        return f"({params}) -> {results[0]}"
    return f"({params}) -> ({', '.join(results)})"
