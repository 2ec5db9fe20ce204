"""Modules from OCI registries, the parts that need no registry: references,
the artifact layout, Docker credentials, the back-off, and the --pull
options. (tests/test_oci.py runs them against a real registry.)"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import deploy, json_module
from wasmtube.oci import WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE
from wasmtube_server import Config, Daemon

WASMTUBE = [sys.executable, "-m", "wasmtube.cli"]
VERSIONS = {v: json_module(f'{{"v":{v}}}') for v in range(1, 3)}


def test_a_name_both_pulled_and_a_file_is_refused_at_start(
    modules_dir: Path, tmp_path: Path
) -> None:
    deploy(modules_dir, "m", VERSIONS[1])
    ref = "127.0.0.1:1/wasm/m:v1"
    with pytest.raises(FileExistsError) as refused:
        Daemon(Config(modules_dir=modules_dir, pull=f"m={ref}", listen="127.0.0.1:0"))
    assert ref in str(refused.value) and str(modules_dir / "m.wasm") in str(refused.value)

    done = subprocess.run(
        [*WASMTUBE, "serve", "--modules", str(modules_dir), "--pull", f"m={ref}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WASMTUBE_LISTEN": "127.0.0.1:0", "WASMTUBE_METRICS_LISTEN": "off"},
    )
    assert done.returncode == 1
    assert ref in done.stderr and "m.wasm" in done.stderr


@pytest.mark.parametrize(
    ("pull", "expected"),
    [
        ("m", "is not NAME=REF"),
        ("m=wasm/m:v1", "names no registry host"),
        ("m=registry.example.com/wasm/m", "names no tag or digest"),
        ("m=registry.example.com/Wasm/m:v1", "is not a repository name"),
        ("m=registry.example.com/wasm/m@sha512:" + "0" * 128, "only sha256"),
        ("../m=registry.example.com/wasm/m:v1", "is not a module name"),
        (("m=r.io/a:v1", "m=r.io/b:v1"), "pulled twice"),
    ],
)
def test_bad_pulls_are_refused_naming_them(pull: str | tuple[str, ...], expected: str) -> None:
    with pytest.raises(ValueError, match="pull") as refused:
        Config(pull=pull)
    assert expected in str(refused.value)


def test_pull_options_from_flags_environment_and_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasmtube_server.cli import serve

    ref = "registry.example.com/wasm/m:v1"
    pinned = "registry.example.com/wasm/n@sha256:" + "a" * 64
    context = serve.make_context("serve", ["--pull", f"m={ref}", "--registry-insecure", "r:5000"])
    assert context.params["pull"] == (f"m={ref}",)
    assert context.params["registry_insecure"] == ("r:5000",)

    monkeypatch.setenv("WASMTUBE_PULL", f"m={ref} n={pinned}")
    monkeypatch.setenv("WASMTUBE_REGISTRY_AUTH", "/secrets/.dockerconfigjson")
    context = serve.make_context("serve", [])
    assert context.params["pull"] == (f"m={ref}", f"n={pinned}")
    assert context.params["registry_auth"] == Path("/secrets/.dockerconfigjson")
    monkeypatch.delenv("WASMTUBE_PULL")

    toml = tmp_path / "wasmtube.toml"
    toml.write_text(f'pull = ["m={ref}"]\npull-interval = 5\nregistry-insecure = "r:5000"\n')
    context = serve.make_context("serve", ["--config", str(toml)])
    assert context.params["pull"] == (f"m={ref}",)
    assert context.params["pull_interval"] == 5
    assert context.params["registry_insecure"] == ("r:5000",)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("registry.example.com/wasm/m:v1", ("registry.example.com", "wasm/m", "v1", "")),
        ("localhost:5000/m:1.0-rc_1", ("localhost:5000", "m", "1.0-rc_1", "")),
        ("localhost/a/b/c:t", ("localhost", "a/b/c", "t", "")),
        ("[::1]:5000/wasm/m:v1", ("[::1]:5000", "wasm/m", "v1", "")),
        ("r.io/my.team/m@sha256:" + "a" * 64, ("r.io", "my.team/m", "", "sha256:" + "a" * 64)),
        ("r.io/m:v1@sha256:" + "b" * 64, ("r.io", "m", "v1", "sha256:" + "b" * 64)),
    ],
)
def test_references_parse(text: str, parts: tuple[str, str, str, str]) -> None:
    from wasmtube.oci import parse_reference

    reference = parse_reference(text)
    assert (reference.registry, reference.repository, reference.tag, reference.digest) == parts
    assert str(reference) == text
    assert reference.pinned == bool(parts[3])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ubuntu:22.04", "names no registry host"),
        ("docker.io/library/ubuntu", "names no tag or digest"),
        ("r.io/m:", "is not a tag"),
        ("r.io/m:.x", "is not a tag"),
        ("r.io/M:v1", "is not a repository name"),
        ("r.io//m:v1", "is not a repository name"),
        ("r.io/m@sha256:abc", "64 lower-case hex"),
        ("r.io/m@md5:" + "0" * 32, "only sha256"),
        ("-r.io/m:v1", "is not a registry host"),
    ],
)
def test_bad_references_say_what_is_wrong(text: str, expected: str) -> None:
    from wasmtube.oci import ReferenceError, parse_reference

    with pytest.raises(ReferenceError, match=expected):
        parse_reference(text)


def _manifest(**changes: Any) -> bytes:
    layer = {"mediaType": WASM_LAYER_MEDIA_TYPE, "digest": "sha256:" + "1" * 64, "size": 8}
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": WASM_CONFIG_MEDIA_TYPE, "digest": "sha256:" + "2" * 64, "size": 2},
        "layers": [layer],
    }
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (b"<html>", "not JSON"),
        (_manifest(mediaType="application/vnd.oci.image.index.v1+json"), "OCI image index"),
        (
            _manifest(mediaType="application/vnd.docker.distribution.manifest.v2+json"),
            "Docker container image",
        ),
        (_manifest(schemaVersion=1), "schema version"),
        (_manifest(layers=[]), "no layers"),
        (
            _manifest(layers=[{"mediaType": "application/wasm", "digest": "sha512:00", "size": 1}]),
            "only sha256",
        ),
        (
            _manifest(layers=[{"mediaType": "application/wasm", "digest": "sha256:" + "1" * 64}]),
            "no valid size",
        ),
        (
            _manifest(
                config={"mediaType": "text/plain", "digest": "sha256:" + "2" * 64, "size": 0}
            ),
            "config has media type 'text/plain'",
        ),
    ],
)
def test_manifests_that_are_not_wasm_modules_are_refused(manifest: bytes, expected: str) -> None:
    from wasmtube.oci import ArtifactError, wasm_layer

    with pytest.raises(ArtifactError, match=expected):
        wasm_layer(manifest)


def test_an_artifact_round_trips_and_its_digest_is_of_its_bytes() -> None:
    from datetime import UTC, datetime

    from wasmtube.oci import build_artifact, wasm_layer

    artifact = build_artifact(VERSIONS[1], "m.wasm", datetime(2026, 1, 2, tzinfo=UTC))
    layer = wasm_layer(artifact.manifest)
    assert layer == artifact.layer and layer.size == len(VERSIONS[1])
    assert artifact.digest == f"sha256:{hashlib.sha256(artifact.manifest).hexdigest()}"
    config = json.loads(artifact.config)
    assert config["created"] == "2026-01-02T00:00:00Z" and config["layerDigests"] == [layer.digest]
    # The same module at the same time: the same digest (reproducible pushes).
    again = build_artifact(VERSIONS[1], "m.wasm", datetime(2026, 1, 2, tzinfo=UTC))
    assert again.digest == artifact.digest


def test_docker_config_credentials(tmp_path: Path) -> None:
    import base64

    from wasmtube.oci import CredentialsError, credentials_for

    path = tmp_path / "config.json"
    assert credentials_for(path, "r.io") is None  # no file: no credentials
    b64 = base64.b64encode(b"alice:pa:ss").decode()
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": b64},
                    "http://r.io:5000/v2/": {"username": "bob", "password": "pw", "auth": "x"},
                    "ghcr.io": {"auth": b64},
                    "helper.io": {},
                },
                "credsStore": "desktop",
            }
        )
    )
    docker_hub = credentials_for(path, "docker.io")
    assert docker_hub is not None and (docker_hub.username, docker_hub.password) == (
        "alice",
        "pa:ss",
    )
    assert "pa:ss" not in repr(docker_hub)
    assert credentials_for(path, "registry-1.docker.io") == docker_hub
    bob = credentials_for(path, "R.IO:5000")
    assert bob is not None and (bob.username, bob.password) == ("bob", "pw")
    assert credentials_for(path, "r.io") is None and credentials_for(path, "helper.io") is None
    path.write_text(json.dumps({"auths": {"r.io": {"auth": "not base64!"}}}))
    with pytest.raises(CredentialsError, match="not base64 of user:password"):
        credentials_for(path, "r.io")
    path.write_text("{")
    with pytest.raises(CredentialsError, match=r"not a Docker config\.json"):
        credentials_for(path, "r.io")


def test_retries_back_off_doubling_to_the_cap_with_jitter() -> None:
    import random

    from wasmtube_server.modules.oci import Backoff

    backoff = Backoff(initial=1.0, maximum=20.0)
    rng = random.Random(7)
    delays = [backoff.failed(rng) for _ in range(8)]
    ceilings = [1, 2, 4, 8, 16, 20, 20, 20]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.failures == 8
    backoff.succeeded()
    assert backoff.failures == 0 and backoff.failed(rng) <= 1.0
    # A thousand failures in a row stay at the cap (no overflow).
    for _ in range(1000):
        assert backoff.failed(rng) <= 20.0
