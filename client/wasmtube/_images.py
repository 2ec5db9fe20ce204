"""Turn the image types callers have into the pixels the API carries, and back.

Formats: RGB8 (HxWx3 arrays, Pillow mode "RGB"), RGBA8 (HxWx4, "RGBA") and
GRAY8 (HxW or HxWx1, "L"). An array's shape says its format; a Pillow image
or a file is converted to the format asked for, RGB8 unless told otherwise,
because most image functions take RGB8 only.

numpy and Pillow are optional (`wasmtube[images]`), so neither is imported
here unless the caller already handed us one of their objects or asked to
decode a file.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image as PILImage

    ImageInput: TypeAlias = bytes | bytearray | memoryview | npt.NDArray[np.uint8] | PILImage.Image

__all__ = ["FORMATS", "from_message", "is_image_object", "load_image_file", "to_image"]

# Format names callers use, their wire numbers, channels and Pillow modes.
FORMATS = {"rgb8": 1, "rgba8": 2, "gray8": 3}
_CHANNELS = {1: 3, 2: 4, 3: 1}
_FORMAT_OF_CHANNELS = {channels: number for number, channels in _CHANNELS.items()}
_PIL_MODES = {1: "RGB", 2: "RGBA", 3: "L"}
_OUTPUTS = ("numpy", "pil", "message")

# The proto carries width and height as uint32.
_MAX_DIMENSION = 2**32 - 1

_INSTALL_HINT = "install the image extra: pip install 'wasmtube[images]'"


def to_image(
    image: ImageInput,
    width: int | None = None,
    height: int | None = None,
    format: str | None = None,
) -> tuple[bytes, int, int, int]:
    """Return `(data, width, height, format number)` for an image of any format.

    `format` ("rgb8", "rgba8" or "gray8") is what raw bytes hold (default
    RGB8), what a Pillow image is converted to (default RGB8), and what an
    array's shape must agree with (default: whatever its shape says).
    """
    number = _format_number(format) if format is not None else None
    if isinstance(image, bytes | bytearray | memoryview):
        data, columns, rows = _from_buffer(image, width, height)
        return data, columns, rows, number or 1
    # An object can only be an ndarray or a PIL image if that library is
    # already imported, so looking in sys.modules never imports anything.
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(image, numpy.ndarray):
        data, columns, rows, shape_number = _from_any_array(image, width, height)
        if number is not None and number != shape_number:
            raise ValueError(
                f"format={format!r} but an array of shape {image.shape} holds "
                f"{_name(shape_number)} pixels"
            )
        return data, columns, rows, shape_number
    pil_image = sys.modules.get("PIL.Image")
    if pil_image is not None and isinstance(image, pil_image.Image):
        data, columns, rows = _from_pil(image, width, height, _PIL_MODES[number or 1])
        return data, columns, rows, number or 1
    raise TypeError(
        "expected raw pixel bytes, bytearray or memoryview, an HxWx3, HxWx4 or HxW uint8 "
        f"numpy array, or a Pillow image, got {type(image).__name__}"
    )


def is_image_object(item: Any) -> bool:
    """Whether `item` is a numpy array or a Pillow image (without importing either)."""
    numpy = sys.modules.get("numpy")
    pil_image = sys.modules.get("PIL.Image")
    return (numpy is not None and isinstance(item, numpy.ndarray)) or (
        pil_image is not None and isinstance(item, pil_image.Image)
    )


def from_message(message: Any, output: str) -> Any:
    """An image the daemon returned (`wasmtube.v1.Image`) as `output` asks:
    "numpy" (an HxWx3, HxWx4 or HxW uint8 array), "pil" (a Pillow image) or
    "message" (the message itself)."""
    if output not in _OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(_OUTPUTS)}, got {output!r}")
    if output == "message":
        return message
    number = message.format or 1
    if output == "pil":
        try:
            from PIL import Image
        except ImportError as e:
            raise ImportError(f"output='pil' needs Pillow; {_INSTALL_HINT}") from e
        size = (message.width, message.height)
        return Image.frombytes(_PIL_MODES[number], size, message.data)
    try:
        import numpy as np
    except ImportError as e:
        raise ImportError(f"output='numpy' needs numpy; {_INSTALL_HINT}") from e
    shape: tuple[int, ...] = (message.height, message.width)
    if _CHANNELS[number] > 1:
        shape = (*shape, _CHANNELS[number])
    return np.frombuffer(message.data, dtype=np.uint8).reshape(shape)


def load_image_file(path: str | os.PathLike[str], format: str = "rgb8") -> tuple[bytes, int, int]:
    """Decode an image file with Pillow to `format`; return `(data, width, height)`."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError(f"decoding image files needs Pillow; {_INSTALL_HINT}") from e
    with Image.open(path) as img:
        return _from_pil(img, None, None, _PIL_MODES[_format_number(format)])


def _format_number(format: str) -> int:
    number = FORMATS.get(format.lower())
    if number is None:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    return number


def _name(number: int) -> str:
    return next(name for name, n in FORMATS.items() if n == number).upper()


def _from_any_array(
    array: npt.NDArray[Any], width: int | None, height: int | None
) -> tuple[bytes, int, int, int]:
    import numpy as np

    channels = array.shape[2] if array.ndim == 3 else 1 if array.ndim == 2 else 0
    number = _FORMAT_OF_CHANNELS.get(channels)
    if number is None or array.dtype != np.uint8:
        raise ValueError(
            "expected an HxWx3 (RGB8), HxWx4 (RGBA8) or HxW (GRAY8) uint8 numpy array, "
            f"got shape {array.shape} with dtype {array.dtype}"
        )
    rows, columns = int(array.shape[0]), int(array.shape[1])
    _check_matches(width, height, columns, rows)
    # tobytes() writes C order whatever the array's layout, so this is the
    # single copy whether or not the array is C-contiguous.
    return array.tobytes(order="C"), columns, rows, number


def _from_buffer(
    data: bytes | bytearray | memoryview, width: int | None, height: int | None
) -> tuple[bytes, int, int]:
    if width is None or height is None:
        raise ValueError("width and height are required when the image is raw RGB8 bytes")
    _check_dimension("width", width)
    _check_dimension("height", height)
    # Whether len(data) == width*height*3 is the server's call: it answers
    # INVALID_ARGUMENT with the sizes, and one check in one place stays right.
    return bytes(data), width, height


def _from_pil(
    img: PILImage.Image, width: int | None, height: int | None, mode: str = "RGB"
) -> tuple[bytes, int, int]:
    if img.mode != mode:
        img = img.convert(mode)
    columns, rows = img.size
    _check_matches(width, height, columns, rows)
    return img.tobytes(), columns, rows


def _check_dimension(name: str, value: int) -> None:
    # bool is an int, but True as a width is a bug, not a size.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= _MAX_DIMENSION:
        raise ValueError(f"{name} must be between 0 and {_MAX_DIMENSION}, got {value}")


def _check_matches(width: int | None, height: int | None, columns: int, rows: int) -> None:
    if width is not None and width != columns:
        raise ValueError(f"width={width} but the image is {columns} pixels wide")
    if height is not None and height != rows:
        raise ValueError(f"height={height} but the image is {rows} pixels high")
