"""The read batcher: concurrent reads of one key share a run, each caller gets its own answer.

The run here is a plain async function that records its batches (the batcher is pure
asyncio); ``tests/contract/test_rendered_history.py`` runs it against PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from dompet.storage.sql.history.batched_reads import ReadBatcher


class Recorder:
    """A run that answers ``request * 10``, records each batch, and can be held or fail."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.running = 0
        self.peak = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_on: set[int] = set()

    async def run(self, key: str, requests: list[int]) -> Sequence[int]:
        self.batches.append((key, list(requests)))
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.gate.wait()
            if self.fail_on & set(requests):
                raise LookupError(f"batch {requests} failed")
            return [request * 10 for request in requests]
        finally:
            self.running -= 1


def held(in_flight: int, most: int) -> tuple[Recorder, ReadBatcher[str, int, int]]:
    """A batcher whose batches wait in the run until ``recorder.gate`` is set."""
    recorder = Recorder()
    recorder.gate.clear()
    return recorder, ReadBatcher(recorder.run, in_flight=in_flight, most=most)


def started(batcher: ReadBatcher[str, int, int], requests: range) -> list[asyncio.Future[int]]:
    """Reads of key "k", one per request, started and left running."""
    return [asyncio.ensure_future(batcher.read("k", n)) for n in requests]


async def test_concurrent_reads_share_batches_and_each_gets_its_answer() -> None:
    recorder, batcher = held(in_flight=2, most=4)
    reads = started(batcher, range(10))
    await asyncio.sleep(0.01)
    assert [requests for _, requests in recorder.batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert recorder.running == 2  # two batches in flight; the rest wait for one of them
    recorder.gate.set()
    assert await asyncio.gather(*reads) == [n * 10 for n in range(10)]
    assert [requests for _, requests in recorder.batches][2:] == [[8, 9]]
    assert recorder.peak == 2


async def test_reads_wait_while_the_batches_allowed_are_in_flight_and_then_go_together() -> None:
    recorder, batcher = held(in_flight=1, most=64)
    (first,) = started(batcher, range(1, 2))
    await asyncio.sleep(0.01)
    assert recorder.batches == [("k", [1])]  # alone, at once
    later = started(batcher, range(2, 5))
    await asyncio.sleep(0.01)
    assert len(recorder.batches) == 1  # the only batch allowed is still in flight
    recorder.gate.set()
    assert await asyncio.gather(first, *later) == [10, 20, 30, 40]
    assert recorder.batches == [("k", [1]), ("k", [2, 3, 4])]
    assert recorder.peak == 1


async def test_reads_that_arrive_together_go_side_by_side_while_batches_are_free() -> None:
    recorder, batcher = held(in_flight=4, most=8)
    together = started(batcher, range(3))
    await asyncio.sleep(0.01)
    assert sorted(requests for _, requests in recorder.batches) == [[0], [1], [2]]
    later = started(batcher, range(3, 9))
    await asyncio.sleep(0.01)  # one batch free: the six share it
    assert [requests for _, requests in recorder.batches][3:] == [[3, 4, 5, 6, 7, 8]]
    recorder.gate.set()
    assert await asyncio.gather(*together, *later) == [n * 10 for n in range(9)]
    assert recorder.peak == 4


async def test_keys_never_share_a_batch() -> None:
    recorder = Recorder()
    batcher = ReadBatcher(recorder.run, in_flight=1, most=64)
    reads = [batcher.read(key, n) for n, key in enumerate("ababa")]
    assert await asyncio.gather(*reads) == [0, 10, 20, 30, 40]
    assert sorted(recorder.batches) == [("a", [0, 2, 4]), ("b", [1, 3])]


async def test_a_failed_batch_fails_its_callers_only() -> None:
    recorder = Recorder()
    recorder.fail_on = {2}
    batcher = ReadBatcher(recorder.run, in_flight=1, most=2)
    results = await asyncio.gather(
        *(batcher.read("k", n) for n in range(5)), return_exceptions=True
    )
    assert [results[n] for n in (0, 1, 4)] == [0, 10, 40]
    assert all(isinstance(results[n], LookupError) for n in (2, 3))
    assert await batcher.read("k", 7) == 70  # the batcher goes on


async def test_a_run_that_answers_too_few_is_an_error_for_its_callers() -> None:
    async def short(key: str, requests: list[int]) -> Sequence[int]:
        return requests[:-1]

    batcher = ReadBatcher(short, in_flight=1, most=8)
    results = await asyncio.gather(
        *(batcher.read("k", n) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, RuntimeError) for result in results)


async def test_a_caller_cancelled_while_waiting_is_left_out_of_its_batch() -> None:
    recorder, batcher = held(in_flight=1, most=64)
    (first,) = started(batcher, range(1, 2))
    await asyncio.sleep(0.01)
    gone, kept = started(batcher, range(2, 4))
    await asyncio.sleep(0.01)
    gone.cancel()
    recorder.gate.set()
    assert list(await asyncio.gather(first, kept)) == [10, 30]
    assert gone.cancelled()
    assert recorder.batches == [("k", [1]), ("k", [3])]


async def test_close_cancels_the_batches_in_flight_and_the_reads_waiting() -> None:
    recorder, batcher = held(in_flight=1, most=1)
    reads = started(batcher, range(3))
    await asyncio.sleep(0.01)
    await batcher.close()
    results = await asyncio.gather(*reads, return_exceptions=True)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
    assert recorder.batches == [("k", [0])]


def test_a_batcher_needs_a_batch_of_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ReadBatcher(Recorder().run, in_flight=0, most=8)
    with pytest.raises(ValueError, match="at least one"):
        ReadBatcher(Recorder().run, in_flight=8, most=0)
