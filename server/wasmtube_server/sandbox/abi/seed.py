"""The seed ABI: input written at a fixed offset, output read back from it.

This is exactly what the Elixir seed library did, so its guests run unchanged,
plus the bounds and format checks the seed never made, and one more: after a
call the host zeroes [offset, offset + max(input, output)), the bytes it
wrote and read, so no later call on a pooled instance can read them. This
holds when the guest fails on purpose (wasmtube.fail) too, which keeps the
instance; after any other failure the instance is dropped.
"""

from __future__ import annotations

from ...errors import GuestError, GuestOutputError, InputTooLarge
from ..instance import GuestInstance
from .common import Output, Payload, invoke, read_output, unpack

__all__ = ["call_seed"]


def call_seed(
    instance: GuestInstance, function: str, payload: Payload, offset: int, seconds: float
) -> Output:
    """Run one seed-ABI call and return the guest's output as text."""
    data, sizes = unpack(payload)
    memory = instance.memory
    if not memory.fits(offset, len(data)):
        raise InputTooLarge(
            f"input of {len(data)} bytes does not fit in the guest's linear memory: "
            f"{memory.size} bytes, input written at offset {offset}; the alloc ABI takes "
            f"inputs up to --max-memory"
        )
    memory.write(offset, data)
    try:
        length = invoke(instance, function, offset, len(data), *sizes, seconds=seconds)
    except GuestError:
        memory.zero(offset, len(data))
        raise

    # The guest may have grown its memory during the call: fits() rereads the
    # size when the output reaches past the size known before.
    if not memory.fits(offset, length):
        raise GuestOutputError(
            f"function {function!r} returned output length {length}, outside its "
            f"linear memory ({memory.current_size()} bytes, output read at offset {offset})"
        )
    output = read_output(instance, function, offset, length)
    memory.zero(offset, max(len(data), length))
    return output
