"""A guest's linear memory: bounds-checked copies in and out, one copy each way.

The Runtime's engine never moves a linear memory (`memory_may_move` off:
growth happens inside its address reservation), so the base address is read
once per instance. The size is cached too: a linear memory never shrinks,
so a range inside the cached size is inside the memory, and the real size is
read only when a range falls outside the cached one.

Both directions go through a memoryview of the whole memory: input is one
slice assignment from the request's bytes, output text is decoded straight
out of linear memory, without an intermediate bytes object. Neither releases
the GIL, unlike a ctypes call (memmove, string_at): a released GIL goes to
another request's thread, and getting it back costs two thread switches.
Zeroing likewise copies from a block of zeros, except for ranges so large
that the thread switches are lost in the work (ctypes.memset).
"""

from __future__ import annotations

import codecs
import ctypes

import wasmtime

from .native import memory_address, memory_data, memory_data_size

__all__ = ["LinearMemory"]

_utf_8_decode = codecs.utf_8_decode
# Ranges up to this size are zeroed by a slice assignment from _ZEROS; larger
# ones by memset, which releases the GIL but costs no copy of zeros.
_ZERO_BLOCK = 1 << 16
_ZEROS = memoryview(bytes(_ZERO_BLOCK))
_memset = ctypes.memset


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

    def view(self, offset: int, length: int) -> memoryview:
        """A view of [offset, offset + length), which must lie inside the
        memory (IndexError if not). Use it at once: it is valid only as long
        as the instance's Store."""
        return self._view_of(offset, length, "access")

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Copy `data` to `offset`."""
        self._view_of(offset, len(data), "write")[:] = data

    def zero(self, offset: int, length: int) -> None:
        """Overwrite [offset, offset + length) with zeros, clipped to the memory."""
        end = offset + length
        view = self._view
        if view is not None and 0 <= offset <= end <= self.size and length <= _ZERO_BLOCK:
            view[offset:end] = _ZEROS[:length]  # the common case: a small range, view made
            return
        if end > self.size:
            end = min(end, self.current_size())
        if offset < 0 or end <= offset:
            return
        length = end - offset
        if length <= _ZERO_BLOCK:
            self._view_of(offset, length, "zero")[:] = _ZEROS[:length]
        else:
            _memset(self.base + offset, 0, length)

    def read_bytes(self, offset: int, length: int) -> bytes:
        """Copy `length` bytes from `offset`."""
        return self._view_of(offset, length, "read").tobytes()

    def read_text(self, offset: int, length: int) -> str:
        """Decode `length` bytes at `offset` as UTF-8; raises UnicodeDecodeError."""
        # codecs decodes straight from the view; str(view, "utf-8") would copy
        # it to bytes first.
        return _utf_8_decode(self._view_of(offset, length, "read"), "strict", True)[0]

    def _view_of(self, offset: int, length: int, what: str) -> memoryview:
        """A view of [offset, offset + length), which must lie inside the memory.

        Every copy in or out comes here, so the common case (inside the known
        size, view made) takes one comparison and one slice.
        """
        end = offset + length
        view = self._view
        if view is None or offset < 0 or length < 0 or end > self.size:
            if not self.fits(offset, length):
                raise IndexError(f"{what} of {length} bytes at {offset} is outside linear memory")
            view = self._whole()
        return view[offset:end]

    def _whole(self) -> memoryview:
        """A view of the whole memory at its known size; made anew when it grows."""
        view = self._view
        if view is None:
            array = (ctypes.c_ubyte * self.size).from_address(self.base)
            view = self._view = memoryview(array).cast("B")
        return view
