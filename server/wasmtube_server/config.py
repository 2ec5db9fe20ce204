"""The daemon's configuration: one typed object, built by the CLI or by callers."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BUNDLED_MODULES_DIR",
    "DEFAULT_SEED_OFFSET",
    "INSTANCE_POLICIES",
    "LOG_FORMATS",
    "UNIX_PREFIX",
    "WASM_PAGE",
    "WATCH_MODES",
    "Config",
    "parse_byte_size",
    "parse_pull",
    "split_host_port",
]

# The example modules shipped inside the package (the built wasm_test guest).
BUNDLED_MODULES_DIR = Path(__file__).resolve().parent / "examples"

# Where the seed library wrote its input; seed guests expect exactly this.
DEFAULT_SEED_OFFSET = 42

MIB = 1024 * 1024
# A WebAssembly page: linear memories grow in whole pages.
WASM_PAGE = 65536
INSTANCE_POLICIES = ("fresh", "pooled")
WATCH_MODES = ("auto", "events", "poll")
LOG_FORMATS = ("plain", "json")
UNIX_PREFIX = "unix://"


@dataclass(frozen=True, slots=True)
class Config:
    """Every option of the daemon, with the defaults `wasmtube serve` uses."""

    modules_dir: Path = BUNDLED_MODULES_DIR
    # gRPC addresses: host:port (port 0 picks a free port, see Daemon.port)
    # and/or unix:///path/to.sock. A single string is one address.
    listen: tuple[str, ...] | str = ("127.0.0.1:50051",)
    # Prometheus /metrics address, host:port; None disables the endpoint.
    metrics_listen: str | None = "127.0.0.1:9464"
    # A plaintext host:port serving only grpc.health.v1.Health, for probes
    # that cannot speak TLS (the kubelet's) while `listen` serves TLS; None:
    # health is served on the `listen` addresses only.
    health_listen: str | None = None
    # Offset in linear memory where seed-ABI input is written and output read.
    seed_offset: int = DEFAULT_SEED_OFFSET
    # gRPC worker threads: the most requests handled at once, waiting ones
    # included; one more is refused with RESOURCE_EXHAUSTED.
    max_workers: int = 64
    # Calls of one module that run in parallel, each on its own instance.
    module_concurrency: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    # Calls of one module that may wait for a free instance; one more is refused.
    module_queue: int = 32
    # "pooled": warm instances reused, the bytes the host wrote and read for a
    # call zeroed after it (the guest's own heap and globals stay); "fresh": a
    # new instance per call, so no call sees anything of another's. Fresh
    # costs an instantiation per call (bench/investigate_instance_policy.py).
    instance_policy: str = "pooled"
    # Per-module overrides of instance_policy, by module name.
    module_policies: dict[str, str] = field(default_factory=dict)
    # Warm instances kept per module version between calls (pooled policy).
    max_idle_instances: int = 4
    # The longest a call may run; a caller's shorter gRPC deadline wins.
    call_timeout: float = 10.0
    # Fuel per call; None: no fuel metering (it slows tight loops).
    fuel: int | None = None
    # Cap on each instance's linear memory.
    max_memory: int = 256 * MIB
    # Cap on the elements of each table of an instance (8 bytes each); with
    # max_memory and the counts in sandbox/runtime.py it bounds the whole instance.
    max_table_elements: int = 65536
    # Largest module file (and settings file) the loader reads; a bigger one
    # fails to load, so no file in the directory can make the daemon read
    # without end.
    max_module_size: int = 64 * MIB
    # Offer WASI preview 1 (no files, environment or network) to modules.
    wasi: bool = False
    # Parse every guest output as JSON and answer INTERNAL if it is not. Off by
    # default: it costs a parse of every output, and a guest's output format
    # is the guest's contract. UTF-8 is always
    # checked, since the response field is a protobuf string.
    check_output: bool = False
    # Lines a second each module may write to the log with wasmtube.log
    # (bursts of as many); the rest are dropped and counted.
    guest_log_rate: float = 100.0
    # Quiet time after the last file event before the directory is rescanned.
    reload_debounce: float = 0.05
    # How file changes are noticed: "events" (inotify), "poll", or "auto"
    # (events, falling back to polling where inotify cannot start).
    watch: str = "auto"
    # Seconds between directory scans when polling.
    poll_interval: float = 1.0
    # Where compiled modules are kept across restarts; None: no cache.
    cache_dir: Path | None = None
    # Compiled modules kept in cache_dir; the least recently used beyond it
    # are deleted. Set it above the number of modules, or restarts compile.
    cache_max_entries: int = 4096
    # Modules pulled from OCI registries, each "NAME=REF" with REF
    # HOST[:PORT]/REPOSITORY:TAG (checked every pull_interval seconds) or
    # HOST[:PORT]/REPOSITORY@sha256:HEX (fetched once). A single string is
    # one. With cache_dir, verified modules are kept there, so a restart
    # serves them while the registry is down (modules/oci.py).
    pull: tuple[str, ...] | str = ()
    pull_interval: float = 30.0
    # Longest wait between attempts while a registry keeps failing: the wait
    # doubles from a second up to this.
    pull_backoff_max: float = 300.0
    # Registries (HOST:PORT, or HOST for all its ports) spoken to over plain
    # HTTP: local and test registries. Every other one is HTTPS.
    registry_insecure: tuple[str, ...] | str = ()
    # A Docker config.json with registry credentials (`docker login`'s, or a
    # kubernetes.io/dockerconfigjson Secret's), read again on every pull; a
    # missing file holds none.
    registry_auth: Path | None = None
    # Largest gRPC message accepted or sent.
    max_message_size: int = 64 * MIB
    # Longest the daemon waits for a request message to arrive in full: a
    # Call's request, or a CallStream's next message. Waiting holds no slot.
    receive_timeout: float = 30.0
    # CallStreams open at once in all; one more is refused. A stream holds a
    # stream slot and an instance for its life, and a call slot only while
    # one of its messages runs, so streams never starve unary calls.
    max_streams: int = 32
    # HTTP/2 streams one client connection may have open at once.
    max_connection_streams: int = 100
    # File mode of Unix sockets the daemon listens on.
    socket_mode: int = 0o660
    # Seconds running calls get to finish on shutdown (SIGTERM, SIGINT).
    grace: float = 10.0
    # TLS for TCP listeners: certificate chain and key (PEM files); with
    # tls_client_ca, clients must present a certificate it signed (mutual TLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # A file holding a shared token; calls must send `authorization: Bearer <token>`.
    auth_token_file: Path | None = None
    log_level: str = "info"
    # "plain" lines for people, "json" lines for log pipelines.
    log_format: str = "plain"

    def __post_init__(self) -> None:
        object.__setattr__(self, "modules_dir", Path(self.modules_dir))
        if isinstance(self.listen, str):
            object.__setattr__(self, "listen", (self.listen,))
        for name in ("cache_dir", "tls_cert", "tls_key", "tls_client_ca", "auth_token_file"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        if self.seed_offset < 0:
            raise ValueError(f"seed_offset must be >= 0, got {self.seed_offset}")
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {self.max_workers}")
        if self.module_concurrency < 1:
            raise ValueError(f"module_concurrency must be >= 1, got {self.module_concurrency}")
        if self.module_queue < 0:
            raise ValueError(f"module_queue must be >= 0, got {self.module_queue}")
        if self.call_timeout <= 0:
            raise ValueError(f"call_timeout must be > 0 seconds, got {self.call_timeout}")
        if self.fuel is not None and self.fuel < 1:
            raise ValueError(f"fuel must be >= 1, got {self.fuel}")
        if self.max_memory < WASM_PAGE:
            raise ValueError(f"max_memory must be at least one 64 KiB page, got {self.max_memory}")
        if self.max_idle_instances < 0:
            raise ValueError(f"max_idle_instances must be >= 0, got {self.max_idle_instances}")
        if self.watch not in WATCH_MODES:
            raise ValueError(f"watch must be one of {', '.join(WATCH_MODES)}, got {self.watch!r}")
        if self.poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {self.poll_interval}")
        if self.reload_debounce < 0:
            raise ValueError(f"reload_debounce must be >= 0, got {self.reload_debounce}")
        if self.max_table_elements < 0:
            raise ValueError(f"max_table_elements must be >= 0, got {self.max_table_elements}")
        if self.max_module_size < 8:
            raise ValueError(f"max_module_size must be >= 8 bytes, got {self.max_module_size}")
        if self.receive_timeout <= 0:
            raise ValueError(f"receive_timeout must be > 0 seconds, got {self.receive_timeout}")
        if self.max_streams < 0:
            raise ValueError(f"max_streams must be >= 0, got {self.max_streams}")
        if self.max_connection_streams < 1:
            raise ValueError(
                f"max_connection_streams must be >= 1, got {self.max_connection_streams}"
            )
        if not 0 <= self.socket_mode <= 0o777:
            raise ValueError(
                f"socket_mode must be a file mode such as 0660, got {self.socket_mode:o}"
            )
        if self.max_message_size < 1024:
            raise ValueError(f"max_message_size must be >= 1024, got {self.max_message_size}")
        for name, policy in {"default": self.instance_policy, **self.module_policies}.items():
            if policy not in INSTANCE_POLICIES:
                raise ValueError(
                    f"instance policy for {name} must be one of {', '.join(INSTANCE_POLICIES)}, "
                    f"got {policy!r}"
                )
        if not self.listen:
            raise ValueError("listen needs at least one address")
        for address in self.listen:
            if not address.startswith(UNIX_PREFIX):
                split_host_port(address, option="listen")
            elif len(address) == len(UNIX_PREFIX):
                raise ValueError(f"listen {address!r} names no socket path")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
        if self.grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, got {self.grace}")
        if self.metrics_listen is not None:
            split_host_port(self.metrics_listen, option="metrics_listen")
        for name in ("pull", "registry_insecure"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, (getattr(self, name),))
        if self.registry_auth is not None:
            object.__setattr__(self, "registry_auth", Path(self.registry_auth))
        parse_pull(self.pull)
        if self.pull_interval <= 0:
            raise ValueError(f"pull_interval must be > 0 seconds, got {self.pull_interval}")
        if self.pull_backoff_max <= 0:
            raise ValueError(f"pull_backoff_max must be > 0 seconds, got {self.pull_backoff_max}")
        if self.health_listen is not None:
            split_host_port(self.health_listen, option="health_listen")

    def policy_for(self, module: str) -> str:
        """The instance policy of `module`: its override, else the default."""
        return self.module_policies.get(module, self.instance_policy)


_BYTE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def parse_byte_size(value: int | str) -> int:
    """A size in bytes from `268435456`, `"256MiB"` or `"1GiB"`; ValueError if not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(value))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _BYTE_UNITS:
        raise ValueError(f"{value!r} is not a size: use bytes or a number with KiB, MiB or GiB")
    return int(match.group(1)) * _BYTE_UNITS[unit]


