"""A real OCI registry on loopback: Debian's docker-registry, the CNCF
distribution project's registry (what `registry:2` runs).

`registries()`, the body of a test's `start_registry` fixture, runs
`docker-registry serve CONFIG.yml` on a free (or given) 127.0.0.1 port with
filesystem storage in a temporary directory, and returns once /v2/ answers;
every registry started is stopped after the test. With `users`, it requires
them through htpasswd (bcrypt hashes made here); with `auth`, other auth
settings (token auth: token_server.py).
Its storage is on disk, so a test can tamper with a blob the way a broken
or hostile registry would serve it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import free_port

from .tools import require_tool

__all__ = ["LocalRegistry", "docker_config", "registries"]

INSTALL = "apt-get install -y docker-registry"


@dataclass
class LocalRegistry:
    binary: str
    root: Path
    port: int
    users: dict[str, str] = field(default_factory=dict)
    # Other `auth:` lines of config.yml (token auth, see token_server.py).
    auth: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    def ref(self, repository: str, tag: str = "", digest: str = "") -> str:
        text = f"{self.host}/{repository}"
        return text + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps blob `digest` (its filesystem driver's layout)."""
        hex_digest = digest.removeprefix("sha256:")
        return (
            self.storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
        )

    def _write_config(self) -> Path:
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            # No blob descriptor cache: a blob tampered with on disk is served
            # as it now is, as a registry whose storage was altered would.
            "  cache:",
            '    blobdescriptor: ""',
            "http:",
            f"  addr: {self.host}",
            "  secret: wasmtube-test-secret",
        ]
        if self.users:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text(
                "".join(f"{user}:{_bcrypt(password)}\n" for user, password in self.users.items())
            )
            lines += ["auth:", "  htpasswd:", "    realm: wasmtube-test", f"    path: {htpasswd}"]
        lines += self.auth
        config = self.root / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self) -> None:
        assert self.process is None, "already running"
        config = self._write_config()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 15
        while not self.answers():
            if self.process.poll() is not None:
                pytest.fail(
                    f"docker-registry exited with {self.process.returncode}:\n{self.logs()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"docker-registry did not answer on {self.host}:\n{self.logs()}")
            time.sleep(0.02)

    def answers(self) -> bool:
        """Whether /v2/ answers (401 counts: it asks for credentials)."""
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                return True
        except urllib.error.HTTPError as e:
            return e.code == 401
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _bcrypt(password: str) -> str:
    import bcrypt

    # Cost 4, the least bcrypt allows: the test only needs it to be bcrypt.
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def docker_config(path: Path, entries: dict[str, tuple[str, str]]) -> Path:
    """Write a Docker config.json with {registry: (user, password)}, as
    `docker login` does (the base64 "auth" form)."""
    auths = {
        registry: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        for registry, (user, password) in entries.items()
    }
    path.write_text(json.dumps({"auths": auths}))
    return path


def registries(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., LocalRegistry]]:
    """The body of a `start_registry` fixture: yields start(users={...},
    port=..., auth=[...], start=False); every registry started is stopped
    after the test."""
    binary = require_tool("docker-registry", INSTALL, candidates=("/usr/bin/docker-registry",))
    started: list[LocalRegistry] = []

    def start(
        users: dict[str, str] | None = None,
        port: int | None = None,
        auth: list[str] | None = None,
        start: bool = True,
    ) -> LocalRegistry:
        registry = LocalRegistry(
            binary,
            tmp_path_factory.mktemp("registry"),
            port or free_port(),
            dict(users or {}),
            list(auth or []),
        )
        started.append(registry)
        if start:
            registry.start()
        return registry

    yield start
    for registry in started:
        registry.stop()
