"""Third-party tools the tests drive (Node.js, Prometheus, grpcurl, ...).

`.ci/run` installs every one of them and sets WASMTUBE_CI=1, so in CI a
missing tool fails the test that needs it. Elsewhere it is a skip whose
reason is the command that installs it: never a silent pass.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["in_ci", "require_tool"]


def in_ci() -> bool:
    """Whether the tests run under .ci/run, which installs every tool."""
    return os.environ.get("WASMTUBE_CI") == "1"


def require_tool(name: str, install: str, *, candidates: tuple[str, ...] = ()) -> str:
    """The path of executable `name` (or of the first of `candidates` that
    exists); fails in CI and skips elsewhere when there is none, with
    `install` as the way to get it."""
    for candidate in (*candidates, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = f"{name} is not installed: {install}"
    if in_ci():
        pytest.fail(f"{message} (.ci/run must install it)", pytrace=False)
    pytest.skip(message)
