"""The Node.js example (examples/node/client.js) against a real daemon.

Needs Node.js and the example's packages: `npm ci --prefix examples/node`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers.tools import require_tool

from conftest import GUEST_WASM, ROOT, RunningDaemon, sha256

EXAMPLE_DIR = ROOT / "examples" / "node"
CLIENT_JS = EXAMPLE_DIR / "client.js"


def node() -> str:
    """The node binary, with the example's packages installed."""
    binary = require_tool("node", "apt-get install -y nodejs npm")
    if not (EXAMPLE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail(
            "examples/node/node_modules is missing: run `npm ci --prefix examples/node`",
        )
    return binary


def run_client(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run client.js as a real process, with the WASMTUBE_* variables only as given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WASMTUBE_")}
    return subprocess.run(
        [node(), str(CLIENT_JS), *args],
        cwd=EXAMPLE_DIR,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def parse_lines(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON object."""
    return [json.loads(line) for line in stdout.splitlines()]


def check_output(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}; stderr:\n{result.stderr}"
    assert result.stderr == ""
    lines = parse_lines(result.stdout)
    assert [(line["rpc"], line.get("module")) for line in lines] == [
        ("ListModules", None),
        ("Call", "wasm_test"),
        ("Call", "wasm_test"),
        ("Call", "wasm_test"),
        ("CallStream", "wasm_test"),
        ("Call", "no_such_module"),
    ]
    listing, echo, image, gray, streamed, missing = lines

    # ListModules: the module, its functions, uint64s as strings, enums by name.
    modules = {m["name"]: m for m in listing["modules"]}
    assert set(modules) == {"wasm_test"}
    module = modules["wasm_test"]
    functions = {f["name"]: f for f in module["functions"]}
    assert {"echo", "image_size", "hello"} <= set(functions)
    assert functions["echo"]["calling_convention"] == "CALLING_CONVENTION_SEED_JSON"
    assert functions["image_size"]["calling_convention"] == "CALLING_CONVENTION_SEED_IMAGE"
    assert functions["echo"]["signature"] == "(i32, i32) -> i32"
    guest = GUEST_WASM.read_bytes()
    assert module["sha256"] == sha256(guest)
    assert module["generation"] == "1"
    assert module["size_bytes"] == str(len(guest))
    assert module["last_error"] == ""
    assert module["last_error_at"] is None
    # google.protobuf.Timestamp decoded and converted: the daemon loaded it just now.
    loaded_at = datetime.fromisoformat(module["loaded_at"])
    assert abs(datetime.now(UTC) - loaded_at) < timedelta(minutes=5)

    # Call with JSON: the echo round-trips, and says which version served it.
    assert echo["function"] == "echo"
    assert echo["result"] == {"args": "Hello from Node"}
    assert echo["module_sha256"] == sha256(guest)
    assert echo["generation"] == "1"

    # Call with a 4x3 RGB8 image.
    assert image["function"] == "image_size"
    assert image["result"] == {"width": 4, "height": 3}
    # An RGBA8 image in, a GRAY8 image back: (77+150+29)*200 + 128 >> 8 = 200.
    assert gray["image"] == {
        "width": 4,
        "height": 3,
        "format": "PIXEL_FORMAT_GRAY8",
        "bytes": 12,
        "first": [200, 200, 200, 200],
    }
    # Three frames through one stream, answered in order.
    assert [o["image"]["first"][0] for o in streamed["outputs"]] == [0, 100, 255]
    assert {o["image"]["format"] for o in streamed["outputs"]} == {"PIXEL_FORMAT_GRAY8"}

    # A missing module: NOT_FOUND, printed, and the script goes on to exit 0.
    assert "result" not in missing
    assert missing["error"]["code"] == "NOT_FOUND"
    assert "no_such_module" in missing["error"]["details"]


def test_node_client_against_daemon(guest_daemon: RunningDaemon) -> None:
    check_output(run_client(guest_daemon.address))


def test_node_client_target_from_environment(guest_daemon: RunningDaemon) -> None:
    check_output(run_client(env={"WASMTUBE_TARGET": guest_daemon.address}))


@pytest.fixture
def refused_address() -> Iterator[str]:
    """A loopback port that is bound but not listening, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_node_client_reports_grpc_error_and_exits_nonzero(refused_address: str) -> None:
    result = run_client(refused_address)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"wasmtube call to {refused_address} failed: UNAVAILABLE: " in result.stderr


def test_node_client_sets_a_deadline(guest_daemon: RunningDaemon) -> None:
    # A deadline of 0 ms has passed before the first call starts.
    result = run_client(guest_daemon.address, env={"WASMTUBE_DEADLINE_MS": "0"})
    assert result.returncode == 1
    assert result.stdout == ""
    assert "failed: DEADLINE_EXCEEDED: " in result.stderr


def test_example_pins_exact_versions() -> None:
    package = json.loads((EXAMPLE_DIR / "package.json").read_text())
    lock = json.loads((EXAMPLE_DIR / "package-lock.json").read_text())
    assert package["private"] is True
    pinned = {**package["dependencies"], **package["devDependencies"]}
    assert set(pinned) == {"@grpc/grpc-js", "@grpc/proto-loader", "@bufbuild/buf"}
    for name, version in pinned.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned exactly: {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert lock["packages"][""]["dependencies"] == package["dependencies"]
    assert lock["packages"][""]["devDependencies"] == package["devDependencies"]
    assert (EXAMPLE_DIR / ".gitignore").read_text().splitlines() == ["node_modules/"]
