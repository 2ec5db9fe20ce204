#!/usr/bin/env bash
# Regenerate the committed Python stubs from the .proto files.
# tests/test_stubs_fresh.py fails if the committed stubs differ from this output.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -Iproto \
  --python_out=client --pyi_out=client --grpc_python_out=client \
  proto/wasmtube/v1/wasmtube.proto
