#!/usr/bin/env bash
# Regenerate the committed Go stubs in gen/ from proto/wasmtube/v1/wasmtube.proto,
# with Debian's protoc (protobuf-compiler), protoc-gen-go and protoc-gen-go-grpc:
#
#   examples/go/generate.sh [OUT]      # OUT defaults to examples/go/gen
#
# module= strips the proto's go_package prefix, so the files land in
# OUT/wasmtube/v1/ and protoc fails if go_package stops pointing there.
# The stubs' headers name the protoc and plugin versions: tests/test_go_client.py
# generates them again into a temporary OUT and requires the same bytes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/gen}"
mkdir -p "$out"
cd "$here/../.."
# /usr/bin first: the stubs are those of Debian's protoc and plugins, not of
# whatever else is on PATH.
PATH="/usr/bin:$PATH" protoc -Iproto \
  --go_out="$out" --go_opt=module=github.com/wasmtube/wasmtube/examples/go/gen \
  --go-grpc_out="$out" --go-grpc_opt=module=github.com/wasmtube/wasmtube/examples/go/gen \
  wasmtube/v1/wasmtube.proto
