"""`buf lint` on proto/ with the committed buf.yaml (STANDARD rules), and the
file options that tell each language's generator where the code goes.

The buf CLI is pinned as a devDependency of examples/node:
`npm ci --prefix examples/node`.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from conftest import ROOT

BUF = ROOT / "examples" / "node" / "node_modules" / ".bin" / "buf"
PROTO = Path("proto") / "wasmtube" / "v1" / "wasmtube.proto"
# Where the Go stubs are committed (examples/go/gen/wasmtube/v1): buf's
# managed mode makes go_package from this prefix and the proto's directory.
GO_PACKAGE_PREFIX = "github.com/wasmtube/wasmtube/examples/go/gen"

# A protoc plugin that writes, for each file it is asked to generate, that
# file's FileOptions as protoc or buf hand them to plugins (base64 of the
# serialized message): what every language's generator goes by.
OPTIONS_PLUGIN = """
import base64, sys
from google.protobuf.compiler import plugin_pb2
request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
response = plugin_pb2.CodeGeneratorResponse()
for proto in request.proto_file:
    if proto.name in request.file_to_generate:
        options = base64.b64encode(proto.options.SerializeToString()).decode()
        response.file.add(name=proto.name + ".options", content=options)
sys.stdout.buffer.write(response.SerializeToString())
"""


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


def file_options(workspace: Path, *, managed: bool) -> descriptor_pb2.FileOptions:
    """The FileOptions that `buf generate` gives plugins for wasmtube.proto in
    `workspace`, with or without managed mode."""
    (workspace / "options_plugin.py").write_text(OPTIONS_PLUGIN)
    managed_yaml = (
        "managed:\n"
        "  enabled: true\n"
        "  override:\n"
        "    - file_option: go_package_prefix\n"
        f"      value: {GO_PACKAGE_PREFIX}\n"
        if managed
        else ""
    )
    (workspace / "buf.gen.yaml").write_text(
        "version: v2\n"
        f"{managed_yaml}"
        "plugins:\n"
        f"  - local: [{json.dumps(sys.executable)}, options_plugin.py]\n"
        "    out: out\n"
    )
    result = buf("generate", cwd=workspace)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    encoded = (workspace / "out" / "wasmtube" / "v1" / "wasmtube.proto.options").read_text()
    return descriptor_pb2.FileOptions.FromString(base64.b64decode(encoded))


def test_every_language_gets_its_file_options(workspace: Path) -> None:
    # Without go_package, the first `protoc --go_out` a Go user runs fails;
    # the others name each language's package or namespace instead of leaving
    # it to each generator's guess from "wasmtube.v1".
    # (examples/go builds with the Go stubs at go_package: tests/test_go_client.py.)
    options = file_options(workspace, managed=False)
    assert options == descriptor_pb2.FileOptions(
        go_package=f"{GO_PACKAGE_PREFIX}/wasmtube/v1;wasmtubev1",
        java_package="com.wasmtube.v1",
        java_multiple_files=True,
        java_outer_classname="WasmtubeProto",
        csharp_namespace="Wasmtube.V1",
        objc_class_prefix="WXX",
        php_namespace="Wasmtube\\V1",
        php_metadata_namespace="Wasmtube\\V1\\GPBMetadata",
        ruby_package="Wasmtube::V1",
    )


def test_file_options_are_what_buf_managed_mode_sets(workspace: Path) -> None:
    # A user who generates code with buf's managed mode gets the same
    # packages and namespaces as one who runs protoc on the file as it is.
    declared = file_options(workspace, managed=False)
    proto = workspace / PROTO
    stripped, count = re.subn(r"^option [^\n]*\n", "", proto.read_text(), flags=re.MULTILINE)
    assert count == len(declared.ListFields())
    proto.write_text(stripped)
    shutil.rmtree(workspace / "out")
    assert file_options(workspace, managed=True) == declared


def test_a_new_file_in_the_package_must_repeat_the_options(workspace: Path) -> None:
    # STANDARD's PACKAGE_SAME_* rules hold every file of wasmtube.v1 to the
    # same options, so a second file cannot land in another Go package or
    # Java package.
    (workspace / "proto" / "wasmtube" / "v1" / "ping.proto").write_text(
        'syntax = "proto3";\npackage wasmtube.v1;\nmessage PingRequest {}\n'
    )
    result = buf("lint", "--error-format=json", cwd=workspace)
    assert result.returncode != 0
    flagged = {(f["path"], f["type"]) for f in lint_failures(result)}
    rules = {
        "PACKAGE_SAME_CSHARP_NAMESPACE",
        "PACKAGE_SAME_GO_PACKAGE",
        "PACKAGE_SAME_JAVA_MULTIPLE_FILES",
        "PACKAGE_SAME_JAVA_PACKAGE",
        "PACKAGE_SAME_PHP_NAMESPACE",
        "PACKAGE_SAME_RUBY_PACKAGE",
    }
    assert flagged == {
        (path, rule)
        for path in ("proto/wasmtube/v1/ping.proto", PROTO.as_posix())
        for rule in rules
    }
