"""The `wasmtube` command: call functions and list modules of a running daemon.

`wasmtube serve` belongs to the daemon package and is attached only when a
command line asks for it, so the client commands never import the daemon.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import grpc
from google.protobuf.json_format import MessageToDict

from wasmtube import __version__
from wasmtube._client import Client
from wasmtube._images import FORMATS, from_message, load_image_file
from wasmtube._requests import DEFAULT_TARGET, decode_result
from wasmtube.errors import Unavailable, WasmtubeError
from wasmtube.v1 import wasmtube_pb2

__all__ = ["cli", "main"]

# Exit status for failures after the command line was accepted; click itself
# uses 2 for usage errors.
EXIT_FAILURE = 1

_SERVER_INSTALL_HINT = "pip install 'wasmtube[server]'"

# The first hex digits of a SHA-256 are enough to tell versions apart by eye.
_SHA256_SHOWN = 12

_F = TypeVar("_F", bound=Callable[..., Any])


class _WasmtubeGroup(click.Group):
    """Adds `serve` only when it is listed or invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "serve"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "serve":
            return _serve_command()
        return super().get_command(ctx, cmd_name)


@functools.cache
def _serve_command() -> click.Command:
    """The daemon's `serve` command, or a stand-in saying how to install it."""
    try:
        from wasmtube_server.cli import serve
    except ImportError as e:
        reason = "the daemon is not installed"
        if e.name not in ("wasmtube_server", "wasmtube_server.cli"):
            # Installed but broken (a dependency missing, say): show which.
            reason = f"the daemon cannot be loaded ({e})"
        return _missing_serve_command(f"{reason}: {_SERVER_INSTALL_HINT}")
    return serve


