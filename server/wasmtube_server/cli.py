"""`wasmtube serve`: a thin click layer over `run(Config(...))`.

Only click is imported at module level: `wasmtube call` loads this file to
build its command group and must stay fast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

# config.py imports nothing heavy; its defaults are the only defaults.
from .config import Config

_F = TypeVar("_F", bound=Callable[..., object])
DEFAULTS = Config()

__all__ = ["serve"]

LOG_LEVELS = ("debug", "info", "warning", "error")


def _option(*names: str, envvar: str, **kwargs: object) -> Callable[[_F], _F]:
    """A click option that can also be set as the environment variable `envvar`."""
    return click.option(*names, envvar=envvar, show_envvar=True, **kwargs)  # type: ignore[call-overload]


@click.command()
@_option(
    "--modules",
    "modules_dir",
    envvar="WASMTUBE_MODULES",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="the bundled example modules",
    help="Directory of *.wasm modules to serve and watch.",
)
@_option(
    "--listen",
    envvar="WASMTUBE_LISTEN",
    default=DEFAULTS.listen,
    show_default=True,
    help="gRPC address, host:port.",
)
@_option(
    "--metrics-listen",
    envvar="WASMTUBE_METRICS_LISTEN",
    default=DEFAULTS.metrics_listen,
    show_default=True,
    help="Prometheus /metrics address, host:port; 'off' disables it.",
)
@_option(
    "--seed-offset",
    envvar="WASMTUBE_SEED_OFFSET",
    default=DEFAULTS.seed_offset,
    show_default=True,
    type=click.IntRange(min=0),
    help="Linear-memory offset where seed-ABI input is written.",
)
@_option(
    "--max-workers",
    envvar="WASMTUBE_MAX_WORKERS",
    default=DEFAULTS.max_workers,
    show_default=True,
    type=click.IntRange(min=1),
    help="Calls served at once.",
)
@_option(
    "--reload-debounce",
    envvar="WASMTUBE_RELOAD_DEBOUNCE",
    default=DEFAULTS.reload_debounce,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds of quiet after a file event before modules are reloaded.",
)
@_option(
    "--max-message-size",
    envvar="WASMTUBE_MAX_MESSAGE_SIZE",
    default=DEFAULTS.max_message_size,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Largest gRPC request or response, in bytes.",
)
@_option(
    "--log-level",
    envvar="WASMTUBE_LOG_LEVEL",
    default=DEFAULTS.log_level,
    show_default=True,
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
)
def serve(
    modules_dir: Path | None,
    listen: str,
    metrics_listen: str,
    seed_offset: int,
    max_workers: int,
    reload_debounce: float,
    max_message_size: int,
    log_level: str,
) -> None:
    """Serve the modules in a directory over gRPC, reloading them as files change."""
    from .app import run
    from .config import BUNDLED_MODULES_DIR

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = Config(
            modules_dir=modules_dir or BUNDLED_MODULES_DIR,
            listen=listen,
            metrics_listen=None if metrics_listen == "off" else metrics_listen,
            seed_offset=seed_offset,
            max_workers=max_workers,
            reload_debounce=reload_debounce,
            max_message_size=max_message_size,
            log_level=log_level,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    try:
        run(config)
    except (OSError, RuntimeError) as e:
        # A taken port or a missing directory: say which, without a traceback.
        raise click.ClickException(str(e)) from e
