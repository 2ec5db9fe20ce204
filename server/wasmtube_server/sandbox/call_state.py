"""What one call gathers on its instance, from its start to its answer.

A CallState is made anew for every call (GuestInstance.arm), so nothing one
call leaves behind (a failure it reported, an image it declared, a sleep it
overran) can reach the next call on the same instance. The host functions
(host.py, wasi.py) write into it while the guest runs; the calling
conventions (abi/common.py) read it once the guest returns.
"""

from __future__ import annotations

import time

import grpc

__all__ = ["CallLabel", "CallState", "ReportedError"]


class CallLabel:
    """Which call an instance is running, for the lines its guest logs."""

    __slots__ = ("call_id", "function", "module")

    def __init__(self, module: str, function: str, call_id: int) -> None:
        self.module = module
        self.function = function
        self.call_id = call_id


class ReportedError:
    """What a guest passed to `wasmtube.fail`."""

    __slots__ = ("code", "message")

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message


class CallState:
    __slots__ = ("armed_at", "deadline", "declared_image", "label", "overran", "reported")

    def __init__(self, label: CallLabel | None, seconds: float) -> None:
        # The call, for its guest's log lines; None while instantiating.
        self.label = label
        # time.monotonic() when the call was armed, and by which it must end:
        # a host function that waits (WASI poll_oneoff) never waits past
        # either, nor past an interrupt of calls armed before it.
        self.armed_at = now = time.monotonic()
        self.deadline = now + seconds
        # What the guest passed to wasmtube.fail, if it did.
        self.reported: ReportedError | None = None
        # (width, height, format) from wasmtube.output_image, if called.
        self.declared_image: tuple[int, int, int] | None = None
        # Set by a host function that stopped short at the deadline: the call
        # ran out of time, whatever the guest does next.
        self.overran = False
