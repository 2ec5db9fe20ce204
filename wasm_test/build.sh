#!/usr/bin/env bash
# Build the wasmtube test guest offline with Debian's Rust toolchain.
#
#   wasm_test/build.sh          build and copy to server/wasmtube_server/examples/wasm_test.wasm
#   wasm_test/build.sh --check  build, then fail if the committed .wasm differs byte-for-byte
#
# Needs (Debian): rustc cargo libstd-rust-dev-wasm32 librust-serde-dev
#   librust-serde-derive-dev librust-serde-json-dev librust-image-dev
set -euo pipefail

usage() { echo "usage: $0 [--check]" >&2; exit 2; }
check=0
case "${1-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) usage ;;
  *) usage ;;
esac
[ $# -le 1 ] || usage

crate_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo_dir="$(cd "$crate_dir/.." && pwd -P)"
committed="$repo_dir/server/wasmtube_server/examples/wasm_test.wasm"
target=wasm32-unknown-unknown
registry=/usr/share/cargo/registry

# Use Debian's toolchain, not the rustup proxies that come first on PATH
# (they have no wasm32 target). RUSTC pins the compiler cargo runs.
export PATH=/usr/bin:/bin
export RUSTC=/usr/bin/rustc
cargo=/usr/bin/cargo

missing() {
  echo "error: $1" >&2
  echo "install: apt-get install -y rustc cargo libstd-rust-dev-wasm32 librust-serde-dev" \
       "librust-serde-derive-dev librust-serde-json-dev librust-image-dev" >&2
  exit 1
}
[ -x "$cargo" ] || missing "$cargo not found"
[ -x "$RUSTC" ] || missing "$RUSTC not found"
sysroot="$("$RUSTC" --print sysroot)"
compgen -G "$sysroot/lib/rustlib/$target/lib/libstd-*.rlib" >/dev/null \
  || missing "no wasm32 standard library under $sysroot/lib/rustlib/$target"
for crate in serde serde_derive serde_json image; do
  compgen -G "$registry/$crate-[0-9]*" >/dev/null || missing "crate $crate not in $registry"
done
# The guest kit, through the symlink wasm_test/wasmtube-guest (see Cargo.toml).
[ -f "$crate_dir/wasmtube-guest/Cargo.toml" ] \
  || { echo "error: the guest kit is missing: $crate_dir/wasmtube-guest" >&2; exit 1; }

# Everything goes under target/ (git-ignored): the build output and a private
# cargo home whose config swaps crates.io for Debian's crate directory, so the
# build never touches the network or the user's ~/.cargo.
export CARGO_TARGET_DIR="$crate_dir/target"
export CARGO_HOME="$CARGO_TARGET_DIR/cargo-home"
mkdir -p "$CARGO_HOME"
cat > "$CARGO_HOME/config.toml" <<TOML
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "$registry"

[net]
offline = true
TOML

# Reproducibility: map every absolute path that could reach the binary (panic
# locations in wasm_test, in the kit, which cargo sees under wasm_test/, or in
# the registry's crates) to a fixed name, so clones in different directories
# and with different cargo homes produce identical bytes. CARGO_ENCODED_RUSTFLAGS is used (0x1f-separated) so paths
# with spaces survive. Unset anything from the caller's environment that
# would change code generation.
unset RUSTFLAGS RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_RUSTFLAGS \
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS CARGO_PROFILE_RELEASE_DEBUG 2>/dev/null || true
sep=$'\x1f'
export CARGO_ENCODED_RUSTFLAGS="--remap-path-prefix=$crate_dir=/wasm_test${sep}--remap-path-prefix=$CARGO_HOME=/cargo-home${sep}--remap-path-prefix=$registry=/registry"
export SOURCE_DATE_EPOCH=0

cd "$crate_dir"
start=$(date +%s)
# --locked: Cargo.lock is committed and pins the versions Debian ships;
# fail rather than silently re-resolve.
"$cargo" build --release --locked --offline --target "$target"
built="$CARGO_TARGET_DIR/$target/release/wasm_test.wasm"
size=$(stat -c %s "$built")
echo "built $built ($size bytes, sha256 $(sha256sum "$built" | cut -d' ' -f1)) in $(( $(date +%s) - start ))s"

if [ "$check" = 1 ]; then
  if [ ! -f "$committed" ]; then
    echo "CHECK FAILED: $committed does not exist; run wasm_test/build.sh and commit it" >&2
    exit 1
  fi
  if ! cmp -s "$built" "$committed"; then
    echo "CHECK FAILED: $committed differs from a fresh build of wasm_test/" >&2
    echo "  committed: $(stat -c %s "$committed") bytes, sha256 $(sha256sum "$committed" | cut -d' ' -f1)" >&2
    echo "  fresh:     $size bytes, sha256 $(sha256sum "$built" | cut -d' ' -f1)" >&2
    echo "  run wasm_test/build.sh and commit server/wasmtube_server/examples/wasm_test.wasm" >&2
    exit 1
  fi
  echo "OK: $committed matches a fresh build"
else
  mkdir -p "$(dirname "$committed")"
  # install -m 0644: rustc marks the .wasm executable; git should not.
  install -m 0644 "$built" "$committed"
  echo "copied to $committed"
fi
