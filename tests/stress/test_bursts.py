"""Flash-sale bursts and sustained overload against the real service on DEFAULT settings
and the real database: admission is by time, not by count (DESIGN section 4).

No timing asserts beyond the contract's own bounds, derived from the service's limits.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from bench.stack import raise_nofile_limit
from chaos.checks.probes import Limits, read_metrics
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.service import ServiceProcess
from chaos.infra.waiting import wait_for
from tests.burst import run_burst, run_closed_loop
from tests.helpers import claims_of, remaining_of

pytestmark = pytest.mark.stress

STOCK = 50
#: Scheduling slack above a configured bound (the toolkit's SLACK).
SLACK = 0.5
#: How long the service may take to settle back to its baseline after a load.
SETTLE = 10.0
#: Users of the sustained overload, and for how long they keep claiming.
OVERLOAD_CLIENTS = 100
OVERLOAD_SECONDS = 4.0
#: Each claim of an overload coupon holds the coupon's row lock this long (a trigger):
#: about 1 / 0.05 = 20 claims/s, far below what 100 eager clients ask for.
SLOW_CLAIM_SECONDS = 0.05


@pytest.fixture(scope="module")
def default_service(database_url: str) -> Iterator[ServiceProcess]:
    """The service with every setting at its default (only address and database set)."""
    raise_nofile_limit(12_000)  # the child inherits it: 5,000 connections at once
    proc = ServiceProcess(database_url=database_url)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def http(default_service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=default_service.url, timeout=30.0) as c:
        yield c


def limits_of(http: httpx.Client) -> Limits:
    return Limits.from_metrics(read_metrics(http))


def assert_back_at_baseline(http: httpx.Client) -> None:
    """Nothing waiting, in flight or cleaning up; the pool at its size, all idle."""

    def settled() -> bool:
        m = read_metrics(http)
        return (
            m["http_requests_in_flight"] == 0
            and m["db_admission_waiting"] == 0
            and m["db_pool_requests_waiting"] == 0
            and m["db_background_cleanups"] == 0
            and m["db_pool_available"]
            == m["db_pool_size"]
            == m["service_limit{name=db_pool_max_size}"]
        )

    wait_for(settled, timeout=SETTLE, what="the service back at its baseline")


@pytest.mark.parametrize("users", [2_000, 5_000])
def test_a_burst_that_drains_in_time_is_served_without_503(
    default_service: ServiceProcess, http: httpx.Client, db: PostgresAdmin, users: int
) -> None:
    coupon = f"BURST-{users}"
    assert http.post("/api/coupons", json={"name": coupon, "amount": STOCK}).status_code == 201
    limits = limits_of(http)
    before = read_metrics(http)

    answers = run_burst(
        default_service.host,
        default_service.port,
        [(f"user-{i}", coupon) for i in range(users)],
        answer_timeout=limits.request_deadline + SLACK,
    )

    assert len(answers) == users
    seen = Counter((a.status, a.message) for a in answers)
    assert seen == {(200, None): STOCK, (400, "coupon out of stock"): users - STOCK}
    winners = sorted(a.user_id for a in answers if a.status == 200)
    assert sorted(claims_of(db, coupon)) == winners
    assert remaining_of(db, coupon) == 0
    after = read_metrics(http)
    for reason in ("time", "memory_guard"):
        key = f"db_admission_refusals_total{{reason={reason}}}"
        assert after[key] == before[key], reason
    assert_back_at_baseline(http)


@pytest.fixture
def slow_claims(db: PostgresAdmin) -> Iterator[str]:
    """Claims of coupons named SLOW-* hold their row lock SLOW_CLAIM_SECONDS (a trigger)."""
    db.query(
        f"""
        CREATE OR REPLACE FUNCTION stress_slow_claim() RETURNS trigger AS $$
        BEGIN PERFORM pg_sleep({SLOW_CLAIM_SECONDS}); RETURN NEW; END $$ LANGUAGE plpgsql
        """
    )
    db.query(
        "CREATE TRIGGER stress_slow_claim BEFORE INSERT ON claims FOR EACH ROW "
        "WHEN (NEW.coupon_name LIKE 'SLOW-%%') EXECUTE FUNCTION stress_slow_claim()"
    )
    try:
        yield "SLOW-overload"
    finally:
        db.query("DROP TRIGGER IF EXISTS stress_slow_claim ON claims")
        db.query("DROP FUNCTION IF EXISTS stress_slow_claim()")


def test_sustained_overload_is_refused_fast_and_loses_nothing(
    default_service: ServiceProcess, http: httpx.Client, db: PostgresAdmin, slow_claims: str
) -> None:
    coupon, amount = slow_claims, 1_000_000
    assert http.post("/api/coupons", json={"name": coupon, "amount": amount}).status_code == 201
    limits = limits_of(http)
    before = read_metrics(http)

    answers = asyncio.run(
        run_closed_loop(
            default_service.url,
            coupon,
            clients=OVERLOAD_CLIENTS,
            seconds=OVERLOAD_SECONDS,
            answer_timeout=limits.request_deadline + SLACK,
        )
    )

    statuses = Counter(a.status for a in answers)
    assert set(statuses) == {200, 503}, statuses
    refused = [a for a in answers if a.status == 503]
    bound = limits.acquire_timeout + SLACK
    assert max(a.latency for a in refused) <= bound
    for a in refused:
        assert a.headers["retry-after"] == str(limits.retry_after)
        assert a.headers["x-write-attempted"] == "false"
    after = read_metrics(http)
    assert (
        after["db_admission_refusals_total{reason=time}"]
        > before["db_admission_refusals_total{reason=time}"]
    )
    # Every acknowledged claim is there, and nothing else.
    served = sorted(a.user_id for a in answers if a.status == 200)
    assert sorted(claims_of(db, coupon)) == served
    assert remaining_of(db, coupon) == amount - len(served)
    assert_back_at_baseline(http)
