"""One call, resolved and ready to run: what runs, on what input, until when."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import CallTimedOut, GuestTimedOut
from .abi.common import Output, Payload
from .call_state import CallLabel
from .compiled import ExportedFunction
from .instance import InstancePool
from .lease import Lease

__all__ = ["Invocation", "SliceExpired", "invoke"]


@dataclass(slots=True)
class Invocation:
    """A call of one function of one module version, built once per call and
    not changed after (not frozen only because a frozen dataclass's
    constructor costs more than the rest of a short call's bookkeeping)."""

    pool: InstancePool
    function: ExportedFunction
    payload: Payload
    # Where seed-ABI input goes (the module's settings).
    seed_offset: int
    # time.monotonic() by which the guest must be done.
    deadline: float
    # Seconds from the call's start to its deadline, as errors name it.
    budget: float
    label: CallLabel


class SliceExpired(Exception):
    """A call run within a time slice shorter than its deadline outran the
    slice: its instance is gone, and the call may run again from the start."""


def invoke(
    invocation: Invocation, lease: Lease | None = None, time_slice: float | None = None
) -> Output:
    """Run `invocation` on `lease`'s instance (a stream's), or on one leased
    from its pool for this call alone, and return the guest's output. Blocks
    while the guest runs.

    With `time_slice`, the guest gets at most that many seconds; if it
    outruns them before its own deadline, SliceExpired is raised.
    """
    function = invocation.function
    seconds = invocation.deadline - time.monotonic()
    if seconds <= 0:
        raise CallTimedOut(f"the deadline passed before function {function.name!r} could start")
    sliced = False
    if time_slice is not None and time_slice < seconds:
        seconds, sliced = time_slice, True
    held = lease if lease is not None else Lease(invocation.pool)
    try:
        return held.run(
            function,
            invocation.payload,
            invocation.seed_offset,
            seconds,
            invocation.label,
            invocation.budget,
        )
    except GuestTimedOut as e:
        if sliced:
            raise SliceExpired() from e
        raise
    finally:
        if held is not lease:
            held.release()
