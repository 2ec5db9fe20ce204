"""What both calling conventions share: the input, running a guest function,
and checking what it returned."""

from __future__ import annotations

import json

import wasmtime

from ..errors import GuestOutputError
from .instance import GuestInstance
from .traps import trap_error

__all__ = ["ImageInput", "decode_output", "invoke"]


class ImageInput:
    """RGB8 pixels with their sizes, already checked to agree."""

    __slots__ = ("data", "height", "width")

    def __init__(self, data: bytes, width: int, height: int) -> None:
        self.data = data
        self.width = width
        self.height = height


Payload = bytes | ImageInput


def invoke(instance: GuestInstance, name: str, *args: int, seconds: float) -> object:
    """Call export `name`, turning a trap into the GuestTrap a caller should see."""
    try:
        return instance.func(name)(*args)
    except wasmtime.Trap as trap:
        memory_size = instance.memory.data_len(instance.store)
        max_memory = instance.runtime.limits.max_memory
        raise trap_error(trap, name, seconds, memory_size, max_memory) from trap


def decode_output(function: str, raw: bytes) -> str:
    """The guest's output as text, if it is UTF-8 JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GuestOutputError(
            f"function {function!r} returned {len(raw)} bytes that are not UTF-8 "
            f"(first bad byte at {e.start})"
        ) from e
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise GuestOutputError(
            f"function {function!r} returned {len(raw)} bytes that are not JSON: {e.msg} "
            f"at byte {e.pos}: {text[:80]!r}"
        ) from e
    return text
