"""Registry credentials from a Docker `config.json`.

The format is what `docker login` writes and what a Kubernetes
`kubernetes.io/dockerconfigjson` Secret holds under `.dockerconfigjson`:

    {"auths": {"registry.example.com": {"auth": "<base64 of user:password>"}}}

An entry may give "username" and "password" instead of "auth" (kubectl
writes both). Keys may be a bare HOST[:PORT] or a URL
("https://registry.example.com/v1/"); Docker Hub's key is
"https://index.docker.io/v1/", which also serves docker.io and
registry-1.docker.io. Credential helpers ("credsStore", "credHelpers") run
programs, which a sidecar has none of, so they are not used; the legacy
`.dockercfg` layout (the hosts at the top level, no "auths") is read too.

The same user and password answer both schemes a registry may challenge
with: Basic (sent as they are) and Bearer (exchanged for a token at the
challenge's realm); see distribution.py.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Credentials", "CredentialsError", "credentials_for", "read_docker_config"]

# Docker Hub answers under several names; `docker login` files it under the first.
_DOCKER_HUB = ("index.docker.io", "docker.io", "registry-1.docker.io")
# A config file is a few entries: anything much bigger is not one.
_MAX_CONFIG_SIZE = 1 << 20


class CredentialsError(ValueError):
    """A credentials file that cannot be read or is not a Docker config."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    # Never printed: repr leaves it out.
    password: str = field(repr=False)

    @property
    def basic(self) -> str:
        """The value of an `Authorization: Basic` header, without the scheme."""
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def credentials_for(path: Path, registry: str) -> Credentials | None:
    """The credentials `path` holds for `registry` (HOST[:PORT]), or None.

    A missing file holds none (a Kubernetes Secret mounted as optional may
    not exist yet); an unreadable or malformed one raises CredentialsError.
    """
    try:
        entries = read_docker_config(path)
    except FileNotFoundError:
        return None
    host = registry.lower()
    for name in _DOCKER_HUB if host in _DOCKER_HUB else (host,):
        if name in entries:
            return entries[name]
    return None


def read_docker_config(path: Path) -> dict[str, Credentials]:
    """Every entry with a user and password in the Docker config at `path`,
    by lower-case HOST[:PORT]. Raises FileNotFoundError or CredentialsError."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_CONFIG_SIZE + 1)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise CredentialsError(f"cannot read registry credentials {path}: {e}") from e
    if len(data) > _MAX_CONFIG_SIZE:
        raise CredentialsError(f"{path} is over 1 MiB: not a Docker config.json")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CredentialsError(f"{path} is not a Docker config.json (JSON): {e}") from e
    if not isinstance(document, dict):
        raise CredentialsError(f"{path} is not a Docker config.json: not a JSON object")
    auths = document.get("auths", document)
    if not isinstance(auths, dict):
        raise CredentialsError(f'{path}: "auths" is not an object of registries')
    entries: dict[str, Credentials] = {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        credentials = _entry_credentials(path, key, entry)
        if credentials is not None:
            entries[_host_of(key)] = credentials
    return entries


def _entry_credentials(path: Path, key: str, entry: dict[str, object]) -> Credentials | None:
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password)
    auth = entry.get("auth")
    if not isinstance(auth, str) or not auth:
        return None
    malformed = f'{path}: the "auth" of {key!r} is not base64 of user:password'
    try:
        decoded = base64.b64decode(auth, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as e:
        raise CredentialsError(malformed) from e
    user, sep, secret = decoded.partition(":")
    if not sep or not user:
        raise CredentialsError(malformed)
    return Credentials(user, secret)


def _host_of(key: str) -> str:
    """HOST[:PORT] of a config key: "https://host:5000/v1/" -> "host:5000"."""
    host = key.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    return host.split("/", 1)[0].lower()
