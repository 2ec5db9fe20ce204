"""Turn the image types callers have into the RGB8 bytes the API carries.

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

__all__ = ["load_image_file", "to_rgb8"]

# The proto carries width and height as uint32.
_MAX_DIMENSION = 2**32 - 1

_INSTALL_HINT = "install the image extra: pip install 'wasmtube[images]'"


def to_rgb8(
    image: ImageInput, width: int | None = None, height: int | None = None
) -> tuple[bytes, int, int]:
    """Return `(data, width, height)` with `data` RGB8, row-major, unpadded.

    `image` is raw RGB8 bytes (then `width` and `height` are required), an
    HxWx3 uint8 numpy array, or a Pillow image (converted to RGB). For arrays
    and Pillow images the size comes from the image; `width`/`height`, if
    given, must agree with it.
    """
    if isinstance(image, bytes | bytearray | memoryview):
        return _from_buffer(image, width, height)

    # An object can only be an ndarray or a PIL image if that library is
    # already imported, so looking in sys.modules never imports anything.
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(image, numpy.ndarray):
        return _from_array(image, width, height)
    pil_image = sys.modules.get("PIL.Image")
    if pil_image is not None and isinstance(image, pil_image.Image):
        return _from_pil(image, width, height)

    raise TypeError(
        "expected RGB8 bytes, bytearray or memoryview, an HxWx3 uint8 numpy array "
        f"or a Pillow image, got {type(image).__name__}"
    )


def load_image_file(path: str | os.PathLike[str]) -> tuple[bytes, int, int]:
    """Decode an image file with Pillow; return `(rgb8_data, width, height)`."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError(f"decoding image files needs Pillow; {_INSTALL_HINT}") from e
    with Image.open(path) as img:
        return _from_pil(img, None, None)


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


def _from_array(
    array: npt.NDArray[Any], width: int | None, height: int | None
) -> tuple[bytes, int, int]:
    import numpy as np

    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(
            "expected an HxWx3 uint8 numpy array (RGB8), "
            f"got shape {array.shape} with dtype {array.dtype}"
        )
    rows, columns = int(array.shape[0]), int(array.shape[1])
    _check_matches(width, height, columns, rows)
    # tobytes() writes C order whatever the array's layout, so this is the
    # single copy whether or not the array is C-contiguous.
    return array.tobytes(order="C"), columns, rows


def _from_pil(img: PILImage.Image, width: int | None, height: int | None) -> tuple[bytes, int, int]:
    if img.mode != "RGB":
        img = img.convert("RGB")
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
