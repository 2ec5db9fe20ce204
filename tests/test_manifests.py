"""deploy/: the Dockerfile, the Kubernetes manifests and the Grafana dashboard,
checked offline against the daemon they deploy.

- Every Kubernetes object validates against the API schema of every
  Kubernetes version from 1.28 (the oldest the manifests claim: native
  sidecars, an init container with `restartPolicy: Always`, exist from 1.28
  and are on by default from 1.29; gRPC probes are GA from 1.27) to the
  newest kubernetes-validate ships, strictly, so a misspelt field fails.
- The kustomizations are rendered here, offline, by a small renderer of the
  few kustomize features they use (no kustomize binary is needed). Where
  `kubectl` is on PATH, its built-in kustomize must render the same objects.
- Ports, paths, env var names, probe services and the grace period are read
  from the daemon itself (Config defaults, the click command's env vars, the
  gRPC service descriptor), and the sidecar's exact settings start a real
  daemon, so a renamed variable or a changed default fails here.
- Every metric, label and PromQL expression of the dashboard is checked
  against the /metrics page of a real daemon and parsed by promtool.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import wasmtime
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers.guests import CHATTY, FAILING
from helpers.manifests import (
    config_map_files,
    container,
    default_port,
    env,
    find,
    kustomization,
    mount_of,
    pod_spec,
    render,
    volume,
)
from helpers.registry import LocalRegistry, docker_config, registries
from helpers.tools import require_tool
from prometheus_client.parser import text_string_to_metric_families

from conftest import GUEST_WASM, ROOT, RunningDaemon, deploy, free_ports, json_module, wait_until
from wasmtube.oci import parse_reference
from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc
from wasmtube_server.cli import serve
from wasmtube_server.config import Config

DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
EMPTYDIR = DEPLOY / "overlays" / "emptydir"
OCI = DEPLOY / "overlays" / "oci"
MONITORING = DEPLOY / "monitoring"
KUSTOMIZATIONS = [BASE, EMPTYDIR, OCI, MONITORING]
APP_VARIANTS = [BASE, EMPTYDIR, OCI]
DASHBOARD = MONITORING / "grafana-dashboard.json"
DOCKERFILE = DEPLOY / "Dockerfile"

# Every Kubernetes the manifests claim: from the oldest with native sidecars
# to the newest schema kubernetes-validate ships.
OLDEST_KUBERNETES = (1, 28)
KUBERNETES_VERSIONS = sorted(
    {
        version
        for version in kubernetes_validate.utils.all_versions()
        if tuple(int(part) for part in version.split(".")[:2]) >= OLDEST_KUBERNETES
    },
    key=lambda version: tuple(int(part) for part in version.split(".")),
)

# The service the daemon registers; its health status is SERVING once the
# module directory has loaded. "" is the server as a whole.
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Wasmtube"].full_name
DEFAULTS = Config()
# Every WASMTUBE_* variable `wasmtube serve` reads, and the option it sets.
ENVVARS = {
    envvar: param.name
    for param in serve.params
    for envvar in ([param.envvar] if isinstance(param.envvar, str) else list(param.envvar or []))
}
SIDECAR = "wasmtube"
APP = "app"


# -- kustomizations and schemas ----------------------------------------------


def test_every_manifest_file_belongs_to_a_kustomization() -> None:
    """No YAML file in deploy/ escapes the checks below."""
    used = set()
    for directory in KUSTOMIZATIONS:
        k = kustomization(directory)
        used.add((directory / "kustomization.yaml").resolve())
        for entry in k.get("resources", []) + [p["path"] for p in k.get("patches", [])]:
            path = directory / entry
            assert path.exists(), f"{directory}/kustomization.yaml names missing {entry}"
            used.add(path.resolve() if path.is_file() else path.resolve() / "kustomization.yaml")
    found = {p.resolve() for p in DEPLOY.rglob("*.y*ml")}
    assert found - used == set(), "YAML files that no kustomization uses"
    assert {d.resolve() / "kustomization.yaml" for d in KUSTOMIZATIONS} == {
        p.resolve() for p in DEPLOY.rglob("kustomization.yaml")
    }


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.name)
@pytest.mark.parametrize("k8s_version", KUBERNETES_VERSIONS)
def test_rendered_objects_validate(directory: Path, k8s_version: str) -> None:
    docs = render(directory)
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            # A CRD: kubernetes-validate has schemas for the built-in APIs
            # only, so the PodMonitor is checked by check_pod_monitor.
            check_pod_monitor(doc)
            continue
        try:
            kubernetes_validate.validate(doc, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(p) for p in e.path)
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {where}: {e.message}")


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.name)
def test_offline_render_equals_kubectl_kustomize(directory: Path) -> None:
    """The renderer above agrees with kustomize itself, where kubectl is
    installed (kubectl has kustomize built in); elsewhere the offline render
    is what every other test checks."""
    docs = render(directory)
    assert len({(d["kind"], d["metadata"]["name"]) for d in docs}) == len(docs)
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return
    output = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert output.returncode == 0, output.stderr

    def normal(objects: list[dict[str, Any]]) -> list[Any]:
        for doc in objects:
            for key, value in doc.get("binaryData", {}).items():
                doc["binaryData"][key] = base64.b64decode(value)
        return sorted(objects, key=lambda d: (d["kind"], d["metadata"]["name"]))

    assert normal(docs) == normal(list(yaml.safe_load_all(output.stdout)))


# -- the pod: wasmtube as a native sidecar, checked against the daemon --------


@pytest.mark.parametrize("directory", APP_VARIANTS, ids=lambda d: d.name)
def test_sidecar_settings_match_the_daemon(directory: Path) -> None:
    spec = pod_spec(render(directory))
    assert SIDECAR not in [c["name"] for c in spec["containers"]]
    sidecar = container(spec, SIDECAR)
    assert sidecar.get("restartPolicy") == "Always", "not a native sidecar"
    assert "command" not in sidecar, "the image's ENTRYPOINT (wasmtube serve) must run"
    assert sidecar["image"].rpartition(":")[2] == package_version("wasmtube")
    settings = env(sidecar)
    unknown = set(settings) - set(ENVVARS)
    assert not unknown, f"wasmtube serve reads no {sorted(unknown)}"

    # gRPC: the listen address, the named port and every probe agree with
    # the daemon's default port; the app connects to it over loopback.
    grpc_port = default_port(DEFAULTS.listen)
    addresses = shlex.split(settings["WASMTUBE_LISTEN"])
    assert f"0.0.0.0:{grpc_port}" in addresses, "the kubelet probes the pod IP"
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert ports["grpc"] == grpc_port
    assert env(container(spec, APP))["WASMTUBE_TARGET"] == f"127.0.0.1:{grpc_port}"

    metrics_port = default_port(DEFAULTS.metrics_listen)
    assert settings["WASMTUBE_METRICS_LISTEN"] == f"0.0.0.0:{metrics_port}"
    assert ports["metrics"] == metrics_port

    # Probes: the plaintext health address (--health-listen), so the API
    # may serve TLS; the named port agrees.
    health_host, _, health_port = settings["WASMTUBE_HEALTH_LISTEN"].rpartition(":")
    assert health_host == "0.0.0.0", "the kubelet probes the pod IP"
    assert ports["health"] == int(health_port) != grpc_port
    probes = {kind: sidecar[f"{kind}Probe"] for kind in ("startup", "readiness", "liveness")}
    for kind, probe in probes.items():
        assert probe["grpc"]["port"] == int(health_port), kind
    # NOT_SERVING while the directory loads: only the startupProbe runs then,
    # with room for a slow first compile.
    assert probes["startup"]["grpc"]["service"] == SERVICE_NAME
    startup = probes["startup"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert probes["readiness"]["grpc"]["service"] == SERVICE_NAME
    assert probes["liveness"]["grpc"]["service"] in ("", SERVICE_NAME)

    # Running calls get --grace seconds after SIGTERM; the pod must allow more.
    grace = float(settings.get("WASMTUBE_GRACE", DEFAULTS.grace))
    assert spec["terminationGracePeriodSeconds"] > grace + 5

    # Modules: the whole volume at the modules directory (a subPath mount
    # never sees updates); the compiled-module cache on a writable emptyDir.
    modules = mount_of(sidecar, settings["WASMTUBE_MODULES"])
    assert "subPath" not in modules and "subPathExpr" not in modules
    cache = mount_of(sidecar, settings["WASMTUBE_CACHE_DIR"])
    assert "emptyDir" in volume(spec, cache["name"])
    assert not cache.get("readOnly")
    mounted = {
        m["name"]
        for c in spec.get("initContainers", []) + spec["containers"]
        for m in c.get("volumeMounts", [])
    }
    assert mounted == {v["name"] for v in spec["volumes"]}, "unused or undefined volumes"


@pytest.mark.parametrize("directory", APP_VARIANTS, ids=lambda d: d.name)
def test_every_container_is_locked_down_and_sized(directory: Path) -> None:
    spec = pod_spec(render(directory))
    assert spec["securityContext"]["runAsNonRoot"] is True
    for c in spec.get("initContainers", []) + spec["containers"]:
        security = c["securityContext"]
        assert security["runAsNonRoot"] is True, c["name"]
        assert security["runAsUser"] > 0, c["name"]
        assert security["readOnlyRootFilesystem"] is True, c["name"]
        assert security["allowPrivilegeEscalation"] is False, c["name"]
        assert security["capabilities"]["drop"] == ["ALL"], c["name"]
        assert security["seccompProfile"]["type"] == "RuntimeDefault", c["name"]
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), c["name"]
        assert "memory" in c["resources"]["limits"], c["name"]
    # The image's user, so the files it made (/modules, the cache) are its own.
    sidecar = container(spec, SIDECAR)["securityContext"]
    assert f"{sidecar['runAsUser']}:{sidecar['runAsGroup']}" == dockerfile_user()


def test_base_serves_modules_from_a_config_map() -> None:
    docs = render(BASE)
    spec = pod_spec(docs)
    sidecar = container(spec, SIDECAR)
    modules = mount_of(sidecar, env(sidecar)["WASMTUBE_MODULES"])
    source = volume(spec, modules["name"])["configMap"]
    # Every key is a module file; no `items` list, so new keys appear too.
    assert "items" not in source
    files = config_map_files(find(docs, "ConfigMap", source["name"]))
    assert files and all(re.fullmatch(r"[A-Za-z0-9_.-]+\.wasm", key) for key in files)
    # The whole ConfigMap, base64 included, within Kubernetes' 1 MiB.
    assert len(json.dumps(find(docs, "ConfigMap", source["name"]))) < 1_000_000


def test_example_module_is_built_from_its_source() -> None:
    wat = (BASE / "modules" / "hello.wat").read_text()
    assert (BASE / "modules" / "hello.wasm").read_bytes() == wasmtime.wat2wasm(wat), (
        "rebuild deploy/base/modules/hello.wasm: see hello.wat"
    )


# -- the image ---------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs. As Docker does, comment lines go first
    (a trailing backslash in a comment continues nothing), then lines ending
    in a backslash are joined to the next."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.strip()]
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    instructions = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        keyword, _, arguments = line.strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, arguments in final_stage():
        if keyword == "ENV":
            values.update(item.split("=", 1) for item in shlex.split(arguments))
    return values


def dockerfile_user() -> str:
    (user,) = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    return user


def test_dockerfile_matches_the_daemon() -> None:
    instructions = dockerfile_instructions()
    stages = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "multi-stage: build in one stage, run in a slim one"
    assert stages[-1] == "python:3.11-slim"
    builder = stages[0].split()[-1]
    final = final_stage()
    copies = [arguments for keyword, arguments in final if keyword == "COPY"]
    assert copies == [f"--from={builder} /opt/wasmtube /opt/wasmtube"], "only the venv"
    assert not [a for k, a in final if k in ("ADD", "ARG")]

    # The builder installs the repository's package with the server extra.
    runs = " ".join(
        a for k, a in instructions[: instructions.index(("FROM", stages[-1]))] if k == "RUN"
    )
    assert "install '.[server]'" in runs

    # A numeric user that is not root, so runAsNonRoot can check it.
    uid, _, gid = dockerfile_user().partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit()

    values = dockerfile_env()
    assert "/opt/wasmtube/bin" in values["PATH"].split(":")
    settings = {k: v for k, v in values.items() if k.startswith("WASMTUBE_")}
    assert set(settings) <= set(ENVVARS), f"wasmtube serve reads no {set(settings) - set(ENVVARS)}"
    assert settings["WASMTUBE_LISTEN"] == f"0.0.0.0:{default_port(DEFAULTS.listen)}"
    assert settings["WASMTUBE_METRICS_LISTEN"] == (
        f"0.0.0.0:{default_port(DEFAULTS.metrics_listen)}"
    )
    (volumes,) = [json.loads(a) for k, a in final if k == "VOLUME"]
    assert sorted(volumes) == sorted([settings["WASMTUBE_MODULES"], settings["WASMTUBE_CACHE_DIR"]])
    (exposed,) = [a.split() for k, a in final if k == "EXPOSE"]
    assert sorted(int(p) for p in exposed) == sorted(
        [default_port(DEFAULTS.listen), default_port(DEFAULTS.metrics_listen)]
    )
    (entrypoint,) = [json.loads(a) for k, a in final if k == "ENTRYPOINT"]
    assert entrypoint == ["wasmtube", "serve"]
    assert not [a for k, a in final if k == "CMD"]

    # Kubernetes and the image agree on where things are.
    sidecar = container(pod_spec(render(BASE)), SIDECAR)
    for name in ("WASMTUBE_MODULES", "WASMTUBE_CACHE_DIR"):
        assert env(sidecar)[name] == settings[name]


def test_docker_build_context_has_what_the_package_needs() -> None:
    """The builder copies only some files (and Dockerfile.dockerignore keeps
    the rest out): they must hold everything pyproject.toml builds from."""
    copied = set()
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and not arguments.startswith("--from"):
            copied.update(arguments.split()[:-1])
    ignore = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allow-list: everything is left out, then each copied path let in.
    assert ignore[0] == "*"
    for path in copied:
        assert f"!{path}" in ignore, f"Dockerfile.dockerignore leaves out {path}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed.update(project["tool"]["setuptools"]["packages"]["find"]["where"])
    assert needed <= copied
    for path in copied:
        assert (ROOT / path).exists(), path


# -- the sidecar's exact settings start a real daemon -------------------------


def health(channel: grpc.Channel, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return health_pb2_grpc.HealthStub(channel).Check(request, timeout=2).status


class RunningImage(NamedTuple):
    process: subprocess.Popen[bytes]
    channel: grpc.Channel  # the gRPC API
    probed: grpc.Channel  # the health address, where the probes go
    log: Path
    metrics_port: int


@contextlib.contextmanager
def run_image(
    settings: dict[str, str], tmp_path: Path, args: list[str] | None = None
) -> Iterator[RunningImage]:
    """The image's ENTRYPOINT (plus `args`) run with the WASMTUBE_* `settings`,
    its listen, metrics and health addresses moved to free loopback ports
    (written back into `settings`), until the startupProbe's service serves;
    killed afterwards if it still runs."""
    grpc_port, metrics_port, health_port = free_ports(3)
    settings["WASMTUBE_LISTEN"] = f"127.0.0.1:{grpc_port}"
    settings["WASMTUBE_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
    settings["WASMTUBE_HEALTH_LISTEN"] = f"127.0.0.1:{health_port}"
    (entrypoint,) = [json.loads(a) for k, a in final_stage() if k == "ENTRYPOINT"]
    program = Path(sys.executable).parent / entrypoint[0]
    assert program.exists(), f"{program}: install the package (pip install -e '.[dev]')"
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("WASMTUBE_")}
    log = tmp_path / "wasmtube.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(program), *entrypoint[1:], *(args or [])],
            env={**process_env, **settings},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    probed = grpc.insecure_channel(f"127.0.0.1:{health_port}")
    try:

        def serving() -> bool:
            if process.poll() is not None:
                pytest.fail(f"wasmtube exited with {process.returncode}:\n{log.read_text()}")
            try:
                return health(probed, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                return False

        wait_until(serving, 30, "the startupProbe's service to be SERVING")
        yield RunningImage(process, channel, probed, log, metrics_port)
    finally:
        channel.close()
        probed.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def test_image_and_sidecar_settings_run_the_daemon(tmp_path: Path) -> None:
    """What the container runs: the image's ENTRYPOINT and ENV, overridden by
    the pod's env, with the ConfigMap's modules mounted. Only the mount paths
    (to temporary directories) and the ports (to free loopback ports) change."""
    docs = render(BASE)
    spec = pod_spec(docs)
    sidecar = container(spec, SIDECAR)
    settings = {k: v for k, v in dockerfile_env().items() if k.startswith("WASMTUBE_")}
    settings.update(env(sidecar))

    mounts = {}
    for mount in sidecar["volumeMounts"]:
        mounts[mount["mountPath"]] = tmp_path / mount["name"]
        mounts[mount["mountPath"]].mkdir()
        source = volume(spec, mount["name"])
        if "configMap" in source:
            config_map = find(docs, "ConfigMap", source["configMap"]["name"])
            for key, data in config_map_files(config_map).items():
                (mounts[mount["mountPath"]] / key).write_bytes(data)
    # Every path setting must be on a mounted volume (no root filesystem to
    # write to); each becomes that volume's temporary directory here.
    for name, value in settings.items():
        assert not value.startswith("/") or value in mounts, f"{name}={value} is not mounted"
    settings = {k: str(mounts.get(v, v)) for k, v in settings.items()}

    with run_image(settings, tmp_path, sidecar.get("args", [])) as image:
        process, log = image.process, image.log
        for kind in ("startup", "readiness", "liveness"):
            service = sidecar[f"{kind}Probe"]["grpc"]["service"]
            assert health(image.probed, service) == health_pb2.HealthCheckResponse.SERVING, kind

        # The ConfigMap's module serves; the PodMonitor's path has the metrics.
        stub = pb_grpc.WasmtubeStub(image.channel)
        response = stub.Call(pb.CallRequest(module="hello", function="hello", json="{}"))
        assert json.loads(response.json) == {"hello": "wasmtube"}
        echoed = stub.Call(pb.CallRequest(module="hello", function="echo", json='{"a":[1]}'))
        assert json.loads(echoed.json) == {"a": [1]}
        endpoint = find(render(MONITORING), "PodMonitor")["spec"]["podMetricsEndpoints"][0]
        url = f"http://127.0.0.1:{image.metrics_port}{endpoint['path']}"
        with urllib.request.urlopen(url, timeout=5) as page:
            samples = {
                s.name: s.value
                for family in text_string_to_metric_families(page.read().decode())
                for s in family.samples
            }
        assert samples["wasmtube_modules_loaded"] == 1

        # SIGTERM, as the kubelet sends: a clean exit well within the pod's grace.
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=spec["terminationGracePeriodSeconds"]) == 0, log.read_text()
        assert time.monotonic() - started < float(settings["WASMTUBE_GRACE"]) + 5


# -- overlays/emptydir: the module-sync sidecar ------------------------------


def test_module_sync_sidecar_is_wired_to_wasmtube() -> None:
    docs = render(EMPTYDIR)
    spec = pod_spec(docs)
    names = [c["name"] for c in spec["initContainers"]]
    assert names.index("module-sync") < names.index(SIDECAR), "wasmtube must start after it"
    sync = container(spec, "module-sync")
    sidecar = container(spec, SIDECAR)
    assert sync["restartPolicy"] == "Always"
    settings = env(sync)

    # Both see the same emptyDir: module-sync writes it, wasmtube serves it.
    modules = mount_of(sidecar, env(sidecar)["WASMTUBE_MODULES"])
    written = mount_of(sync, settings["MODULES_DIR"])
    assert written["name"] == modules["name"] and not written.get("readOnly")
    assert volume(spec, modules["name"]) == {
        "name": modules["name"],
        "emptyDir": {"sizeLimit": "256Mi"},
    }
    assert not [d for d in docs if d["kind"] == "ConfigMap" and "binaryData" in d]

    # The container runs this repository's script, from its ConfigMap.
    shell, script = sync["command"]
    mount = mount_of(sync, str(Path(script).parent))
    config_map = find(docs, "ConfigMap", volume(spec, mount["name"])["configMap"]["name"])
    assert config_map["data"][Path(script).name] == (EMPTYDIR / "module-sync.sh").read_text()
    assert shell == "/bin/sh"

    # Started only once its first pass put every module in place.
    probe = sync["startupProbe"]["exec"]["command"]
    assert probe == ["test", "-e", settings["READY_FILE"]]
    ready_dir = mount_of(sync, str(Path(settings["READY_FILE"]).parent))
    assert "emptyDir" in volume(spec, ready_dir["name"])
    assert settings["MODULES"].split() and settings["MODULES_URL"].startswith("https://")
    # Every download is checked: against a pin, or the store's NAME.wasm.sha256.
    script_text = (EMPTYDIR / "module-sync.sh").read_text()
    assert "sha256sum" in script_text and ".wasm.sha256" in script_text


@pytest.fixture
def artifact_store(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on loopback, as the module store."""
    store = tmp_path / "store"
    store.mkdir()

    requests = tmp_path / "store-requests.log"
    requests.touch()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            # Every request's path, one a line: how tests count sync passes.
            with open(requests, "a") as log:
                log.write(f"{self.path}\n")

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(store))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield store, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def visible(directory: Path) -> list[str]:
    """The names in `directory` that can be modules. A pass of module-sync
    fetches into a hidden temporary file, which may exist at any moment."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def publish(store: Path, name: str, data: bytes, checksum: bytes | None = None) -> None:
    """Put a module in the store with its NAME.wasm.sha256, as `sha256sum` writes it."""
    digest = hashlib.sha256(data if checksum is None else checksum).hexdigest()
    (store / f"{name}.wasm.sha256").write_text(f"{digest}  {name}.wasm\n")
    deploy(store, name, data)


def test_module_sync_deploys_by_atomic_rename(
    start_daemon: Callable[..., RunningDaemon],
    artifact_store: tuple[Path, str],
    tmp_path: Path,
) -> None:
    """The sidecar's script, run here with sh and wget against a real daemon."""
    require_tool("wget", "apt-get install -y wget")
    store, url = artifact_store
    modules = tmp_path / "modules"
    modules.mkdir()
    ready = tmp_path / "ready"
    v1, v2, v3 = json_module('{"v":1}'), json_module('{"v":2}'), json_module('{"v":3}')
    publish(store, "m", v1)
    publish(store, "pinned", v1)
    (modules / "stale.wasm").write_bytes(v1)  # not listed: removed
    script_env = {
        "PATH": os.environ["PATH"],
        "MODULES_URL": url,
        # `pinned` is pinned to v1's checksum: its store's .sha256 is not read.
        "MODULES": f"m pinned={hashlib.sha256(v1).hexdigest()}",
        "MODULES_DIR": str(modules),
        "SYNC_INTERVAL": "1",
        "READY_FILE": str(ready),
    }
    log = tmp_path / "module-sync.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            ["sh", str(EMPTYDIR / "module-sync.sh")],
            env=script_env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )

    def logged(text: str, count: int = 1) -> bool:
        return log.read_text().count(text) >= count

    def passes() -> int:
        """Sync passes begun so far: each fetches m's checksum first."""
        requests = tmp_path / "store-requests.log"
        return requests.read_text().count("/m.wasm.sha256\n")

    def wait_for_passes(more: int) -> None:
        """Wait until `more` further passes have begun (and so the one running
        now has ended), instead of sleeping for a few intervals."""
        target = passes() + more
        wait_until(lambda: passes() >= target, 20, f"{more} more module-sync passes")

    try:
        wait_until(ready.exists, 10, "module-sync's first pass")
        assert visible(modules) == ["m.wasm", "pinned.wasm"]
        daemon = start_daemon(modules)
        assert json.loads(daemon.call("m", "get").json) == {"v": 1}

        # Passes that find nothing new leave the file alone.
        inode = (modules / "m.wasm").stat().st_ino
        wait_for_passes(2)
        assert (modules / "m.wasm").stat().st_ino == inode

        # A new version: one atomic rename, one reload.
        publish(store, "m", v2)
        daemon.wait_generation("m", 2)
        assert json.loads(daemon.call("m", "get").json) == {"v": 2}
        wait_for_passes(2)
        assert daemon.metric("wasmtube_module_reloads_total", module="m", result="success") == 2

        # A download that is not what its checksum says (a broken transfer, an
        # altered store) is never deployed; nor one that differs from its pin.
        publish(store, "m", v3, checksum=v2)
        publish(store, "pinned", v3)
        wait_until(lambda: logged("m.wasm has sha256") and logged("pinned.wasm has sha256"))
        assert f"not {hashlib.sha256(v2).hexdigest()}: refused" in log.read_text()
        assert json.loads(daemon.call("m", "get").json) == {"v": 2}
        assert json.loads(daemon.call("pinned", "get").json) == {"v": 1}

        # The store fails: the current file stays and keeps serving.
        (store / "m.wasm").unlink()
        wait_until(lambda: logged("fetching m.wasm failed"), 10, "a failed fetch")
        assert visible(modules) == ["m.wasm", "pinned.wasm"]
        assert json.loads(daemon.call("m", "get").json) == {"v": 2}

        # SIGTERM ends it at once, not after its sleep.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert logged("deployed m.wasm") and logged("removed stale.wasm")


