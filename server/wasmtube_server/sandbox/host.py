"""Functions the host offers guests, imported from the module `wasmtube`.

`wasmtube.fail(code: i32, ptr: i32, len: i32)`: the guest fails the current
call on purpose. `code` is a gRPC status code (3 INVALID_ARGUMENT, 5
NOT_FOUND, 9 FAILED_PRECONDITION, ...) and [ptr, ptr + len) a UTF-8 message
in its linear memory. The guest then returns as usual (its output is
ignored), and the caller gets that status and message. Calling it is not a
trap: a pooled instance stays in the pool.

The callback runs inside the guest call, on the calling thread. It must never
raise: an exception would cross into the guest as an anonymous trap.
"""

from __future__ import annotations

import logging
import weakref
from typing import Protocol

import grpc
import wasmtime

from .memory import LinearMemory
from .native import caller_context_address

__all__ = ["HOST_MODULE", "HostFunctions", "ReportedError"]

log = logging.getLogger(__name__)

HOST_MODULE = "wasmtube"
# A message longer than this (in bytes) is cut, so a guest cannot make every
# error response and log line megabytes long.
MAX_MESSAGE_BYTES = 1024
_U32 = 0xFFFFFFFF
_CODES = {code.value[0]: code for code in grpc.StatusCode if code is not grpc.StatusCode.OK}


class ReportedError:
    """What a guest passed to `wasmtube.fail`."""

    __slots__ = ("code", "message")

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message


class Reporting(Protocol):
    """The part of a GuestInstance the host functions use."""

    memory: LinearMemory
    reported: ReportedError | None


class HostFunctions:
    """The `wasmtube` import module, defined once on the Runtime's Linker."""

    NAMES = frozenset({"fail"})

    def __init__(self) -> None:
        # Instances by the address of their Store's context, which is what a
        # callback can see of its caller; dropped with the instance.
        self._instances: weakref.WeakValueDictionary[int, Reporting] = weakref.WeakValueDictionary()

    def define(self, linker: wasmtime.Linker) -> None:
        i32 = wasmtime.ValType.i32()
        linker.define_func(
            HOST_MODULE, "fail", wasmtime.FuncType([i32, i32, i32], []), self._fail, True
        )

    def register(self, context: int, instance: Reporting) -> None:
        self._instances[context] = instance

    def _fail(self, caller: wasmtime.Caller, code: int, ptr: int, length: int) -> None:
        try:
            instance = self._instances.get(caller_context_address(caller))
            if instance is not None:
                instance.reported = _reported(instance.memory, code, ptr & _U32, length & _U32)
        except Exception:  # a bug of ours must not become a guest trap
            log.exception("wasmtube.fail(%s, %s, %s) could not be recorded", code, ptr, length)


def _reported(memory: LinearMemory, code: int, ptr: int, length: int) -> ReportedError:
    shown = min(length, MAX_MESSAGE_BYTES)
    if memory.fits(ptr, shown):
        message = memory.read_bytes(ptr, shown).decode("utf-8", "replace")
        if shown < length:
            message += f"... ({length} bytes in all)"
    else:
        message = f"(its message, {length} bytes at {ptr}, lies outside linear memory)"
    status = _CODES.get(code)
    if status is None:
        return ReportedError(
            grpc.StatusCode.INTERNAL,
            f"the guest failed with status code {code}, which is not a gRPC error code "
            f"(1 to 16): {message}",
        )
    return ReportedError(status, message)
