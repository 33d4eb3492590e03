"""Smoke tests of the chaos stack: the service reaches PostgreSQL only through Toxiproxy.

Expected behaviour: a claim through the proxy succeeds; with the proxy disabled, claims
answer 503 within the request deadline and /health answers 503 within its bound; once
the proxy is enabled again, claims succeed within the recovery bound.
"""

from __future__ import annotations

import time

import httpx
import pytest

from chaos.core.limits import Limits
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.stack import PROXY_NAME, Stack
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.infra.waiting import wait_for

pytestmark = pytest.mark.chaos

#: Scheduling slack on top of a configured bound (HTTP, event loop, 2 cores).
SLACK = 0.5
#: How soon claims must succeed after a fault is removed (docs/design.md, "Failure contract").
RECOVERY_BOUND = 2.0


def claim(client: httpx.Client, user: str, coupon: str) -> httpx.Response:
    return client.post("/api/coupons/claim", json={"user_id": user, "coupon_name": coupon})


@pytest.fixture
def coupon(chaos_service_client: httpx.Client, chaos_pg_admin: PostgresAdmin) -> str:
    name = f"SMOKE-{time.monotonic_ns()}"
    assert (
        chaos_service_client.post("/api/coupons", json={"name": name, "amount": 100}).status_code
        == 201
    )
    return name


def test_the_service_reaches_the_database_through_the_proxy(
    chaos_stack: Stack,
    chaos_toxiproxy: ToxiproxyClient,
    chaos_service_client: httpx.Client,
    coupon: str,
    chaos_pg_admin: PostgresAdmin,
) -> None:
    proxy = chaos_toxiproxy.get_proxy(PROXY_NAME)
    assert proxy.enabled
    assert str(proxy.listen_port) in chaos_stack.endpoints.proxied_database_url
    assert claim(chaos_service_client, "smoke-1", coupon).status_code == 200
    assert (
        chaos_pg_admin.scalar(
            "SELECT count(*) FROM claims WHERE coupon_name = %s AND user_id = 'smoke-1'", (coupon,)
        )
        == 1
    )


def test_proxy_down_answers_503_fast_and_recovers(
    chaos_toxiproxy: ToxiproxyClient,
    chaos_service_client: httpx.Client,
    chaos_service_limits: Limits,
    chaos_pg_admin: PostgresAdmin,
    coupon: str,
) -> None:
    chaos_toxiproxy.disable(PROXY_NAME)
    started = time.monotonic()
    resp = claim(chaos_service_client, "down-1", coupon)
    took = time.monotonic() - started
    assert resp.status_code == 503
    assert resp.json() == {"error": "service unavailable"}
    assert resp.headers["retry-after"] == str(chaos_service_limits.retry_after)
    assert took <= chaos_service_limits.request_deadline + SLACK

    started = time.monotonic()
    health = chaos_service_client.get("/health")
    assert health.status_code == 503
    assert health.json() == {"status": "unhealthy", "error": "database connection failed"}
    assert time.monotonic() - started <= chaos_service_limits.health_timeout + SLACK

    chaos_toxiproxy.enable(PROXY_NAME)
    lifted = time.monotonic()
    users = iter(range(1_000_000))
    wait_for(
        lambda: claim(chaos_service_client, f"back-{next(users)}", coupon).status_code == 200,
        timeout=RECOVERY_BOUND,
        what="first successful claim after the proxy came back",
    )
    assert time.monotonic() - lifted <= RECOVERY_BOUND
    assert chaos_pg_admin.scalar("SELECT count(*) FROM claims WHERE user_id = 'down-1'") == 0
    assert chaos_service_client.get("/health").status_code == 200