# -- overlays/oci: modules pulled from a registry ------------------------------


def test_oci_overlay_pulls_with_credentials_from_a_secret() -> None:
    docs = render(OCI)
    spec = pod_spec(docs)
    sidecar = container(spec, SIDECAR)
    settings = env(sidecar)
    # Every module is pulled: the module directory is empty, no ConfigMap.
    modules = mount_of(sidecar, settings["WASMTUBE_MODULES"])
    assert "emptyDir" in volume(spec, modules["name"])
    assert not [d for d in docs if d["kind"] == "ConfigMap"]
    pulls = shlex.split(settings["WASMTUBE_PULL"])
    config = Config(pull=pulls, pull_interval=float(settings["WASMTUBE_PULL_INTERVAL"]))
    # The example follows a tag (a rollout moves it); a digest pins instead.
    assert config.pull and not any(parse_reference(p.partition("=")[2]).pinned for p in pulls)

    # Credentials: the dockerconfigjson Secret's key, on a volume of its own,
    # whole (a subPath mount never sees the Secret rotate), optional (a public
    # registry needs none).
    auth = Path(settings["WASMTUBE_REGISTRY_AUTH"])
    assert auth.name == ".dockerconfigjson"
    mount = mount_of(sidecar, str(auth.parent))
    assert mount.get("readOnly") is True and "subPath" not in mount
    assert volume(spec, mount["name"])["secret"] == {
        "secretName": "wasmtube-registry",
        "optional": True,
    }
    # Verified modules are kept in --cache-dir, an emptyDir that outlives
    # the container: a restart serves them with the registry down.
    cache = mount_of(sidecar, settings["WASMTUBE_CACHE_DIR"])
    assert "emptyDir" in volume(spec, cache["name"])


