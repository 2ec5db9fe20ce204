"""The daemon's configuration: one typed object, built by the CLI or by callers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUNDLED_MODULES_DIR", "DEFAULT_SEED_OFFSET", "Config", "split_host_port"]

# The example modules shipped inside the package (the built wasm_test guest).
BUNDLED_MODULES_DIR = Path(__file__).resolve().parent / "examples"

# Where the seed library wrote its input; seed guests expect exactly this.
DEFAULT_SEED_OFFSET = 42

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Config:
    """Every option of the daemon, with the defaults `wasmtube serve` uses."""

    modules_dir: Path = BUNDLED_MODULES_DIR
    # gRPC address, host:port. Port 0 picks a free port (see Daemon.port).
    listen: str = "127.0.0.1:50051"
    # Prometheus /metrics address, host:port; None disables the endpoint.
    metrics_listen: str | None = "127.0.0.1:9464"
    # Offset in linear memory where seed-ABI input is written and output read.
    seed_offset: int = DEFAULT_SEED_OFFSET
    # gRPC worker threads: the most calls that run at once.
    max_workers: int = 16
    # Warm instances kept per module version between calls.
    max_idle_instances: int = 4
    # Quiet time after the last file event before the directory is rescanned.
    reload_debounce: float = 0.1
    # Largest gRPC message accepted or sent.
    max_message_size: int = 64 * MIB
    # Seconds running calls get to finish on shutdown.
    grace: float = 5.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        object.__setattr__(self, "modules_dir", Path(self.modules_dir))
        if self.seed_offset < 0:
            raise ValueError(f"seed_offset must be >= 0, got {self.seed_offset}")
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {self.max_workers}")
        if self.max_idle_instances < 0:
            raise ValueError(f"max_idle_instances must be >= 0, got {self.max_idle_instances}")
        if self.reload_debounce < 0:
            raise ValueError(f"reload_debounce must be >= 0, got {self.reload_debounce}")
        if self.max_message_size < 1024:
            raise ValueError(f"max_message_size must be >= 1024, got {self.max_message_size}")
        split_host_port(self.listen, option="listen")
        if self.metrics_listen is not None:
            split_host_port(self.metrics_listen, option="metrics_listen")


def split_host_port(address: str, *, option: str) -> tuple[str, int]:
    """Split `host:port` (IPv6 as `[::1]:port`), naming the option on error."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{option} must be host:port, got {address!r}")
    return host.strip("[]"), int(port)
