"""CPU time per request with the ASGI app driven in-process: no sockets, no uvicorn, no wrk.

For A/B comparisons of a code change on a busy machine, where req/s over HTTP is noise:
process CPU time (user + system) divided by requests barely depends on what else runs.

    python -m bench.inprocess            # POST /pay and a paged GET /transactions?limit=50
    python -m bench.inprocess --requests 2000 --entries 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dompet.api.app import create_app
from dompet.domain.ids import new_id
from dompet.domain.ledger import topup_journal
from dompet.storage import migrate

ASGIApp = Callable[..., Awaitable[None]]


class Answer:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = b""


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    token: str = "",
    query: bytes = b"",
) -> Answer:
    """One request through the app's ASGI interface, as uvicorn would hand it over."""
    headers = [(b"host", b"bench"), (b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    if token:
        headers.append((b"authorization", b"Bearer " + token.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    answer = Answer()
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:  # the app waits for a disconnect only after it has answered
            await asyncio.Event().wait()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = dict(message["headers"])
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(scope, receive, send)
    return answer


async def user(app: ASGIApp, n: int) -> tuple[str, str]:
    """A registered, logged-in, topped-up user: (user_id, access token)."""
    phone = f"0813{n:08d}"
    register = {
        "first_name": "Bench",
        "last_name": str(n),
        "phone_number": phone,
        "address": "Jakarta",
        "pin": "123456",
    }
    answer = await call(app, "POST", "/register", body=json.dumps(register).encode())
    user_id = json.loads(answer.body)["result"]["user_id"]
    login = json.dumps({"phone_number": phone, "pin": "123456"}).encode()
    token = json.loads((await call(app, "POST", "/login", body=login)).body)["result"]
    access: str = token["access_token"]
    topup = json.dumps({"amount": 10**11}).encode()
    assert (await call(app, "POST", "/topup", body=topup, token=access)).status == 200
    return user_id, access


async def measure(
    name: str, one: Callable[[int], Awaitable[None]], requests: int, concurrency: int
) -> None:
    """Best of three rounds of ``requests`` calls, ``concurrency`` at a time."""
    per_task = max(1, requests // concurrency)

    async def task(i: int) -> None:
        for k in range(per_task):
            await one(i * per_task + k)

    await asyncio.gather(*(task(i) for i in range(concurrency)))  # warm-up
    best = float("inf")
    for _ in range(3):
        cpu = time.process_time()
        await asyncio.gather(*(task(i) for i in range(concurrency)))
        best = min(best, (time.process_time() - cpu) / (per_task * concurrency))
    print(f"{name}: {best * 1e6:.0f} us CPU per request (best of 3 rounds)", flush=True)


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dompet-inprocess-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/dompet.db")
    os.environ.setdefault("DOMPET_ENV", "development")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("REGISTRATIONS_PER_CLIENT", "0")  # every user comes from one address
    for name, value in (("TIME_COST", "1"), ("MEMORY_KIB", "8192"), ("PARALLELISM", "1")):
        os.environ.setdefault(f"PIN_HASH_{name}", value)  # set-up only: Argon2 is not measured
    await migrate(os.environ["DATABASE_URL"])
    app = create_app()
    async with app.router.lifespan_context(app):
        payers = [await user(app, n) for n in range(args.concurrency)]
        pay = json.dumps({"amount": 1, "remarks": "bench"}).encode()

        async def one_pay(i: int) -> None:
            answer = await call(app, "POST", "/pay", body=pay, token=payers[i % len(payers)][1])
            assert answer.status == 200, answer.body

        await measure("POST /pay", one_pay, args.requests, args.concurrency)

        reader, token = await user(app, args.concurrency)
        store = app.state.container.store
        now = datetime.now(UTC)
        for start in range(0, args.entries, 100):
            await asyncio.gather(
                *(
                    store.post_journal(topup_journal(new_id(), reader, 1, now))
                    for _ in range(min(100, args.entries - start))
                )
            )
        queries = [b"limit=50"]
        while True:
            page = await call(app, "GET", "/transactions", token=token, query=queries[-1])
            cursor = page.headers.get(b"x-next-cursor")
            if cursor is None:
                break
            queries.append(b"limit=50&cursor=" + cursor)

        async def one_page(i: int) -> None:
            query = queries[i % len(queries)]
            answer = await call(app, "GET", "/transactions", token=token, query=query)
            assert answer.status == 200, answer.body

        await measure(
            f"GET /transactions?limit=50 ({len(queries)} pages)",
            one_page,
            args.requests,
            args.concurrency,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--requests", type=int, default=8000, help="per round (default 8000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests at once (32)")
    parser.add_argument("--entries", type=int, default=10000, help="history size (10000)")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