@pytest.fixture
def start_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., LocalRegistry]]:
    yield from registries(tmp_path_factory)


def test_oci_overlay_settings_pull_from_a_real_registry(
    tmp_path: Path, start_registry: Callable[..., LocalRegistry]
) -> None:
    """The overlay's sidecar settings over the image's, with the registry
    moved to one on loopback that requires a user, the Secret's file written
    where it is mounted, and free ports: the pulled module serves."""
    from wasmtube.oci.push import push_module

    spec = pod_spec(render(OCI))
    sidecar = container(spec, SIDECAR)
    settings = {k: v for k, v in dockerfile_env().items() if k.startswith("WASMTUBE_")}
    settings.update(env(sidecar))
    mounts = {m["mountPath"]: tmp_path / m["name"] for m in sidecar["volumeMounts"]}
    for directory in mounts.values():
        directory.mkdir()

    def local(value: str) -> str:
        for path, directory in mounts.items():
            if value == path or value.startswith(path + "/"):
                return str(directory / value[len(path) :].lstrip("/"))
        assert not value.startswith("/"), f"{value} is not on a mounted volume"
        return value

    settings = {k: local(v) for k, v in settings.items()}
    registry = start_registry(users={"puller": "s3cret"})
    auth = Path(settings["WASMTUBE_REGISTRY_AUTH"])
    docker_config(auth, {registry.host: ("puller", "s3cret")})
    name, _, reference = settings["WASMTUBE_PULL"].partition("=")
    reference = f"{registry.host}/{reference.partition('/')[2]}"
    module = tmp_path / "hello.wasm"
    module.write_bytes((BASE / "modules" / "hello.wasm").read_bytes())
    push_module(module, reference, insecure=True, credentials_file=auth)
    settings |= {
        "WASMTUBE_PULL": f"{name}={reference}",
        "WASMTUBE_REGISTRY_INSECURE": registry.host,
    }
    with run_image(settings, tmp_path) as image:
        process, log = image.process, image.log
        stub = pb_grpc.WasmtubeStub(image.channel)
        response = stub.Call(pb.CallRequest(module=name, function="hello", json="{}"))
        assert json.loads(response.json) == {"hello": "wasmtube"}
        (info,) = stub.ListModules(pb.ListModulesRequest()).modules
        assert (info.source_kind, info.source) == ("oci", reference), log.read_text()
        cache = Path(settings["WASMTUBE_CACHE_DIR"])
        assert list(cache.rglob(f"sha256-{info.sha256}.wasm")), "kept for restarts"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=spec["terminationGracePeriodSeconds"]) == 0, log.read_text()


