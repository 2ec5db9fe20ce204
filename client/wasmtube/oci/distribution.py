"""Talking to an OCI registry: push a module, resolve a reference, fetch a module.

The protocol is oras-py's (`oras.provider.Registry`): its requests session,
its blob upload, its bearer-token flow (`oras.auth.token.TokenAuth`). Three
things are changed, each for a reason measured or read in its code:

- `do_request` is replaced: oras-py retries every failed request five times,
  sleeping 3, 5, 11, 29 and 83 s in between (131 s before a refused
  connection is reported), with no timeout on any request. A puller must
  report at once and back off on its own schedule, and its thread must never
  hang on a silent peer, so here one request is one attempt, and every
  request of the session (the token's too) has a timeout.
- Authentication answers the scheme the registry challenges with: Basic
  (htpasswd-protected registries, what `registry:2` and Zot do with users;
  ECR) gets the user and password; Bearer (Docker Hub, GHCR, Harbor, Quay,
  Artifact Registry) goes through oras-py's token flow, and
  asks for a new token on every challenge, so an expired token or one for
  another scope is replaced rather than sent again.
- Credentials come only from the file given (--registry-auth), read again
  before each operation, so a rotated Kubernetes Secret is used without a
  restart; never from the daemon user's ~/.docker.

Every byte that leaves here is verified: a manifest fetched by digest must
hash to that digest, a layer must have exactly the size and the sha256 its
manifest gives. Failures are RegistryError, whose `reason` is a short label
for metrics and whose message says what to do.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.auth.token
import oras.container
import oras.provider
import requests
import requests.adapters
import urllib3.exceptions

from .artifact import OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, Artifact, Descriptor
from .credentials import Credentials, CredentialsError, credentials_for
from .references import Reference

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_MANIFEST_SIZE",
    "REASONS",
    "RegistryClient",
    "RegistryError",
    "Resolved",
]

# oras-py logs, at error level and on its own terms, failures it also hands
# back; RegistryError reports each one once, with what to do about it.
logging.getLogger("oras").setLevel(logging.CRITICAL)

# (connect, read) seconds for every request: a read timeout is the longest
# silence between two packets, not a cap on a whole download.
DEFAULT_TIMEOUT = (10.0, 30.0)
# What registries accept at most for a manifest (the OCI distribution spec's
# recommendation); a bigger answer is no manifest.
MAX_MANIFEST_SIZE = 4 << 20
_CHUNK = 1 << 16
# The labels a RegistryError's reason takes (the pull metric's results).
REASONS = (
    "unreachable",
    "tls",
    "unauthorized",
    "not_found",
    "refused",
    "digest_mismatch",
    "bad_artifact",
    "too_large",
    "credentials",
)
# Manifest types asked for: an image or an index is fetched too, so that the
# error can say that is what the reference names.
_ACCEPT = ", ".join(
    (
        OCI_MANIFEST_MEDIA_TYPE,
        OCI_INDEX_MEDIA_TYPE,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_SSL = re.compile(r"\[SSL: [A-Z_]+\] ([^(]+?) \(")


class RegistryError(Exception):
    """A registry operation that failed; `reason` is one of REASONS."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a reference names now: a manifest digest, and the manifest's
    bytes when resolving had to fetch them anyway."""

    digest: str
    manifest: bytes | None = None


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Gives every request of the session a timeout, oras-py's own included."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self._timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=self._timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


class _ChallengeAuth(oras.auth.token.TokenAuth):  # type: ignore[misc]
    """oras-py's token auth, answering a Basic challenge too (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.credentials: Credentials | None = None
        # Set once the registry asked for Basic: later requests send it at once.
        self.basic_confirmed = False

    def use(self, credentials: Credentials | None) -> None:
        """Answer challenges with `credentials` from now on."""
        if credentials == self.credentials:
            return
        self.credentials = credentials
        self.token = None
        self.basic_confirmed = False
        if credentials is None:
            # oras-py asks for an anonymous token when there is no _basic_auth.
            self.__dict__.pop("_basic_auth", None)
        else:
            self._basic_auth: str = credentials.basic

    def load_configs(self, container: Any, configs: list[str] | None = None) -> None:
        """Never read ~/.docker/config.json: credentials come from use()."""

    def header(self) -> dict[str, str]:
        """The Authorization header to send before being asked, if any."""
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.basic_confirmed and self.credentials is not None:
            return {"Authorization": f"Basic {self.credentials.basic}"}
        return {}

    def authenticate_request(
        self, original: requests.Response, headers: dict[str, str], refresh: bool = False
    ) -> tuple[dict[str, str], bool]:
        """Headers answering the challenge of `original`, and whether to retry."""
        challenge = original.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        headers = dict(headers or {})
        if scheme == "basic":
            if self.credentials is None:
                return headers, False
            self.basic_confirmed = True
            headers["Authorization"] = f"Basic {self.credentials.basic}"
            return headers, True
        if scheme == "bearer":
            result: tuple[dict[str, str], bool] = super().authenticate_request(
                original, headers, refresh=True
            )
            return result
        return headers, False


