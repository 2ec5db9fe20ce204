"""Run one call on an instance with the calling convention its function has."""

from __future__ import annotations

from ..call_state import CallLabel
from ..compiled import ExportedFunction
from ..instance import GuestInstance
from .alloc import call_alloc
from .common import Output, Payload
from .seed import call_seed

__all__ = ["call_function"]


def call_function(
    instance: GuestInstance,
    function: ExportedFunction,
    payload: Payload,
    seed_offset: int,
    seconds: float,
    label: CallLabel | None = None,
    deadline_seconds: float | None = None,
) -> Output:
    """The guest's output as text; `seconds` is the time it may run now, and
    `deadline_seconds` (if longer) the call's whole time limit, which errors
    name: the call may have been run before, in a shorter time slice."""
    instance.arm(seconds, label)
    stated = seconds if deadline_seconds is None else deadline_seconds
    if function.uses_allocator:
        return call_alloc(instance, function.name, payload, stated)
    return call_seed(instance, function.name, payload, seed_offset, stated)
