"""What both calling conventions share: the input, running a guest function,
and reading what it returned."""

from __future__ import annotations

import wasmtime

from ..errors import GuestError, GuestOutputError
from .instance import GuestInstance
from .traps import trap_error

__all__ = ["ImageInput", "Payload", "invoke", "read_output", "unpack"]


class ImageInput:
    """RGB8 pixels with their sizes, already checked to agree."""

    __slots__ = ("data", "height", "width")

    def __init__(self, data: bytes, width: int, height: int) -> None:
        self.data = data
        self.width = width
        self.height = height


Payload = bytes | ImageInput


def unpack(payload: Payload) -> tuple[bytes, tuple[int, ...]]:
    """The bytes to write into the guest, and the arguments after (ptr, len):
    (width, height) for an image, none for JSON."""
    if isinstance(payload, ImageInput):
        return payload.data, (payload.width, payload.height)
    return payload, ()


def invoke(instance: GuestInstance, name: str, *args: int, seconds: float) -> int:
    """Call export `name`, turning a trap into the GuestTrap a caller should see,
    and a call of wasmtube.fail into the GuestError it reported."""
    try:
        result = instance.func(name)(*args)
    except wasmtime.Trap as trap:
        if instance.reported is not None:
            raise _reported_error(instance, usable=False) from trap
        memory_size = instance.memory.current_size()
        max_memory = instance.runtime.limits.max_memory
        raise trap_error(trap, name, seconds, memory_size, max_memory) from trap
    if instance.reported is not None:
        raise _reported_error(instance, usable=True)
    return result


def _reported_error(instance: GuestInstance, usable: bool) -> GuestError:
    reported, instance.reported = instance.reported, None
    assert reported is not None
    return GuestError(reported.code, reported.message, instance_usable=usable)


def read_output(instance: GuestInstance, function: str, offset: int, length: int) -> str:
    """The guest's output at [offset, offset + length) as text, if it is UTF-8.

    The range must have been checked with `memory.fits`. Whether the text is
    JSON is the daemon's business (--check-output), not the sandbox's.
    """
    try:
        return instance.memory.read_text(offset, length)
    except UnicodeDecodeError as e:
        raise GuestOutputError(
            f"function {function!r} returned {length} bytes that are not UTF-8 "
            f"(first bad byte at {e.start})"
        ) from e
