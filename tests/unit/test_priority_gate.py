"""The PostgreSQL pool's gate: bounded, FIFO, urgent waiters first, cancel-safe."""

from __future__ import annotations

import asyncio

import pytest

from dompet.storage.sql.access.priority import PriorityGate


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
