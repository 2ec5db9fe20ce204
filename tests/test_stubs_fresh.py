"""The committed stubs are exactly what protoc generates from proto/ today."""

from __future__ import annotations

from pathlib import Path

from grpc_tools import protoc

from conftest import ROOT

GENERATED = ("wasmtube_pb2.py", "wasmtube_pb2.pyi", "wasmtube_pb2_grpc.py")


def test_regenerating_the_stubs_changes_nothing(tmp_path: Path) -> None:
    proto_root = ROOT / "proto"
    args = [
        "protoc",
        f"-I{proto_root}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        str(proto_root / "wasmtube" / "v1" / "wasmtube.proto"),
    ]
    assert protoc.main(args) == 0
    for name in GENERATED:
        fresh = (tmp_path / "wasmtube" / "v1" / name).read_text()
        committed = (ROOT / "client" / "wasmtube" / "v1" / name).read_text()
        assert fresh == committed, f"{name} is stale: run proto/generate.sh"
