"""A bearer-token server for docker-registry's `token` auth: the flow Docker
Hub, GHCR, Harbor and the other public registries use, run offline.

The registry answers 401 with `WWW-Authenticate: Bearer realm=...,
service=..., scope=...`; a client asks the realm for a token (with its user
and password as Basic auth), gets a JWT, and sends it as `Authorization:
Bearer`. The registry trusts tokens signed by the key of the certificate in
its `rootcertbundle` and carrying that certificate in their `x5c` header:
this server makes the key and the self-signed certificate, and signs ES256
tokens granting the asked-for scope to users whose password matches, for
`lifetime` seconds. It counts the tokens it issues.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

__all__ = ["TokenServer", "token_server"]

SERVICE = "wasmtube-test-registry"
ISSUER = "wasmtube-test-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    users: dict[str, str]
    lifetime: int
    root_cert: Path
    realm: str = ""
    issued: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    def registry_auth_config(self) -> list[str]:
        """The lines of docker-registry's config.yml that trust this server."""
        return [
            "auth:",
            "  token:",
            f"    realm: {self.realm}",
            f"    service: {SERVICE}",
            f"    issuer: {ISSUER}",
            f"    rootcertbundle: {self.root_cert}",
        ]


class _Keys:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wasmtube test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def token(self, claims: dict[str, Any]) -> str:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64url(signature)}"


@contextmanager
def token_server(
    directory: Path, users: dict[str, str], lifetime: int = 300
) -> Iterator[TokenServer]:
    """A token server on a free loopback port, for the life of the block."""
    keys = _Keys()
    root_cert = directory / "token-root.pem"
    root_cert.write_bytes(keys.cert.public_bytes(serialization.Encoding.PEM))
    server_state = TokenServer(dict(users), lifetime, root_cert)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            user = self._user()
            if url.path != "/token" or user is None:
                server_state.refused += 1
                self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]})
                return
            access = []
            for scope in query.get("scope", []):
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            claims = {
                "iss": ISSUER,
                "sub": user,
                "aud": query.get("service", [""])[0],
                "exp": now + server_state.lifetime,
                "nbf": now - 5,
                "iat": now,
                "jti": secrets.token_hex(8),
                "access": access,
            }
            server_state.issued.append(claims)
            token = keys.token(claims)
            self._answer(200, {"token": token, "access_token": token, "expires_in": lifetime})

        def _user(self) -> str | None:
            header = self.headers.get("Authorization", "")
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                return None
            user, _, password = base64.b64decode(value).decode().partition(":")
            return user if users.get(user) == password else None

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.realm = f"http://127.0.0.1:{server.server_port}/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()
