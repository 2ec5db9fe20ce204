"""One call, from a checked request to the guest's output.

A request is resolved once, on the event loop, into an Invocation: the module
version and function it names and the payload matched to the function's
calling convention, with its deadline and call id. The Invocation then runs
on a worker thread, on a leased instance. Every failure is a WasmtubeError
raised on the way.

Names found in the registry need no further checks (only loaded names are
there), so the full checks with their messages run only when a lookup fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from wasmtube.v1 import wasmtube_pb2 as pb

from .errors import (
    CallTimedOut,
    FunctionNotCallable,
    FunctionNotFound,
    GuestOutputError,
    GuestTimedOut,
    InvalidArgument,
)
from .names import check_function_name, check_module_name
from .registry import LoadedModule, ModuleRegistry
from .sandbox import (
    CallLabel,
    ExportedFunction,
    ImageInput,
    Lease,
    Output,
    Payload,
    PixelFormat,
)

__all__ = ["Caller", "Invocation", "SliceExpired"]

# The request's format (pb.PixelFormat) as the ABI numbers it; 0, unset, is RGB8.
_FORMATS = {0: PixelFormat.RGB8, **{f.value: f for f in PixelFormat}}


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call, resolved: what runs, on what input, until when."""

    module: LoadedModule
    function: ExportedFunction
    payload: Payload
    # time.monotonic() by which the guest must be done.
    deadline: float
    # Seconds from the call's start to its deadline, as errors name it.
    budget: float
    label: CallLabel


class SliceExpired(Exception):
    """A call run within a time slice shorter than its deadline outran the
    slice: its instance is gone, and the call may run again from the start."""


class Caller:
    def __init__(self, registry: ModuleRegistry, check_output: bool) -> None:
        self._registry = registry
        self._check_output = check_output

    def module(self, request: pb.CallRequest) -> LoadedModule:
        """The module version a request names, or why not."""
        module = self._registry.serving(request.module)
        if module is not None:
            return module
        check_module_name(request.module)
        return self._registry.get(request.module)

    def function(self, request: pb.CallRequest, module: LoadedModule) -> ExportedFunction:
        """The callable function a request names in `module`, or why not."""
        function = module.compiled.functions.get(request.function)
        if function is not None and function.convention is not None:
            return function
        check_function_name(request.function)
        if function is None:
            callable_names = ", ".join(f.name for f in module.compiled.callable_functions)
            raise FunctionNotFound(
                f"module {module.name!r} exports no function {request.function!r}; "
                f"callable functions: {callable_names or 'none'}"
            )
        raise FunctionNotCallable(
            f"function {function.name!r} of module {module.name!r} has signature "
            f"{function.signature}: {function.why_not_callable}"
        )

    @staticmethod
    def invocation(
        request: pb.CallRequest,
        module: LoadedModule,
        function: ExportedFunction,
        deadline: float,
        call_id: int,
        pixels: memoryview | None = None,
    ) -> Invocation:
        """The call `request` asks for, due by `deadline` (time.monotonic())
        unless the module's settings give it less time. `pixels`, if given,
        are the image's data, left out of `request` by the deserializer."""
        now = time.monotonic()
        deadline = min(deadline, now + module.settings.call_timeout)
        return Invocation(
            module,
            function,
            _payload(request, function, pixels),
            deadline,
            deadline - now,
            CallLabel(module.name, function.name, call_id),
        )

    def run(
        self,
        invocation: Invocation,
        lease: Lease | None = None,
        time_slice: float | None = None,
    ) -> Output:
        """Run `invocation` on `lease`'s instance (a stream's), or on one
        leased from the module's pool for this call alone. Blocks.

        With `time_slice`, the guest gets at most that many seconds; if it
        outruns them before its own deadline, SliceExpired is raised.
        """
        seconds = invocation.deadline - time.monotonic()
        function = invocation.function
        if seconds <= 0:
            raise CallTimedOut(f"the deadline passed before function {function.name!r} could start")
        sliced = False
        if time_slice is not None and time_slice < seconds:
            seconds, sliced = time_slice, True
        module = invocation.module
        arguments = (function, invocation.payload, module.settings.seed_offset, seconds)
        try:
            if lease is None:
                with Lease(module.pool) as own:
                    output = own.run(*arguments, invocation.label, invocation.budget)
            else:
                output = lease.run(*arguments, invocation.label, invocation.budget)
        except GuestTimedOut as e:
            if sliced:
                raise SliceExpired() from e
            raise
        if self._check_output and isinstance(output, str):
            _check_json_output(function, output)
        return output


