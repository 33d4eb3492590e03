"""Backpressure at the HTTP layer (app/backpressure.py) against the real service: beyond
HTTP_MAX_IN_PROGRESS requests in progress, new requests are held unread until one
finishes; /health and /metrics are never held; held requests are then served in full.

The claims wait on a row lock held by the test, with a limit equal to the pool's size and
a statement timeout far longer than the test: what is in progress and what is held is
decided by the settings and the lock, not by the machine's speed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from bench.rawload import HttpConnections, claim_request
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import read_metrics
from chaos.infra.service import ServiceProcess
from chaos.infra.waiting import wait_for
from tests.conftest import SERVICE_SETTINGS
from tests.helpers import claims_of, remaining_of, running_service

POOL = int(SERVICE_SETTINGS["DB_POOL_MAX_SIZE"])
#: As many as the pool's connections: every request in progress holds one (no 503).
MAX_IN_PROGRESS = POOL
CLAIMS = 40
STOCK = 10
#: Claims blocked on the lock wait this long at most: a hang guard, not a speed figure.
LONG = 60.0
SETTINGS = {
    **SERVICE_SETTINGS,
    "HTTP_MAX_IN_PROGRESS": str(MAX_IN_PROGRESS),
    "DB_STATEMENT_TIMEOUT": str(LONG),
    "REQUEST_DEADLINE": str(LONG + 1),
}


@pytest.fixture(scope="module")
def gated_service(database_url: str) -> Iterator[ServiceProcess]:
    with running_service(database_url, SETTINGS) as proc:
        yield proc


def test_requests_beyond_the_limit_are_held_then_served(
    gated_service: ServiceProcess, admin: PostgresAdmin
) -> None:
    admin.query("TRUNCATE claims, coupons RESTART IDENTITY CASCADE")
    coupon = "GATED"
    with httpx.Client(base_url=gated_service.url, timeout=30.0) as http:
        assert http.post("/api/coupons", json={"name": coupon, "amount": STOCK}).status_code == 201
        before = read_metrics(http)
        conns = HttpConnections(gated_service.host, gated_service.port)
        try:
            conns.open(CLAIMS)
            with admin.hold_row_lock("coupons", "name", coupon):
                conns.send_all(
                    [
                        claim_request(gated_service.host, gated_service.port, f"u{i}", coupon)
                        for i in range(CLAIMS)
                    ],
                    labels=[f"u{i}" for i in range(CLAIMS)],
                )

                # Every pool connection waits on the lock, everything beyond is held
                # unread. The scrape itself is never held, and counts itself.
                def settled() -> bool:
                    m = read_metrics(http)
                    return (
                        m["http_requests_held"] == CLAIMS - MAX_IN_PROGRESS
                        and m["http_requests_in_progress"] == MAX_IN_PROGRESS + 1
                    )

                wait_for(settled, timeout=LONG / 2, what="the gate full")
                admin.wait_for_backend(timeout=LONG / 2, wait_event_type="Lock", count=POOL)
                # Never held behind the claims: /health answers, within its own timeout
                # (503: every pool connection is busy on the lock).
                assert http.get("/health").status_code == 503
            conns.wait_answers(LONG)
        finally:
            conns.close()
        after = read_metrics(http)

    statuses = Counter(a.status for a in conns.answers)
    # A held request starts only when one finishes, so it never waits for a slot: the
    # whole stock sells and every other claim finds it sold out.
    assert statuses == {200: STOCK, 400: CLAIMS - STOCK}, statuses
    assert after["http_holds_total"] - before["http_holds_total"] >= CLAIMS - MAX_IN_PROGRESS
    assert after["http_requests_held"] == 0
    winners = sorted(a.label for a in conns.answers if a.status == 200)
    assert sorted(claims_of(admin, coupon)) == winners
    assert remaining_of(admin, coupon) == 0