# -- monitoring: PodMonitor and Grafana dashboard ----------------------------


POD_MONITOR_ENDPOINT_FIELDS = {
    "port",
    "path",
    "interval",
    "scrapeTimeout",
    "scheme",
    "honorLabels",
    "relabelings",
    "metricRelabelings",
}


def check_pod_monitor(doc: dict[str, Any]) -> None:
    """The parts of the PodMonitor CRD's schema the manifest uses."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["kind"] == "PodMonitor"
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    spec = doc["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel"}
    assert set(spec["selector"]) <= {"matchLabels", "matchExpressions"} and spec["selector"]
    assert all(isinstance(v, str) for v in spec["selector"].get("matchLabels", {}).values())
    assert set(spec.get("namespaceSelector", {})) <= {"any", "matchNames"}
    assert spec["podMetricsEndpoints"]
    for endpoint in spec["podMetricsEndpoints"]:
        assert set(endpoint) <= POD_MONITOR_ENDPOINT_FIELDS, endpoint
        assert isinstance(endpoint["port"], str) and endpoint["path"].startswith("/")
        for key in ("interval", "scrapeTimeout"):
            assert re.fullmatch(r"(\d+(ms|s|m|h))+", endpoint.get(key, "1s")), endpoint


def test_pod_monitor_scrapes_the_sidecars_metrics_port() -> None:
    monitor = find(render(MONITORING), "PodMonitor")
    check_pod_monitor(monitor)
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    for directory in APP_VARIANTS:
        template = find(render(directory), "Deployment")["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ports = {p["name"]: p for p in container(template["spec"], SIDECAR)["ports"]}
        metrics_port = default_port(DEFAULTS.metrics_listen)
        assert ports[endpoint["port"]]["containerPort"] == metrics_port
    # The dashboard ConfigMap carries the JSON file unchanged.
    (dashboard,) = [d for d in render(MONITORING) if d["kind"] == "ConfigMap"]
    assert dashboard["data"][DASHBOARD.name] == DASHBOARD.read_text()


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query in the dashboard."""
    return [(p["title"], t["expr"]) for p in dashboard()["panels"] for t in p["targets"]]


