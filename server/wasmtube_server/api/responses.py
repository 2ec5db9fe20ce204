"""From a guest's output, or a module's state, to the messages callers get."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp

from wasmtube.v1 import wasmtube_pb2 as pb

from ..errors import GuestOutputError
from ..modules.registry import LoadedModule, ModuleStatus
from ..sandbox import ExportedFunction, Output, PixelFormat

__all__ = ["check_json_output", "module_info", "response_of"]

# The ABI's pixel formats as the API's enum (the same numbers).
_WIRE_FORMATS = {
    PixelFormat.RGB8: pb.PIXEL_FORMAT_RGB8,
    PixelFormat.RGBA8: pb.PIXEL_FORMAT_RGBA8,
    PixelFormat.GRAY8: pb.PIXEL_FORMAT_GRAY8,
}


def response_of(output: Output, module: LoadedModule) -> pb.CallResponse:
    """The response carrying `output` and the version that made it."""
    if isinstance(output, str):
        return pb.CallResponse(
            json=output, module_sha256=module.sha256, generation=module.generation
        )
    response = pb.CallResponse(module_sha256=module.sha256, generation=module.generation)
    # Filled in place: an Image passed to the constructor would be copied,
    # pixels and all.
    image = response.image
    image.data = output.data
    image.width = output.width
    image.height = output.height
    image.format = _WIRE_FORMATS[output.format]
    return response


def check_json_output(function: str, text: str) -> None:
    """Raise GuestOutputError unless the guest's output `text` is JSON
    (--check-output)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise GuestOutputError(
            f"function {function!r} returned {len(text)} characters that are not JSON: "
            f"{e.msg} at character {e.pos}: {text[:80]!r}"
        ) from e
    except RecursionError as e:
        raise GuestOutputError(
            f"function {function!r} returned {len(text)} characters of JSON that nest "
            f"too deeply to be checked: {text[:80]!r}"
        ) from e


def module_info(status: ModuleStatus) -> pb.ModuleInfo:
    """What ListModules says of one module."""
    info = pb.ModuleInfo(name=status.name, last_error=status.last_error)
    if status.last_error_at is not None:
        info.last_error_at.CopyFrom(_timestamp(status.last_error_at.timestamp()))
    current = status.current
    # The serving version's source (and digest), else where one was looked for.
    source = current.source if current is not None and current.source else status.source
    if source is not None:
        info.source_kind, info.source = source.kind, source.location
        if current is not None and current.source is source:
            info.source_digest = source.digest
    if current is not None:
        info.sha256 = current.sha256
        info.generation = current.generation
        info.size_bytes = current.size_bytes
        info.loaded_at.CopyFrom(_timestamp(current.loaded_at.timestamp()))
        info.functions.extend(
            pb.FunctionInfo(
                name=f.name,
                signature=f.signature,
                calling_convention=pb.CallingConvention.Name(f.convention.value),
                image_formats=_image_formats(f),
            )
            for f in current.compiled.callable_functions
            if f.convention is not None
        )
        settings = current.settings
        info.settings.CopyFrom(
            pb.ModuleSettings(
                seed_offset=settings.seed_offset,
                instance_policy=settings.instance_policy,
                call_timeout_seconds=settings.call_timeout,
                max_memory_bytes=settings.max_memory,
                config_json=settings.guest_config.decode("utf-8"),
                file_sha256=settings.file_sha256,
            )
        )
    return info


def _image_formats(function: ExportedFunction) -> list[pb.PixelFormat]:
    if not function.takes_image:
        return []
    if not function.takes_format:
        return [pb.PIXEL_FORMAT_RGB8]
    return list(_WIRE_FORMATS.values())


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