def _missing_serve_command(message: str) -> click.Command:
    # Accept any arguments so `wasmtube serve --port 1` says what is missing
    # instead of complaining about an option this stand-in does not know.
    @click.command(
        "serve",
        help=f"Run the daemon (not available: {_SERVER_INSTALL_HINT}).",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def serve(args: tuple[str, ...]) -> None:
        _fail(message)

    return serve


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(EXIT_FAILURE)


def _fail_call(error: WasmtubeError) -> NoReturn:
    """Fail with a call's error, and what to do when nothing answered."""
    message = str(error)
    if isinstance(error, Unavailable) and "failed to connect" in message:
        message += (
            "\nno wasmtube daemon answers there: start one with `wasmtube serve`, "
            "or point --target (or WASMTUBE_TARGET) at a running one"
        )
    _fail(message)


def _connection_options(f: Callable[..., None]) -> Callable[..., None]:
    """Add --target, --timeout, --token-file and the TLS options to a command,
    and hand it a `connect()` that opens a Client with them."""
    file_type = click.Path(exists=True, dir_okay=False, path_type=Path)

    @click.option(
        "--target",
        metavar="ADDR",
        envvar="WASMTUBE_TARGET",
        default=DEFAULT_TARGET,
        show_default=True,
        show_envvar=True,
        help="The daemon's gRPC address: host:port or unix:///path/to.sock.",
    )
    @click.option(
        "--timeout",
        metavar="SECONDS",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Deadline for the request. Default: none.",
    )
    @click.option(
        "--token-file",
        type=file_type,
        envvar="WASMTUBE_TOKEN_FILE",
        show_envvar=True,
        help="File holding the daemon's shared token (its --auth-token-file).",
    )
    @click.option("--tls-ca", type=file_type, help="Use TLS, trusting these PEM CA certificates.")
    @click.option("--tls-cert", type=file_type, help="PEM client certificate, for mutual TLS.")
    @click.option("--tls-key", type=file_type, help="PEM key of --tls-cert.")
    @functools.wraps(f)
    def wrapper(
        target: str,
        timeout: float | None,
        token_file: Path | None,
        tls_ca: Path | None,
        tls_cert: Path | None,
        tls_key: Path | None,
        **kwargs: Any,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise click.UsageError("--tls-cert and --tls-key go together")
        credentials = None
        if tls_ca is not None or tls_cert is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=tls_ca.read_bytes() if tls_ca else None,
                private_key=tls_key.read_bytes() if tls_key else None,
                certificate_chain=tls_cert.read_bytes() if tls_cert else None,
            )
        token = token_file.read_text().strip() if token_file else None

        def connect() -> Client:
            return Client(target, timeout=timeout, credentials=credentials, token=token)

        f(connect=connect, **kwargs)

    return wrapper


@click.group(
    "wasmtube",
    cls=_WasmtubeGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="wasmtube")
def cli() -> None:
    """Call sandboxed WebAssembly functions served by a wasmtube daemon."""


@cli.command()
@click.argument("module")
@click.argument("function")
@click.argument("json_text", metavar="[JSON]", required=False)
@click.option(
    "--image",
    "image_path",
    metavar="PATH",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Send this image file, decoded to --format, instead of JSON.",
)
@click.option(
    "--format",
    "pixel_format",
    type=click.Choice(sorted(FORMATS), case_sensitive=False),
    default="rgb8",
    show_default=True,
    help="Pixel format to send the --image in (the function must take it).",
)
@click.option(
    "--output",
    "output_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write an image result to this file; its extension picks the file type.",
)
@_connection_options
def call(
    module: str,
    function: str,
    json_text: str | None,
    image_path: Path | None,
    pixel_format: str,
    output_path: Path | None,
    connect: Callable[[], Client],
) -> None:
    """Call FUNCTION of MODULE and print its JSON result on one line.

    JSON is the input document (default: {}). With --image the function gets
    the image instead, and JSON must be left out. A function that returns an
    image needs --output, where the image is written.
    """
    if image_path is not None and json_text is not None:
        raise click.UsageError("give either a JSON argument or --image, not both")
    document = "{}" if json_text is None else json_text
    if image_path is None:
        _check_json(document)

    try:
        with connect() as client:
            if image_path is None:
                # The text goes out as typed; parsing was only to catch typos early.
                response = client.call_raw(module, function, document)
                result = decode_result(response, output="message")
            else:
                data, width, height = _read_image(image_path, pixel_format)
                result = client.call_image(
                    module, function, data, width, height, format=pixel_format, output="message"
                )
    except WasmtubeError as e:
        _fail_call(e)
    if isinstance(result, wasmtube_pb2.Image):
        _write_image(result, output_path)
        return
    click.echo(json.dumps(result, separators=(",", ":")))
    if output_path is not None:
        _fail(f"{function} returned JSON, not an image: nothing was written to {output_path}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the modules as a JSON array.")
@_connection_options
def modules(as_json: bool, connect: Callable[[], Client]) -> None:
    """List the daemon's modules and their functions."""
    try:
        with connect() as client:
            infos = client.list_modules()
    except WasmtubeError as e:
        _fail_call(e)
    if as_json:
        click.echo(json.dumps([_module_to_dict(m) for m in infos], indent=2))
    else:
        for line in _module_table(infos):
            click.echo(line)


@cli.command()
@click.argument("name")
@click.option(
    "--directory",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Create the project in DIR/NAME.  [default: ./NAME]",
)
def new(name: str, directory: Path) -> None:
    """Write a new Rust guest project NAME/ that builds module NAME.wasm.

    It holds an example (a JSON function and an image function), a build.sh,
    and a copy of the guest kit, so it builds on its own, offline.
    """
    import shlex

    from wasmtube.new_guest import GuestProjectError, create_guest_project, project_files

    try:
        project = create_guest_project(name, directory)
    except GuestProjectError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot write the project: {e}")
    click.echo(f"created {project}/:")
    for file in project_files(project):
        click.echo(f"  {file}")
    quoted = shlex.quote(str(project))
    click.echo("next, build it, then copy it into the daemon's module directory (--modules):")
    click.echo(f"  {quoted}/build.sh")
    click.echo(f"  cp {quoted}/{shlex.quote(name + '.wasm')} /path/to/modules/")


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("reference", metavar="REF")
@click.option("--insecure", is_flag=True, help="Plain HTTP: a local or test registry.")
@click.option(
    "--registry-auth",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="WASMTUBE_REGISTRY_AUTH",
    show_envvar=True,
    help="Credentials: a Docker config.json.  [default: $DOCKER_CONFIG/config.json or "
    "~/.docker/config.json, if there is one]",
)
def push(file: Path, reference: str, insecure: bool, registry_auth: Path | None) -> None:
    """Publish module FILE to an OCI registry at REF and print its digest.

    REF is HOST[:PORT]/REPOSITORY:TAG. The module goes up unchanged as a
    standard Wasm OCI artifact (the one layer application/wasm), which
    `wasmtube serve --pull NAME=REF` serves, by the tag or by the digest
    printed: HOST[:PORT]/REPOSITORY@sha256:....
    """
    try:
        from wasmtube.oci.distribution import RegistryError
        from wasmtube.oci.push import PushError, default_credentials_file, push_module
        from wasmtube.oci.references import ReferenceError
    except ImportError as e:
        _fail(f"wasmtube push needs the OCI client ({e}): pip install 'wasmtube[oci]'")
    try:
        digest = push_module(
            file,
            reference,
            insecure=insecure,
            credentials_file=registry_auth or default_credentials_file(),
        )
    except ReferenceError as e:
        raise click.BadParameter(str(e), param_hint="'REF'") from e
    except (PushError, RegistryError) as e:
        _fail(f"push {reference}: {e}")
    except OSError as e:
        _fail(f"cannot read {file}: {e}")
    click.echo(digest)


def _check_json(text: str) -> None:
    def reject(constant: str) -> NoReturn:
        # Python's parser takes NaN and Infinity; JSON (and the daemon) do not.
        raise ValueError(f"{constant} is not valid JSON")

    try:
        json.loads(text, parse_constant=reject)
    except ValueError as e:
        raise click.BadParameter(f"not valid JSON: {e}", param_hint="'JSON'") from e


def _read_image(path: Path, pixel_format: str) -> tuple[bytes, int, int]:
    try:
        return load_image_file(path, pixel_format)
    except ImportError as e:
        _fail(str(e))
    except (OSError, ValueError) as e:
        # Pillow's "cannot identify image file" is an OSError.
        _fail(f"cannot read image {str(path)!r}: {e}")


def _write_image(image: wasmtube_pb2.Image, path: Path | None) -> None:
    format_name = wasmtube_pb2.PixelFormat.Name(image.format).removeprefix("PIXEL_FORMAT_")
    shape = f"{image.width}x{image.height} {format_name}"
    if path is None:
        _fail(f"the function returned a {shape} image: give --output PATH to save it")
    try:
        from_message(image, "pil").save(path)
    except ImportError as e:
        _fail(str(e))
    except (OSError, ValueError) as e:
        # Pillow: an unknown extension is a ValueError, an unwritable path an OSError.
        _fail(f"cannot write {str(path)!r}: {e}")
    click.echo(f"wrote a {shape} image to {path}")


def _module_to_dict(info: wasmtube_pb2.ModuleInfo) -> dict[str, Any]:
    # Proto field names (not camelCase) to match the Python API, and every
    # field present so consumers need not know proto3's omitted defaults.
    return MessageToDict(
        info,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def _module_table(infos: Sequence[wasmtube_pb2.ModuleInfo]) -> list[str]:
    header = ["NAME", "GENERATION", "SHA256", "FUNCTIONS"]
    rows = [
        [
            m.name,
            str(m.generation),
            m.sha256[:_SHA256_SHOWN] or "-",
            ",".join(f.name for f in m.functions) or "-",
        ]
        for m in infos
    ]
    # Where pulled modules come from: the reference, and for a tag the
    # digest it served (a digest reference shows its own).
    if any(m.source_kind == "oci" for m in infos):
        header.append("SOURCE")
        for row, m in zip(rows, infos, strict=True):
            digest = m.source_digest.removeprefix("sha256:")[:_SHA256_SHOWN]
            pinned = "@" in m.source or not digest
            row.append(m.source if pinned else f"{m.source} (sha256:{digest})")
    # The column only appears when there is something to say; it is last
    # because load errors are long and would push the others out of line.
    if any(m.last_error for m in infos):
        header.append("LAST ERROR")
        for row, m in zip(rows, infos, strict=True):
            # Load errors (wasmtime's especially) span lines; a table row cannot.
            row.append(" ".join(m.last_error.split()))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `wasmtube` script; exits with the command's status."""
    # A fixed prog_name keeps messages the same under `python -m wasmtube.cli`.
    cli.main(args=list(argv) if argv is not None else None, prog_name="wasmtube")


if __name__ == "__main__":
    main()
