"""Functions the host offers guests, imported from the module `wasmtube`.

`wasmtube.log(level: i32, ptr: i32, len: i32)`: a UTF-8 line at
[ptr, ptr + len) goes to the daemon's log (logger `wasmtube_server.guest`),
at level 0 debug, 1 info, 2 warning or 3 error, with the module, function and
call id. Each module may log `rate` lines a second (bursts of as many); lines
past that are dropped and counted, so a chatty guest cannot flood the log.

`wasmtube.fail(code: i32, ptr: i32, len: i32)`: the guest fails the current
call on purpose. `code` is a gRPC status code (3 INVALID_ARGUMENT, 5
NOT_FOUND, 9 FAILED_PRECONDITION, ...) and [ptr, ptr + len) a UTF-8 message
in its linear memory. The guest then returns as usual (its output is
ignored), and the caller gets that status and message. Calling it is not a
trap: a pooled instance stays in the pool.

`wasmtube.config(ptr: i32, capacity: i32) -> i32`: copies the module's static
configuration, a JSON object (the `[config]` table of its NAME.toml, `{}`
without one), to [ptr, ptr + min(capacity, n)) and returns n, its whole
length: a guest asks with capacity 0, allocates, and asks again. -1 if the
range lies outside linear memory.

`wasmtube.output_image(width: i32, height: i32, format: i32)`: the output the
current call returns (the usual way for its ABI) is an image of that size in
pixel format 1 RGB8, 2 RGBA8 or 3 GRAY8, not JSON. The host checks that the
output's length is width*height*channels.

The callback runs inside the guest call, on the calling thread. It must never
raise: an exception would cross into the guest as an anonymous trap.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

import grpc
import wasmtime

from .call_state import CallState, ReportedError
from .memory import LinearMemory
from .native import caller_context_address

__all__ = ["HOST_MODULE", "HostFunctions", "Reporting"]

log = logging.getLogger(__name__)
guest_log = logging.getLogger("wasmtube_server.guest")
_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)

HOST_MODULE = "wasmtube"
# A message longer than this (in bytes) is cut, so a guest cannot make every
# error response and log line megabytes long.
MAX_MESSAGE_BYTES = 1024
_U32 = 0xFFFFFFFF
_CODES = {code.value[0]: code for code in grpc.StatusCode if code is not grpc.StatusCode.OK}


class Reporting(Protocol):
    """The part of a GuestInstance the host functions (and wasi.py's) use."""

    memory: LinearMemory
    guest_config: bytes
    # time.monotonic_ns() at or after the start of the guest's WASI monotonic
    # clock (wasmtime counts it from the creation of the Store's WASI context).
    wasi_clock_origin: int
    # The running call's state (made anew for each call).
    current: CallState


class _Bucket:
    """A token bucket: `rate` lines a second, bursts of up to `rate`, by `clock`."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._clock = clock
        self._tokens = max(1.0, rate)
        self._last = clock()
        self._lock = threading.Lock()
        self.dropped = 0

    def take(self) -> int | None:
        """None if the line must be dropped; else how many were dropped before it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(max(1.0, self._rate), self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens < 1:
                self.dropped += 1
                return None
            self._tokens -= 1
            dropped, self.dropped = self.dropped, 0
            return dropped


class HostFunctions:
    """The `wasmtube` import module, defined once on the Runtime's Linker."""

    NAMES = frozenset({"config", "fail", "log", "output_image"})

    def __init__(
        self, log_rate: float, on_log_dropped: Callable[[str], None] = lambda module: None
    ) -> None:
        self._log_rate = log_rate
        self._on_log_dropped = on_log_dropped
        self._buckets: dict[str, _Bucket] = {}
        # What the log rate is measured by (tests set a clock of their own).
        self.clock: Callable[[], float] = time.monotonic
        # Instances by the address of their Store's context, which is what a
        # callback can see of its caller; dropped with the instance.
        self._instances: weakref.WeakValueDictionary[int, Reporting] = weakref.WeakValueDictionary()

    def define(self, linker: wasmtime.Linker) -> None:
        i32 = wasmtime.ValType.i32()
        line = wasmtime.FuncType([i32, i32, i32], [])
        linker.define_func(HOST_MODULE, "fail", line, self._fail, True)
        linker.define_func(HOST_MODULE, "log", line, self._log, True)
        linker.define_func(
            HOST_MODULE, "config", wasmtime.FuncType([i32, i32], [i32]), self._config, True
        )
        linker.define_func(
            HOST_MODULE,
            "output_image",
            wasmtime.FuncType([i32, i32, i32], []),
            self._output_image,
            True,
        )

    def register(self, context: int, instance: Reporting) -> None:
        self._instances[context] = instance

    def instance_of(self, caller: wasmtime.Caller) -> Reporting | None:
        """The instance a host function's caller runs in; None while it is
        being instantiated (it registers once it exists)."""
        return self._instances.get(caller_context_address(caller))

    def _fail(self, caller: wasmtime.Caller, code: int, ptr: int, length: int) -> None:
        try:
            instance = self._instances.get(caller_context_address(caller))
            if instance is not None:
                instance.current.reported = _reported(
                    instance.memory, code, ptr & _U32, length & _U32
                )
        except Exception:  # a bug of ours must not become a guest trap
            log.exception("wasmtube.fail(%s, %s, %s) could not be recorded", code, ptr, length)

    def _config(self, caller: wasmtime.Caller, ptr: int, capacity: int) -> int:
        try:
            instance = self._instances.get(caller_context_address(caller))
            if instance is None:
                return -1
            config = instance.guest_config
            ptr, shown = ptr & _U32, min(capacity & _U32, len(config))
            if shown:
                if not instance.memory.fits(ptr, shown):
                    return -1
                instance.memory.write(ptr, config[:shown])
            return len(config)
        except Exception:  # a bug of ours must not become a guest trap
            log.exception("wasmtube.config(%s, %s) failed", ptr, capacity)
            return -1

    def _output_image(self, caller: wasmtime.Caller, width: int, height: int, format: int) -> None:
        try:
            instance = self._instances.get(caller_context_address(caller))
            if instance is not None:
                # Checked against the output once the call returns it.
                instance.current.declared_image = (width, height, format)
        except Exception:  # a bug of ours must not become a guest trap
            log.exception("wasmtube.output_image(%s, %s, %s) failed", width, height, format)

    def _log(self, caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
        try:
            instance = self._instances.get(caller_context_address(caller))
            call = instance.current.label if instance is not None else None
            if instance is None or call is None:
                return  # logging during instantiation: no call to tie the line to
            bucket = self._buckets.get(call.module)
            if bucket is None:
                bucket = self._buckets.setdefault(call.module, _Bucket(self._log_rate, self.clock))
            dropped = bucket.take()
            if dropped is None:
                self._on_log_dropped(call.module)
                return
            if dropped:
                guest_log.warning(
                    "module %s logged too fast: %d lines dropped", call.module, dropped
                )
            guest_log.log(
                _LEVELS[min(max(level, 0), 3)],
                "%s.%s [call %x] %s",
                call.module,
                call.function,
                call.call_id,
                _message(instance.memory, ptr & _U32, length & _U32),
                extra={
                    "guest": {
                        "module": call.module,
                        "function": call.function,
                        "call_id": f"{call.call_id:x}",
                    }
                },
            )
        except Exception:  # a bug of ours must not become a guest trap
            log.exception("wasmtube.log(%s, %s, %s) failed", level, ptr, length)


def _message(memory: LinearMemory, ptr: int, length: int) -> str:
    """The guest's UTF-8 text at [ptr, ptr + length), its first 1 KiB."""
    shown = min(length, MAX_MESSAGE_BYTES)
    if not memory.fits(ptr, shown):
        return f"(its message, {length} bytes at {ptr}, lies outside linear memory)"
    message = memory.read_bytes(ptr, shown).decode("utf-8", "replace")
    if shown < length:
        message += f"... ({length} bytes in all)"
    return message


def _reported(memory: LinearMemory, code: int, ptr: int, length: int) -> ReportedError:
    message = _message(memory, ptr, length)
    status = _CODES.get(code)
    if status is None:
        return ReportedError(
            grpc.StatusCode.INTERNAL,
            f"the guest failed with status code {code}, which is not a gRPC error code "
            f"(1 to 16): {message}",
        )
    return ReportedError(status, message)
