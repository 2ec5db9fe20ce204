"""The Rust guest's image filters over gRPC, pixel for pixel against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import RunningDaemon
from wasmtube import Client, InvalidArgument
from wasmtube.v1 import wasmtube_pb2 as pb


def gray_reference(pixels: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma in 8-bit fixed point: (77 R + 150 G + 29 B + 128) >> 8."""
    if pixels.ndim == 2:
        return pixels
    r, g, b = (pixels[:, :, c].astype(np.uint32) for c in range(3))
    return ((77 * r + 150 * g + 29 * b + 128) >> 8).astype(np.uint8)


def blur_reference(pixels: np.ndarray) -> np.ndarray:
    """3x3 box blur per channel, edges clamped, (sum + 4) // 9."""
    height, width = pixels.shape[:2]
    padded = np.pad(pixels.astype(np.uint32), ((1, 1), (1, 1), (0, 0)), mode="edge")
    total = sum(
        padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )
    return ((total + 4) // 9).astype(np.uint8)


@pytest.fixture
def client(guest_daemon: RunningDaemon) -> Client:
    with Client(guest_daemon.address) as client:
        yield client


@pytest.mark.parametrize("shape", [(37, 53, 3), (37, 53, 4), (37, 53), (1, 1, 3), (480, 640, 3)])
def test_grayscale_matches_the_reference_in_every_format(client: Client, shape: tuple) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    gray = client.call_image("wasm_test", "grayscale", pixels)
    assert gray.shape == shape[:2]
    np.testing.assert_array_equal(gray, gray_reference(pixels))


@pytest.mark.parametrize("shape", [(29, 41, 3), (1, 1, 3), (2, 5, 3), (1080, 1920, 3)])
def test_box_blur_matches_the_reference(client: Client, shape: tuple) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    blurred = client.call_image("wasm_test", "box_blur", pixels)
    assert blurred.shape == shape
    np.testing.assert_array_equal(blurred, blur_reference(pixels))


def test_box_blur_takes_rgb8_only(client: Client, guest_daemon: RunningDaemon) -> None:
    with pytest.raises(InvalidArgument, match="takes RGB8 images only"):
        client.call_image("wasm_test", "box_blur", np.zeros((4, 4, 4), np.uint8))
    functions = {
        f.name: list(f.image_formats) for f in guest_daemon.modules()["wasm_test"].functions
    }
    assert functions["box_blur"] == [pb.PIXEL_FORMAT_RGB8]
    assert functions["grayscale"] == [
        pb.PIXEL_FORMAT_RGB8,
        pb.PIXEL_FORMAT_RGBA8,
        pb.PIXEL_FORMAT_GRAY8,
    ]


def test_frames_stream_through_grayscale(client: Client) -> None:
    rng = np.random.default_rng(11)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(10)]
    results = list(client.call_stream("wasm_test", "grayscale", frames))
    for frame, gray in zip(frames, results, strict=True):
        np.testing.assert_array_equal(gray, gray_reference(frame))