def variable_queries() -> list[str]:
    return [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]


def test_dashboard_has_the_panels() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["module"]["type"] == "query"
    assert variables["module"]["datasource"]["uid"] == "${datasource}"
    assert variables["module"]["includeAll"] and variables["module"]["allValue"] == ".*"

    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert all(t["datasource"] == p["datasource"] for t in p["targets"]), p["title"]
        box = p["gridPos"]
        assert box["x"] + box["w"] <= 24, p["title"]
        area = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not area & cells, f"{p['title']} overlaps another panel"
        cells |= area

    queries = " ".join(q for _, q in panel_queries())
    expected = [
        r"sum by \(module, function\) \(rate\(wasmtube_calls_total\{[^}]*\}\[5m\]\)\)",
        r'wasmtube_calls_total\{[^}]*code!="OK"',
        *(
            rf"histogram_quantile\({q}, sum by \(le, module, function\) "
            r"\(rate\(wasmtube_call_duration_seconds_bucket"
            for q in ("0.5", "0.95", "0.99")
        ),
        r"sum by \([^)]*result\) \(increase\(wasmtube_module_reloads_total",
        r"sum by \([^)]*reason\) \(increase\(wasmtube_module_load_failures_total",
        r"histogram_quantile\([.0-9]+, sum by \(le\) "
        r"\(rate\(wasmtube_reload_duration_seconds_bucket",
        r"sum by \([^)]*reason\) \(rate\(wasmtube_traps_total",
        r"wasmtube_calls_running",
        r"wasmtube_calls_waiting",
        r"wasmtube_modules_loaded",
        r"wasmtube_module_generation",
    ]
    for pattern in expected:
        assert re.search(pattern, queries), f"no panel queries {pattern}"
    for _, query in panel_queries():
        if "wasmtube_calls_total" in query or "_bucket" in query or "traps" in query:
            assert 'module=~"$module"' in query or "reload_duration" in query, query


