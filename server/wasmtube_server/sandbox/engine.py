"""The one wasmtime Engine a daemon compiles and runs every module with."""

from __future__ import annotations

import wasmtime

__all__ = ["make_engine"]


def make_engine() -> wasmtime.Engine:
    """An Engine shared by all modules and threads (wasmtime allows both)."""
    config = wasmtime.Config()
    # Compile every module at the same optimisation level, so a module's
    # behaviour never depends on which daemon version compiled it.
    config.cranelift_opt_level = "speed"
    return wasmtime.Engine(config)
