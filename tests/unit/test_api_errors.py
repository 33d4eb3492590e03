"""The HTTP layer's last line of defence (pure logic: the app in-process, no database).

A route that raises something unexpected must still answer the documented 500 body with
an X-Request-Id, and be logged with that id; an in-process app is enough to show it, since
no unexpected exception can be provoked through the real service's routes on purpose.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from app.api import create_app
from app.settings import Settings


async def _get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    app = create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: SELECT * FROM coupons")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


def test_an_unexpected_error_answers_500_with_a_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="app.api"):
        resp = asyncio.run(_get("/boom", {"x-request-id": "req-42"}))
    assert resp.status_code == 500
    assert resp.json() == {"error": "internal server error"}
    assert resp.headers["x-request-id"] == "req-42"
    assert "SELECT" not in resp.text
    assert any("req-42" in r.getMessage() for r in caplog.records)


def test_a_500_gets_a_fresh_request_id_when_none_was_sent() -> None:
    resp = asyncio.run(_get("/boom"))
    assert resp.status_code == 500
    assert len(resp.headers["x-request-id"]) == 32
