#!/bin/sh
# Keeps the wasmtube module directory in step with an HTTP(S) artifact store.
# Runs as the `module-sync` sidecar (alpine's busybox: sh, wget, sha256sum, cmp, mv).
#
#   MODULES_URL    base URL; module NAME is fetched from $MODULES_URL/NAME.wasm
#   MODULES        modules, separated by spaces: NAME, or NAME=SHA256 to pin the
#                  module to that checksum (64 hex digits). For an unpinned NAME the
#                  store must hold NAME.wasm.sha256 beside it, as `sha256sum
#                  NAME.wasm > NAME.wasm.sha256` writes it
#   MODULES_DIR    the directory wasmtube serves (default /modules)
#   SYNC_INTERVAL  seconds between passes (default 30)
#   READY_FILE     created once every module has been fetched at least once;
#                  the sidecar's startupProbe waits for it, so wasmtube starts
#                  with every module in place (default /tmp/module-sync-ready)
#
# Every change lands by an atomic rename within the directory, so wasmtube
# only ever sees a complete file and reloads it once: fetch to a hidden
# temporary file (hidden files are never modules), then `mv` it over the
# module. An unchanged download is dropped, so a pass that changes nothing
# does not touch the directory. A failed fetch keeps the current file.
# A download is deployed only if its sha256 is the expected one (the pin, else
# the store's NAME.wasm.sha256): a truncated or altered download is dropped
# and the current file stays. The .sha256 file catches a broken transfer; only
# a pin also catches a store that was tampered with (for pinned rollouts from
# a registry, see deploy/overlays/oci).
# A *.wasm file whose name is no longer in MODULES is removed.
set -u

: "${MODULES_URL:?set MODULES_URL}"
: "${MODULES:?set MODULES}"
MODULES_DIR=${MODULES_DIR:-/modules}
SYNC_INTERVAL=${SYNC_INTERVAL:-30}
READY_FILE=${READY_FILE:-/tmp/module-sync-ready}

# The expected sha256 of module $1: its pin $2, else the store's .sha256 file.
expected_sha256() {
    if [ -n "$2" ]; then
        sum=$2
    elif ! sum=$(wget -q -T 20 -O - "$MODULES_URL/$1.wasm.sha256"); then
        echo "module-sync: fetching $1.wasm.sha256 failed; the current file stays" >&2
        return 1
    fi
    # `sha256sum` writes "HEX  NAME": the first word, in lower case.
    sum=$(printf '%s' "${sum%%[[:space:]]*}" | tr 'A-F' 'a-f')
    case "$sum" in
        *[!0-9a-f]*) ;;
        *) [ "${#sum}" -eq 64 ] && echo "$sum" && return 0 ;;
    esac
    echo "module-sync: the checksum given for $1.wasm is not 64 hex digits; the current file stays" >&2
    return 1
}

sync_once() {
    failed=0
    names=
    for entry in $MODULES; do
        name=${entry%%=*}
        pin=
        [ "$name" = "$entry" ] || pin=${entry#*=}
        names="$names $name"
        tmp="$MODULES_DIR/.$name.tmp"
        target="$MODULES_DIR/$name.wasm"
        if ! expected=$(expected_sha256 "$name" "$pin"); then
            failed=1
            continue
        fi
        if ! wget -q -T 20 -O "$tmp" "$MODULES_URL/$name.wasm"; then
            rm -f "$tmp"
            echo "module-sync: fetching $name.wasm failed; the current file stays" >&2
            failed=1
            continue
        fi
        actual=$(sha256sum "$tmp")
        actual=${actual%% *}
        if [ "$actual" != "$expected" ]; then
            rm -f "$tmp"
            echo "module-sync: $name.wasm has sha256 $actual, not $expected: refused; the current file stays" >&2
            failed=1
        elif cmp -s "$tmp" "$target"; then
            rm -f "$tmp"
        elif mv -f "$tmp" "$target"; then
            echo "module-sync: deployed $name.wasm (sha256 $actual)"
        else
            rm -f "$tmp"
            failed=1
        fi
    done
    for file in "$MODULES_DIR"/*.wasm; do
        [ -e "$file" ] || continue
        name=${file##*/}
        name=${name%.wasm}
        case " $names " in
            *" $name "*) ;;
            *) rm -f "$file" && echo "module-sync: removed $name.wasm" ;;
        esac
    done
    return "$failed"
}

# As PID 1 the shell ignores SIGTERM unless it traps it; `wait` (unlike a
# foreground sleep) lets the trap run at once.
trap 'exit 0' TERM INT
while :; do
    if sync_once && [ ! -e "$READY_FILE" ]; then
        touch "$READY_FILE"
        echo "module-sync: every module is in place"
    fi
    sleep "$SYNC_INTERVAL" &
    wait "$!"
done
