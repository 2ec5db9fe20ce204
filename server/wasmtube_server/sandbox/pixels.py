"""Pixel formats: how an image's bytes encode its pixels, in both directions.

The numbers are the ABI's (a guest's `format` parameter and its
`wasmtube.output_image` declaration) and match `wasmtube.v1.PixelFormat`.
"""

from __future__ import annotations

import enum

__all__ = ["PixelFormat"]


class PixelFormat(enum.IntEnum):
    RGB8 = 1
    RGBA8 = 2
    GRAY8 = 3

    @property
    def channels(self) -> int:
        """Bytes per pixel."""
        return _CHANNELS[self]


_CHANNELS = {PixelFormat.RGB8: 3, PixelFormat.RGBA8: 4, PixelFormat.GRAY8: 1}
