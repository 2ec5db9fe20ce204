"""What the sync and async clients share: channels, requests, metadata, results."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from wasmtube._images import from_message, is_image_object, to_image
from wasmtube.errors import ResultDecodeError
from wasmtube.v1 import wasmtube_pb2

if TYPE_CHECKING:
    from wasmtube._images import ImageInput

__all__ = [
    "DEFAULT",
    "DEFAULT_CHANNEL_OPTIONS",
    "DEFAULT_TARGET",
    "MAX_MESSAGE_BYTES",
    "Timeout",
    "auth_metadata",
    "channel_options",
    "decode_result",
    "image_request",
    "json_request",
    "stream_request",
]

DEFAULT_TARGET: Final = "127.0.0.1:50051"

# gRPC's 4 MiB default receive limit is a 1.4-megapixel RGB8 image; raise both
# directions so ordinary photos (and the daemon's 64 MiB default) fit.
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024

DEFAULT_CHANNEL_OPTIONS: Final[tuple[tuple[str, Any], ...]] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)


class _Default(enum.Enum):
    # A sentinel, because None already means something for both arguments that
    # use it: "no deadline" for timeout and JSON null for data.
    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default.DEFAULT

Timeout = float | None | _Default


def channel_options(options: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The default channel options with `options` applied over them, key by key."""
    merged = dict(DEFAULT_CHANNEL_OPTIONS)
    merged.update(options)
    return list(merged.items())


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    """The metadata that carries a daemon's shared token (--auth-token-file)."""
    return (("authorization", f"Bearer {token}"),) if token else None


def resolve_timeout(timeout: Timeout, default: float | None) -> float | None:
    return default if isinstance(timeout, _Default) else timeout


def json_request(module: str, function: str, data: Any) -> wasmtube_pb2.CallRequest:
    """A JSON call; `data` DEFAULT means `{}`, None is JSON null.

    Raises TypeError/ValueError if `data` is not JSON-serialisable (NaN and
    infinities included, as JSON has no spelling for them).
    """
    if data is DEFAULT:
        data = {}
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return wasmtube_pb2.CallRequest(module=module, function=function, json=text)


def image_request(
    module: str,
    function: str,
    image: ImageInput,
    width: int | None,
    height: int | None,
    format: str | None = None,
) -> wasmtube_pb2.CallRequest:
    """An image call; see `wasmtube._images.to_image` for what `image` may be."""
    data, columns, rows, number = to_image(image, width, height, format)
    message = wasmtube_pb2.Image(data=data, width=columns, height=rows)
    if number != 1:
        # RGB8 stays unset, so a daemon that predates formats reads it too.
        message.format = number  # type: ignore[assignment]
    return wasmtube_pb2.CallRequest(module=module, function=function, image=message)


def stream_request(module: str, function: str, item: Any) -> wasmtube_pb2.CallRequest:
    """One message of a CallStream: a numpy array or Pillow image is sent as an
    image, anything else as JSON."""
    if is_image_object(item):
        return image_request(module, function, item, None, None)
    return json_request(module, function, item)


def decode_result(
    response: wasmtube_pb2.CallResponse,
    output: str = "numpy",
) -> Any:
    """A call's result: its JSON decoded, or the image it returned as `output`
    asks ("numpy", "pil" or "message"). Raises `ResultDecodeError` if the
    JSON does not decode."""
    if response.WhichOneof("output") == "image":
        return from_message(response.image, output)
    try:
        return json.loads(response.json)
    except json.JSONDecodeError as e:
        raise ResultDecodeError(
            f"the result of the call is not valid JSON: {e}", json_text=response.json
        ) from e
