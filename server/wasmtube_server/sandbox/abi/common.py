"""What both calling conventions share: the input, running a guest function,
and reading what it returned."""

from __future__ import annotations

import wasmtime

from ...errors import GuestError, GuestOutputError
from ..call_state import CallState
from ..instance import GuestInstance
from ..pixels import PixelFormat
from ..traps import host_error, timed_out, trap_error

__all__ = [
    "ImageInput",
    "ImageOutput",
    "Output",
    "Payload",
    "invoke",
    "read_output",
    "unpack",
]


class ImageInput:
    """Pixels with their sizes and format, already checked to agree.

    `arguments` are what the function gets after (ptr, len): (width, height),
    plus the format for a function that takes it.
    """

    __slots__ = ("arguments", "data", "format", "height", "width")

    def __init__(
        self,
        data: bytes | memoryview,
        width: int,
        height: int,
        format: PixelFormat,
        takes_format: bool,
    ) -> None:
        self.data = data
        self.width = width
        self.height = height
        self.format = format
        self.arguments = (width, height, int(format)) if takes_format else (width, height)


class ImageOutput:
    """Pixels a guest returned after declaring them with wasmtube.output_image."""

    __slots__ = ("data", "format", "height", "width")

    def __init__(self, data: bytes, width: int, height: int, format: PixelFormat) -> None:
        self.data = data
        self.width = width
        self.height = height
        self.format = format


Payload = bytes | ImageInput
# JSON text, or an image.
Output = str | ImageOutput


def unpack(payload: Payload) -> tuple[bytes | memoryview, tuple[int, ...]]:
    """The bytes to write into the guest, and the arguments after (ptr, len)."""
    if isinstance(payload, ImageInput):
        return payload.data, payload.arguments
    return payload, ()


def invoke(instance: GuestInstance, name: str, *args: int, seconds: float) -> int:
    """Call export `name` and return its result, or raise what stopped it.

    Precedence, most severe first: running out of time (the epoch interrupt,
    or a host function that stopped waiting at the deadline) wins over any
    other way the call ended; then a trap or a host function's error; then a
    call of wasmtube.fail, which is a normal return: only then is the guest's
    status the caller's, and the instance usable. A guest that reported a
    failure and then trapped or ran on past its deadline did not finish: the
    trap is what happened, and its message keeps what the guest had said.
    """
    state = instance.current
    try:
        result = instance.func(name)(*args)
    except wasmtime.Trap as trap:
        reported = _take_reported(state)
        if state.overran:
            raise timed_out(name, seconds, reported) from trap
        raise trap_error(trap, name, seconds, instance.usage(), reported) from trap
    except wasmtime.WasmtimeError as error:  # ExitTrap (WASI proc_exit) included
        reported = _take_reported(state)
        if state.overran:
            raise timed_out(name, seconds, reported) from error
        raise host_error(error, name, reported) from error
    if state.overran:
        raise timed_out(name, seconds, _take_reported(state))
    failure = state.reported
    if failure is not None:
        state.reported = None
        raise GuestError(failure.code, failure.message, instance_usable=True)
    return result


def _take_reported(state: CallState) -> str:
    """What the guest passed to wasmtube.fail during this call, as words for
    a message ("" if nothing), and forget it."""
    reported, state.reported = state.reported, None
    if reported is None:
        return ""
    return f"{reported.code.name}: {reported.message}"


def read_output(instance: GuestInstance, function: str, offset: int, length: int) -> Output:
    """The guest's output at [offset, offset + length): the image it declared,
    or else text, if it is UTF-8.

    The range must have been checked with `memory.fits`. Whether the text is
    JSON is the daemon's business (--check-output), not the sandbox's.
    """
    if instance.current.declared_image is not None:
        return _read_image(instance, function, offset, length)
    try:
        return instance.memory.read_text(offset, length)
    except UnicodeDecodeError as e:
        raise GuestOutputError(
            f"function {function!r} returned {length} bytes that are not UTF-8 "
            f"(first bad byte at {e.start})"
        ) from e


def _read_image(instance: GuestInstance, function: str, offset: int, length: int) -> ImageOutput:
    state = instance.current
    declared, state.declared_image = state.declared_image, None
    assert declared is not None
    width, height, code = declared
    try:
        format = PixelFormat(code)
    except ValueError:
        raise GuestOutputError(
            f"function {function!r} declared an output image with pixel format {code}, "
            f"which is none of 1 (RGB8), 2 (RGBA8) or 3 (GRAY8)"
        ) from None
    if width <= 0 or height <= 0:
        raise GuestOutputError(
            f"function {function!r} declared a {width}x{height} output image: "
            f"width and height must both be > 0"
        )
    expected = width * height * format.channels
    if length != expected:
        raise GuestOutputError(
            f"function {function!r} declared a {width}x{height} {format.name} output image, "
            f"which is {expected} bytes, but returned {length} bytes"
        )
    return ImageOutput(instance.memory.read_bytes(offset, length), width, height, format)
