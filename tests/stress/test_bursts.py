"""Flash-sale bursts and sustained overload against the real service on DEFAULT settings
and the real database.

Every assert holds at any machine speed: how many answers 200 (exactly the stock), what
every other answer may be, what the database holds, and that the service is back at its
baseline. How fast a burst drains and whether a slow machine refuses some of it (503) are
speed figures: `bench/flash_sale.py` measures them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from bench.stack import raise_nofile_limit
from chaos.core.bounds import SLACK
from chaos.core.limits import Limits
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import read_metrics
from chaos.infra.service import ServiceProcess
from chaos.infra.waiting import wait_for
from tests.burst import BurstAnswer, run_burst, run_closed_loop
from tests.helpers import claims_of, remaining_of, running_service

pytestmark = pytest.mark.stress

STOCK = 50
#: How long a burst may go unanswered before the test calls it a hang. Not a speed
#: figure: no assert depends on it except "every user got an answer", and a hang is a
#: hang however fast the machine.
HANG_GUARD = 120.0
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
    with running_service(database_url) as proc:
        yield proc


@pytest.fixture
def http(default_service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=default_service.url, timeout=30.0) as c:
        yield c


def limits_of(http: httpx.Client) -> Limits:
    return Limits.from_metrics(read_metrics(http))


def assert_back_at_baseline(http: httpx.Client, limits: Limits) -> None:
    """Nothing waiting, held, in flight or cleaning up; the pool at its size, all idle."""

    def settled() -> bool:
        m = read_metrics(http)
        return (
            m["http_requests_in_flight"] == 0
            and m["http_requests_held"] == 0
            and m["db_admission_waiting"] == 0
            and m["db_pool_requests_waiting"] == 0
            and m["db_background_cleanups"] == 0
            and m["db_pool_available"]
            == m["db_pool_size"]
            == m["service_limit{name=db_pool_max_size}"]
        )

    wait_for(settled, timeout=limits.settle_bound, what="the service back at its baseline")


def late_refusals(metrics: dict[str, float], limits: Limits) -> float:
    """503s the service answered later than the acquire timeout + SLACK after it began
    reading the request (its own clock: no load generator's lag in it)."""
    bound = round(limits.acquire_timeout + SLACK, 6)
    total = metrics["http_refusal_duration_seconds_count"]
    return total - metrics[f"http_refusal_duration_seconds_bucket{{le={bound}}}"]


def assert_refusal_is_clean(answer: BurstAnswer, limits: Limits) -> None:
    """A 503 of a claim wrote nothing and says when to come back."""
    assert answer.message == "service unavailable", answer
    assert answer.headers.get("retry-after") == str(limits.retry_after), answer
    assert answer.headers.get("x-write-attempted") == "false", answer


@pytest.mark.parametrize("users", [2_000, 5_000])
def test_a_burst_sells_exactly_the_stock_and_answers_everyone(
    default_service: ServiceProcess, http: httpx.Client, db: PostgresAdmin, users: int
) -> None:
    coupon = f"BURST-{users}"
    assert http.post("/api/coupons", json={"name": coupon, "amount": STOCK}).status_code == 201
    limits = limits_of(http)

    answers = run_burst(
        default_service.host,
        default_service.port,
        [(f"user-{i}", coupon) for i in range(users)],
        answer_timeout=HANG_GUARD,
    )

    assert len(answers) == users
    assert [a for a in answers if a.status is None] == [], "users left without an answer"
    seen = Counter((a.status, a.message) for a in answers)
    # The whole stock sells whatever the speed: a refusal only ever turns a buyer away
    # while others are still being served, and the stock cannot outlast the burst.
    assert seen[(200, None)] == STOCK, seen
    assert set(seen) <= {(200, None), (400, "coupon out of stock"), (503, "service unavailable")}
    for refused in (a for a in answers if a.status == 503):
        assert_refusal_is_clean(refused, limits)
    winners = sorted(a.user_id for a in answers if a.status == 200)
    assert sorted(claims_of(db, coupon)) == winners
    assert remaining_of(db, coupon) == 0
    assert_back_at_baseline(http, limits)


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


def test_sustained_overload_is_refused_and_loses_nothing(
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
            # A hang guard: a 503 is due within the acquire timeout of its read, a 504
            # within the deadline; the client's own clock also counts its queueing.
            answer_timeout=limits.request_deadline + HANG_GUARD,
        )
    )

    statuses = Counter(a.status for a in answers)
    assert set(statuses) == {200, 503}, statuses
    for a in answers:
        if a.status == 503:
            assert a.headers["retry-after"] == str(limits.retry_after)
            assert a.headers["x-write-attempted"] == "false"
    after = read_metrics(http)
    refused = sum(
        after[f"db_admission_refusals_total{{reason={r}}}"]
        - before[f"db_admission_refusals_total{{reason={r}}}"]
        for r in ("time", "memory_guard")
    )
    # Every 503 is the service's own refusal: refused at once, or no connection within
    # the acquire timeout (the service measures its own wait, from its read of the
    # request: a bound derived from the setting, free of the load generator's lag).
    assert statuses[503] >= refused
    assert late_refusals(after, limits) == late_refusals(before, limits), (
        f"503s answered later than the acquire timeout + {SLACK} s"
    )
    # Every acknowledged claim is there, and nothing else.
    served = sorted(a.user_id for a in answers if a.status == 200)
    assert sorted(claims_of(db, coupon)) == served
    assert remaining_of(db, coupon) == amount - len(served)
    assert_back_at_baseline(http, limits)
