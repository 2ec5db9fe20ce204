"""Running the `wasmtube` CLI as a user would: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["WASMTUBE", "run"]

WASMTUBE = [sys.executable, "-m", "wasmtube.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`wasmtube ARGS`, its output captured."""
    return subprocess.run(
        [*WASMTUBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
