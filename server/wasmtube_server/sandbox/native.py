"""Direct calls into wasmtime's C API, for the operations on every call's path.

wasmtime-py's `Func.__call__` re-reads the function type and converts every
argument through generic Val objects, and its `Instance.exports()` wraps
every export of a new instance: each costs more than the guest call itself
(docs/benchmarks.md compares wasmtube with plain wasmtime-py). The
conventions only pass i32s and return one i32 or i64, so a call writes its
arguments into a preallocated raw value array and calls
`wasmtime_func_call_unchecked` itself (compile_module has checked every
type), and an instance looks up only the exports a call needs.

The small C functions (epoch deadline, memory size and address) are called
through prototypes that keep the GIL: they take well under a microsecond,
and releasing the GIL around them only invites a thread switch. A guest call
releases the GIL, so guests on different Stores run in parallel.

This is the only file that touches wasmtime-py internals (`_ffi`, private
attributes); the version is pinned in pyproject.toml, and the tests exercise
every path here.
"""

from __future__ import annotations

import ctypes
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime._extern import wrap_extern

__all__ = [
    "GuestFunc",
    "caller_context_address",
    "context_address",
    "export_by_name",
    "memory_address",
    "memory_data",
    "memory_data_size",
    "set_epoch_deadline",
]

_c_void_p, _c_size_t, _c_uint64 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint64

# Functions from a PyDLL keep the GIL: no Python thread runs while these do,
# and none has to wait for the GIL to come back.
_held = ctypes.PyDLL(ffi.dll._name, handle=ffi.dll._handle)


def _function(library: ctypes.CDLL, name: str, restype: Any, argtypes: Any) -> Any:
    function = library[name]  # a new function object: wasmtime-py's stays as it is
    function.restype = restype
    function.argtypes = argtypes
    return function


set_epoch_deadline = _function(
    _held, "wasmtime_context_set_epoch_deadline", None, (_c_void_p, _c_uint64)
)
memory_data_size = _function(_held, "wasmtime_memory_data_size", _c_size_t, (_c_void_p, _c_void_p))
memory_data = _function(_held, "wasmtime_memory_data", _c_void_p, (_c_void_p, _c_void_p))

# From the CDLL: the GIL is released while the guest runs. No argtypes: it is
# only called with ready-made ctypes arguments, so ctypes converts nothing.
_func_call_unchecked = _function(ffi.dll, "wasmtime_func_call_unchecked", _c_void_p, None)

# A raw value is a 16-byte union; an i32 argument or result sits in its first
# 4 bytes, an i64 in its first 8 (little-endian, as wasmtime requires).
_RAW_SIZE = ctypes.sizeof(ffi.wasmtime_val_raw)
_I32_STRIDE = _RAW_SIZE // 4


def context_address(store: wasmtime.Store) -> int:
    """The address of `store`'s context, valid as long as the Store lives."""
    address = ctypes.cast(store._context(), _c_void_p).value
    assert address is not None
    return address


def caller_context_address(caller: wasmtime.Caller) -> int:
    """The context address of the Store a host function's caller runs in."""
    address = ctypes.cast(caller._context(), _c_void_p).value
    assert address is not None
    return address


def memory_address(memory: wasmtime.Memory) -> int:
    """The address of the `wasmtime_memory_t` inside `memory` (keep `memory` alive)."""
    return ctypes.addressof(memory._memory)


def export_by_name(
    store: wasmtime.Store, instance: wasmtime.Instance, name: str
) -> wasmtime.Func | wasmtime.Memory | wasmtime.Table | None:
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
    return export if isinstance(export, wasmtime.Func | wasmtime.Memory | wasmtime.Table) else None


class GuestFunc:
    """A guest function of i32 parameters and no result or one i32 or i64.

    Bound to one Store, and used only by the thread that holds that Store.
    The caller guarantees the function's type (compile_module checked it):
    the unchecked call trusts the argument count and types.
    """

    __slots__ = ("_arguments", "_func", "_i32", "_i64", "_result", "_store", "_trap", "_values")

    def __init__(
        self, store: wasmtime.Store, func: wasmtime.Func, nparams: int, result: str
    ) -> None:
        self._store = store  # keeps the Store (and so the context) alive
        self._func = func  # keeps the wasmtime_func_t that _address points to alive
        length = max(1, nparams, 1 if result else 0)
        self._values = (ffi.wasmtime_val_raw * length)()
        # Any: ctypes takes any sequence for a slice, typeshed only a list.
        self._i32: Any = (ctypes.c_int32 * (length * _I32_STRIDE)).from_buffer(self._values)
        self._i64 = (ctypes.c_int64 * (length * _I32_STRIDE // 2)).from_buffer(self._values)
        self._result = result
        self._trap = _c_void_p()
        # wasmtime_func_call_unchecked(context, func, values, length, &trap)
        self._arguments = (
            _c_void_p(context_address(store)),
            _c_void_p(ctypes.addressof(func._func)),
            _c_void_p(ctypes.addressof(self._values)),
            _c_size_t(length),
            _c_void_p(ctypes.addressof(self._trap)),
        )

    def __call__(self, *args: int) -> int:
        """Run the function; its result as a signed int (0 if it has none).

        Raises wasmtime.Trap if the guest trapped, WasmtimeError on a host error.
        """
        i32 = self._i32
        # One slice assignment puts each argument in the first 4 bytes of its
        # raw value; ctypes keeps the low 32 bits, so u32 values keep their
        # bit pattern.
        i32[0 : len(args) * _I32_STRIDE : _I32_STRIDE] = args
        trap = self._trap
        trap.value = None
        error = _func_call_unchecked(*self._arguments)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t))
            )
        if trap.value:
            raise wasmtime.Trap._from_ptr(ctypes.cast(trap, ctypes.POINTER(ffi.wasm_trap_t)))
        result = self._result
        if result == "i64":
            return self._i64[0]
        return i32[0] if result else 0
