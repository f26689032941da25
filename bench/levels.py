"""POST /pay at LOG_LEVEL=INFO (as shipped) and at WARNING, interleaved: the access log's cost.

    python -m bench.levels --rounds 4

One SQLite database and 64 users; each round serves Dompet at one level, then at the other
(the first level alternating from round to round), 10 s of wrk POST /pay each at 64
connections, and prints req/s, p99 and the server's CPU time per request. In a full
``make bench`` the INFO scenario always runs first, on a fresh database and a cold server;
here neither level has that advantage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from pathlib import Path

from bench.runner import BIG_BALANCE, http
from bench.server import Server
from bench.wrk import post_lua, run_wrk
from dompet.storage import migrate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.levels", description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="dompet-levels-"))
    try:
        url = f"sqlite:///{tmp}/dompet.db"
        asyncio.run(migrate(url))
        env = {
            "DATABASE_URL": url,
            "DOMPET_ENV": "development",
            # Set-up only: login/register (Argon2) are not measured, so hash cheaply;
            # every user is registered from 127.0.0.1, so no per-client registration limit.
            "REGISTRATIONS_PER_CLIENT": "0",
            "PIN_HASH_TIME_COST": "1",
            "PIN_HASH_MEMORY_KIB": "8192",
            "PIN_HASH_PARALLELISM": "1",
        }

        def serve(level: str) -> Server:
            server = Server(
                "dompet.api.app:create_app",
                {**env, "LOG_LEVEL": level},
                1,
                tmp / f"{level}.log",
                logs="dompet",
            )
            server.wait_ready()
            return server

        server = serve("WARNING")
        tokens = []
        for i in range(min(args.connections, 64)):
            phone = f"0812{i:08d}"
            body = {"first_name": "Bench", "phone_number": phone, "pin": "123456"}
            http(server.url, "POST", "/register", body)
            login = {"phone_number": phone, "pin": "123456"}
            token = http(server.url, "POST", "/login", login)[0]["result"]["access_token"]
            http(server.url, "POST", "/topup", {"amount": BIG_BALANCE}, token)
            tokens.append(token)
        server.stop()
        lua = post_lua("/pay", [json.dumps({"amount": 1, "remarks": "bench"})], tokens)
        for round_ in range(1, args.rounds + 1):
            order = ("INFO", "WARNING") if round_ % 2 else ("WARNING", "INFO")
            for level in order:
                server = serve(level)
                try:
                    server.start_sampling()
                    result = run_wrk(
                        server.url + "/pay",
                        lua,
                        connections=args.connections,
                        duration=args.duration,
                    )
                    server.stop_sampling()
                finally:
                    server.stop()
                cpu = server.cpu_sampled / max(result.requests, 1) * 1e6
                print(
                    f"round {round_} {level}: {result.rps:.0f} req/s, p99 {result.p99_ms:.1f} "
                    f"ms, server CPU {cpu:.0f} us/request, {result.errors} errors",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
