"""`wasmtube serve`: a thin click layer over `run(Config(...))`.

Each option's parameter name is the Config field it sets, and its default is
that field's default, so Config stays the one place options are defined.
Only click and config.py are imported at module level: `wasmtube call` loads
this file to build its command group and must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .config import INSTANCE_POLICIES, LOG_FORMATS, WATCH_MODES, Config, parse_byte_size

__all__ = ["serve"]

_F = TypeVar("_F", bound=Callable[..., Any])
DEFAULTS = Config()
LOG_LEVELS = ("debug", "info", "warning", "error")


class ByteSize(click.ParamType):
    """A size in bytes, such as `268435456`, `256MiB` or `1GiB`."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_byte_size(value)
        except ValueError as e:
            self.fail(str(e))


class OctalMode(click.ParamType):
    """A file mode in octal, such as `660` or `0o660`."""

    name = "mode"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip().lower().removeprefix("0o")
        try:
            mode = int(text, 8)
        except ValueError:
            self.fail(f"{value!r} is not an octal file mode such as 0660")
        if not 0 <= mode <= 0o777:
            self.fail(f"{value!r} is not a file mode: use 0 to 0777")
        return mode


def _option(name: str, envvar: str, help: str, **kwargs: Any) -> Callable[[_F], _F]:
    """An option that can also be set as the environment variable `envvar`."""
    field = name.split("/")[0].lstrip("-").replace("-", "_")  # "--wasi/--no-wasi": wasi
    kwargs.setdefault("default", getattr(DEFAULTS, field, None))
    kwargs.setdefault("show_default", True)
    return click.option(name, envvar=envvar, show_envvar=True, help=help, **kwargs)


