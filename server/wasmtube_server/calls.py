"""One call, from a checked request to the guest's output.

The request walks one way: names checked, module version chosen, function and
input matched to its calling convention, an instance taken from the pool, the
guest run. Every failure is a WasmtubeError raised on the way.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from wasmtube.v1 import wasmtube_pb2 as pb

from .errors import CallTimedOut, FunctionNotCallable, FunctionNotFound, InvalidArgument
from .names import check_function_name, check_module_name
from .registry import LoadedModule, ModuleRegistry
from .sandbox import CallingConvention, ExportedFunction, ImageInput, Payload, call_function

__all__ = ["CallResult", "Caller"]

RGB8_CHANNELS = 3


@dataclass(frozen=True, slots=True)
class CallResult:
    json: str
    module: LoadedModule


class Caller:
    def __init__(self, registry: ModuleRegistry, seed_offset: int) -> None:
        self._registry = registry
        self._seed_offset = seed_offset

    def module(self, request: pb.CallRequest) -> LoadedModule:
        """The module version a request names, or why not."""
        check_module_name(request.module)
        return self._registry.get(request.module)

    def function(self, request: pb.CallRequest, module: LoadedModule) -> ExportedFunction:
        """The callable function a request names in `module`, or why not."""
        check_function_name(request.function)
        function = module.compiled.functions.get(request.function)
        if function is None:
            callable_names = ", ".join(f.name for f in module.compiled.callable_functions)
            raise FunctionNotFound(
                f"module {module.name!r} exports no function {request.function!r}; "
                f"callable functions: {callable_names or 'none'}"
            )
        if function.convention is None:
            raise FunctionNotCallable(
                f"function {function.name!r} of module {module.name!r} has signature "
                f"{function.signature}: {function.why_not_callable}"
            )
        return function

    def call(
        self,
        request: pb.CallRequest,
        module: LoadedModule,
        function: ExportedFunction,
        deadline: float,
    ) -> CallResult:
        """Run the call; `deadline` is the time.monotonic() by which it must end."""
        convention = function.convention
        assert convention is not None  # function() refuses uncallable functions
        payload = _payload(request, function, convention)
        with module.limiter.slot(deadline), module.pool.acquire() as instance:
            seconds = deadline - time.monotonic()
            if seconds <= 0:
                raise CallTimedOut(
                    f"the deadline passed before function {function.name!r} could start"
                )
            output = call_function(instance, function, payload, self._seed_offset, seconds)
        return CallResult(output, module)


def _payload(
    request: pb.CallRequest, function: ExportedFunction, convention: CallingConvention
) -> Payload:
    kind = request.WhichOneof("input")
    if kind is None:
        wanted = "image" if convention.takes_image else "json (for example '{}')"
        raise InvalidArgument(f"the request has no input: set CallRequest.{wanted}")
    if convention.takes_image and kind != "image":
        raise InvalidArgument(
            f"function {function.name!r} takes an image {function.signature}; "
            f"send CallRequest.image, not json"
        )
    if not convention.takes_image and kind != "json":
        raise InvalidArgument(
            f"function {function.name!r} takes JSON {function.signature}; "
            f"send CallRequest.json, not an image"
        )
    if kind == "image":
        return _image(request.image)
    return _json(request.json)


def _json(text: str) -> bytes:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgument(
            f"json is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e
    return text.encode("utf-8")


def _image(image: pb.Image) -> ImageInput:
    width, height, size = image.width, image.height, len(image.data)
    if width == 0 or height == 0:
        raise InvalidArgument(f"image is {width}x{height}: width and height must both be > 0")
    expected = width * height * RGB8_CHANNELS
    if size != expected:
        raise InvalidArgument(
            f"image data is {size} bytes, but a {width}x{height} RGB8 image is "
            f"width*height*3 = {expected} bytes"
        )
    return ImageInput(image.data, width, height)
