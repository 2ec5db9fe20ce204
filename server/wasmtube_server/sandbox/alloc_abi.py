"""The alloc ABI, for payloads of any size up to the memory cap.

The host asks the guest for a buffer (`wasmtube_alloc(len) -> ptr`), writes
the input there and calls `f(ptr, len[, width, height]) -> i64`, whose result
packs the output's place as `ptr << 32 | len`. Afterwards the host frees both
buffers with `wasmtube_free(ptr, len)` if the guest exports it. Every pointer
and length the guest hands back is checked against its memory before use.
"""

from __future__ import annotations

from ..errors import GuestOutputError, InputTooLarge
from .abi import ALLOC_EXPORT, FREE_EXPORT
from .guest_call import ImageInput, Payload, decode_output, invoke
from .instance import GuestInstance
from .memory import fits, read_bytes, write_bytes

__all__ = ["call_alloc"]

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


def call_alloc(instance: GuestInstance, function: str, payload: Payload, seconds: float) -> str:
    data = payload.data if isinstance(payload, ImageInput) else payload
    size = len(data)
    if size > _U32 >> 1:
        raise InputTooLarge(f"input of {size} bytes exceeds the 2 GiB a wasm32 guest can address")
    in_ptr = _as_u32(invoke(instance, ALLOC_EXPORT, size, seconds=seconds))
    if in_ptr == 0:
        max_mib = instance.runtime.limits.max_memory // (1024 * 1024)
        raise InputTooLarge(
            f"the guest could not allocate {size} bytes for the input "
            f"({ALLOC_EXPORT} returned 0; linear memory is capped at {max_mib} MiB, --max-memory)"
        )
    if not fits(instance, in_ptr, size):
        raise GuestOutputError(
            f"{ALLOC_EXPORT}({size}) returned {in_ptr}, a buffer outside the guest's linear "
            f"memory ({instance.memory.data_len(instance.store)} bytes)"
        )
    write_bytes(instance, in_ptr, data)
    args: tuple[int, ...] = (in_ptr, size)
    if isinstance(payload, ImageInput):
        args += (payload.width, payload.height)
    packed = invoke(instance, function, *args, seconds=seconds)
    if not isinstance(packed, int):
        raise GuestOutputError(f"function {function!r} returned {packed!r}, not an i64")
    packed &= _U64  # wasmtime gives the i64 signed
    out_ptr, out_len = packed >> 32, packed & _U32
    if not fits(instance, out_ptr, out_len):
        capacity = instance.memory.data_len(instance.store)
        raise GuestOutputError(
            f"function {function!r} returned output at {out_ptr} of length {out_len}, "
            f"outside its linear memory ({capacity} bytes)"
        )
    output = read_bytes(instance, out_ptr, out_len)
    if instance.has_export(FREE_EXPORT):
        # Pooled instances live on: without this their heap would only grow.
        invoke(instance, FREE_EXPORT, in_ptr, size, seconds=seconds)
        invoke(instance, FREE_EXPORT, out_ptr, out_len, seconds=seconds)
    return decode_output(function, output)


def _as_u32(value: object) -> int:
    return value & _U32 if isinstance(value, int) else 0
