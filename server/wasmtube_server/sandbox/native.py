"""Direct calls into wasmtime's C API, for the two operations on every call's path.

wasmtime-py's `Func.__call__` re-reads the function type and converts every
argument through generic Val objects (~100 us per call here); its
`Instance.exports()` wraps every export of a new instance (~150 us for the
test guest). The conventions only pass i32s and return one i32 or i64, so a
call can fill a preallocated argument array and call `wasmtime_func_call`
itself, and an instance can look up only the exports a call needs.

This is the only file that touches wasmtime-py internals (`_ffi`, private
attributes); the version is pinned in pyproject.toml, and the tests exercise
every path here.
"""

from __future__ import annotations

import ctypes

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime._extern import wrap_extern

__all__ = ["I32Call", "export_by_name"]


def export_by_name(
    store: wasmtime.Store, instance: wasmtime.Instance, name: str
) -> wasmtime.Func | wasmtime.Memory | None:
    """One export of `instance`, or None: without wrapping all the others."""
    raw = name.encode("utf-8")
    item = ffi.wasmtime_extern_t()
    found = ffi.wasmtime_instance_export_get(
        store._context(),
        ctypes.byref(instance._instance),
        ctypes.create_string_buffer(raw, len(raw)),
        len(raw),
        ctypes.byref(item),
    )
    if not found:
        return None
    export = wrap_extern(item)
    return export if isinstance(export, wasmtime.Func | wasmtime.Memory) else None


class I32Call:
    """A guest function of i32 parameters and no result or one i32 or i64.

    Bound to one Store, and used only by the thread that holds that Store.
    ctypes releases the GIL for the duration of the foreign call, so guests
    on different Stores run in parallel.
    """

    __slots__ = (
        "_context",
        "_func",
        "_nparams",
        "_nresults",
        "_params",
        "_result",
        "_returns_i64",
        "_store",
    )

    def __init__(
        self, store: wasmtime.Store, func: wasmtime.Func, nparams: int, result: str
    ) -> None:
        self._store = store  # keeps the Store (and so the context) alive
        self._context = store._context()
        self._func = ctypes.byref(func._func)
        self._nparams = nparams
        self._params = (ffi.wasmtime_val_t * max(1, nparams))()
        for param in self._params:
            param.kind = ffi.WASMTIME_I32.value  # type: ignore[assignment]
        self._result = (ffi.wasmtime_val_t * 1)()
        self._nresults = 1 if result else 0
        self._returns_i64 = result == "i64"

    def __call__(self, *args: int) -> int | None:
        params = self._params
        for i, value in enumerate(args):
            # ctypes stores the low 32 bits: u32 values keep their bit pattern.
            params[i].of.i32 = value
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call(
            self._context,
            self._func,
            params,
            self._nparams,
            self._result,
            self._nresults,
            ctypes.byref(trap),
        )
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:
            raise wasmtime.Trap._from_ptr(trap)
        if not self._nresults:
            return None
        result = self._result[0].of
        return result.i64 if self._returns_i64 else result.i32
