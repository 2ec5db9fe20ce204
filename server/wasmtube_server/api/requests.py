"""From the bytes of a request to the payload a guest function takes.

A request that does not parse becomes `Undecodable` (answered
INVALID_ARGUMENT, not grpcio's INTERNAL); a large one with an image keeps its
pixels in place (wire.py). `payload_of` matches the request's input to the
function's calling convention and checks it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from wasmtube.v1 import wasmtube_pb2 as pb

from ..errors import InvalidArgument
from ..sandbox import ExportedFunction, ImageInput, Payload, PixelFormat
from .wire import ZERO_COPY_MIN_BYTES, split_pixels

__all__ = ["Undecodable", "call_deserializer", "lenient", "payload_of"]

# The request's format (pb.PixelFormat) as the ABI numbers it; 0, unset, is RGB8.
_FORMATS = {0: PixelFormat.RGB8, **{f.value: f for f in PixelFormat}}


class Undecodable:
    """Stands in for a request whose bytes did not parse.

    grpcio answers a deserialisation failure with INTERNAL "Exception
    deserializing request!", which blames the server. The usual cause is the
    caller's: a string field (such as `json`) holding bytes that are not UTF-8,
    which protobuf refuses and clients in some languages do not check. So the
    servicer gets this instead, and answers INVALID_ARGUMENT.
    """

    __slots__ = ("error",)

    def __init__(self, error: DecodeError) -> None:
        self.error = error

    def message(self, method: str) -> str:
        return (
            f"the request to /wasmtube.v1.Wasmtube/{method} is not a valid protobuf message "
            f"(string fields such as json must be UTF-8): {self.error}"
        )


def lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """`parse`, returning Undecodable instead of raising."""

    def lenient_parse(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as e:
            return Undecodable(e)

    return lenient_parse


def call_deserializer() -> Callable[[bytes], Any]:
    """Parse a CallRequest leniently; a large one with an image becomes
    WithPixels, its pixels left in place."""
    parse = lenient(pb.CallRequest.FromString)

    def deserialize(data: bytes) -> Any:
        if len(data) >= ZERO_COPY_MIN_BYTES:
            try:
                split = split_pixels(data)
            except DecodeError as e:
                return Undecodable(e)
            if split is not None:
                return split
        return parse(data)

    return deserialize


def payload_of(
    request: pb.CallRequest, function: ExportedFunction, pixels: memoryview | None = None
) -> Payload:
    """The input `request` carries for `function`, checked; `pixels`, if
    given, are the image's data, left out of `request` by the deserializer."""
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
            f"function {function.name!r} takes an image {function.signature}, not JSON: "
            f"send CallRequest.image (with the CLI: --image FILE)"
        )
    raise InvalidArgument(
        f"function {function.name!r} takes JSON {function.signature}, not an image: "
        f"send CallRequest.json (with the CLI: a JSON argument instead of --image)"
    )


def _json(text: str) -> bytes:
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
    return text.encode("utf-8")


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
