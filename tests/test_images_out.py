"""Images in every format, and images back: a guest declares its output an
image with wasmtube.output_image, and the caller receives pixels, not JSON."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from helpers.guests import IMAGES

from conftest import RunningDaemon, deploy
from wasmtube import Client, Internal, InvalidArgument
from wasmtube.v1 import wasmtube_pb2 as pb


@pytest.fixture
def images(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    deploy(modules_dir, "images", IMAGES)
    # One instance, so a call sees whatever the previous one left behind.
    return start_daemon(modules_dir, module_concurrency=1, max_idle_instances=1)


def image_call(
    daemon: RunningDaemon, function: str, data: bytes, width: int, height: int, format: int = 0
) -> pb.CallResponse:
    image = pb.Image(data=data, width=width, height=height, format=format)  # type: ignore[arg-type]
    return daemon.stub.Call(pb.CallRequest(module="images", function=function, image=image))


def status(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("format", "channels"),
    [(pb.PIXEL_FORMAT_RGB8, 3), (pb.PIXEL_FORMAT_RGBA8, 4), (pb.PIXEL_FORMAT_GRAY8, 1)],
)
def test_an_image_comes_back_as_pixels_in_its_format(
    images: RunningDaemon, format: int, channels: int
) -> None:
    pixels = bytes(range(256)) * (7 * 5 * channels // 256 + 1)
    pixels = pixels[: 7 * 5 * channels]
    response = image_call(images, "invert", pixels, 7, 5, format)
    assert response.WhichOneof("output") == "image"
    assert response.image.data == bytes(255 - b for b in pixels)
    assert (response.image.width, response.image.height) == (7, 5)
    assert response.image.format == format
    assert response.generation == 1


def test_unset_format_means_rgb8_and_the_guest_is_told_the_format(images: RunningDaemon) -> None:
    assert image_call(images, "format_of", bytes(3), 1, 1).json == "1"
    assert image_call(images, "format_of", bytes(4), 1, 1, pb.PIXEL_FORMAT_RGBA8).json == "2"
    assert image_call(images, "format_of", bytes(1), 1, 1, pb.PIXEL_FORMAT_GRAY8).json == "3"


def test_a_seed_abi_function_returns_an_image(images: RunningDaemon) -> None:
    response = image_call(images, "seed_invert", bytes([0, 100, 255] * 4), 2, 2)
    assert response.image.data == bytes([255, 155, 0] * 4)
    assert response.image.format == pb.PIXEL_FORMAT_RGB8


def test_a_json_function_can_return_an_image(images: RunningDaemon) -> None:
    response = images.call("images", "render")
    assert response.WhichOneof("output") == "image"
    assert response.image.data == b"\x00\xff"
    assert response.image.format == pb.PIXEL_FORMAT_GRAY8


def test_an_rgb8_only_function_refuses_other_formats_and_says_how_to_take_them(
    images: RunningDaemon,
) -> None:
    error = status(lambda: image_call(images, "same_rgb", bytes(4), 1, 1, pb.PIXEL_FORMAT_RGBA8))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "takes RGB8 images only" in error.details()
    assert "not RGBA8" in error.details()
    assert "fifth i32 parameter" in error.details()
    # RGB8 still works, and the module is still there.
    assert image_call(images, "same_rgb", bytes([1, 2, 3]), 1, 1).image.data == bytes([1, 2, 3])


@pytest.mark.parametrize(
    ("format", "size", "message"),
    [
        (pb.PIXEL_FORMAT_RGBA8, 3 * 4 * 3, "a 3x4 RGBA8 image is width*height*4 = 48 bytes"),
        (pb.PIXEL_FORMAT_GRAY8, 3 * 4 * 3, "a 3x4 GRAY8 image is width*height*1 = 12 bytes"),
        (7, 12, "image format 7 is unknown: use RGB8, RGBA8 or GRAY8"),
    ],
)
def test_image_sizes_are_checked_for_their_format(
    images: RunningDaemon, format: int, size: int, message: str
) -> None:
    error = status(lambda: image_call(images, "invert", bytes(size), 3, 4, format))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("short", "declared a 2x2 RGB8 output image, which is 12 bytes, but returned 5 bytes"),
        ("bad_format", "pixel format 9, which is none of 1 (RGB8), 2 (RGBA8) or 3 (GRAY8)"),
        ("empty", "declared a 0x5 output image: width and height must both be > 0"),
    ],
)
def test_a_wrong_image_declaration_is_internal_and_names_the_function(
    images: RunningDaemon, function: str, message: str
) -> None:
    error = status(lambda: images.call("images", function))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert f"function {function!r}" in error.details()
    assert message in error.details()


def test_a_declaration_does_not_outlive_a_failed_call(images: RunningDaemon) -> None:
    error = status(lambda: images.call("images", "declare_then_fail"))
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "no")
    # The same instance (max_idle_instances=1) answers JSON again.
    response = images.call("images", "json")
    assert (response.WhichOneof("output"), response.json) == ("json", "7")


def test_list_modules_names_the_formats_each_image_function_takes(images: RunningDaemon) -> None:
    functions = {f.name: list(f.image_formats) for f in images.modules()["images"].functions}
    every = [pb.PIXEL_FORMAT_RGB8, pb.PIXEL_FORMAT_RGBA8, pb.PIXEL_FORMAT_GRAY8]
    assert functions["invert"] == every
    assert functions["same_rgb"] == [pb.PIXEL_FORMAT_RGB8]
    assert functions["seed_invert"] == [pb.PIXEL_FORMAT_RGB8]
    assert functions["json"] == []


def test_the_client_infers_formats_from_arrays_and_returns_arrays(images: RunningDaemon) -> None:
    rng = np.random.default_rng(7)
    with Client(images.address) as client:
        for shape in [(5, 7, 3), (5, 7, 4), (5, 7)]:
            frame = rng.integers(0, 256, shape, dtype=np.uint8)
            result = client.call_image("images", "invert", frame)
            assert result.dtype == np.uint8
            np.testing.assert_array_equal(result, 255 - frame)


def test_the_client_returns_pillow_images_and_messages_on_request(images: RunningDaemon) -> None:
    from PIL import Image

    picture = Image.new("RGBA", (4, 3), (10, 20, 30, 40))
    with Client(images.address) as client:
        # A Pillow image is converted to the format asked for.
        back = client.call_image("images", "invert", picture, format="rgba8", output="pil")
        assert (back.mode, back.size) == ("RGBA", (4, 3))
        assert back.getpixel((0, 0)) == (245, 235, 225, 215)
        message = client.call_image("images", "invert", picture, format="gray8", output="message")
        assert (message.format, len(message.data)) == (pb.PIXEL_FORMAT_GRAY8, 12)
        # Without a format, Pillow images go as RGB8, which any image function takes.
        assert client.call_image("images", "same_rgb", picture, output="pil").mode == "RGB"
        with pytest.raises(InvalidArgument, match="takes RGB8 images only"):
            client.call_image("images", "same_rgb", np.zeros((2, 2, 4), np.uint8))
        with pytest.raises(Internal, match="returned 5 bytes"):
            client.call("images", "short")
