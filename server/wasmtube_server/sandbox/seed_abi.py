"""The seed ABI: input written at a fixed offset, output read back from it.

This is exactly what the Elixir seed library did, so its guests run unchanged,
plus the bounds and format checks the seed never made.
"""

from __future__ import annotations

from ..errors import GuestOutputError, InputTooLarge
from .guest_call import ImageInput, Payload, decode_output, invoke
from .instance import GuestInstance
from .memory import fits, read_bytes, write_bytes

__all__ = ["call_seed"]


def call_seed(
    instance: GuestInstance, function: str, payload: Payload, offset: int, seconds: float
) -> str:
    """Run one seed-ABI call and return the guest's JSON output as text."""
    data = payload.data if isinstance(payload, ImageInput) else payload
    if not fits(instance, offset, len(data)):
        capacity = instance.memory.data_len(instance.store)
        raise InputTooLarge(
            f"input of {len(data)} bytes does not fit in the guest's linear memory: "
            f"{capacity} bytes, input written at offset {offset}; the alloc ABI takes "
            f"inputs up to --max-memory"
        )
    write_bytes(instance, offset, data)
    args: tuple[int, ...] = (offset, len(data))
    if isinstance(payload, ImageInput):
        args += (payload.width, payload.height)
    length = invoke(instance, function, *args, seconds=seconds)

    # The guest may have grown its memory during the call: bound by the size now.
    if not isinstance(length, int) or not fits(instance, offset, length):
        capacity = instance.memory.data_len(instance.store)
        raise GuestOutputError(
            f"function {function!r} returned output length {length}, outside its "
            f"linear memory ({capacity} bytes, output read at offset {offset})"
        )
    return decode_output(function, read_bytes(instance, offset, length))
