"""wasmtube's daemon: serve sandboxed WebAssembly functions over gRPC."""

from .app import Daemon, run
from .config import BUNDLED_MODULES_DIR, Config

__all__ = ["BUNDLED_MODULES_DIR", "Config", "Daemon", "run"]
