"""OCI references: where a module lives in a registry.

    HOST[:PORT]/REPOSITORY:TAG            a tag: it moves when someone pushes to it
    HOST[:PORT]/REPOSITORY@sha256:HEX     a digest: it names one manifest for ever

The host is never implied (no Docker Hub default): a daemon's configuration
must say which registry it trusts. The grammar is the distribution project's
(the one `docker` and `oras` accept): the first component is a host when it
holds a '.' or a ':' or is `localhost`; repository components are lower case;
a tag is at most 128 characters. Only sha256 digests are accepted: they are
what every registry computes, and what the puller verifies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

__all__ = ["Reference", "ReferenceError", "parse_reference"]

_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]{{1,5}})?")
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_PART}(?:/{_PATH_PART})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
# The distribution project's limit on HOST/REPOSITORY.
_MAX_NAME = 255
_EXAMPLE = "registry.example.com/team/module:v1 or registry.example.com/team/module@sha256:<64 hex>"


class ReferenceError(ValueError):
    """A reference that does not parse; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference. `tag` may be kept beside `digest` for display; the
    digest then decides what is fetched."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def pinned(self) -> bool:
        """Whether it names one manifest for ever (a digest), not a tag."""
        return bool(self.digest)

    @property
    def name(self) -> str:
        """HOST[:PORT]/REPOSITORY, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def manifest_key(self) -> str:
        """What follows /manifests/ in the registry's URL: the digest, else the tag."""
        return self.digest or self.tag

    def at(self, digest: str) -> Reference:
        """The same repository at `digest` (the tag kept for display)."""
        return replace(self, digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """`text` as a Reference; raises ReferenceError naming what is wrong."""
    rest, at, digest = text.strip().partition("@")
    if at and not _DIGEST.fullmatch(digest):
        algorithm = digest.partition(":")[0]
        if ":" in digest and algorithm != "sha256":
            raise ReferenceError(f"{text!r}: only sha256 digests are supported, not {algorithm}")
        raise ReferenceError(f"{text!r}: the digest must be sha256: and 64 lower-case hex digits")
    host, slash, path = rest.partition("/")
    if not slash or not _is_host(host):
        raise ReferenceError(
            f"{text!r} names no registry host: write the host first, as in {_EXAMPLE} "
            f"(Docker Hub is docker.io/...)"
        )
    if not _HOST.fullmatch(host):
        raise ReferenceError(f"{text!r}: {host!r} is not a registry host[:port]")
    repository, tag = path, ""
    # A ':' after the last '/' starts the tag (the host's port is already split off).
    if ":" in path.rpartition("/")[2]:
        repository, _, tag = path.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise ReferenceError(
                f"{text!r}: tag {tag!r} is not a tag: at most 128 letters, digits, '_', '.' "
                f"or '-', not starting with '.' or '-'"
            )
    if not _REPOSITORY.fullmatch(repository):
        raise ReferenceError(
            f"{text!r}: repository {repository!r} is not a repository name: lower-case "
            f"letters and digits, separated by '/', '.', '_' or '-'"
        )
    if len(host) + 1 + len(repository) > _MAX_NAME:
        raise ReferenceError(f"{text!r}: host and repository exceed {_MAX_NAME} characters")
    if not tag and not at:
        raise ReferenceError(
            f"{text!r} names no tag or digest: add :TAG to follow a tag, or @sha256:... to "
            f"pin one version"
        )
    return Reference(host, repository, tag, digest)


def _is_host(component: str) -> bool:
    """Whether the first component of a reference is a registry host."""
    return "." in component or ":" in component or component == "localhost"
