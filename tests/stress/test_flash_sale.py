"""Flash-sale concurrency against the real service and database: never oversell, one claim
per user and coupon, and the service back at its baseline afterwards."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from chaos.infra.postgres import PostgresAdmin
from chaos.infra.service import ServiceProcess
from chaos.infra.waiting import wait_for
from chaos.targets.coupons import run_claims
from tests.helpers import claims_of, metric, remaining_of

pytestmark = pytest.mark.stress


def create(client: httpx.Client, name: str, amount: int) -> None:
    assert client.post("/api/coupons", json={"name": name, "amount": amount}).status_code == 201


def statuses(ops: list) -> Counter[int | None]:  # type: ignore[type-arg]
    return Counter(op.status for op in ops)


def test_flash_sale_sells_exactly_the_stock(
    service: ServiceProcess, client: httpx.Client, db: PostgresAdmin
) -> None:
    create(client, "FLASH", 5)
    ops = asyncio.run(run_claims(service.url, [(f"user-{i}", "FLASH") for i in range(50)]))
    assert statuses(ops) == {200: 5, 400: 45}
    winners = sorted(op.actor for op in ops if op.status == 200)
    assert sorted(claims_of(db, "FLASH")) == winners
    assert remaining_of(db, "FLASH") == 0


def test_double_dip_gives_one_claim_per_user(
    service: ServiceProcess, client: httpx.Client, db: PostgresAdmin
) -> None:
    create(client, "DIP", 100)
    ops = asyncio.run(run_claims(service.url, [("greedy", "DIP")] * 10))
    assert statuses(ops) == {200: 1, 409: 9}
    assert claims_of(db, "DIP") == ["greedy"]
    assert remaining_of(db, "DIP") == 99


@pytest.mark.parametrize(("users", "stock"), [(100, 10), (200, 20), (500, 50)])
def test_scale_several_coupons_at_once(
    service: ServiceProcess, client: httpx.Client, db: PostgresAdmin, users: int, stock: int
) -> None:
    coupons = [f"SCALE-{users}-{k}" for k in range(3)]
    for name in coupons:
        create(client, name, stock)
    requests = [(f"u{i}", coupons[i % 3]) for i in range(users)]
    ops = asyncio.run(run_claims(service.url, requests))
    per_coupon = users // 3 + 1
    assert all(op.status in (200, 400) for op in ops), statuses(ops)
    for name in coupons:
        wins = [op.actor for op in ops if op.key == name and op.status == 200]
        attempts = sum(1 for _, c in requests if c == name)
        assert len(wins) == min(stock, attempts) <= per_coupon
        assert sorted(claims_of(db, name)) == sorted(wins)
        assert remaining_of(db, name) == stock - len(wins)
    assert (
        db.scalar(
            "SELECT count(*) FROM coupons c WHERE remaining_amount + "
            "(SELECT count(*) FROM claims WHERE coupon_name = c.name) <> amount"
        )
        == 0
    )


def test_client_disconnect_mid_request_leaves_nothing_half_done(
    service: ServiceProcess, client: httpx.Client, db: PostgresAdmin
) -> None:
    """Clients give up while their claims wait on a row lock; after the lock is released
    every claim is whole or absent, no backend is stuck and no task leaked."""
    create(client, "GONE", 10)
    tasks_before = metric(client, "process_asyncio_tasks")
    with db.hold_row_lock("coupons", "name", "GONE"):

        async def give_up() -> list:  # type: ignore[type-arg]
            return await run_claims(
                service.url, [(f"quitter-{i}", "GONE") for i in range(8)], client_timeout=0.3
            )

        ops = asyncio.run(give_up())
        assert {op.error for op in ops} == {"timeout"}
        db.wait_for_backend(timeout=5.0, wait_event_type="Lock", count=1)
    # Each abandoned claim is all or nothing: stock and claims agree.
    wait_for(
        lambda: metric(client, "http_requests_in_flight") == 0,
        timeout=10.0,
        what="no request in flight",
    )
    claimed = claims_of(db, "GONE")
    assert remaining_of(db, "GONE") == 10 - len(claimed)
    assert len(set(claimed)) == len(claimed)
    db.wait_until_no_backend(timeout=5.0, state="idle in transaction")
    db.wait_until_no_backend(timeout=5.0, state="active")
    wait_for(
        lambda: metric(client, "process_asyncio_tasks") <= tasks_before,
        timeout=10.0,
        what=f"asyncio tasks back to {tasks_before}",
    )
    assert (
        client.post(
            "/api/coupons/claim", json={"user_id": "after", "coupon_name": "GONE"}
        ).status_code
        == 200
    )