def parse_pull(entries: tuple[str, ...] | str) -> dict[str, str]:
    """Module name -> reference from `pull` entries ("NAME=REF"); ValueError
    naming the entry if one is malformed, or a name is pulled twice."""
    from wasmtube.oci.references import parse_reference

    from .modules.names import is_module_name

    pulls: dict[str, str] = {}
    for entry in (entries,) if isinstance(entries, str) else entries:
        name, sep, reference = entry.partition("=")
        name, reference = name.strip(), reference.strip()
        if not sep or not name or not reference:
            raise ValueError(
                f"pull {entry!r} is not NAME=REF, as in hello=registry.example.com/wasm/hello:v1"
            )
        if not is_module_name(name):
            raise ValueError(f"pull {entry!r}: {name!r} is not a module name (a plain file stem)")
        if name in pulls:
            raise ValueError(f"pull: module {name!r} is pulled twice ({pulls[name]}, {reference})")
        try:
            pulls[name] = str(parse_reference(reference))
        except ValueError as e:
            raise ValueError(f"pull {name}: {e}") from e
    return pulls


def split_host_port(address: str, *, option: str) -> tuple[str, int]:
    """Split `host:port` (IPv6 as `[::1]:port`), naming the option on error."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{option} must be host:port, got {address!r}")
    return host.strip("[]"), int(port)
