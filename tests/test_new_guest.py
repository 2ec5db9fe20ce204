"""`wasmtube new`: a generated guest project builds with its own build.sh and
serves its example functions from a real daemon."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from conftest import ROOT, RunningDaemon
from wasmtube.new_guest import KIT_DIR, crate_name
from wasmtube.v1 import wasmtube_pb2 as pb


def wasmtube(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "wasmtube.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def call_image(
    daemon: RunningDaemon, function: str, pixels: np.ndarray, pixel_format: int
) -> pb.CallResponse:
    height, width = pixels.shape[:2]
    image = pb.Image(data=pixels.tobytes(), width=width, height=height, format=pixel_format)
    return daemon.stub.Call(pb.CallRequest(module="demo", function=function, image=image))


@pytest.mark.timeout(600)  # one cargo build of the project: ~35 s on 2 cores
def test_a_new_project_builds_and_serves_its_examples(
    tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    done = wasmtube("new", "demo", "--directory", str(tmp_path))
    assert done.returncode == 0, done.stderr
    project = tmp_path / "demo"
    # It says what it wrote and what to run next: build, then deploy.
    for line in ("Cargo.toml", "src/lib.rs", "build.sh", ".gitignore", "wasmtube-guest/"):
        assert line in done.stdout
    assert f"{project}/build.sh" in done.stdout
    assert f"cp {project}/demo.wasm" in done.stdout
    # The kit is vendored: the project builds with no path back into wasmtube.
    kit_files = sorted(p.relative_to(KIT_DIR) for p in KIT_DIR.rglob("*.rs"))
    assert kit_files == sorted(
        p.relative_to(project / "wasmtube-guest") for p in project.rglob("wasmtube-guest/**/*.rs")
    )
    assert str(KIT_DIR) not in (project / "Cargo.toml").read_text()

    # The guest guide comes with it, for a guest author who has no checkout.
    assert (project / "GUIDE.md").read_text() == (ROOT / "docs" / "guest-guide.md").read_text()
    assert "GUIDE.md" in (project / "README.md").read_text()

    build = subprocess.run(
        ["bash", str(project / "build.sh")], capture_output=True, text=True, timeout=540
    )
    assert build.returncode == 0, build.stdout + build.stderr
    wasm = project / "demo.wasm"
    assert wasm.read_bytes()[:4] == b"\0asm"

    # Its unit tests pass, run as its README says (Debian's toolchain, the
    # offline cargo home build.sh wrote).
    unit_tests = subprocess.run(
        ["cargo", "test", "--offline"],
        cwd=project,
        env={
            **os.environ,
            "PATH": f"/usr/bin:{os.environ['PATH']}",
            "CARGO_HOME": str(project / "target" / "cargo-home"),
        },
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert unit_tests.returncode == 0, unit_tests.stdout + unit_tests.stderr
    assert "test result: ok. 3 passed" in unit_tests.stdout

    modules_dir = tmp_path / "modules"
    modules_dir.mkdir()
    shutil.copy(wasm, modules_dir / "demo.wasm")
    daemon = start_daemon(modules_dir)

    info = daemon.modules()["demo"]
    assert info.last_error == ""
    functions = {f.name: f for f in info.functions}
    assert set(functions) == {"hello", "invert"}
    assert functions["hello"].calling_convention == pb.CALLING_CONVENTION_ALLOC_JSON
    assert functions["invert"].calling_convention == pb.CALLING_CONVENTION_ALLOC_IMAGE
    assert functions["invert"].signature == "(i32, i32, i32, i32, i32) -> i64"
    assert set(functions["invert"].image_formats) == {
        pb.PIXEL_FORMAT_RGB8,
        pb.PIXEL_FORMAT_RGBA8,
        pb.PIXEL_FORMAT_GRAY8,
    }

    # hello: JSON in and out, an error of its own, and the kit's input errors.
    assert json.loads(daemon.call("demo", "hello", '{"name":"Ada"}').json) == {
        "message": "Hello, Ada!"
    }
    for text, message in [
        ('{"name":""}', "name must not be empty"),
        ('{"nam":"Ada"}', "invalid input: missing field `name` at line 1 column 13"),
    ]:
        with pytest.raises(grpc.RpcError) as error:
            daemon.call("demo", "hello", text)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details() == message
    # Failing on purpose is not a trap: the module keeps answering.
    assert daemon.call("demo", "hello", '{"name":"again"}').json == '{"message":"Hello, again!"}'

    # invert: any format in, the same format out, alpha kept.
    rng = np.random.default_rng(5)
    for shape, pixel_format in [
        ((7, 11, 3), pb.PIXEL_FORMAT_RGB8),
        ((7, 11, 4), pb.PIXEL_FORMAT_RGBA8),
        ((7, 11), pb.PIXEL_FORMAT_GRAY8),
        ((480, 640, 3), pb.PIXEL_FORMAT_RGB8),
    ]:
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        response = call_image(daemon, "invert", pixels, pixel_format)
        assert response.WhichOneof("output") == "image"
        image = response.image
        assert (image.width, image.height, image.format) == (shape[1], shape[0], pixel_format)
        expected = 255 - pixels
        if pixel_format == pb.PIXEL_FORMAT_RGBA8:
            expected[:, :, 3] = pixels[:, :, 3]
        assert image.data == expected.tobytes()


def test_new_refuses_names_that_are_not_module_names(tmp_path: Path) -> None:
    for name in ["../up", ".hidden", "a/b", "x..y", "a b", "é", "x" * 129]:
        done = wasmtube("new", name, "--directory", str(tmp_path))
        assert done.returncode == 1, (name, done.stdout)
        assert "is not a module name" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_an_occupied_directory_but_takes_an_empty_one(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    done = wasmtube("new", "taken", cwd=tmp_path)
    assert done.returncode == 1
    assert "already exists and is not empty" in done.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]

    (tmp_path / "empty").mkdir()
    done = wasmtube("new", "empty", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "empty" / "build.sh").stat().st_mode & 0o111
    assert (tmp_path / "empty" / "wasmtube-guest" / "src" / "lib.rs").is_file()


def test_names_cargo_cannot_take_get_a_crate_name_that_it_can(tmp_path: Path) -> None:
    # The module keeps its name (NAME.wasm); only the Cargo package differs.
    assert [crate_name(n) for n in ["demo", "My-Filter", "v1.2", "3d", "serde", "fn"]] == [
        "demo",
        "my-filter",
        "v1_2",
        "guest_3d",
        "guest_serde",
        "guest_fn",
    ]
    done = wasmtube("new", "3d.v2", "--directory", str(tmp_path))
    assert done.returncode == 0, done.stderr
    project = tmp_path / "3d.v2"
    assert 'name = "guest_3d_v2"' in (project / "Cargo.toml").read_text()
    build = (project / "build.sh").read_text()
    assert 'module="3d.v2"' in build and 'lib="guest_3d_v2"' in build
    assert "{{" not in "".join(p.read_text() for p in project.rglob("*") if p.is_file())
