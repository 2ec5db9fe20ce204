#!/usr/bin/env bash
# Regenerate the committed Python stubs from the .proto files.
# tests/test_stubs_fresh.py fails if the committed stubs differ from this output.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -Iproto \
  --python_out=client --pyi_out=client --grpc_python_out=client \
  proto/wasmtube/v1/wasmtube.proto

# Server reflection (server/wasmtube_server/api/reflection.py):
# - wasmtube.binpb: wasmtube.proto and its imports as a FileDescriptorSet with
#   source info, so that reflection serves the .proto's comments;
# - the grpc.reflection.v1 stubs, from reflection.proto beside them (kept out
#   of proto/, which is linted as the wasmtube API).
# tests/test_reflection.py fails if either differs from this output.
python -m grpc_tools.protoc -Iproto --include_imports --include_source_info \
  --descriptor_set_out=server/wasmtube_server/api/wasmtube.binpb \
  proto/wasmtube/v1/wasmtube.proto
python -m grpc_tools.protoc -Iserver \
  --python_out=server --pyi_out=server --grpc_python_out=server \
  server/wasmtube_server/api/reflection_v1/reflection.proto
