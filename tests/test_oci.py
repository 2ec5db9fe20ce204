"""Modules from OCI registries, against a real registry on loopback.

The registry is Debian's docker-registry (the CNCF distribution registry,
tests/helpers/registry.py); modules are pushed both with `wasmtube push` and
with a third-party client, the oras Python SDK, and read back with it.
Bearer tokens, the flow of public registries, come from a small token
server the registry is configured to trust (tests/helpers/token_server.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import oras.client
import pytest
from helpers.registry import LocalRegistry, docker_config, registries
from helpers.token_server import token_server

from conftest import RunningDaemon, deploy, free_port, json_module, wait_until
from wasmtube.oci import WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE
from wasmtube.v1 import wasmtube_pb2 as pb

WASMTUBE = [sys.executable, "-m", "wasmtube.cli"]
MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"
VERSIONS = {v: json_module(f'{{"v":{v}}}') for v in range(1, 6)}


def version(daemon: RunningDaemon, name: str = "m") -> int:
    return int(json.loads(daemon.call(name, "get").json)["v"])


def push_cli(
    path: Path, ref: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`wasmtube push`, run as a user runs it."""
    return subprocess.run(
        [*WASMTUBE, "push", str(path), ref, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def push_wasmtube(
    tmp_path: Path, registry: LocalRegistry, repository: str, tag: str, v: int
) -> str:
    module = tmp_path / f"v{v}.wasm"
    module.write_bytes(VERSIONS[v])
    done = push_cli(module, registry.ref(repository, tag), "--insecure")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def push_oras(
    tmp_path: Path,
    registry: LocalRegistry,
    repository: str,
    tag: str,
    files: list[tuple[bytes, str]],
    config_type: str = WASM_CONFIG_MEDIA_TYPE,
) -> str:
    """Push with the oras Python SDK: `files` are (content, media type)
    layers; the manifest digest."""
    paths = []
    for i, (content, media_type) in enumerate(files):
        path = tmp_path / f"layer{i}-{hashlib.sha256(content).hexdigest()[:8]}.wasm"
        path.write_bytes(content)
        paths.append(f"{path}:{media_type}")
    config = tmp_path / "config.json"
    config.write_text('{"architecture":"wasm","os":"wasip1"}')
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    response = client.push(
        target=registry.ref(repository, tag),
        files=paths,
        manifest_config=f"{config}:{config_type}",
        disable_path_validation=True,
    )
    assert response.status_code == 201, response.text
    return str(response.headers["Docker-Content-Digest"])


def push_version(tmp_path: Path, registry: LocalRegistry, repository: str, tag: str, v: int) -> str:
    return push_oras(tmp_path, registry, repository, tag, [(VERSIONS[v], WASM_LAYER_MEDIA_TYPE)])


def manifest_bytes(registry: LocalRegistry, repository: str, key: str) -> bytes:
    request = urllib.request.Request(
        f"http://{registry.host}/v2/{repository}/manifests/{key}",
        headers={"Accept": MANIFEST_ACCEPT},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())


def move_tag(registry: LocalRegistry, repository: str, digest: str, tag: str) -> None:
    """Point `tag` at the manifest `digest`, as `oras tag` or `crane tag` do."""
    request = urllib.request.Request(
        f"http://{registry.host}/v2/{repository}/manifests/{tag}",
        data=manifest_bytes(registry, repository, digest),
        headers={"Content-Type": MANIFEST_ACCEPT},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201


def layer_of(registry: LocalRegistry, repository: str, digest: str) -> dict[str, Any]:
    (layer,) = json.loads(manifest_bytes(registry, repository, digest))["layers"]
    return dict(layer)


@pytest.fixture
def start_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., LocalRegistry]]:
    yield from registries(tmp_path_factory)


@pytest.fixture
def registry(start_registry: Callable[..., LocalRegistry]) -> LocalRegistry:
    return start_registry()


@pytest.fixture
def pulling(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> Callable[..., RunningDaemon]:
    """Start a daemon pulling `pulls` (NAME=REF) from plain-HTTP registries."""

    def start(*pulls: str, registry: LocalRegistry | None = None, **options: Any) -> RunningDaemon:
        options.setdefault("pull_interval", 0.1)
        options.setdefault("pull_backoff_max", 0.5)
        if registry is not None:
            options.setdefault("registry_insecure", (registry.host,))
        return start_daemon(modules_dir, pull=pulls, **options)

    return start


def last_error(daemon: RunningDaemon, name: str = "m") -> str:
    info = daemon.modules().get(name)
    return info.last_error if info is not None else ""


def pulls(daemon: RunningDaemon, result: str, name: str = "m") -> float:
    return daemon.metric("wasmtube_module_pulls_total", module=name, result=result) or 0


# -- push, and what other tools see -------------------------------------------


def test_push_publishes_a_standard_wasm_artifact_that_oras_reads_back(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    module = tmp_path / "hello.wasm"
    module.write_bytes(VERSIONS[1])
    done = push_cli(module, registry.ref("wasm/hello", "v1"), "--insecure")
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()

    # The digest printed is the manifest's, as the registry serves it.
    raw = manifest_bytes(registry, "wasm/hello", "v1")
    assert digest == f"sha256:{hashlib.sha256(raw).hexdigest()}"
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    manifest = client.get_manifest(registry.ref("wasm/hello", "v1"))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == WASM_CONFIG_MEDIA_TYPE
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == WASM_LAYER_MEDIA_TYPE
    assert layer["digest"] == f"sha256:{hashlib.sha256(VERSIONS[1]).hexdigest()}"
    assert layer["size"] == len(VERSIONS[1])
    assert layer["annotations"]["org.opencontainers.image.title"] == "hello.wasm"
    config = client.get_blob(registry.ref("wasm/hello", "v1"), manifest["config"]["digest"])
    assert json.loads(config.content) | {"created": None} == {
        "created": None,
        "architecture": "wasm",
        "os": "wasip1",
        "layerDigests": [layer["digest"]],
    }

    # `oras pull` writes the module under its name, byte for byte.
    out = tmp_path / "pulled"
    (pulled,) = client.pull(target=registry.ref("wasm/hello", "v1"), outdir=str(out))
    assert Path(pulled).name == "hello.wasm"
    assert Path(pulled).read_bytes() == VERSIONS[1]
    # And by the digest printed.
    (by_digest,) = client.pull(target=registry.ref("wasm/hello", digest=digest), outdir=str(out))
    assert Path(by_digest).read_bytes() == VERSIONS[1]


@pytest.mark.parametrize(
    ("content", "ref", "expected"),
    [
        (b"not wasm", "wasm/x:v1", "does not start with \\0asm"),
        (b"\0asm\x0d\x00\x01\x00", "wasm/x:v1", "component"),
        (None, "wasm/x@sha256:" + "0" * 64, "give a tag"),
    ],
    ids=["not-wasm", "component", "digest-ref"],
)
def test_push_refuses_what_it_cannot_publish(
    registry: LocalRegistry, tmp_path: Path, content: bytes | None, ref: str, expected: str
) -> None:
    path = tmp_path / "x.wasm"
    path.write_bytes(VERSIONS[1] if content is None else content)
    done = push_cli(path, f"{registry.host}/{ref}", "--insecure")
    assert done.returncode == 1, done.stdout
    assert expected in done.stderr


def test_push_without_a_registry_host_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "x.wasm"
    path.write_bytes(VERSIONS[1])
    done = push_cli(path, "wasm/x:v1")
    assert done.returncode == 2
    assert "names no registry host" in done.stderr


# -- pulling by tag and by digest ---------------------------------------------


def test_pull_by_tag_serves_the_module_and_shows_where_it_came_from(
    registry: LocalRegistry, pulling: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    digest = push_version(tmp_path, registry, "wasm/m", "v1", 1)
    daemon = pulling(f"m={registry.ref('wasm/m', 'v1')}", registry=registry)
    assert version(daemon) == 1
    info = daemon.modules()["m"]
    assert (info.source_kind, info.source, info.source_digest) == (
        "oci",
        registry.ref("wasm/m", "v1"),
        digest,
    )
    assert info.sha256 == hashlib.sha256(VERSIONS[1]).hexdigest() and not info.last_error
    assert pulls(daemon, "updated") == 1
    wait_until(lambda: pulls(daemon, "unchanged") >= 2, what="the tag checked again")
    assert daemon.modules()["m"].generation == 1
    assert daemon.metric("wasmtube_module_pull_last_success_timestamp_seconds", module="m")
    # `wasmtube modules` shows the reference and the digest it served.
    done = subprocess.run(
        [*WASMTUBE, "modules", "--target", daemon.address], capture_output=True, text=True
    )
    header, row = done.stdout.splitlines()
    assert "SOURCE" in header.split()
    assert f"{registry.ref('wasm/m', 'v1')} (sha256:{digest[7:19]})" in row


def test_moving_the_tag_under_load_swaps_versions_with_zero_failed_calls(
    registry: LocalRegistry, pulling: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    push_version(tmp_path, registry, "wasm/m", "live", 1)
    daemon = pulling(f"m={registry.ref('wasm/m', 'live')}", registry=registry)
    request = pb.CallRequest(module="m", function="get", json="{}")
    stop = threading.Event()
    seen: list[int] = []
    failures: list[grpc.RpcError] = []

    def caller() -> None:
        while not stop.is_set():
            try:
                seen.append(json.loads(daemon.stub.Call(request, timeout=10).json)["v"])
            except grpc.RpcError as e:
                failures.append(e)

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for thread in callers:
        thread.start()
    try:
        for v in (2, 3, 4, 5):
            # Both clients move the tag: the daemon cannot tell them apart.
            if v % 2:
                digest = push_wasmtube(tmp_path, registry, "wasm/m", "live", v)
            else:
                digest = push_version(tmp_path, registry, "wasm/m", "live", v)
            info = daemon.wait_generation("m", v)
            assert info.source_digest == digest
            served = len(seen)
            wait_until(lambda n=served: len(seen) > n + 20, what="calls on the new version")
    finally:
        stop.set()
        for thread in callers:
            thread.join()
    assert not failures, f"{len(failures)} failed calls, first: {failures[0]}"
    assert set(seen) == {1, 2, 3, 4, 5}
    assert pulls(daemon, "updated") == 5


def test_a_digest_pin_never_moves(
    registry: LocalRegistry, pulling: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    first = push_version(tmp_path, registry, "wasm/m", "live", 1)
    daemon = pulling(
        f"pinned={registry.ref('wasm/m', digest=first)}",
        f"moving={registry.ref('wasm/m', 'live')}",
        registry=registry,
    )
    assert version(daemon, "pinned") == version(daemon, "moving") == 1
    second = push_version(tmp_path, registry, "wasm/m", "live", 2)
    # The tag's module has moved, polled at the same interval: the pin has
    # had every chance to move and has not.
    assert daemon.wait_generation("moving", 2).source_digest == second
    pinned = daemon.modules()["pinned"]
    assert (pinned.generation, pinned.source_digest) == (1, first)
    assert version(daemon, "pinned") == 1
    # Fetched once, never asked about again.
    assert pulls(daemon, "updated", "pinned") == 1
    assert pulls(daemon, "unchanged", "pinned") == 0


# -- bytes that do not match, and artifacts that are not modules --------------


@pytest.mark.parametrize("damage", ["flipped-byte", "truncated"])
def test_a_tampered_blob_is_refused_and_the_last_good_version_keeps_serving(
    registry: LocalRegistry,
    pulling: Callable[..., RunningDaemon],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    push_version(tmp_path, registry, "wasm/m", "live", 1)
    daemon = pulling(f"m={registry.ref('wasm/m', 'live')}", registry=registry)
    assert version(daemon) == 1
    # Version 2 is pushed under another tag, and its blob altered in the
    # registry's storage before `live` points at it.
    bad = push_version(tmp_path, registry, "wasm/m", "staging", 2)
    layer = layer_of(registry, "wasm/m", bad)["digest"]
    blob = registry.blob_path(layer)
    data = bytearray(blob.read_bytes())
    if damage == "flipped-byte":
        data[-1] ^= 0xFF
    else:
        del data[-10:]
    blob.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="wasmtube_server"):
        move_tag(registry, "wasm/m", bad, "live")
        error = wait_until(lambda: last_error(daemon), what="the refusal in last_error")
        assert layer in error and "refused" in error
        assert version(daemon) == 1 and daemon.modules()["m"].generation == 1
        wait_until(lambda: pulls(daemon, "digest_mismatch") >= 1, what="the metric")
        assert any(layer in r.getMessage() for r in caplog.records)
    # Tried again (a registry may repair itself), and never served meanwhile.
    wait_until(lambda: pulls(daemon, "digest_mismatch") >= 2, what="another try")
    assert version(daemon) == 1
    # A good version on the tag is served, and the error is gone.
    good = push_version(tmp_path, registry, "wasm/m", "live", 3)
    assert daemon.wait_generation("m", 2).source_digest == good
    assert version(daemon) == 3 and not last_error(daemon)


def test_a_pinned_digest_whose_blob_was_tampered_with_serves_nothing(
    registry: LocalRegistry, pulling: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    digest = push_version(tmp_path, registry, "wasm/m", "v1", 1)
    layer = layer_of(registry, "wasm/m", digest)["digest"]
    blob = registry.blob_path(layer)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    daemon = pulling(f"m={registry.ref('wasm/m', digest=digest)}", registry=registry)
    with pytest.raises(grpc.RpcError) as refused:
        daemon.call("m", "get")
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert layer in refused.value.details() and "digest" in refused.value.details()
    info = daemon.modules()["m"]
    assert (info.source_kind, info.source, info.source_digest) == (
        "oci",
        registry.ref("wasm/m", digest=digest),
        "",
    )


@pytest.mark.parametrize(
    ("layers", "config_type", "expected"),
    [
        ([(VERSIONS[1], "application/vnd.oci.image.layer.v1.tar")], None, "has media type"),
        ([(VERSIONS[1], WASM_LAYER_MEDIA_TYPE)] * 2, None, "2 layers"),
        (
            [(VERSIONS[1], WASM_LAYER_MEDIA_TYPE)],
            "application/vnd.oci.image.config.v1+json",
            "container image",
        ),
    ],
    ids=["tar-layer", "two-layers", "image-config"],
)
def test_an_artifact_that_is_not_a_wasm_module_is_refused(
    registry: LocalRegistry,
    pulling: Callable[..., RunningDaemon],
    tmp_path: Path,
    layers: list[tuple[bytes, str]],
    config_type: str | None,
    expected: str,
) -> None:
    if len(layers) == 2:  # two distinct blobs
        layers = [layers[0], (VERSIONS[2], layers[1][1])]
    digest = push_oras(
        tmp_path, registry, "wasm/m", "v1", layers, config_type or WASM_CONFIG_MEDIA_TYPE
    )
    daemon = pulling(f"m={registry.ref('wasm/m', 'v1')}", registry=registry)
    error = last_error(daemon)
    assert expected in error and digest in error and "not a Wasm module" in error, error
    assert pulls(daemon, "bad_artifact") >= 1
    with pytest.raises(grpc.RpcError):
        daemon.call("m", "get")


def test_a_module_that_does_not_load_keeps_the_last_good_one_and_is_not_fetched_again(
    registry: LocalRegistry, pulling: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    push_version(tmp_path, registry, "wasm/m", "live", 1)
    daemon = pulling(f"m={registry.ref('wasm/m', 'live')}", registry=registry)
    broken = push_oras(
        tmp_path, registry, "wasm/m", "live", [(b"\0asm\x01\x00\x00\x00junk", "application/wasm")]
    )
    error = wait_until(lambda: last_error(daemon), what="the load error")
    assert broken in error
    assert version(daemon) == 1
    (state,) = daemon.daemon.puller.states()
    attempts = state.attempts
    wait_until(lambda: state.attempts > attempts + 2, what="the tag checked again")
    # Still on the broken digest: fetched and loaded once, not again.
    assert pulls(daemon, "load_failed") == 1 and last_error(daemon) == error
    assert state.rejected_digest == broken and version(daemon) == 1


def test_an_unexpected_error_is_reported_and_the_pulls_go_on(
    registry: LocalRegistry,
    pulling: Callable[..., RunningDaemon],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wasmtube.oci.distribution import RegistryClient, Resolved

    push_version(tmp_path, registry, "wasm/m", "v1", 1)
    resolve = RegistryClient.resolve
    broken = threading.Event()
    broken.set()

    def resolve_or_fail(self: RegistryClient) -> Resolved:
        if broken.is_set():
            raise RuntimeError("a bug")
        return resolve(self)

    monkeypatch.setattr(RegistryClient, "resolve", resolve_or_fail)
    daemon = pulling(f"m={registry.ref('wasm/m', 'v1')}", registry=registry)
    assert "unexpected error: RuntimeError: a bug" in last_error(daemon)
    assert pulls(daemon, "error") >= 1
    broken.clear()
    daemon.wait_generation("m", 1)
    assert version(daemon) == 1 and not last_error(daemon)


# -- the registry down ----------------------------------------------------------


def test_registry_down_at_start_then_up(
    start_registry: Callable[..., LocalRegistry],
    pulling: Callable[..., RunningDaemon],
    tmp_path: Path,
) -> None:
    registry = start_registry(port=free_port(), start=False)
    daemon = pulling(f"m={registry.ref('wasm/m', 'v1')}", registry=registry)
    # Ready (health SERVING, as for a bad file), without the module.
    error = last_error(daemon)
    assert f"cannot reach the registry {registry.host}" in error, error
    with pytest.raises(grpc.RpcError) as missing:
        daemon.call("m", "get")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "cannot reach the registry" in missing.value.details()
    assert pulls(daemon, "unreachable") >= 1

    registry.start()
    push_version(tmp_path, registry, "wasm/m", "v1", 1)
    daemon.wait_generation("m", 1)
    assert version(daemon) == 1 and not last_error(daemon)


def test_registry_stopped_calls_keep_succeeding_and_retries_back_off(
    registry: LocalRegistry, pulling: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    push_version(tmp_path, registry, "wasm/m", "v1", 1)
    daemon = pulling(f"m={registry.ref('wasm/m', 'v1')}", registry=registry)
    failures: list[grpc.RpcError] = []
    answers: list[int] = []
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            try:
                answers.append(version(daemon))
            except grpc.RpcError as e:
                failures.append(e)

    thread = threading.Thread(target=caller)
    thread.start()
    try:
        registry.stop()
        wait_until(lambda: "cannot reach the registry" in last_error(daemon), what="last_error")
        wait_until(lambda: pulls(daemon, "unreachable") >= 4, what="retries")
        (state,) = daemon.daemon.puller.states()
        assert state.failures >= 4 and state.digest
    finally:
        stop.set()
        thread.join()
    assert not failures and set(answers) == {1}
    # Back again: the error clears without a new version.
    registry.start()
    wait_until(lambda: not last_error(daemon), what="the error cleared")
    assert daemon.modules()["m"].generation == 1


def test_a_restart_with_the_registry_down_serves_the_cached_version(
    registry: LocalRegistry,
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tagged = registry.ref("wasm/m", "live")
    push_version(tmp_path, registry, "wasm/m", "live", 1)
    pinned_digest = push_version(tmp_path, registry, "wasm/m", "old", 2)
    pinned = registry.ref("wasm/m", digest=pinned_digest)
    options: dict[str, Any] = {
        "pull": (f"m={tagged}", f"pinned={pinned}"),
        "registry_insecure": (registry.host,),
        "pull_interval": 0.1,
        "pull_backoff_max": 0.5,
        "cache_dir": tmp_path / "cache",
    }
    first = start_daemon(modules_dir, **options)
    assert version(first) == 1 and version(first, "pinned") == 2
    first.close()
    registry.stop()

    second = start_daemon(modules_dir, **options)
    assert version(second) == 1 and version(second, "pinned") == 2
    assert pulls(second, "cached") == pulls(second, "cached", "pinned") == 1
    info = second.modules()["m"]
    assert info.source == tagged and info.source_digest
    error = wait_until(lambda: last_error(second), what="the registry's absence noticed")
    assert "cannot reach the registry" in error
    # A digest in the cache is never asked for again.
    assert not last_error(second, "pinned")
    second.close()

    # A damaged cache entry is never served.
    (cached,) = (tmp_path / "cache").rglob(f"sha256-{info.sha256}.wasm")
    cached.write_bytes(cached.read_bytes()[:-1] + b"\1")
    with caplog.at_level(logging.WARNING, logger="wasmtube_server"):
        third = start_daemon(modules_dir, **options)
    assert any("damaged" in r.getMessage() for r in caplog.records)
    with pytest.raises(grpc.RpcError) as missing:
        third.call("m", "get")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert not cached.exists()


# -- credentials ----------------------------------------------------------------


def test_credentials_required_and_supplied(
    start_registry: Callable[..., LocalRegistry],
    pulling: Callable[..., RunningDaemon],
    tmp_path: Path,
) -> None:
    """htpasswd (Basic) auth: push and pull with none, wrong and right ones;
    the daemon reads the file again, so fixing it needs no restart."""
    registry = start_registry(users={"alice": "s3cret"})
    module = tmp_path / "m.wasm"
    module.write_bytes(VERSIONS[1])
    ref = registry.ref("wasm/m", "v1")
    right = docker_config(tmp_path / "right.json", {registry.host: ("alice", "s3cret")})
    wrong = docker_config(tmp_path / "wrong.json", {registry.host: ("alice", "guess")})

    done = push_cli(module, ref, "--insecure")
    assert done.returncode == 1 and "needs credentials" in done.stderr, done.stderr
    done = push_cli(module, ref, "--insecure", "--registry-auth", str(wrong))
    assert done.returncode == 1 and "refused the credentials of user 'alice'" in done.stderr
    done = push_cli(module, ref, "--insecure", env={"WASMTUBE_REGISTRY_AUTH": str(right)})
    assert done.returncode == 0, done.stderr

    auth = tmp_path / "auth" / "config.json"  # not there yet: an optional Secret
    auth.parent.mkdir()
    daemon = pulling(f"m={ref}", registry=registry, registry_auth=auth)
    assert "needs credentials" in last_error(daemon)
    assert pulls(daemon, "unauthorized") >= 1
    auth.write_bytes(wrong.read_bytes())
    wait_until(lambda: "refused the credentials" in last_error(daemon), what="wrong ones")
    auth.write_bytes(right.read_bytes())
    daemon.wait_generation("m", 1)
    assert version(daemon) == 1 and not last_error(daemon)


def test_bearer_tokens_from_the_realm_the_registry_names(
    start_registry: Callable[..., LocalRegistry],
    pulling: Callable[..., RunningDaemon],
    tmp_path: Path,
) -> None:
    """docker-registry's token auth, as Docker Hub, GHCR or Harbor do it:
    401 with `WWW-Authenticate: Bearer realm=...`, a token from the realm
    for the user's password, the token on every request."""
    with token_server(tmp_path, {"bob": "hunter2"}) as tokens:
        registry = start_registry(auth=tokens.registry_auth_config())
        ref = registry.ref("team/m", "v1")
        module = tmp_path / "m.wasm"
        module.write_bytes(VERSIONS[1])
        right = docker_config(tmp_path / "right.json", {registry.host: ("bob", "hunter2")})
        wrong = docker_config(tmp_path / "wrong.json", {registry.host: ("bob", "nope")})

        done = push_cli(module, ref, "--insecure", "--registry-auth", str(wrong))
        assert done.returncode == 1 and "refused the credentials" in done.stderr, done.stderr
        done = push_cli(module, ref, "--insecure", "--registry-auth", str(right))
        assert done.returncode == 0, done.stderr
        # Pushing needs push access: a pull token was replaced by a push one.
        scopes = [sorted(a["actions"]) for t in tokens.issued for a in t["access"]]
        assert ["pull"] in scopes and ["pull", "push"] in scopes

        issued = len(tokens.issued)
        daemon = pulling(f"m={ref}", registry=registry, registry_auth=right)
        assert version(daemon) == 1
        assert len(tokens.issued) == issued + 1, "one token, reused for every request"
        (claims,) = tokens.issued[issued:]
        assert claims["sub"] == "bob"
        assert claims["access"] == [{"type": "repository", "name": "team/m", "actions": ["pull"]}]
        wait_until(lambda: pulls(daemon, "unchanged") >= 3, what="polls with the token")
        assert len(tokens.issued) == issued + 1


# -- configuration --------------------------------------------------------------


def test_a_file_that_appears_later_under_a_pulled_name_is_ignored(
    registry: LocalRegistry,
    pulling: Callable[..., RunningDaemon],
    modules_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    push_version(tmp_path, registry, "wasm/m", "v1", 1)
    daemon = pulling(f"m={registry.ref('wasm/m', 'v1')}", registry=registry)
    with caplog.at_level(logging.WARNING, logger="wasmtube_server"):
        deploy(modules_dir, "m", VERSIONS[2])
        deploy(modules_dir, "other", VERSIONS[3])
        daemon.wait_generation("other", 1)
    assert any("is pulled from a registry" in r.getMessage() for r in caplog.records)
    assert version(daemon) == 1 and daemon.modules()["m"].source_kind == "oci"
    assert daemon.modules()["other"].source == str(modules_dir / "other.wasm")
    assert daemon.modules()["other"].source_kind == "file"


@pytest.fixture(autouse=True)
def _no_docker_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the machine's own Docker credentials."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.delenv("WASMTUBE_REGISTRY_AUTH", raising=False)
    yield
