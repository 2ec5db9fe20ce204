"""The alloc ABI, for payloads of any size up to the memory cap.

The host asks the guest for a buffer (`wasmtube_alloc(len) -> ptr`), writes
the input there and calls `f(ptr, len[, width, height]) -> i64`, whose result
packs the output's place as `ptr << 32 | len`. The host then frees the output
with `wasmtube_free(ptr, len)` if the guest exports it, unless the output lies
inside the input buffer (a guest may answer in place).

The input buffer belongs to the host. A pooled instance keeps it between
calls and reuses it for any input that fits, so a typical call is one guest
call plus one free instead of four guest calls; buffers over
KEEP_INPUT_BUFFER bytes are freed after the call, so an idle instance does
not hold a frame-sized buffer. Every pointer and length the guest hands back
is checked against its memory before use.

No call may read what the host wrote or read for an earlier one: after the
call, the input's bytes are zeroed in the buffer (kept or about to be
freed), and so is the output if the host owns it then: inside the input
buffer, or about to be given back with wasmtube_free, after which the
guest's allocator may hand it to the next call. An output the guest keeps
(no wasmtube_free: it may be the guest's own data) is the guest's to clear.
This holds when the guest fails on purpose (wasmtube.fail) too: that keeps
the instance. After any other failure the instance is dropped.
"""

from __future__ import annotations

from ...errors import GuestError, GuestOutputError, InputTooLarge
from ..instance import GuestInstance
from .common import Output, Payload, invoke, read_output, unpack
from .conventions import ALLOC_EXPORT, FREE_EXPORT

__all__ = ["KEEP_INPUT_BUFFER", "call_alloc"]

KEEP_INPUT_BUFFER = 1 << 20
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


def call_alloc(instance: GuestInstance, function: str, payload: Payload, seconds: float) -> Output:
    data, sizes = unpack(payload)
    size = len(data)
    memory = instance.memory
    kept = instance.input_buffer
    if kept is not None and kept[1] >= size:
        in_ptr, capacity = kept
    else:
        in_ptr, capacity = _input_buffer(instance, size, seconds)
    memory.write(in_ptr, data)
    try:
        packed = invoke(instance, function, in_ptr, size, *sizes, seconds=seconds) & _U64
    except GuestError:
        memory.zero(in_ptr, size)
        raise
    out_ptr, out_len = packed >> 32, packed & _U32
    if not memory.fits(out_ptr, out_len):
        raise GuestOutputError(
            f"function {function!r} returned output at {out_ptr} of length {out_len}, "
            f"outside its linear memory ({memory.current_size()} bytes)"
        )
    output = read_output(instance, function, out_ptr, out_len)
    in_place = in_ptr <= out_ptr <= out_ptr + out_len <= in_ptr + capacity
    if in_place:
        # One range from the input's start to whichever ends last.
        memory.zero(in_ptr, max(size, out_ptr + out_len - in_ptr))
    else:
        memory.zero(in_ptr, size)
        if instance.frees:
            memory.zero(out_ptr, out_len)
    if instance.frees:
        # Pooled instances live on: without this their heap would only grow.
        if not in_place:
            invoke(instance, FREE_EXPORT, out_ptr, out_len, seconds=seconds)
        if capacity > KEEP_INPUT_BUFFER:
            instance.input_buffer = None
            invoke(instance, FREE_EXPORT, in_ptr, capacity, seconds=seconds)
    return output


def _input_buffer(instance: GuestInstance, size: int, seconds: float) -> tuple[int, int]:
    """A new guest buffer of at least `size` bytes for the input: (pointer,
    capacity). Frees the kept one, which is too small."""
    kept = instance.input_buffer
    if kept is not None:
        instance.input_buffer = None
        if instance.frees:
            invoke(instance, FREE_EXPORT, kept[0], kept[1], seconds=seconds)
    if size > _U32 >> 1:
        raise InputTooLarge(f"input of {size} bytes exceeds the 2 GiB a wasm32 guest can address")
    in_ptr = invoke(instance, ALLOC_EXPORT, size, seconds=seconds) & _U32
    if in_ptr == 0:
        max_mib = instance.max_memory // (1024 * 1024)
        raise InputTooLarge(
            f"the guest could not allocate {size} bytes for the input "
            f"({ALLOC_EXPORT} returned 0; linear memory is capped at {max_mib} MiB: "
            f"--max-memory, or max_memory in the module's settings file)"
        )
    if not instance.memory.fits(in_ptr, size):
        raise GuestOutputError(
            f"{ALLOC_EXPORT}({size}) returned {in_ptr}, a buffer outside the guest's linear "
            f"memory ({instance.memory.current_size()} bytes)"
        )
    instance.input_buffer = (in_ptr, size)
    return in_ptr, size
