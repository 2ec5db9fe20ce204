"""Slots: the daemon-wide call cap and drain, the stream cap, and a module's
running slots with their bounded queue, driven on a real event loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from wasmtube_server.admission import CallSlots, ModuleSlots, StreamSlots
from wasmtube_server.errors import CallTimedOut, Draining, ModuleBusy, Overloaded


def run(coroutine):
    return asyncio.run(coroutine)


def test_call_slots_refuse_one_more_and_a_give_back_makes_room() -> None:
    async def scenario() -> None:
        slots = CallSlots(limit=2)
        slots.take()
        slots.take()
        with pytest.raises(Overloaded, match="--max-workers"):
            slots.take()
        assert slots.taken == 2  # the refused call took nothing
        slots.give_back()
        slots.take()
        assert slots.taken == 2

    run(scenario())


def test_the_drain_refuses_calls_and_tells_when_the_last_one_ends() -> None:
    async def scenario() -> None:
        slots = CallSlots(limit=4)
        slots.take()
        slots.start_draining()
        with pytest.raises(Draining, match="shutting down"):
            slots.take()
        idle = asyncio.ensure_future(slots.idle())
        await asyncio.sleep(0)
        assert not idle.done()
        slots.give_back()
        await asyncio.wait_for(idle, 1)

    run(scenario())


def test_the_drain_is_quiet_only_once_no_call_was_refused_for_a_while() -> None:
    async def scenario() -> None:
        slots = CallSlots(limit=1)
        slots.start_draining()
        with pytest.raises(Draining):
            slots.take()
        refused = asyncio.get_running_loop().time()
        await slots.quiet(0.05)
        assert asyncio.get_running_loop().time() - refused >= 0.05

    run(scenario())


def test_stream_slots_refuse_past_the_cap() -> None:
    slots = StreamSlots(limit=1)
    slots.take()
    with pytest.raises(Overloaded, match="--max-streams"):
        slots.take()
    slots.give_back()
    slots.take()


def test_module_slots_queue_in_order_and_refuse_past_the_queue() -> None:
    async def scenario() -> None:
        slots = ModuleSlots("m", max_running=1, max_waiting=2)
        far = time.monotonic() + 10
        await slots.take(far)
        order: list[int] = []

        async def waiter(n: int) -> None:
            await slots.take(far)
            order.append(n)

        waiters = [asyncio.ensure_future(waiter(n)) for n in (1, 2)]
        await asyncio.sleep(0)
        assert slots.waiting == 2
        with pytest.raises(ModuleBusy, match="--module-queue"):
            await slots.take(far)
        slots.give_back()  # handed to waiter 1
        await asyncio.sleep(0)
        assert order == [1] and slots.running == 1
        slots.give_back()  # to waiter 2
        await asyncio.wait_for(asyncio.gather(*waiters), 1)
        assert order == [1, 2] and slots.running == 1 and slots.waiting == 0
        slots.give_back()
        assert slots.running == 0

    run(scenario())


def test_a_waiting_call_gives_up_at_its_deadline_and_leaves_the_queue() -> None:
    async def scenario() -> None:
        slots = ModuleSlots("m", max_running=1, max_waiting=1)
        await slots.take(time.monotonic() + 10)
        with pytest.raises(CallTimedOut, match="deadline passed while waiting"):
            await slots.take(time.monotonic() + 0.05)
        assert slots.waiting == 0 and slots.running == 1

    run(scenario())


def test_a_slot_handed_to_a_call_that_was_just_cancelled_is_passed_on() -> None:
    async def scenario() -> None:
        slots = ModuleSlots("m", max_running=1, max_waiting=2)
        far = time.monotonic() + 10
        await slots.take(far)
        first = asyncio.ensure_future(slots.take(far))
        second = asyncio.ensure_future(slots.take(far))
        await asyncio.sleep(0)
        # The slot goes to `first`, which is cancelled before it runs again:
        # it must reach `second`, not be lost.
        slots.give_back()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 1)
        assert slots.running == 1 and slots.waiting == 0

    run(scenario())
