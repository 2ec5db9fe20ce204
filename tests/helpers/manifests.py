"""Reading deploy/'s Kubernetes manifests: a small offline renderer of the few
kustomize features the kustomizations use, and accessors for what is in a
pod. A kustomization using any other feature fails here rather than being
rendered wrongly; where kubectl is installed, tests/test_manifests.py checks
the renderer against `kubectl kustomize`."""

from __future__ import annotations

import base64
import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "RENDERED_FIELDS",
    "apply_patch",
    "config_map_files",
    "container",
    "default_port",
    "env",
    "find",
    "generate_config_map",
    "inside",
    "json_patch",
    "kustomization",
    "load_yaml",
    "matches",
    "mount_of",
    "pod_spec",
    "port",
    "render",
    "same_object",
    "volume",
]


def load_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization(directory: Path) -> dict[str, Any]:
    (doc,) = load_yaml(directory / "kustomization.yaml")
    return doc


# The kustomize fields the offline renderer understands; a kustomization
# using any other fails here rather than being rendered wrongly.
RENDERED_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "generatorOptions",
    "patches",
}


@functools.cache
def _render(directory: Path) -> str:
    k = kustomization(directory)
    unknown = set(k) - RENDERED_FIELDS
    assert not unknown, f"{directory}: the offline renderer does not do {sorted(unknown)}"
    assert k["kind"] == "Kustomization"
    docs: list[dict[str, Any]] = []
    for entry in k.get("resources", []):
        path = (directory / entry).resolve()
        assert path.exists(), f"{directory}/kustomization.yaml: resource {entry} does not exist"
        docs += json.loads(_render(path)) if path.is_dir() else load_yaml(path)
    if k.get("configMapGenerator"):
        # No hash suffix: an updated ConfigMap must update mounted files in
        # place (hot reload), not roll out new pods under a new name.
        assert k.get("generatorOptions", {}).get("disableNameSuffixHash") is True, directory
    for generator in k.get("configMapGenerator", []):
        docs.append(generate_config_map(directory, generator))
    for patch in k.get("patches", []):
        docs = apply_patch(directory, patch, docs)
    return json.dumps(docs)


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize directory` outputs (a fresh copy)."""
    return json.loads(_render(directory.resolve()))


def inside(directory: Path, entry: str) -> Path:
    """A file a kustomization names, which kustomize only reads below its root."""
    path = (directory / entry).resolve()
    assert path.is_relative_to(directory.resolve()), f"{entry} is outside {directory}"
    assert path.is_file(), f"{directory}/kustomization.yaml: {entry} does not exist"
    return path


def generate_config_map(directory: Path, generator: dict[str, Any]) -> dict[str, Any]:
    assert set(generator) <= {"name", "files", "options"}, generator
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    for entry in generator["files"]:
        key, _, name = entry.rpartition("=")
        path = inside(directory, name)
        content = path.read_bytes()
        try:
            data[key or path.name] = content.decode()
        except UnicodeDecodeError:
            binary[key or path.name] = base64.b64encode(content).decode()
    metadata: dict[str, Any] = {"name": generator["name"]}
    if labels := generator.get("options", {}).get("labels"):
        metadata["labels"] = labels
    config_map: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if data:
        config_map["data"] = data
    if binary:
        config_map["binaryData"] = binary
    return config_map


def apply_patch(
    directory: Path, patch: dict[str, Any], docs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    assert set(patch) <= {"path", "target"}, patch
    (content,) = load_yaml(inside(directory, patch["path"]))
    if isinstance(content, list):  # a JSON patch, on the target
        target = patch["target"]
        matched = [d for d in docs if matches(d, target)]
        assert len(matched) == 1, f"{patch['path']}: target {target} matches {len(matched)}"
        for operation in content:
            json_patch(matched[0], operation)
        return docs
    # A strategic merge patch: only deleting a whole object is done here.
    assert content.pop("$patch", None) == "delete", f"{patch['path']}: unsupported patch"
    kept = [d for d in docs if not same_object(d, content)]
    assert len(kept) == len(docs) - 1, f"{patch['path']} deletes nothing"
    return kept


def matches(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    return (
        doc["kind"] == target["kind"]
        and doc["metadata"]["name"] == target["name"]
        and target.get("group", group) == group
        and target.get("version", version) == version
    )


def same_object(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a["apiVersion"], a["kind"], a["metadata"]["name"]) == (
        b["apiVersion"],
        b["kind"],
        b["metadata"]["name"],
    )


def json_patch(doc: Any, operation: dict[str, Any]) -> None:
    """One RFC 6902 operation: add, remove, replace or test."""
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]
    ]
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    op = operation["op"]
    if isinstance(doc, list):
        index = len(doc) if last == "-" else int(last)
        assert 0 <= index <= len(doc) - (op != "add"), f"{operation['path']} is out of range"
    else:
        index = last
    value = copy.deepcopy(operation.get("value"))
    if op == "test":
        assert doc[index] == value, f"JSON patch test failed at {operation['path']}"
    elif op == "add" and isinstance(doc, list):
        doc.insert(index, value)
    elif op in ("add", "replace"):
        doc[index] = value
    elif op == "remove":
        del doc[index]
    else:
        raise AssertionError(f"unsupported JSON patch operation {op}")


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return find(docs, "Deployment")["spec"]["template"]["spec"]


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
    return found


def env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", [])}


def volume(spec: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [v for v in spec["volumes"] if v["name"] == name]
    return found


def mount_of(c: dict[str, Any], path: str) -> dict[str, Any]:
    found = [m for m in c.get("volumeMounts", []) if m["mountPath"] == path]
    assert len(found) == 1, f"container {c['name']} mounts nothing at {path}"
    return found[0]


def port(address: str) -> int:
    host, _, number = address.rpartition(":")
    assert host and number.isdigit(), f"{address!r} is not host:port"
    return int(number)


def default_port(value: str | tuple[str, ...] | None) -> int:
    """The port of a Config default address (listen is one or a tuple of them)."""
    assert value is not None
    return port(value if isinstance(value, str) else value[0])


def config_map_files(config_map: dict[str, Any]) -> dict[str, bytes]:
    files = {k: v.encode() for k, v in config_map.get("data", {}).items()}
    files.update({k: base64.b64decode(v) for k, v in config_map.get("binaryData", {}).items()})
    return files
