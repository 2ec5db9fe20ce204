"""Calling conventions: how the host passes input to a guest function.

The convention of each exported function is decided once, at load time, from
its WebAssembly signature, so a call never guesses.
"""

from __future__ import annotations

import enum

import wasmtime

__all__ = ["CallingConvention", "classify", "describe_signature"]


class CallingConvention(enum.Enum):
    """Values match `wasmtube.v1.CallingConvention`."""

    # f(offset: i32, length: i32) -> i32: JSON in at offset, JSON out at offset.
    SEED_JSON = 1
    # f(offset: i32, length: i32, width: i32, height: i32) -> i32: RGB8 pixels in.
    SEED_IMAGE = 2

    @property
    def takes_image(self) -> bool:
        return self is CallingConvention.SEED_IMAGE


_I32 = "i32"
_SIGNATURES: dict[tuple[tuple[str, ...], tuple[str, ...]], CallingConvention] = {
    ((_I32, _I32), (_I32,)): CallingConvention.SEED_JSON,
    ((_I32, _I32, _I32, _I32), (_I32,)): CallingConvention.SEED_IMAGE,
}


def _kinds(types: list[wasmtime.ValType]) -> tuple[str, ...]:
    return tuple(str(t) for t in types)


def classify(func_type: wasmtime.FuncType) -> CallingConvention | None:
    """The convention a function of this type is called with, or None."""
    key = (_kinds(func_type.params), _kinds(func_type.results))
    return _SIGNATURES.get(key)


def describe_signature(func_type: wasmtime.FuncType) -> str:
    """A function type as people write it: `(i32, i32) -> i32`."""
    params = ", ".join(_kinds(func_type.params))
    results = _kinds(func_type.results)
    if not results:
        return f"({params}) -> ()"
    if len(results) == 1:
        return f"({params}) -> {results[0]}"
    return f"({params}) -> ({', '.join(results)})"
