"""Fast JSON responses (orjson) shared by every route."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        content=orjson.dumps(data),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def wallet_ok(result: Any) -> Response:
    """The e-wallet success envelope."""
    return json_response({"status": "SUCCESS", "result": result})


def wallet_ok_json(result: bytes, headers: dict[str, str] | None = None) -> Response:
    """The e-wallet success envelope around a result that is JSON text already."""
    return Response(
        content=b'{"status":"SUCCESS","result":' + result + b"}",
        media_type="application/json",
        headers=headers,
    )
