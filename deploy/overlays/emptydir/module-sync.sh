#!/bin/sh
# Keeps the wasmtube module directory in step with an HTTP(S) artifact store.
# Runs as the `module-sync` sidecar (alpine's busybox: sh, wget, cmp, mv).
#
#   MODULES_URL    base URL; module NAME is fetched from $MODULES_URL/NAME.wasm
#   MODULES        module names, separated by spaces
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
# A *.wasm file whose name is no longer in MODULES is removed.
set -u

: "${MODULES_URL:?set MODULES_URL}"
: "${MODULES:?set MODULES}"
MODULES_DIR=${MODULES_DIR:-/modules}
SYNC_INTERVAL=${SYNC_INTERVAL:-30}
READY_FILE=${READY_FILE:-/tmp/module-sync-ready}

sync_once() {
    failed=0
    for name in $MODULES; do
        tmp="$MODULES_DIR/.$name.tmp"
        target="$MODULES_DIR/$name.wasm"
        if ! wget -q -T 20 -O "$tmp" "$MODULES_URL/$name.wasm"; then
            rm -f "$tmp"
            echo "module-sync: fetching $name.wasm failed; the current file stays" >&2
            failed=1
        elif cmp -s "$tmp" "$target"; then
            rm -f "$tmp"
        elif mv -f "$tmp" "$target"; then
            echo "module-sync: deployed $name.wasm"
        else
            rm -f "$tmp"
            failed=1
        fi
    done
    for file in "$MODULES_DIR"/*.wasm; do
        [ -e "$file" ] || continue
        name=${file##*/}
        name=${name%.wasm}
        case " $MODULES " in
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
