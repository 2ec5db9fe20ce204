"""A guest's linear memory: bounds-checked copies in and out, one copy each way.

The Runtime's engine never moves a linear memory (`memory_may_move` off:
growth happens inside its address reservation), so the base address is read
once per instance. The size is cached too: a linear memory never shrinks,
so a range inside the cached size is inside the memory, and the real size is
read only when a range falls outside the cached one.

Input goes in with one `memmove` from the request's bytes; output text is
decoded straight out of linear memory, without an intermediate bytes object.
"""

from __future__ import annotations

import ctypes

import wasmtime

from .native import memory_address, memory_data, memory_data_size

__all__ = ["LinearMemory"]


class LinearMemory:
    """The linear memory of one instance; lives as long as that instance's Store."""

    __slots__ = ("_context", "_handle", "_memory", "_view", "base", "size")

    def __init__(self, context: int, memory: wasmtime.Memory) -> None:
        self._context = context
        self._memory = memory  # keeps the wasmtime_memory_t that _handle points to alive
        self._handle = memory_address(memory)
        base = memory_data(context, self._handle)
        self.base: int = base or 0
        self.size: int = memory_data_size(context, self._handle)
        self._view: memoryview | None = None

    def current_size(self) -> int:
        """The memory's size in bytes now (the guest may have grown it)."""
        size = memory_data_size(self._context, self._handle)
        if size != self.size:
            self.size, self._view = size, None
        return size

    def fits(self, offset: int, length: int) -> bool:
        """Whether [offset, offset + length) lies inside the memory now."""
        if offset < 0 or length < 0:
            return False
        end = offset + length
        return end <= self.size or end <= self.current_size()

    def write(self, offset: int, data: bytes) -> None:
        """Copy `data` to `offset`."""
        if not self.fits(offset, len(data)):
            raise IndexError(f"write of {len(data)} bytes at {offset} is outside linear memory")
        if data:
            ctypes.memmove(self.base + offset, data, len(data))

    def read(self, offset: int, length: int) -> bytes:
        """Copy `length` bytes from `offset`."""
        if not self.fits(offset, length):
            raise IndexError(f"read of {length} bytes at {offset} is outside linear memory")
        return ctypes.string_at(self.base + offset, length) if length else b""

    def read_text(self, offset: int, length: int) -> str:
        """Decode `length` bytes at `offset` as UTF-8; raises UnicodeDecodeError."""
        if not self.fits(offset, length):
            raise IndexError(f"read of {length} bytes at {offset} is outside linear memory")
        view = self._view
        if view is None:
            # A view of the whole memory as it is now; dropped when it grows.
            view = self._view = memoryview((ctypes.c_char * self.size).from_address(self.base))
        return str(view[offset : offset + length], "utf-8")
