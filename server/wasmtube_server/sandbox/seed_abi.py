"""The seed ABI: input written at a fixed offset, output read back from it.

This is exactly what the Elixir seed library did, so its guests run unchanged,
plus the bounds and format checks the seed never made.
"""

from __future__ import annotations

import json

import wasmtime

from ..errors import GuestOutputError, GuestTrap, InputTooLarge
from .abi import CallingConvention
from .instance import GuestInstance
from .traps import describe_trap

__all__ = ["ImageInput", "call_seed"]


class ImageInput:
    """RGB8 pixels with their sizes, already checked to agree."""

    __slots__ = ("data", "height", "width")

    def __init__(self, data: bytes, width: int, height: int) -> None:
        self.data = data
        self.width = width
        self.height = height


def call_seed(
    instance: GuestInstance,
    function: str,
    convention: CallingConvention,
    payload: bytes | ImageInput,
    offset: int,
) -> str:
    """Run one seed-ABI call and return the guest's JSON output as text."""
    store, memory = instance.store, instance.memory
    data = payload.data if isinstance(payload, ImageInput) else payload
    capacity = memory.data_len(store)
    if offset + len(data) > capacity:
        raise InputTooLarge(
            f"input of {len(data)} bytes does not fit in the guest's linear memory: "
            f"{capacity} bytes, input written at offset {offset}"
        )
    if data:
        memory.write(store, data, offset)

    func = instance.func(function)
    try:
        if isinstance(payload, ImageInput):
            assert convention is CallingConvention.SEED_IMAGE
            length = func(store, offset, len(data), payload.width, payload.height)
        else:
            assert convention is CallingConvention.SEED_JSON
            length = func(store, offset, len(data))
    except wasmtime.Trap as trap:
        reason, detail = describe_trap(trap)
        raise GuestTrap(f"function {function!r} trapped: {detail}", reason) from trap

    return _read_output(instance, function, offset, length)


def _read_output(instance: GuestInstance, function: str, offset: int, length: object) -> str:
    store, memory = instance.store, instance.memory
    # The guest may have grown its memory during the call: bound by the size now.
    capacity = memory.data_len(store)
    if not isinstance(length, int) or length < 0 or offset + length > capacity:
        raise GuestOutputError(
            f"function {function!r} returned output length {length}, outside its "
            f"linear memory ({capacity} bytes, output read at offset {offset})"
        )
    raw = memory.read(store, offset, offset + length)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GuestOutputError(
            f"function {function!r} returned {length} bytes that are not UTF-8 "
            f"(first bad byte at {e.start})"
        ) from e
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise GuestOutputError(
            f"function {function!r} returned {length} bytes that are not JSON: {e.msg} "
            f"at byte {e.pos}: {text[:80]!r}"
        ) from e
    return text
