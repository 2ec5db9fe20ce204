"""WebAssembly modules in OCI registries: references, the artifact layout, credentials.

`wasmtube push` publishes a module; the daemon's `--pull` serves one. This
package imports nothing beyond the standard library: the registry client,
distribution.py, needs oras-py (`pip install 'wasmtube[oci]'`) and is
imported only by what talks to a registry.
"""

from __future__ import annotations

from .artifact import (
    OCI_MANIFEST_MEDIA_TYPE,
    WASM_CONFIG_MEDIA_TYPE,
    WASM_LAYER_MEDIA_TYPE,
    Artifact,
    ArtifactError,
    Descriptor,
    build_artifact,
    wasm_layer,
)
from .credentials import Credentials, CredentialsError, credentials_for
from .references import Reference, ReferenceError, parse_reference

__all__ = [
    "OCI_MANIFEST_MEDIA_TYPE",
    "WASM_CONFIG_MEDIA_TYPE",
    "WASM_LAYER_MEDIA_TYPE",
    "Artifact",
    "ArtifactError",
    "Credentials",
    "CredentialsError",
    "Descriptor",
    "Reference",
    "ReferenceError",
    "build_artifact",
    "credentials_for",
    "parse_reference",
    "wasm_layer",
]
