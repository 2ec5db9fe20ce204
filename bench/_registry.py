"""Debian's docker-registry (the CNCF distribution registry) on a free
loopback port, with filesystem storage in a temporary directory, for a
benchmark. (tests/helpers/registry.py is the tests' fuller version.)"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _daemon import free_port

BINARY = "/usr/bin/docker-registry"


@contextmanager
def registry() -> Iterator[str]:
    """A running registry: its HOST:PORT, plain HTTP."""
    binary = shutil.which("docker-registry") or BINARY
    if not Path(binary).exists():
        raise SystemExit("docker-registry is not installed: apt-get install -y docker-registry")
    host = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "config.yml")
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {tmp}/storage\n"
            f"http:\n  addr: {host}\n  secret: bench\n"
        )
        process = subprocess.Popen([binary, "serve", str(config)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("docker-registry did not start") from None
                    time.sleep(0.02)
            yield host
        finally:
            process.terminate()
            process.wait()
