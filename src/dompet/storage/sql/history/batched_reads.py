"""Batched reads: concurrent reads of one kind sent to the database as one statement.

On PostgreSQL a history page cost the API process some 75 us of CPU besides the framework's,
most of it the round trip: the gate, a pool checkout and check-in, asyncpg's send, wake-up
and rows for one statement. Under load dozens of pages are wanted at the same moment, so a
few can share all of that, as group commit shares a COMMIT: the pages asked for while others
are in flight go together as one statement (``rendered.rendered_pages``), and each
caller gets its own answer. With nothing in flight a read goes at once, alone.
docs/read-path.md has the figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Request = TypeVar("Request")
Answer = TypeVar("Answer")


class ReadBatcher(Generic[Key, Request, Answer]):
    """Runs the requests of one key together: ``run(key, requests)`` answers them in order.

    At most ``in_flight`` batches of a key run at once, each of at most ``most`` requests;
    the requests that arrive meanwhile wait and go together in the next one. While no more
    requests wait than batches are free to start, each goes alone, side by side with the
    others (a statement per request is quicker when the database has the cores to spare).
    An error of a batch is every one of its callers' error. A caller that is cancelled while
    it waits is left out of the batch that has not started yet, and its answer is dropped
    otherwise.
    """

    def __init__(
        self,
        run: Callable[[Key, list[Request]], Awaitable[Sequence[Answer]]],
        *,
        in_flight: int,
        most: int,
    ) -> None:
        if in_flight < 1 or most < 1:
            raise ValueError("a batcher needs at least one batch in flight of one request")
        self._run = run
        self._in_flight = in_flight
        self._most = most
        self._waiting: dict[Key, list[tuple[Request, asyncio.Future[Answer]]]] = {}
        self._running: dict[Key, int] = {}
        self._busy: dict[Key, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, key: Key, request: Request) -> Answer:
        """``request``'s answer, read in a batch with the other requests of ``key``."""
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((request, answer))
        if self._running.get(key, 0) < self._in_flight:
            self._running[key] = self._running.get(key, 0) + 1
            task = asyncio.create_task(self._drain(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await answer

    async def _drain(self, key: Key) -> None:
        """Run the waiting requests of ``key``, a batch at a time, until none is waiting."""
        try:
            while waiting := self._waiting.get(key):
                free = self._in_flight - self._busy.get(key, 0)  # this one included
                size = 1 if len(waiting) <= free else self._most  # see the class docstring
                taken = waiting[:size]
                del waiting[:size]
                batch = [(request, answer) for request, answer in taken if not answer.done()]
                if batch:
                    self._busy[key] = self._busy.get(key, 0) + 1
                    try:
                        await self._answer(key, batch)
                    finally:
                        self._busy[key] -= 1
                        if not self._busy[key]:
                            del self._busy[key]
        finally:
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]
            if not self._waiting.get(key):
                self._waiting.pop(key, None)

    async def _answer(self, key: Key, batch: list[tuple[Request, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await self._run(key, [request for request, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} reads gave {len(answers)} answers")
        except asyncio.CancelledError:
            for _, answer in batch:
                answer.cancel()
            raise
        except Exception as exc:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        for (_, answer), value in zip(batch, answers, strict=True):
            if not answer.done():
                answer.set_result(value)

    async def close(self) -> None:
        """Cancel the batches in flight and the requests waiting (their callers with them)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for waiting in self._waiting.values():
            for _, answer in waiting:
                answer.cancel()
        self._waiting.clear()
