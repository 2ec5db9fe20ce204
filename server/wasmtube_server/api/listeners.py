"""Binding the gRPC server to its addresses: TCP (plain or TLS) and Unix sockets."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import grpc

from ..config import UNIX_PREFIX, Config, split_host_port

__all__ = ["bind_listeners", "server_credentials"]

log = logging.getLogger(__name__)


def server_credentials(config: Config) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files, or None for plaintext."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    try:
        pair = (config.tls_key.read_bytes(), config.tls_cert.read_bytes())
        client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    except OSError as e:
        raise OSError(f"cannot read a TLS file: {e}") from e
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def bind_listeners(server: grpc.Server | grpc.aio.Server, config: Config) -> list[str]:
    """Add every configured address to `server`; return them with real ports.

    TLS applies to TCP addresses. A Unix socket is protected by its file
    permissions (config.socket_mode, whatever the umask) and stays
    plaintext, which is what local callers expect.
    """
    credentials = server_credentials(config)
    bound = []
    for address in config.listen:
        if address.startswith(UNIX_PREFIX):
            _bind_unix_socket(server, address, config.socket_mode)
            bound.append(address)
            continue
        host, _ = split_host_port(address, option="listen")
        try:
            if credentials is not None:
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as e:
            raise RuntimeError(f"cannot listen on {address}: {e}") from e
        bound.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return bound


def _bind_unix_socket(server: grpc.Server | grpc.aio.Server, address: str, mode: int) -> None:
    """Listen on the Unix socket at `address`, with file mode `mode`.

    The socket is created with no permissions at all and only then given
    `mode`, so it is never more open than asked for, even for an instant:
    under a umask of 000 a plain bind would make it writable, so connectable,
    by every local user.
    """
    path = Path(address[len(UNIX_PREFIX) :])
    _clear_stale_socket(path)
    # os.umask is process-wide: this must run while no other thread creates
    # files. The daemon binds at start-up, before the loader, the watcher and
    # the compile cache's writes begin. gRPC binds in add_insecure_port itself.
    previous = os.umask(0o777)
    try:
        port = server.add_insecure_port(address)
    finally:
        os.umask(previous)
    if not port:
        raise RuntimeError(f"cannot listen on {address}")
    os.chmod(path, mode)


def _clear_stale_socket(path: Path) -> None:
    """Remove a socket left behind by a daemon that did not exit cleanly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"cannot listen on unix://{path}: it exists and is not a socket")
    log.info("removing stale socket %s", path)
    path.unlink()