# Labels Prometheus adds to every scraped series (the PodMonitor adds pod,
# namespace and container too).
TARGET_LABELS = {"instance", "job", "namespace", "pod", "container", "endpoint"}
METRIC = re.compile(r"\b(wasmtube_[a-z_]+)(\{[^}]*\})?")


@pytest.fixture
def scraped(start_daemon: Callable[..., RunningDaemon], modules_dir: Path, tmp_path: Path):
    """Sample name -> label names on a real daemon's /metrics page, after a
    call that succeeds, one that fails, one that traps and one that waits,
    a deploy, a failed deploy and compiled-module cache lookups."""
    (modules_dir / "wasm_test.wasm").write_bytes(GUEST_WASM.read_bytes())
    daemon = start_daemon(
        modules_dir, cache_dir=tmp_path / "cache", module_concurrency=1, guest_log_rate=5
    )
    assert json.loads(daemon.call("wasm_test", "echo", '{"args":"x"}').json) == {"args": "x"}
    for function, text in (("nope", "{}"), ("panic", "{}")):  # NOT_FOUND, a trap
        with pytest.raises(grpc.RpcError):
            daemon.call("wasm_test", function, text)
    with ThreadPoolExecutor(2) as pool:
        # About 2 s of guest CPU (one instance at a time), so the second call waits.
        busy = pool.submit(daemon.call, "wasm_test", "busy", '{"n":1000000000}')
        wait_until(lambda: daemon.metric("wasmtube_calls_running", module="wasm_test") == 1)
        waiting = pool.submit(daemon.call, "wasm_test", "echo", '{"args":"y"}')
        busy.result(), waiting.result()
    # A guest that fails on purpose, and one that logs past its rate.
    deploy(modules_dir, "failing", FAILING)
    deploy(modules_dir, "chatty", CHATTY)
    daemon.wait_generation("failing", 1), daemon.wait_generation("chatty", 1)
    with pytest.raises(grpc.RpcError):
        daemon.call("failing", "invalid")
    daemon.call("chatty", "flood")
    deploy(modules_dir, "m", json_module("{}"))
    deploy(modules_dir, "broken", b"not wasm")
    wait_until(lambda: daemon.metric("wasmtube_module_load_failures_total", module="broken"))
    daemon.wait_generation("m", 1)
    assert daemon.metric("wasmtube_guest_log_lines_dropped_total", module="chatty")
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(daemon.metrics_text()):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def test_dashboard_queries_only_what_the_daemon_exports(scraped: dict[str, set[str]]) -> None:
    for title, query in panel_queries() + [("variable", q) for q in variable_queries()]:
        used = METRIC.findall(query)
        assert used, f"{title}: {query} reads no wasmtube metric"
        available = set()
        for name, selector in used:
            assert name in scraped, f"{title}: {name} is not on the daemon's /metrics page"
            available |= scraped[name]
            for matcher in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", selector):
                assert matcher in scraped[name], f"{title}: {name} has no label {matcher}"
        for group in re.findall(r"\bby \(([^)]*)\)", query):
            for label in re.split(r",\s*", group):
                assert label in available, f"{title}: no metric in {query} has label {label}"
        if match := re.fullmatch(r"label_values\((\w+), (\w+)\)", query):
            assert match[2] in scraped[match[1]]
    # Every legend names a label the query's result has.
    for p in dashboard()["panels"]:
        for t in p["targets"]:
            groups = re.findall(r"\bby \(([^)]*)\)", t["expr"])
            if groups:
                result = set(re.split(r",\s*", groups[-1])) - {"le"}
            else:
                result = {
                    label for name, _ in METRIC.findall(t["expr"]) for label in scraped[name]
                } | TARGET_LABELS
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", t["legendFormat"]):
                assert label in result, f"{p['title']}: legend {label} is not in {t['expr']}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool (Debian's prometheus package) parses every query."""
    promtool = require_tool(
        "promtool", "apt-get install -y prometheus", candidates=("/usr/bin/promtool",)
    )
    rules = []
    for index, (_, query) in enumerate(panel_queries()):
        expr = query.replace("${module}", ".*").replace("$module", ".*")
        assert "$" not in expr, f"a Grafana variable this test does not know: {query}"
        rules.append({"record": f"wasmtube_dashboard:query_{index}", "expr": expr})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
