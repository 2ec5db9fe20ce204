#!/usr/bin/env bash
# Build the Go example offline with Debian's Go toolchain and libraries, then
# run it against a daemon:
#
#   examples/go/run.sh [TARGET]     # TARGET defaults to $WASMTUBE_TARGET or 127.0.0.1:50051
#
# Needs (Debian 12): apt-get install golang-go golang-google-grpc-dev \
#   golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
# It regenerates nothing: the stubs in gen/ are committed (generate.sh makes them).
#
# How the build stays offline: Debian installs Go libraries as source under
# /usr/share/gocode/src (google.golang.org/grpc 1.33, google.golang.org/protobuf
# 1.28, github.com/golang/protobuf 1.5, golang.org/x/net, ...), laid out as a
# GOPATH. Module mode would have to resolve the whole requirement graph in those
# modules' go.mod files (grpc's names envoyproxy/go-control-plane,
# cncf/udpa, ...), which Debian does not install, so the build runs in GOPATH
# mode (GO111MODULE=off) with two GOPATH entries: a private one whose
# src/github.com/wasmtube/wasmtube is a link to this checkout, so the example
# and its stubs are found at their import paths (the stubs' is the proto's
# go_package), then Debian's for everything else. Nothing is downloaded
# (GOPROXY=off, and GOFLAGS cleared so no -mod=... from the environment).
# CGO_ENABLED=0: a pure Go binary, so no C compiler is needed either.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
packages="golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev"

command -v go >/dev/null || {
  echo "go is not installed: apt-get install $packages" >&2
  exit 2
}
gocode=/usr/share/gocode/src
for library in google.golang.org/grpc google.golang.org/protobuf github.com/golang/protobuf; do
  [ -d "$gocode/$library" ] || {
    echo "$gocode/$library is missing: apt-get install $packages" >&2
    exit 2
  }
done
# grpc-go 1.33 marshals messages through github.com/golang/protobuf. Debian's
# 1.3 (golang-github-golang-protobuf-1-3-dev, which also satisfies grpc's
# dependency) predates the v2 API that protoc-gen-go 1.28 generates for, and
# panics on the first response; 1.5 is a layer over the v2 API.
grep -q 'google.golang.org/protobuf' "$gocode/github.com/golang/protobuf/proto/proto.go" || {
  echo "$gocode/github.com/golang/protobuf is version 1.3: apt-get install golang-github-golang-protobuf-1-5-dev" >&2
  exit 2
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/gopath/src/github.com/wasmtube"
ln -s "$repo" "$work/gopath/src/github.com/wasmtube/wasmtube"

export GO111MODULE=off GOPROXY=off GOFLAGS= GOTOOLCHAIN=local CGO_ENABLED=0
export GOPATH="$work/gopath:/usr/share/gocode"
# The build cache makes a rebuild take a second instead of fifteen. Go's
# default is under $HOME; without a HOME it is "off", which go build refuses.
if [ -z "${GOCACHE:-}" ]; then
  GOCACHE="$(go env GOCACHE)"
  [ "$GOCACHE" != off ] || GOCACHE="$work/go-build"
fi
export GOCACHE

go build -o "$work/wasmtube-example" github.com/wasmtube/wasmtube/examples/go
"$work/wasmtube-example" "$@"
