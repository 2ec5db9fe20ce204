"""`wasmtube call --image ... --output ...`: image files in, image files out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import run
from helpers.guests import IMAGES
from PIL import Image

from conftest import RunningDaemon, deploy


@pytest.fixture
def images(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    deploy(modules_dir, "images", IMAGES)
    return start_daemon(modules_dir)


@pytest.mark.parametrize(("pixel_format", "mode"), [("rgb8", "RGB"), ("rgba8", "RGBA")])
def test_an_image_result_is_written_to_output(
    images: RunningDaemon, tmp_path: Path, pixel_format: str, mode: str
) -> None:
    photo, out = tmp_path / "in.png", tmp_path / "out.png"
    pixels = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(4, 6, 4)
    Image.fromarray(pixels, "RGBA").save(photo)
    done = run(
        "call", "images", "invert", "--image", str(photo), "--format", pixel_format,
        "--output", str(out), "--target", images.address,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote a 6x4 {pixel_format.upper()} image to {out}"
    with Image.open(out) as written:
        assert written.mode == mode
        expected = 255 - pixels[:, :, : len(mode)]
        np.testing.assert_array_equal(np.asarray(written), expected)


def test_an_image_result_without_output_says_how_to_save_it(images: RunningDaemon) -> None:
    done = run("call", "images", "render", "--target", images.address)
    assert done.returncode == 1
    assert "returned a 2x1 GRAY8 image: give --output PATH to save it" in done.stderr


def test_a_json_result_with_output_is_printed_and_fails(
    images: RunningDaemon, tmp_path: Path
) -> None:
    out = tmp_path / "out.png"
    done = run("call", "images", "json", "--output", str(out), "--target", images.address)
    assert done.returncode == 1
    assert json.loads(done.stdout) == 7
    assert f"json returned JSON, not an image: nothing was written to {out}" in done.stderr
    assert not out.exists()


def test_a_format_the_function_does_not_take_is_refused(
    images: RunningDaemon, tmp_path: Path
) -> None:
    photo = tmp_path / "in.png"
    Image.new("RGB", (2, 2)).save(photo)
    done = run(
        "call", "images", "same_rgb", "--image", str(photo), "--format", "gray8",
        "--output", str(tmp_path / "out.png"), "--target", images.address,
    )  # fmt: skip
    assert done.returncode == 1
    assert "INVALID_ARGUMENT" in done.stderr
    assert "takes RGB8 images only" in done.stderr
