"""One call, from a checked request to the guest's output.

The request walks one way: module version chosen, function and input matched
to its calling convention, a slot and an instance taken, the guest run, its
output checked. Every failure is a WasmtubeError raised on the way.

This is the path every call takes, so it is written for speed: names found
in the registry need no further checks (only loaded names are there), and
the full checks with their messages run only when a lookup fails.
"""

from __future__ import annotations

import json
import time

from wasmtube.v1 import wasmtube_pb2 as pb

from .errors import (
    CallTimedOut,
    FunctionNotCallable,
    FunctionNotFound,
    GuestError,
    GuestOutputError,
    InvalidArgument,
)
from .names import check_function_name, check_module_name
from .registry import LoadedModule, ModuleRegistry
from .sandbox import CallLabel, ExportedFunction, ImageInput, Payload, call_function

__all__ = ["Caller"]

RGB8_CHANNELS = 3


class Caller:
    def __init__(self, registry: ModuleRegistry, seed_offset: int, check_output: bool) -> None:
        self._registry = registry
        self._seed_offset = seed_offset
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

    def call(
        self,
        request: pb.CallRequest,
        module: LoadedModule,
        function: ExportedFunction,
        deadline: float,
        call_id: int,
    ) -> str:
        """Run the call and return the guest's output.

        `deadline` is the time.monotonic() by which it must end; `call_id`
        labels the lines the guest logs.
        """
        payload = _payload(request, function)
        limiter = module.limiter
        limiter.enter(deadline)
        try:
            pool = module.pool
            # An instance is given back only after a call that raised nothing:
            # a trap or an interrupt can leave its memory in any state.
            instance = pool.take()
            instance.call = CallLabel(module.name, function.name, call_id)
            seconds = deadline - time.monotonic()
            if seconds <= 0:
                raise CallTimedOut(
                    f"the deadline passed before function {function.name!r} could start"
                )
            try:
                output = call_function(instance, function, payload, self._seed_offset, seconds)
            except GuestError as e:
                # Failing on purpose is a normal return: the instance is fine.
                if e.instance_usable:
                    pool.give(instance)
                raise
            pool.give(instance)
        finally:
            limiter.leave()
        if self._check_output:
            _check_json_output(function, output)
        return output


def _payload(request: pb.CallRequest, function: ExportedFunction) -> Payload:
    kind = request.WhichOneof("input")
    if kind == "json" and not function.takes_image:
        return _json(request.json)
    if kind == "image" and function.takes_image:
        return _image(request.image)
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


def _json(text: str) -> bytes:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgument(
            f"json is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e
    return text.encode("utf-8")


def _image(image: pb.Image) -> ImageInput:
    # Each read of a bytes field copies it out of the message: read it once.
    data = image.data
    width, height, size = image.width, image.height, len(data)
    if width == 0 or height == 0:
        raise InvalidArgument(f"image is {width}x{height}: width and height must both be > 0")
    expected = width * height * RGB8_CHANNELS
    if size != expected:
        raise InvalidArgument(
            f"image data is {size} bytes, but a {width}x{height} RGB8 image is "
            f"width*height*3 = {expected} bytes"
        )
    return ImageInput(data, width, height)


def _check_json_output(function: ExportedFunction, text: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise GuestOutputError(
            f"function {function.name!r} returned {len(text)} characters that are not JSON: "
            f"{e.msg} at character {e.pos}: {text[:80]!r}"
        ) from e
