"""`wasmtube push FILE REF`: publish a module as a Wasm OCI artifact.

The module goes up unchanged, as the one `application/wasm` layer of a
standard OCI image manifest (artifact.py), and the manifest's digest comes
back: the `@sha256:...` that pins exactly this push.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from .artifact import build_artifact
from .references import parse_reference

__all__ = ["PushError", "default_credentials_file", "push_module"]

# A core module's header: magic, then version 1. A component has the same
# magic and another version (and layer), which the daemon cannot run.
_MODULE_HEADER = b"\0asm\x01\x00\x00\x00"
_WASM_MAGIC = b"\0asm"


class PushError(Exception):
    """A file that cannot be pushed; the message says why."""


def default_credentials_file() -> Path | None:
    """Docker's own config, as `docker push` and `oras push` read it:
    $DOCKER_CONFIG/config.json, else ~/.docker/config.json, if it exists."""
    directory = os.environ.get("DOCKER_CONFIG")
    path = Path(directory) if directory else Path.home() / ".docker"
    path /= "config.json"
    return path if path.is_file() else None


def push_module(
    path: Path, reference: str, *, insecure: bool = False, credentials_file: Path | None = None
) -> str:
    """Push the module at `path` to `reference` (HOST[:PORT]/REPOSITORY:TAG);
    the manifest digest. Raises ReferenceError, PushError, OSError or
    RegistryError; ImportError without oras-py (`pip install 'wasmtube[oci]'`)."""
    target = parse_reference(reference)
    wasm = path.read_bytes()
    if not wasm.startswith(_WASM_MAGIC):
        raise PushError(f"{path} is not a WebAssembly module: it does not start with \\0asm")
    if not wasm.startswith(_MODULE_HEADER):
        raise PushError(
            f"{path} is a WebAssembly component or another version of the format, not a "
            f"core module (version 1), which is what wasmtube serves"
        )
    # SOURCE_DATE_EPOCH, as reproducible builds set it: the same module
    # pushed from the same commit gets the same manifest digest.
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    created = datetime.fromtimestamp(int(epoch), UTC) if epoch.isdigit() else datetime.now(UTC)
    artifact = build_artifact(wasm, path.name, created.replace(microsecond=0))

    from .distribution import RegistryClient

    with RegistryClient(target, insecure=insecure, credentials_file=credentials_file) as client:
        return client.push(artifact)
