"""/docs shows a request and a response example for every route, grouped by API."""

from __future__ import annotations

from typing import Any

import httpx

ROUTES = {
    ("post", "/register"): "E-wallet",
    ("post", "/login"): "E-wallet",
    ("post", "/refresh"): "E-wallet",
    ("post", "/topup"): "E-wallet",
    ("post", "/pay"): "E-wallet",
    ("post", "/transfer"): "E-wallet",
    ("get", "/transactions"): "E-wallet",
    ("put", "/profile"): "E-wallet",
    ("post", "/logout"): "E-wallet",
    ("post", "/daftar"): "Tabungan",
    ("post", "/tabung"): "Tabungan",
    ("post", "/tarik"): "Tabungan",
    ("get", "/saldo/{no_rekening}"): "Tabungan",
    ("get", "/mutasi/{no_rekening}"): "Tabungan",
}


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def has_example(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """An example on the schema, on its ``result`` (the e-wallet envelope) or its items."""
    schema = resolve(spec, schema)
    if schema.get("examples") or schema.get("example"):
        return True
    if "items" in schema:
        return has_example(spec, schema["items"])
    result = schema.get("properties", {}).get("result")
    return result is not None and has_example(spec, result)


async def test_every_route_is_documented_with_examples(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert (await client.get("/docs")).status_code == 200
    for (method, path), tag in ROUTES.items():
        operation = spec["paths"][path][method]
        assert operation["tags"] == [tag], path
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert has_example(spec, ok), f"{method} {path}: no response example"
        body = operation.get("requestBody")
        if body is not None:
            request = body["content"]["application/json"]["schema"]
            assert has_example(spec, request), f"{method} {path}: no request example"
        for status, response in operation["responses"].items():
            if status != "200" and "content" in response:
                error = response["content"]["application/json"]["schema"]
                assert has_example(spec, error), f"{method} {path} {status}: no example"


async def test_docs_list_routes_in_the_specifications_order_and_mark_bearer_ones(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    documented = [path for path in spec["paths"] if path not in ("/healthz", "/metrics")]
    assert documented == list(dict.fromkeys(path for _, path in ROUTES))
    bearer = {"/topup", "/pay", "/transfer", "/transactions", "/profile", "/logout"}
    for (method, path), _tag in ROUTES.items():
        security = spec["paths"][path][method].get("security")
        assert (security == [{"HTTPBearer": []}]) == (path in bearer), (method, path, security)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