class _Registry(oras.provider.Registry):  # type: ignore[misc]
    """oras-py's Registry with one attempt per request (see the module docstring)."""

    def __init__(self, insecure: bool, timeout: tuple[float, float]) -> None:
        super().__init__(insecure=insecure)
        adapter = _TimeoutAdapter(timeout)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.auth = _ChallengeAuth()
        self.auth.session = self.session
        self.auth.prefix = self.prefix
        self.auth._tls_verify = self._tls_verify
        self.last_response: requests.Response | None = None

    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        headers = {**(headers or {}), **self.auth.header()}
        response = self._send(method, url, data, headers, json, stream)
        if response.status_code == 401:
            retry_headers, retry = self.auth.authenticate_request(response, headers)
            if retry:
                response.close()
                response = self._send(method, url, data, retry_headers, json, stream)
        self.last_response = response
        return response

    def _send(
        self,
        method: str,
        url: str,
        data: dict[str, Any] | bytes | None,
        headers: dict[str, str],
        json: dict[str, Any] | None,
        stream: bool,
    ) -> requests.Response:
        return self.session.request(
            method,
            url,
            data=data,
            json=json,
            headers=headers,
            stream=stream,
            verify=self._tls_verify,
        )


class RegistryClient:
    """One repository of one registry, for one puller or one push.

    Not thread-safe: each user has its own (its token is for its repository).
    Error messages name what failed (the tag, a digest) but not the
    repository: the caller says which reference it was working on.
    """

    def __init__(
        self,
        reference: Reference,
        *,
        insecure: bool = False,
        credentials_file: Path | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.reference = reference
        self._credentials_file = credentials_file
        self._registry = _Registry(insecure, timeout)
        self._base = f"{self._registry.prefix}://{reference.registry}/v2/{reference.repository}"

    def close(self) -> None:
        self._registry.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pulling -----------------------------------------------------------

    def resolve(self) -> Resolved:
        """The manifest digest the reference names now; a digest names itself."""
        reference = self.reference
        if reference.pinned:
            return Resolved(reference.digest)
        what = f"tag {reference.tag}"
        response = self._request("HEAD", f"/manifests/{reference.tag}", what, {"Accept": _ACCEPT})
        self._check(response, what)
        digest = response.headers.get("Docker-Content-Digest", "")
        if _SHA256.fullmatch(digest):
            return Resolved(digest)
        # A registry that does not say: the manifest itself tells.
        manifest = self._manifest_bytes(reference.tag, what)
        return Resolved(_sha256(manifest), manifest)

    def manifest(self, digest: str) -> bytes:
        """The manifest with `digest`, checked against it."""
        manifest = self._manifest_bytes(digest, f"manifest {digest}")
        actual = _sha256(manifest)
        if actual != digest:
            raise RegistryError(
                f"the registry {self.reference.registry} sent a manifest for {digest} whose "
                f"digest is {actual}: refused",
                "digest_mismatch",
            )
        return manifest

    def fetch(self, layer: Descriptor, limit: int, limit_name: str) -> bytes:
        """The blob `layer` describes, exactly `layer.size` bytes hashing to
        `layer.digest`; raises RegistryError otherwise or past `limit` bytes
        (named `limit_name` in the error)."""
        if layer.size > limit:
            raise RegistryError(
                f"layer {layer.digest} is {layer.size} bytes, over {limit_name}", "too_large"
            )
        what = f"layer {layer.digest}"
        response = self._request("GET", f"/blobs/{layer.digest}", what, stream=True)
        with response:
            self._check(response, what)
            hasher = hashlib.sha256()
            chunks: list[bytes] = []
            received = 0
            try:
                for chunk in response.iter_content(_CHUNK):
                    received += len(chunk)
                    if received > layer.size:
                        raise RegistryError(
                            f"the registry {self.reference.registry} sent more than the "
                            f"{layer.size} bytes the manifest gives for layer {layer.digest}: "
                            f"refused",
                            "digest_mismatch",
                        )
                    hasher.update(chunk)
                    chunks.append(chunk)
            except requests.RequestException as e:
                raise RegistryError(
                    f"the download of layer {layer.digest} from {self.reference.registry} "
                    f"broke off after {received} of {layer.size} bytes: {_cause(e)}",
                    "unreachable",
                ) from e
        if received != layer.size:
            raise RegistryError(
                f"the registry {self.reference.registry} sent {received} bytes for layer "
                f"{layer.digest}, whose manifest gives {layer.size}: refused",
                "digest_mismatch",
            )
        actual = f"sha256:{hasher.hexdigest()}"
        if actual != layer.digest:
            raise RegistryError(
                f"the registry {self.reference.registry} sent bytes for layer {layer.digest} "
                f"whose digest is {actual}: refused, never served",
                "digest_mismatch",
            )
        return b"".join(chunks)

    # -- pushing -----------------------------------------------------------

    def push(self, artifact: Artifact) -> str:
        """Upload `artifact` under the reference's tag; its manifest digest."""
        reference = self.reference
        if not reference.tag or reference.pinned:
            raise RegistryError(
                f"push to {reference}: give a tag (HOST/REPOSITORY:TAG), not a digest; the "
                f"digest is printed once pushed",
                "refused",
            )
        self._authenticate()
        container = self._container()
        with tempfile.TemporaryDirectory(prefix="wasmtube-push-") as tmp:
            for data, descriptor in (
                (artifact.wasm, artifact.layer),
                (artifact.config, artifact.config_descriptor),
            ):
                path = Path(tmp, descriptor.hex)
                path.write_bytes(data)
                what = f"upload of {descriptor.media_type} blob {descriptor.digest}"
                try:
                    response = self._registry.upload_blob(
                        str(path), container, descriptor.to_json()
                    )
                except requests.RequestException as e:
                    raise self._network_error(e) from e
                except ValueError as e:
                    # oras-py's message when the registry gives no upload URL:
                    # the response that refused it tells more.
                    refused = self._registry.last_response
                    if refused is not None:
                        self._check(refused, what)
                    raise RegistryError(f"{what}: {e}", "refused") from e
                self._check(response, what)
        what = f"upload of the manifest to tag {reference.tag}"
        response = self._request(
            "PUT",
            f"/manifests/{reference.tag}",
            what,
            {"Content-Type": OCI_MANIFEST_MEDIA_TYPE},
            data=artifact.manifest,
        )
        self._check(response, what)
        returned = response.headers.get("Docker-Content-Digest", artifact.digest)
        if returned != artifact.digest:
            raise RegistryError(
                f"the registry {reference.registry} stored the manifest as {returned}, not "
                f"{artifact.digest}: it changed what was pushed",
                "digest_mismatch",
            )
        return artifact.digest

    # -- the requests ------------------------------------------------------

    def _authenticate(self) -> None:
        """Read the credentials file again: a rotated Secret counts at once."""
        credentials = None
        if self._credentials_file is not None:
            try:
                credentials = credentials_for(self._credentials_file, self.reference.registry)
            except CredentialsError as e:
                raise RegistryError(str(e), "credentials") from e
        self._registry.auth.use(credentials)

    def _manifest_bytes(self, key: str, what: str) -> bytes:
        response = self._request("GET", f"/manifests/{key}", what, {"Accept": _ACCEPT}, stream=True)
        with response:
            self._check(response, what)
            try:
                data = response.raw.read(MAX_MANIFEST_SIZE + 1, decode_content=True)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                raise RegistryError(
                    f"{what}: the answer broke off: {_cause(e)}", "unreachable"
                ) from e
        if len(data) > MAX_MANIFEST_SIZE:
            raise RegistryError(
                f"{what}: the answer is over {MAX_MANIFEST_SIZE >> 20} MiB, no manifest",
                "bad_artifact",
            )
        return bytes(data)

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        *,
        data: bytes | None = None,
        stream: bool = False,
    ) -> requests.Response:
        self._authenticate()
        try:
            response: requests.Response = self._registry.do_request(
                self._base + path, method, data=data, headers=dict(headers or {}), stream=stream
            )
        except requests.RequestException as e:
            raise self._network_error(e) from e
        return response

    def _network_error(self, error: requests.RequestException) -> RegistryError:
        registry = self.reference.registry
        if isinstance(error, requests.exceptions.SSLError):
            return RegistryError(
                f"TLS with the registry {registry} failed ({_cause(error)}); if it serves plain "
                f"HTTP, say so: wasmtube serve --registry-insecure {registry}, or wasmtube "
                f"push --insecure",
                "tls",
            )
        return RegistryError(
            f"cannot reach the registry {registry}: {_cause(error)}", "unreachable"
        )

    def _check(self, response: requests.Response, what: str) -> None:
        status = response.status_code
        if status < 300:
            return
        registry = self.reference.registry
        detail = _oci_errors(response)
        credentials = self._registry.auth.credentials
        if status == 401:
            if credentials is None:
                where = (
                    f"{self._credentials_file} has no entry for {registry}"
                    if self._credentials_file is not None
                    else "none were given"
                )
                message = (
                    f"{what}: the registry {registry} needs credentials and {where}: give "
                    f"--registry-auth FILE, a Docker config.json (docker login's, or a "
                    f"kubernetes.io/dockerconfigjson Secret's) with an entry for {registry}"
                )
            else:
                message = (
                    f"{what}: the registry {registry} refused the credentials of user "
                    f"{credentials.username!r} from {self._credentials_file}{detail}"
                )
            raise RegistryError(message, "unauthorized")
        if status == 403:
            user = f"user {credentials.username!r}" if credentials else "anonymous pulls"
            raise RegistryError(
                f"{what}: the registry {registry} denies it to {user}{detail}", "unauthorized"
            )
        if status == 404:
            detail = detail or " (no such repository, tag or digest)"
            raise RegistryError(f"{what}: not found{detail}", "not_found")
        raise RegistryError(
            f"{what}: the registry {registry} answered HTTP {status} {response.reason}{detail}",
            "refused",
        )

    def _container(self) -> oras.container.Container:
        """The reference as oras-py's Container, its parts set as parsed here
        (oras-py's own parser takes a first component with a '.' for a host)."""
        reference = self.reference
        container = oras.container.Container(f"x:{reference.tag}", registry=reference.registry)
        container.registry = reference.registry
        container.namespace = None
        container.repository = reference.repository
        return container


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _oci_errors(response: requests.Response) -> str:
    """The registry's own words: `(CODE: message; ...)` from an OCI error body."""
    try:
        errors = response.json().get("errors", [])
        parts = [
            f"{e.get('code', '?')}: {e.get('message', '')}".strip()
            for e in errors
            if isinstance(e, dict)
        ]
    except (ValueError, AttributeError, requests.RequestException):
        return ""
    return f" ({'; '.join(parts)})" if parts else ""


def _cause(error: BaseException) -> str:
    """The useful end of a requests error: `connection refused`, `timed out`, ..."""
    text = str(error)
    match = _ERRNO.search(text) or _SSL.search(text)
    if match:
        return match.group(1).strip().lower()
    if isinstance(error, requests.exceptions.Timeout):
        return "timed out"
    return text.split(" (Caused by ")[-1].strip("()") if "Caused by" in text else text
