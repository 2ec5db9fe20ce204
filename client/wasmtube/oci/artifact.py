"""A WebAssembly module as an OCI artifact, in the CNCF Wasm OCI artifact layout.

One standard OCI image manifest whose config is a small JSON document of
media type `application/vnd.wasm.config.v0+json` (architecture "wasm", os
"wasip1", the layer's digest) and whose one layer is the module itself,
`application/wasm`, exactly as it is on disk. Any client that speaks the
distribution protocol (`oras pull`, `crane`, a registry's UI) gets the same
bytes back; the layer carries the file name in the standard title
annotation, so `oras pull` writes it under that name.

What a puller accepts is stricter than what the protocol allows: exactly one
layer, of media type `application/wasm`, with a sha256 digest. Anything else
(a container image, an index of platforms, a tarball layer) is refused with
an error that says what was found.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ACCEPTED_CONFIG_MEDIA_TYPES",
    "OCI_INDEX_MEDIA_TYPE",
    "OCI_MANIFEST_MEDIA_TYPE",
    "TITLE_ANNOTATION",
    "WASM_CONFIG_MEDIA_TYPE",
    "WASM_LAYER_MEDIA_TYPE",
    "Artifact",
    "ArtifactError",
    "Descriptor",
    "build_artifact",
    "sha256_digest",
    "wasm_layer",
]

OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
WASM_CONFIG_MEDIA_TYPE = "application/vnd.wasm.config.v0+json"
WASM_LAYER_MEDIA_TYPE = "application/wasm"
TITLE_ANNOTATION = "org.opencontainers.image.title"
# Configs an artifact holding one application/wasm layer may come with: the
# Wasm layout's, OCI's empty one (`oras push` without a config) and the one
# oras-py writes when given none.
ACCEPTED_CONFIG_MEDIA_TYPES = frozenset(
    {
        WASM_CONFIG_MEDIA_TYPE,
        "application/vnd.oci.empty.v1+json",
        "application/vnd.unknown.config.v1+json",
    }
)
# Manifests of container images: what someone pulls by mistake.
_IMAGE_MANIFESTS = {
    "application/vnd.docker.distribution.manifest.v2+json": "a Docker container image",
    "application/vnd.docker.distribution.manifest.list.v2+json": "a Docker image list",
    OCI_INDEX_MEDIA_TYPE: "an OCI image index (one manifest per platform)",
}
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")


class ArtifactError(ValueError):
    """A manifest that is not a Wasm module artifact; the message says why."""


@dataclass(frozen=True, slots=True)
class Descriptor:
    """What a manifest says of one blob: its media type, digest and size."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            value["annotations"] = dict(self.annotations)
        return value

    @property
    def hex(self) -> str:
        """The digest's hex part (the module's SHA-256 for a Wasm layer)."""
        return self.digest.removeprefix("sha256:")


@dataclass(frozen=True, slots=True)
class Artifact:
    """Everything a push uploads: two blobs and the manifest tying them."""

    wasm: bytes
    layer: Descriptor
    config: bytes
    config_descriptor: Descriptor
    manifest: bytes

    @property
    def digest(self) -> str:
        """The manifest's digest: what `@sha256:...` pins."""
        return sha256_digest(self.manifest)


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def build_artifact(wasm: bytes, title: str, created: datetime) -> Artifact:
    """The artifact holding module `wasm`, named `title` (its file name).

    Serialised here, not by the HTTP library, so the digest printed is the
    digest of the very bytes uploaded. `created` is part of the config, so
    pushing the same module at another time gives another manifest digest
    (the module's own digest, the layer's, stays the same).
    """
    layer = Descriptor(
        WASM_LAYER_MEDIA_TYPE, sha256_digest(wasm), len(wasm), {TITLE_ANNOTATION: title}
    )
    config = _compact(
        {
            "created": created.isoformat().replace("+00:00", "Z"),
            "architecture": "wasm",
            "os": "wasip1",
            "layerDigests": [layer.digest],
        }
    )
    config_descriptor = Descriptor(WASM_CONFIG_MEDIA_TYPE, sha256_digest(config), len(config))
    manifest = _compact(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": config_descriptor.to_json(),
            "layers": [layer.to_json()],
        }
    )
    return Artifact(wasm, layer, config, config_descriptor, manifest)


def wasm_layer(manifest: bytes) -> Descriptor:
    """The module's layer in `manifest`; raises ArtifactError unless the
    manifest is a Wasm module artifact (see the module docstring)."""
    try:
        document = json.loads(manifest)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"the manifest is not JSON: {e}") from e
    if not isinstance(document, dict):
        raise ArtifactError("the manifest is not a JSON object")
    media_type = document.get("mediaType", OCI_MANIFEST_MEDIA_TYPE)
    if media_type in _IMAGE_MANIFESTS:
        raise ArtifactError(
            f"the manifest is {_IMAGE_MANIFESTS[media_type]} ({media_type}), not a Wasm "
            f"module: publish modules with `wasmtube push`"
        )
    if media_type != OCI_MANIFEST_MEDIA_TYPE or document.get("schemaVersion") != 2:
        raise ArtifactError(
            f"the manifest has media type {media_type!r} and schema version "
            f"{document.get('schemaVersion')!r}, not an OCI image manifest "
            f"({OCI_MANIFEST_MEDIA_TYPE}, schema version 2)"
        )
    config = _descriptor(document.get("config"), "the config")
    if config.media_type not in ACCEPTED_CONFIG_MEDIA_TYPES:
        image = " (a container image's)" if "image.config" in config.media_type else ""
        raise ArtifactError(
            f"the config has media type {config.media_type!r}{image}: a Wasm module "
            f"artifact's is {WASM_CONFIG_MEDIA_TYPE}"
        )
    layers = document.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ArtifactError("the manifest has no layers: a Wasm module artifact has one")
    descriptors = [_descriptor(layer, f"layer {i}") for i, layer in enumerate(layers)]
    if len(descriptors) > 1:
        types = ", ".join(d.media_type for d in descriptors)
        raise ArtifactError(
            f"the manifest has {len(descriptors)} layers ({types}): a Wasm module artifact "
            f"has one, of media type {WASM_LAYER_MEDIA_TYPE}"
        )
    (layer,) = descriptors
    if layer.media_type != WASM_LAYER_MEDIA_TYPE:
        raise ArtifactError(
            f"layer {layer.digest} has media type {layer.media_type!r}, not "
            f"{WASM_LAYER_MEDIA_TYPE}: push the .wasm file itself with `wasmtube push`"
        )
    return layer


def _descriptor(value: object, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ArtifactError(f"{what} of the manifest is not a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ArtifactError(f"{what} of the manifest has no media type")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise ArtifactError(
            f"{what} of the manifest has digest {digest!r}: only sha256 digests are accepted"
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ArtifactError(f"{what} of the manifest has no valid size: {size!r}")
    annotations = value.get("annotations") or {}
    if not isinstance(annotations, dict):
        annotations = {}
    return Descriptor(
        media_type,
        digest,
        size,
        {str(k): str(v) for k, v in annotations.items()},
    )


def _compact(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=False).encode()
