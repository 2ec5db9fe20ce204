"""`buf lint` on proto/ with the committed buf.yaml (STANDARD rules).

The buf CLI is pinned as a devDependency of examples/node:
`npm ci --prefix examples/node`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT

BUF = ROOT / "examples" / "node" / "node_modules" / ".bin" / "buf"
PROTO = Path("proto") / "wasmtube" / "v1" / "wasmtube.proto"


def buf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if not BUF.exists():
        pytest.fail(
            f"{BUF} is missing: run `npm ci --prefix examples/node` (it pins @bufbuild/buf)"
        )
    return subprocess.run(
        [str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def lint_failures(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The failures of `buf lint --error-format=json`, one JSON object per line."""
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of buf.yaml and proto/ to break on purpose."""
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    return tmp_path


def test_buf_lint_passes() -> None:
    result = buf("lint", cwd=ROOT)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_buf_lint_fails_on_a_broken_proto(workspace: Path) -> None:
    # An enum whose zero value is not *_UNSPECIFIED: the test above would catch it.
    proto = workspace / PROTO
    text = proto.read_text()
    assert "CALLING_CONVENTION_UNSPECIFIED = 0;" in text
    proto.write_text(
        text.replace("CALLING_CONVENTION_UNSPECIFIED = 0;", "CALLING_CONVENTION_NONE = 0;")
    )

    result = buf("lint", "--error-format=json", cwd=workspace)
    assert result.returncode != 0
    failures = lint_failures(result)
    assert [(f["path"], f["type"]) for f in failures] == [
        (PROTO.as_posix(), "ENUM_ZERO_VALUE_SUFFIX")
    ]
    # And the plain output the real test requires to be empty is not.
    assert buf("lint", cwd=workspace).stdout != ""


def test_the_exemptions_cover_exactly_what_they_name(workspace: Path) -> None:
    # Without buf.yaml's ignore_only, STANDARD flags exactly these: the
    # service name wasmtube.v1.Wasmtube (not WasmtubeService), and CallStream
    # carrying Call's messages (not CallStreamRequest/CallStreamResponse). If
    # this fails because one of them changed, drop its exemption from buf.yaml.
    (workspace / "buf.yaml").write_text("version: v2\nmodules:\n  - path: proto\n")
    result = buf("lint", "--error-format=json", cwd=workspace)
    assert result.returncode != 0
    failures = [(f["path"], f["type"], f["message"]) for f in lint_failures(result)]
    assert sorted((path, kind) for path, kind, _ in failures) == [
        (PROTO.as_posix(), "RPC_REQUEST_RESPONSE_UNIQUE"),
        (PROTO.as_posix(), "RPC_REQUEST_RESPONSE_UNIQUE"),
        (PROTO.as_posix(), "RPC_REQUEST_RESPONSE_UNIQUE"),
        (PROTO.as_posix(), "RPC_REQUEST_RESPONSE_UNIQUE"),
        (PROTO.as_posix(), "RPC_REQUEST_STANDARD_NAME"),
        (PROTO.as_posix(), "RPC_RESPONSE_STANDARD_NAME"),
        (PROTO.as_posix(), "SERVICE_SUFFIX"),
    ]
    # Each is about the two messages Call and CallStream share.
    unique = [message for _, kind, message in failures if kind.startswith("RPC_")]
    assert all("CallRequest" in m or "CallResponse" in m for m in unique), unique


def test_service_suffix_exemption_covers_only_v1(workspace: Path) -> None:
    v2 = workspace / "proto" / "wasmtube" / "v2" / "wasmtube.proto"
    v2.parent.mkdir()
    v2.write_text(
        'syntax = "proto3";\n'
        "package wasmtube.v2;\n"
        "service Wasmtube {\n"
        "  rpc Ping(PingRequest) returns (PingResponse);\n"
        "}\n"
        "message PingRequest {}\n"
        "message PingResponse {}\n"
    )
    result = buf("lint", "--error-format=json", cwd=workspace)
    assert result.returncode != 0
    assert [(f["path"], f["type"]) for f in lint_failures(result)] == [
        ("proto/wasmtube/v2/wasmtube.proto", "SERVICE_SUFFIX")
    ]
