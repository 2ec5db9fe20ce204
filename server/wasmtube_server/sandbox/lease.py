"""A lease on one instance: taken for a call, or for a whole stream.

The lease alone decides whether its instance goes back to the pool: it does
unless a call on it raised anything but a failure the guest reported on
purpose (wasmtube.fail). A trap, an interrupt, a host error or an output out
of bounds can leave the instance's memory and globals in any state, so such
an instance is dropped, and its Store with it.
"""

from __future__ import annotations

from types import TracebackType

from ..errors import GuestError
from .abi.common import Output, Payload
from .abi.dispatch import call_function
from .call_state import CallLabel
from .compiled import ExportedFunction
from .instance import GuestInstance, InstancePool

__all__ = ["Lease"]


class Lease:
    """`with Lease(pool) as lease:` one instance of `pool`, for one holder at a time."""

    __slots__ = ("_pool", "instance", "spoiled")

    def __init__(self, pool: InstancePool) -> None:
        self._pool = pool
        self.instance: GuestInstance | None = None
        self.spoiled = False

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def run(
        self,
        function: ExportedFunction,
        payload: Payload,
        seed_offset: int,
        seconds: float,
        label: CallLabel,
        deadline_seconds: float | None = None,
    ) -> Output:
        """Run one call on the leased instance (taken on first use) within
        `seconds`; the guest's output, or the error that ended the call.
        `deadline_seconds` is the call's whole time limit, for its errors."""
        if self.spoiled:
            raise RuntimeError("a call on this lease's instance failed: the instance is gone")
        instance = self.instance
        if instance is None:
            instance = self.instance = self._pool.take()
        try:
            return call_function(
                instance, function, payload, seed_offset, seconds, label, deadline_seconds
            )
        except GuestError as e:
            if not e.instance_usable:
                self.spoiled = True
            raise
        except BaseException:
            self.spoiled = True
            raise

    def release(self) -> None:
        """End the lease: the instance goes back to its pool unless spoiled."""
        instance, self.instance = self.instance, None
        if instance is not None and not self.spoiled:
            self._pool.give(instance)
