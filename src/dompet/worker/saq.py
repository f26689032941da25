"""Scale-out dispatch on SAQ (Redis)."""

from __future__ import annotations

import asyncio
from typing import Any


async def run_saq_worker(container: Any, concurrency: int, loop: asyncio.AbstractEventLoop) -> None:
    raise NotImplementedError("SAQ dispatch is being built")
