"""Every failure the daemon reports, as one hierarchy that carries its gRPC code.

The servicer turns any `WasmtubeError` into a status with `grpc_code` and the
error's message, so the code for each kind of failure is decided here and
nowhere else. Messages are written for the person reading them in a client.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

__all__ = [
    "CallTimedOut",
    "Draining",
    "FunctionNotCallable",
    "FunctionNotFound",
    "GuestError",
    "GuestExited",
    "GuestFuelExhausted",
    "GuestHostCallFailed",
    "GuestOutOfMemory",
    "GuestOutputError",
    "GuestTimedOut",
    "GuestTrap",
    "InputTooLarge",
    "InvalidArgument",
    "ModuleBusy",
    "ModuleLoadError",
    "ModuleNotFound",
    "Overloaded",
    "ReceiveTimedOut",
    "SettingsError",
    "StillLoading",
    "WasmtubeError",
]


class WasmtubeError(Exception):
    """Base of every error the daemon reports to a caller."""

    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    @property
    def message(self) -> str:
        return str(self)

    def status_code(self) -> grpc.StatusCode:
        """The status a caller gets: the class's, unless an error carries its own."""
        return self.grpc_code


class ModuleNotFound(WasmtubeError):
    """No module of that name is loaded."""

    grpc_code = grpc.StatusCode.NOT_FOUND


class FunctionNotFound(WasmtubeError):
    """The module exports no function of that name."""

    grpc_code = grpc.StatusCode.NOT_FOUND


class FunctionNotCallable(WasmtubeError):
    """The export exists but no calling convention fits its signature."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class InvalidArgument(WasmtubeError):
    """The request itself is wrong: a bad name, bad JSON, a bad image."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class InputTooLarge(WasmtubeError):
    """The input does not fit in the guest's linear memory."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class GuestError(WasmtubeError):
    """The guest failed the call on purpose (wasmtube.fail), with its own code."""

    def __init__(self, code: grpc.StatusCode, message: str, instance_usable: bool) -> None:
        super().__init__(message)
        self.code = code
        # Whether the instance may serve another call. A trap after fail()
        # raises the trap, not this, so this is True unless a caller says
        # otherwise.
        self.instance_usable = instance_usable

    def status_code(self) -> grpc.StatusCode:
        return self.code


class GuestTrap(WasmtubeError):
    """The guest trapped (unreachable, out-of-bounds access, ...)."""

    grpc_code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        # A short, stable name of the trap's kind, such as "unreachable".
        self.reason = reason


class GuestTimedOut(GuestTrap):
    """The guest ran past the call's deadline and was interrupted."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class GuestFuelExhausted(GuestTrap):
    """The guest used up the fuel a call is given (--fuel)."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class GuestOutOfMemory(GuestTrap):
    """The guest trapped after its linear memory or a table it grew reached
    the cap (--max-memory, --max-table-elements)."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class GuestExited(GuestTrap):
    """The guest called WASI proc_exit instead of returning: whatever its
    status, the call has no output. INTERNAL, as for any trap: the guest
    broke the calling convention, not the caller."""


class GuestHostCallFailed(GuestTrap):
    """A WASI function the guest called ended the call with an error instead
    of returning an errno: a pointer outside linear memory, a size past a
    limit of wasmtime's. The guest's doing, reported as a trap."""


class CallTimedOut(WasmtubeError):
    """The deadline passed before the guest could start (waiting for an instance)."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class ReceiveTimedOut(WasmtubeError):
    """A request message did not arrive in full within --receive-timeout."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class ModuleBusy(WasmtubeError):
    """Every instance of the module is busy and its queue of waiting calls is full."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Overloaded(WasmtubeError):
    """The daemon is handling as many calls as --max-workers allows."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class StillLoading(WasmtubeError):
    """The daemon is still loading its module directory after starting."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


class Draining(WasmtubeError):
    """The daemon is shutting down: running calls finish, new ones are refused."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


class GuestOutputError(WasmtubeError):
    """The guest returned an output that is out of bounds, not UTF-8, or (with
    --check-output) not JSON."""

    grpc_code = grpc.StatusCode.INTERNAL


class ModuleLoadError(WasmtubeError):
    """A module file could not be loaded; the previous version keeps serving.

    Never sent as a call's status: it is reported in ListModules, the log and
    the reload metrics.
    """

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        # A short, stable label for metrics: not_wasm, compile, imports,
        # no_memory, instantiate, read or settings.
        self.reason = reason


class SettingsError(ModuleLoadError):
    """A module's settings file (NAME.toml) cannot be used; the version that
    serves keeps its settings."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "settings")
