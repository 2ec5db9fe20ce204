"""Requests that carry an image, parsed without copying their pixels.

Parsing a request with protobuf copies its pixels into the message, and
reading `image.data` copies them again into a bytes object: for a 1080p frame
that is 2 x 6.2 MB before the pixels even reach the guest. So for large
requests the deserializer finds where the pixels lie in the request's own
bytes, lets protobuf parse everything else, and hands the pixels on as a view:
they are copied once, from the request into guest memory.

Only the layout protobuf itself would produce is taken this way: one `image`
field holding one `data` field, and no `json` beside it. Anything else (a
field repeated, which protobuf merges; a malformed length) is left to
protobuf's own parser, which then decides what the request means or why it
is not one.
"""

from __future__ import annotations

from wasmtube.v1 import wasmtube_pb2 as pb

__all__ = ["ZERO_COPY_MIN_BYTES", "WithPixels", "split_pixels"]

# Below this a request is parsed as usual: its copies cost less than the scan.
ZERO_COPY_MIN_BYTES = 256 * 1024

# CallRequest's field numbers: json, image, and the image's data.
_JSON, _IMAGE, _DATA = 3, 4, 1
_LENGTH_DELIMITED = 2


class WithPixels:
    """A request whose image data is left out, and a view of those pixels."""

    __slots__ = ("pixels", "request")

    def __init__(self, request: pb.CallRequest, pixels: memoryview) -> None:
        self.request = request
        self.pixels = pixels


def split_pixels(raw: bytes) -> WithPixels | None:
    """`raw` parsed as a CallRequest with its pixels as a view into `raw`; None
    if the request carries no image or is not laid out the plain way."""
    image = _only_field(raw, 0, len(raw), _IMAGE, forbidden=_JSON)
    if image is None:
        return None
    image_tag, image_start, image_end = image
    data = _only_field(raw, image_start, image_end, _DATA)
    if data is None:
        return None
    data_tag, data_start, data_end = data
    view = memoryview(raw)
    # Everything but the image, and the image but its pixels: small copies.
    request = pb.CallRequest.FromString(view[:image_tag].tobytes() + view[image_end:].tobytes())
    request.image.MergeFromString(
        view[image_start:data_tag].tobytes() + view[data_end:image_end].tobytes()
    )
    request.image.SetInParent()
    return WithPixels(request, view[data_start:data_end])


def _only_field(
    raw: bytes, start: int, end: int, number: int, forbidden: int = 0
) -> tuple[int, int, int] | None:
    """(tag offset, value start, value end) of the one length-delimited field
    `number` in raw[start:end]; None if it is absent, repeated or of another
    wire type, if field `forbidden` is there too, or if the bytes are malformed."""
    found = None
    position = start
    while position < end:
        tag_offset = position
        key, position = _varint(raw, position, end)
        if key < 0:
            return None
        field, wire_type = key >> 3, key & 7
        if field == forbidden:
            return None
        if wire_type == 0:
            _, position = _varint(raw, position, end)
            if position < 0:
                return None
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(raw, position, end)
            if length < 0:
                return None
            if field == number:
                if found is not None:
                    return None
                found = (tag_offset, position, position + length)
            position += length
        else:
            return None  # groups, or no wire type at all
        if field == number and wire_type != _LENGTH_DELIMITED:
            return None
    if position != end:
        return None
    return found


def _varint(raw: bytes, position: int, end: int) -> tuple[int, int]:
    """The varint at `position` and the position after it; (-1, -1) if malformed."""
    value = shift = 0
    while position < end and shift < 64:
        byte = raw[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
    return -1, -1