def _payload(
    request: pb.CallRequest, function: ExportedFunction, pixels: memoryview | None = None
) -> Payload:
    kind = request.WhichOneof("input")
    if kind == "json" and not function.takes_image:
        return _json(request.json)
    if kind == "image" and function.takes_image:
        return _image(request.image, function, pixels)
    if kind is None:
        wanted = "image" if function.takes_image else "json (for example '{}')"
        raise InvalidArgument(f"the request has no input: set CallRequest.{wanted}")
    if function.takes_image:
        raise InvalidArgument(
            f"function {function.name!r} takes an image {function.signature}; "
            f"send CallRequest.image, not json"
        )
    raise InvalidArgument(
        f"function {function.name!r} takes JSON {function.signature}; "
        f"send CallRequest.json, not an image"
    )


# json.loads wraps its C scanner in three Python calls and two regex matches;
# on the path of every JSON call (the input, and the output with
# --check-output) the scanner alone does. It parses one value at the start of
# the text, which is valid JSON if only JSON whitespace follows. Text it
# refuses (leading whitespace too) goes to json.loads, which decides the same
# way and words the error.
# (JSONDecoder.__init__ sets scan_once; typeshed leaves it out.)
_scan_value: Callable[[str, int], tuple[object, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_JSON_WHITESPACE = " \t\n\r"


def _scans_as_json(text: str) -> bool:
    """Whether `text` is one JSON value, by the scanner alone; False leaves
    the last word to json.loads."""
    try:
        end = _scan_value(text, 0)[1]
    except (StopIteration, ValueError, RecursionError):
        return False
    return end == len(text) or not text[end:].strip(_JSON_WHITESPACE)


def _json(text: str) -> bytes:
    if not _scans_as_json(text):
        _check_json_input(text)
    return text.encode("utf-8")


def _check_json_input(text: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgument(
            f"json is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e
    except RecursionError as e:
        raise InvalidArgument(
            "json nests arrays and objects too deeply to be checked: flatten it"
        ) from e


def _image(image: pb.Image, function: ExportedFunction, pixels: memoryview | None) -> ImageInput:
    format = _FORMATS.get(image.format)
    if format is None:
        raise InvalidArgument(
            f"image format {image.format} is unknown: use RGB8, RGBA8 or GRAY8 (1, 2 or 3)"
        )
    if format is not PixelFormat.RGB8 and not function.takes_format:
        raise InvalidArgument(
            f"function {function.name!r} takes RGB8 images only {function.signature}, "
            f"not {format.name}: convert the image, or give the function a fifth i32 "
            f"parameter, the pixel format, to take any format"
        )
    # Each read of a bytes field copies it out of the message: read it once,
    # if the deserializer did not leave the pixels in the request's bytes.
    data = image.data if pixels is None else pixels
    width, height, size = image.width, image.height, len(data)
    if width == 0 or height == 0:
        raise InvalidArgument(f"image is {width}x{height}: width and height must both be > 0")
    expected = width * height * format.channels
    if size != expected:
        raise InvalidArgument(
            f"image data is {size} bytes, but a {width}x{height} {format.name} image is "
            f"width*height*{format.channels} = {expected} bytes"
        )
    return ImageInput(data, width, height, format, function.takes_format)


def _check_json_output(function: ExportedFunction, text: str) -> None:
    if _scans_as_json(text):
        return
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise GuestOutputError(
            f"function {function.name!r} returned {len(text)} characters that are not JSON: "
            f"{e.msg} at character {e.pos}: {text[:80]!r}"
        ) from e
    except RecursionError as e:
        raise GuestOutputError(
            f"function {function.name!r} returned {len(text)} characters of JSON that nest "
            f"too deeply to be checked: {text[:80]!r}"
        ) from e
