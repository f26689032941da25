"""The PostgreSQL pool's gate: bounded, FIFO, urgent waiters first, cancel-safe, and a bounded
wait (how many may wait, for how long)."""

from __future__ import annotations

import asyncio

import pytest

from dompet.storage.sql.access.priority import GateFull, GateTimeout, PriorityGate


async def test_urgent_waiters_go_first_and_each_class_is_fifo() -> None:
    gate = PriorityGate(1)
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with gate.slot():
            await release.wait()

    async def caller(name: str, urgent: bool) -> None:
        async with gate.slot(urgent):
            order.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(caller(name, urgent))
        for name, urgent in (("n1", False), ("u1", True), ("n2", False), ("u2", True))
    ]
    await asyncio.sleep(0)
    assert order == []  # all wait behind the holder
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["u1", "u2", "n1", "n2"]


async def test_never_more_holders_than_slots() -> None:
    gate = PriorityGate(3)
    inside = peak = 0

    async def caller(i: int) -> None:
        nonlocal inside, peak
        async with gate.slot(urgent=i % 2 == 0):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(caller(i) for i in range(50)))
    assert peak == 3
    async with gate.slot(), gate.slot(), gate.slot():  # every slot came back
        pass


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    gate = PriorityGate(1)
    release = asyncio.Event()

    async def holder() -> None:
        async with gate.slot():
            await release.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    doomed = asyncio.create_task(gate.slot(urgent=True).__aenter__())
    await asyncio.sleep(0)
    doomed.cancel()
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await doomed

    async def enter() -> None:
        async with gate.slot():
            pass

    entered = asyncio.create_task(enter())
    await asyncio.sleep(0)
    assert entered.done()  # the slot is free again, not lost to the cancelled waiter


async def test_beyond_max_waiting_an_ordinary_caller_is_refused_at_once() -> None:
    gate = PriorityGate(1, max_waiting=2)
    release = asyncio.Event()

    async def holder() -> None:
        async with gate.slot():
            await release.wait()

    async def caller(urgent: bool = False) -> None:
        async with gate.slot(urgent):
            pass

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(caller()) for _ in range(2)]
    await asyncio.sleep(0)
    assert gate.waiting == 2
    with pytest.raises(GateFull):
        await caller()  # refused without waiting: the queue in memory stays bounded
    settling = asyncio.create_task(caller(urgent=True))  # settlement is never refused for room
    await asyncio.sleep(0)
    assert gate.waiting == 3
    release.set()
    await asyncio.gather(first, *waiting, settling)
    assert gate.waiting == 0


async def test_a_waiter_gives_up_after_the_wait_timeout_and_leaves_no_trace() -> None:
    gate = PriorityGate(1, max_waiting=1, wait_timeout=0.05)
    release = asyncio.Event()

    async def holder() -> None:
        async with gate.slot():
            await release.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    with pytest.raises(GateTimeout):
        async with gate.slot():
            pass
    assert 0.04 <= asyncio.get_running_loop().time() - started < 1.0
    assert gate.waiting == 0  # removed from the queue: the next caller has room
    with pytest.raises(GateTimeout):
        async with gate.slot(urgent=True):
            pass
    release.set()
    await first
    async with gate.slot():  # the one slot came back
        assert gate.waiting == 0
