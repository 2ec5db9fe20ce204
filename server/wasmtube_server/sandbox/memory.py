"""Bounds-checked copies between Python bytes and a guest's linear memory.

One copy each way: `ctypes.memmove` from the request's bytes straight into
linear memory, `ctypes.string_at` straight out. wasmtime-py's Memory.write
copies into a bytearray first, which costs a second pass over a 25 MB frame.
The base address is taken right before each copy: memory.grow may move it.
"""

from __future__ import annotations

import ctypes

from .instance import GuestInstance

__all__ = ["fits", "read_bytes", "write_bytes"]


def fits(instance: GuestInstance, offset: int, length: int) -> bool:
    """Whether [offset, offset + length) lies inside the instance's memory now."""
    return (
        offset >= 0 and length >= 0 and offset + length <= instance.memory.data_len(instance.store)
    )


def _base(instance: GuestInstance) -> int:
    return ctypes.addressof(instance.memory.data_ptr(instance.store).contents)


def write_bytes(instance: GuestInstance, offset: int, data: bytes) -> None:
    """Copy `data` to `offset`; the caller has checked `fits`."""
    if not fits(instance, offset, len(data)):
        raise IndexError(f"write of {len(data)} bytes at {offset} is outside linear memory")
    if data:
        ctypes.memmove(_base(instance) + offset, data, len(data))


def read_bytes(instance: GuestInstance, offset: int, length: int) -> bytes:
    """Copy `length` bytes from `offset`; the caller has checked `fits`."""
    if not fits(instance, offset, length):
        raise IndexError(f"read of {length} bytes at {offset} is outside linear memory")
    return ctypes.string_at(_base(instance) + offset, length) if length else b""
