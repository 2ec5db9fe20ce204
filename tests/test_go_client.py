"""The Go example (examples/go) against a real daemon, and its committed stubs.

Needs Debian's Go toolchain and libraries (examples/go/run.sh builds offline
from them) and, for the stubs, protoc with protoc-gen-go and protoc-gen-go-grpc.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.tools import in_ci, require_tool

from conftest import GUEST_WASM, ROOT, RunningDaemon, sha256

EXAMPLE_DIR = ROOT / "examples" / "go"
RUN_SH = EXAMPLE_DIR / "run.sh"
GENERATE_SH = EXAMPLE_DIR / "generate.sh"
GO_PACKAGES = (
    "golang-go golang-google-grpc-dev golang-google-protobuf-dev "
    "golang-github-golang-protobuf-1-5-dev"
)
GOCODE = Path("/usr/share/gocode/src")
# A cold build of grpc-go takes ~20 s on two cores; later runs hit Go's cache.
BUILD_TIMEOUT = 300


def require_go() -> None:
    """Go and Debian's Go libraries, as run.sh needs them; missing ones fail in
    CI and skip elsewhere, like any tool."""
    require_tool("go", f"apt-get install -y {GO_PACKAGES}")
    missing = [
        library
        for library in ("google.golang.org/grpc", "google.golang.org/protobuf")
        if not (GOCODE / library).is_dir()
    ]
    # grpc-go 1.33 cannot carry protoc-gen-go 1.28's messages through
    # github.com/golang/protobuf 1.3 (golang-github-golang-protobuf-1-3-dev).
    shim = GOCODE / "github.com" / "golang" / "protobuf" / "proto" / "proto.go"
    if not shim.is_file() or "google.golang.org/protobuf" not in shim.read_text():
        missing.append("github.com/golang/protobuf 1.5")
    if missing:
        message = f"{', '.join(missing)} not installed: apt-get install -y {GO_PACKAGES}"
        if in_ci():
            pytest.fail(f"{message} (.ci/run must install it)", pytrace=False)
        pytest.skip(message)


def run_example(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Build and run the example with run.sh, with the WASMTUBE_* variables only as given."""
    require_go()
    base = {k: v for k, v in os.environ.items() if not k.startswith("WASMTUBE_")}
    return subprocess.run(
        [str(RUN_SH), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )


def check_output(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}; stderr:\n{result.stderr}"
    assert result.stderr == ""
    lines: list[dict[str, Any]] = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["rpc"], line.get("module"), line.get("function")) for line in lines] == [
        ("ListModules", None, None),
        ("Call", "wasm_test", "echo"),
        ("Call", "wasm_test", "image_size"),
        ("CallStream", "wasm_test", "grayscale"),
        ("Call", "no_such_module", "echo"),
    ]
    listing, echo, image, streamed, missing = lines
    guest = GUEST_WASM.read_bytes()

    # ListModules: the module, its functions, enums by name, the Timestamp.
    [module] = listing["modules"]
    assert module["name"] == "wasm_test"
    functions = {f["name"]: f for f in module["functions"]}
    assert {"echo", "image_size", "grayscale"} <= set(functions)
    assert functions["echo"]["calling_convention"] == "CALLING_CONVENTION_SEED_JSON"
    assert functions["echo"]["signature"] == "(i32, i32) -> i32"
    assert functions["image_size"]["calling_convention"] == "CALLING_CONVENTION_SEED_IMAGE"
    assert (module["sha256"], module["generation"], module["size_bytes"]) == (
        sha256(guest),
        1,
        len(guest),
    )
    assert module["last_error"] == ""
    loaded_at = datetime.fromisoformat(module["loaded_at"])
    assert abs(datetime.now(UTC) - loaded_at) < timedelta(minutes=5)

    # Call with JSON: the echo round-trips, and says which version served it.
    assert echo["result"] == {"args": "Hello from Go"}
    assert (echo["module_sha256"], echo["generation"]) == (sha256(guest), 1)

    # Call with the 2x3 RGB8 image the client builds.
    assert image["result"] == {"width": 2, "height": 3}
    assert image["module_sha256"] == sha256(guest)

    # Three frames through one stream, one GRAY8 answer each, in order (the
    # client also checks every pixel and exits 1 otherwise).
    assert streamed["outputs"] == [
        {"width": 2, "height": 3, "format": "PIXEL_FORMAT_GRAY8", "bytes": 6, "first": value}
        for value in (0, 100, 255)
    ]

    # A missing module: NOT_FOUND, printed, and the program goes on to exit 0.
    assert "result" not in missing
    assert missing["error"]["code"] == "NOT_FOUND"
    assert "no_such_module" in missing["error"]["details"]


@pytest.mark.timeout(BUILD_TIMEOUT + 30)
def test_go_client_against_daemon(guest_daemon: RunningDaemon) -> None:
    check_output(run_example(guest_daemon.address))


@pytest.mark.timeout(BUILD_TIMEOUT + 30)
def test_go_client_target_from_environment(guest_daemon: RunningDaemon) -> None:
    check_output(run_example(env={"WASMTUBE_TARGET": guest_daemon.address}))


@pytest.fixture
def refused_address() -> Iterator[str]:
    """A loopback port that is bound but not listening, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.timeout(BUILD_TIMEOUT + 30)
def test_go_client_reports_grpc_error_and_exits_nonzero(refused_address: str) -> None:
    result = run_example(refused_address)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"wasmtube call to {refused_address} failed: UNAVAILABLE: " in result.stderr


@pytest.mark.timeout(BUILD_TIMEOUT + 30)
def test_go_client_sets_a_deadline(guest_daemon: RunningDaemon) -> None:
    # A deadline of 0 ms has passed before the first call starts.
    result = run_example(guest_daemon.address, env={"WASMTUBE_DEADLINE_MS": "0"})
    assert result.returncode == 1
    assert result.stdout == ""
    assert "failed: DEADLINE_EXCEEDED: " in result.stderr


def test_committed_go_stubs_are_what_protoc_generates(tmp_path: Path) -> None:
    install = "apt-get install -y protobuf-compiler protoc-gen-go protoc-gen-go-grpc"
    for tool in ("protoc", "protoc-gen-go", "protoc-gen-go-grpc"):
        require_tool(tool, install)
    result = subprocess.run(
        [str(GENERATE_SH), str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(EXAMPLE_DIR / "gen"): p.read_bytes()
        for p in (EXAMPLE_DIR / "gen").rglob("*")
        if p.is_file()
    }
    assert (
        sorted(fresh)
        == sorted(committed)
        == [
            Path("wasmtube/v1/wasmtube.pb.go"),
            Path("wasmtube/v1/wasmtube_grpc.pb.go"),
        ]
    )
    for name, data in fresh.items():
        assert data == committed[name], (
            f"examples/go/gen/{name} is stale: run examples/go/generate.sh"
        )


def test_go_example_is_gofmt_clean() -> None:
    gofmt = require_tool("gofmt", f"apt-get install -y {GO_PACKAGES}")
    result = subprocess.run(
        [gofmt, "-l", "main.go"],
        cwd=EXAMPLE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
