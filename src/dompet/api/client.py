"""The client address that the per-client limits count by (services/attempts.py).

It is the connection's socket peer (ASGI ``scope["client"]``). Behind a reverse proxy every
request comes from the proxy's address, so all clients would share one allowance: list the
proxy in FORWARDED_ALLOW_IPS, and ``dompet serve`` has uvicorn take the client from the
proxy's X-Forwarded-For instead (only from those addresses: anyone else's header is ignored).
"""

from __future__ import annotations

from starlette.requests import Request


def client_address(request: Request) -> str | None:
    client = request.client
    return client.host if client is not None and client.host else None