@click.command()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="WASMTUBE_CONFIG",
    show_envvar=True,
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, param, value: _load_toml(ctx, value),
    help='TOML file of options, named as the flags are (listen = ["127.0.0.1:50051"], '
    "call-timeout = 5, ...); flags and environment variables override it.",
)
@_option(
    "--modules",
    "WASMTUBE_MODULES",
    "Directory of *.wasm modules to serve and watch.",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="the bundled example modules",
)
@_option(
    "--listen",
    "WASMTUBE_LISTEN",
    "gRPC address: host:port or unix:///path/to.sock; repeat to listen on several "
    "(in the environment variable, separate them with spaces).",
    multiple=True,
    show_default="127.0.0.1:50051",
)
@_option(
    "--metrics-listen",
    "WASMTUBE_METRICS_LISTEN",
    "Prometheus /metrics address, host:port; 'off' disables it.",
)
@_option(
    "--health-listen",
    "WASMTUBE_HEALTH_LISTEN",
    "Plaintext host:port serving only the gRPC health service, for probes while "
    "--listen serves TLS.",
    show_default="off",
)
@_option(
    "--call-timeout",
    "WASMTUBE_CALL_TIMEOUT",
    "Longest a call may run, in seconds; a caller's shorter gRPC deadline wins.",
    type=click.FloatRange(min=0, min_open=True),
)
@_option(
    "--fuel",
    "WASMTUBE_FUEL",
    "Fuel (about one unit per wasm instruction) per call; unset: no metering.",
    type=click.IntRange(min=1),
    show_default="off",
)
@_option(
    "--max-memory",
    "WASMTUBE_MAX_MEMORY",
    "Cap on each instance's linear memory.",
    type=ByteSize(),
    show_default="256MiB",
)
@_option(
    "--max-table-elements",
    "WASMTUBE_MAX_TABLE_ELEMENTS",
    "Cap on the elements of each table of an instance (8 bytes each).",
    type=click.IntRange(min=0),
)
@_option(
    "--max-module-size",
    "WASMTUBE_MAX_MODULE_SIZE",
    "Largest module file the daemon reads; a bigger one fails to load.",
    type=ByteSize(),
    show_default="64MiB",
)
@_option(
    "--instance-policy",
    "WASMTUBE_INSTANCE_POLICY",
    "fresh: a new instance per call; pooled: warm instances reused.",
    type=click.Choice(INSTANCE_POLICIES),
)
@_option(
    "--module-policy",
    "WASMTUBE_MODULE_POLICY",
    "Instance policy of one module, as NAME=fresh or NAME=pooled; repeatable.",
    multiple=True,
    default=(),
    show_default=False,
    metavar="NAME=POLICY",
)
@_option(
    "--module-concurrency",
    "WASMTUBE_MODULE_CONCURRENCY",
    "Calls of one module that run at once.",
    type=click.IntRange(min=1),
    show_default="the number of CPUs, at least 2",
)
@_option(
    "--module-queue",
    "WASMTUBE_MODULE_QUEUE",
    "Calls of one module that may wait; one more gets RESOURCE_EXHAUSTED.",
    type=click.IntRange(min=0),
)
@_option(
    "--max-workers",
    "WASMTUBE_MAX_WORKERS",
    "Requests handled at once in all; one more gets RESOURCE_EXHAUSTED.",
    type=click.IntRange(min=1),
)
@_option(
    "--max-message-size",
    "WASMTUBE_MAX_MESSAGE_SIZE",
    "Largest gRPC request or response.",
    type=ByteSize(),
    show_default="64MiB",
)
@_option(
    "--receive-timeout",
    "WASMTUBE_RECEIVE_TIMEOUT",
    "Seconds the daemon waits for a request message to arrive in full (a Call's request, "
    "a stream's next message); then the RPC ends with DEADLINE_EXCEEDED.",
    type=click.FloatRange(min=0, min_open=True),
)
@_option(
    "--max-streams",
    "WASMTUBE_MAX_STREAMS",
    "CallStreams open at once; one more gets RESOURCE_EXHAUSTED.",
    type=click.IntRange(min=0),
)
@_option(
    "--max-connection-streams",
    "WASMTUBE_MAX_CONNECTION_STREAMS",
    "HTTP/2 streams one client connection may have open at once.",
    type=click.IntRange(min=1),
)
@_option(
    "--socket-mode",
    "WASMTUBE_SOCKET_MODE",
    "File mode of Unix sockets, in octal.",
    type=OctalMode(),
    show_default="0660",
)
@_option(
    "--wasi/--no-wasi",
    "WASMTUBE_WASI",
    "Offer WASI preview 1 to modules: no files, no environment, no network.",
)
@_option(
    "--check-output/--no-check-output",
    "WASMTUBE_CHECK_OUTPUT",
    "Check that every guest output is JSON (INTERNAL if not); costs a parse of each output.",
)
@_option(
    "--guest-log-rate",
    "WASMTUBE_GUEST_LOG_RATE",
    "Lines a second each module may log with wasmtube.log; the rest are dropped and counted.",
    type=click.FloatRange(min=0, min_open=True),
)
@_option(
    "--seed-offset",
    "WASMTUBE_SEED_OFFSET",
    "Linear-memory offset where seed-ABI input is written.",
    type=click.IntRange(min=0),
)
@_option(
    "--reload-debounce",
    "WASMTUBE_RELOAD_DEBOUNCE",
    "Seconds of quiet after a file event before modules are reloaded.",
    type=click.FloatRange(min=0),
)
@_option(
    "--watch",
    "WASMTUBE_WATCH",
    "How file changes are noticed: events (inotify), poll (NFS, EFS, volumes without "
    "inotify), or auto (events, else poll).",
    type=click.Choice(WATCH_MODES),
)
@_option(
    "--poll-interval",
    "WASMTUBE_POLL_INTERVAL",
    "Seconds between directory scans when polling.",
    type=click.FloatRange(min=0, min_open=True),
)
@_option(
    "--cache-dir",
    "WASMTUBE_CACHE_DIR",
    "Directory for compiled modules, so restarts skip compiling; unset: no cache.",
    type=click.Path(file_okay=False, path_type=Path),
    show_default="off",
)
@_option(
    "--cache-max-entries",
    "WASMTUBE_CACHE_MAX_ENTRIES",
    "Compiled modules kept in --cache-dir; keep it above the number of modules.",
    type=click.IntRange(min=1),
)
@_option(
    "--pull",
    "WASMTUBE_PULL",
    "Serve module NAME from an OCI registry: REF is HOST[:PORT]/REPOSITORY:TAG (checked every "
    "--pull-interval) or HOST[:PORT]/REPOSITORY@sha256:HEX (pinned); repeatable (in the "
    "environment variable, separate them with spaces). With --cache-dir, pulled modules "
    "survive restarts while the registry is down.",
    multiple=True,
    show_default=False,
    metavar="NAME=REF",
)
@_option(
    "--pull-interval",
    "WASMTUBE_PULL_INTERVAL",
    "Seconds between checks of a pulled tag for a new digest.",
    type=click.FloatRange(min=0, min_open=True),
)
@_option(
    "--pull-backoff-max",
    "WASMTUBE_PULL_BACKOFF_MAX",
    "Longest wait, in seconds, between pull attempts while a registry keeps failing.",
    type=click.FloatRange(min=0, min_open=True),
)
@_option(
    "--registry-insecure",
    "WASMTUBE_REGISTRY_INSECURE",
    "Use plain HTTP for this registry, HOST:PORT (or HOST, for every port); repeatable. "
    "Every other registry is HTTPS.",
    multiple=True,
    show_default=False,
    metavar="HOST[:PORT]",
)
@_option(
    "--registry-auth",
    "WASMTUBE_REGISTRY_AUTH",
    "Registry credentials: a Docker config.json (what docker login writes, or a "
    "kubernetes.io/dockerconfigjson Secret's .dockerconfigjson), read again on every pull.",
    type=click.Path(dir_okay=False, path_type=Path),
    show_default="none",
)
@_option(
    "--grace",
    "WASMTUBE_GRACE",
    "Seconds running calls get to finish after SIGTERM or SIGINT; new calls are refused.",
    type=click.FloatRange(min=0),
)
@_option(
    "--tls-cert",
    "WASMTUBE_TLS_CERT",
    "PEM certificate chain: serve TLS on TCP addresses (with --tls-key).",
    type=click.Path(dir_okay=False, path_type=Path),
    show_default="off",
)
@_option(
    "--tls-key",
    "WASMTUBE_TLS_KEY",
    "PEM private key of --tls-cert.",
    type=click.Path(dir_okay=False, path_type=Path),
    show_default="off",
)
@_option(
    "--tls-client-ca",
    "WASMTUBE_TLS_CLIENT_CA",
    "PEM CA certificates: require client certificates they signed (mutual TLS).",
    type=click.Path(dir_okay=False, path_type=Path),
    show_default="off",
)
@_option(
    "--auth-token-file",
    "WASMTUBE_AUTH_TOKEN_FILE",
    "File holding a shared token: calls must send 'authorization: Bearer <token>' "
    "(health checks need none).",
    type=click.Path(dir_okay=False, path_type=Path),
    show_default="off",
)
@_option(
    "--log-format",
    "WASMTUBE_LOG_FORMAT",
    "plain lines, or json lines for log pipelines.",
    type=click.Choice(LOG_FORMATS),
)
@_option(
    "--log-level",
    "WASMTUBE_LOG_LEVEL",
    "How much to log.",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
)
def serve(
    modules: Path | None,
    listen: tuple[str, ...],
    metrics_listen: str,
    module_policy: tuple[str, ...],
    **options: Any,
) -> None:
    """Serve the modules in a directory over gRPC, reloading them as files change.

    Options come from flags, then WASMTUBE_* environment variables, then the
    --config TOML file, then the defaults shown.
    """
    from .app import run
    from .config import BUNDLED_MODULES_DIR
    from .logs import configure_logging

    configure_logging(options["log_level"], options["log_format"])
    try:
        config = Config(
            modules_dir=modules or BUNDLED_MODULES_DIR,
            listen=listen or DEFAULTS.listen,
            metrics_listen=None if metrics_listen == "off" else metrics_listen,
            module_policies=_module_policies(module_policy),
            **options,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    try:
        run(config)
    except (OSError, RuntimeError) as e:
        # A taken port or a missing directory: say which, without a traceback.
        raise click.ClickException(str(e)) from e


def _load_toml(ctx: click.Context, path: Path | None) -> None:
    """Make the TOML file's values the defaults of this run's options."""
    if path is None:
        return
    import tomllib

    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise click.BadParameter(f"{path}: {e}", ctx=ctx, param_hint="--config") from e
    command = ctx.command
    known = {p.name: p for p in command.params if p.name and p.expose_value}
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise click.BadParameter(
                f"{path}: unknown option {key!r}; see wasmtube serve --help",
                ctx=ctx,
                param_hint="--config",
            )
        if known[name].multiple and isinstance(value, str):
            value = [value]  # `listen = "host:port"` means one address
        defaults[name] = value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def _module_policies(values: tuple[str, ...]) -> dict[str, str]:
    policies = {}
    for value in values:
        name, sep, policy = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not NAME=POLICY", param_hint="--module-policy")
        policies[name] = policy
    return policies
