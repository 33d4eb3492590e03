"""Every row of the HTTP contract (docs/design.md) through HTTP, with the database state after."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from chaos.infra.postgres import PostgresAdmin
from tests.helpers import claims_of, remaining_of

LONG = "n" * 256
JSON = {"content-type": "application/json"}


def create(client: httpx.Client, name: str, amount: int) -> None:
    assert client.post("/api/coupons", json={"name": name, "amount": amount}).status_code == 201


# --- POST /api/coupons -------------------------------------------------------------


def test_create_coupon_answers_201_with_empty_body(client: httpx.Client, db: PostgresAdmin) -> None:
    resp = client.post("/api/coupons", json={"name": "SUMMER", "amount": 10})
    assert resp.status_code == 201
    assert resp.content == b""
    assert remaining_of(db, "SUMMER") == 10
    assert db.scalar("SELECT amount FROM coupons WHERE name = 'SUMMER'") == 10


def test_create_ignores_unknown_fields(client: httpx.Client, db: PostgresAdmin) -> None:
    resp = client.post("/api/coupons", json={"name": "X", "amount": 1, "colour": "red"})
    assert resp.status_code == 201
    assert remaining_of(db, "X") == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid request body"),
        (b"", "invalid request body"),
        (b"[1, 2]", "invalid request body"),
        (b'"name"', "invalid request body"),
        (b"null", "invalid request body"),
        (b"\xff\xfe", "invalid request body"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid request body"),
        (b'{"amount": 5}', "invalid request: name is required"),
        (b'{"name": "", "amount": 5}', "invalid request: name is required"),
        (b'{"name": null, "amount": 5}', "invalid request: name is required"),
        (b'{"name": "   ", "amount": 5}', "invalid request: name cannot be whitespace only"),
        (
            json.dumps({"name": LONG, "amount": 5}).encode(),
            "invalid request: name exceeds maximum length of 255",
        ),
        (b'{"name": "A"}', "invalid request: amount is required"),
        (b'{"name": "A", "amount": 0}', "invalid request: amount must be at least 1"),
        (b'{"name": "A", "amount": -3}', "invalid request: amount must be at least 1"),
    ],
)
def test_create_rejects_bad_input_with_400(
    client: httpx.Client, db: PostgresAdmin, body: bytes, message: str
) -> None:
    resp = client.post("/api/coupons", content=body, headers=JSON)
    assert resp.status_code == 400
    assert resp.json() == {"error": message}
    assert db.scalar("SELECT count(*) FROM coupons") == 0


@pytest.mark.parametrize("amount", ["5", 5.5, True, [5], {"n": 5}, 2**31, 10**30, 2**63], ids=repr)
def test_create_rejects_wrong_type_or_overflow(
    client: httpx.Client, db: PostgresAdmin, amount: Any
) -> None:
    resp = client.post("/api/coupons", json={"name": "A", "amount": amount})
    assert resp.status_code == 400
    assert resp.json()["error"].startswith("invalid request")
    assert db.scalar("SELECT count(*) FROM coupons") == 0


def test_create_accepts_int32_max(client: httpx.Client, db: PostgresAdmin) -> None:
    create(client, "BIG", 2**31 - 1)
    assert remaining_of(db, "BIG") == 2**31 - 1


def test_create_name_of_255_chars_is_accepted(client: httpx.Client, db: PostgresAdmin) -> None:
    create(client, "n" * 255, 1)
    assert remaining_of(db, "n" * 255) == 1


def test_create_duplicate_answers_409_and_keeps_the_first(
    client: httpx.Client, db: PostgresAdmin
) -> None:
    create(client, "DUP", 3)
    resp = client.post("/api/coupons", json={"name": "DUP", "amount": 7})
    assert resp.status_code == 409
    assert resp.json() == {"error": "coupon already exists"}
    assert remaining_of(db, "DUP") == 3


def test_body_over_one_mib_answers_413(client: httpx.Client, db: PostgresAdmin) -> None:
    body = json.dumps({"name": "A", "amount": 1, "pad": "x" * (1024 * 1024)}).encode()
    resp = client.post("/api/coupons", content=body, headers=JSON)
    assert resp.status_code == 413
    assert resp.json() == {"error": "request body too large"}
    assert db.scalar("SELECT count(*) FROM coupons") == 0


def test_chunked_body_over_one_mib_answers_413(client: httpx.Client, db: PostgresAdmin) -> None:
    def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    resp = client.post("/api/coupons", content=chunks(), headers=JSON)
    assert resp.status_code == 413
    assert resp.json() == {"error": "request body too large"}
    assert db.scalar("SELECT count(*) FROM coupons") == 0


# --- GET /api/coupons/{name} -------------------------------------------------------


def test_get_new_coupon_has_empty_claimed_by(client: httpx.Client, db: PostgresAdmin) -> None:
    create(client, "FRESH", 4)
    resp = client.get("/api/coupons/FRESH")
    assert resp.status_code == 200
    assert resp.json() == {"name": "FRESH", "amount": 4, "remaining_amount": 4, "claimed_by": []}


def test_get_lists_claimers_in_claim_order(client: httpx.Client, db: PostgresAdmin) -> None:
    create(client, "ORDER", 5)
    for user in ("zed", "amy", "bob"):
        resp = client.post("/api/coupons/claim", json={"user_id": user, "coupon_name": "ORDER"})
        assert resp.status_code == 200
    body = client.get("/api/coupons/ORDER").json()
    assert body == {
        "name": "ORDER",
        "amount": 5,
        "remaining_amount": 2,
        "claimed_by": ["zed", "amy", "bob"],
    }
    assert claims_of(db, "ORDER") == ["zed", "amy", "bob"]


def test_get_unknown_coupon_answers_404(client: httpx.Client, db: PostgresAdmin) -> None:
    resp = client.get("/api/coupons/NOPE")
    assert resp.status_code == 404
    assert resp.json() == {"error": "coupon not found"}


@pytest.mark.parametrize("length", [256, 1000, 5000])
def test_get_any_name_that_names_no_coupon_answers_404(
    client: httpx.Client, db: PostgresAdmin, length: int
) -> None:
    # As the original service does: no coupon has that name, whatever its length.
    resp = client.get(f"/api/coupons/{'n' * length}")
    assert resp.status_code == 404
    assert resp.json() == {"error": "coupon not found"}


def test_get_name_with_special_characters(client: httpx.Client, db: PostgresAdmin) -> None:
    create(client, "50% off & more", 1)
    resp = client.get("/api/coupons/50%25%20off%20%26%20more")
    assert resp.status_code == 200
    assert resp.json()["name"] == "50% off & more"


# --- POST /api/coupons/claim -------------------------------------------------------


def test_claim_answers_200_and_writes_once(client: httpx.Client, db: PostgresAdmin) -> None:
    create(client, "C", 2)
    resp = client.post("/api/coupons/claim", json={"user_id": "u1", "coupon_name": "C"})
    assert resp.status_code == 200
    assert resp.content == b""
    assert remaining_of(db, "C") == 1
    assert claims_of(db, "C") == ["u1"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "invalid request body"),
        (b"", "invalid request body"),
        (b"[]", "invalid request body"),
        (b'{"coupon_name": "C"}', "invalid request: user_id is required"),
        (b'{"user_id": "", "coupon_name": "C"}', "invalid request: user_id is required"),
        (
            b'{"user_id": " \\t ", "coupon_name": "C"}',
            "invalid request: user_id cannot be whitespace only",
        ),
        (
            json.dumps({"user_id": LONG, "coupon_name": "C"}).encode(),
            "invalid request: user_id exceeds maximum length of 255",
        ),
        (b'{"user_id": "u"}', "invalid request: coupon_name is required"),
        (b'{"user_id": "u", "coupon_name": ""}', "invalid request: coupon_name is required"),
        (
            b'{"user_id": "u", "coupon_name": "  "}',
            "invalid request: coupon_name cannot be whitespace only",
        ),
        (
            json.dumps({"user_id": "u", "coupon_name": LONG}).encode(),
            "invalid request: coupon_name exceeds maximum length of 255",
        ),
    ],
)
def test_claim_rejects_bad_input_with_400(
    client: httpx.Client, db: PostgresAdmin, body: bytes, message: str
) -> None:
    create(client, "C", 2)
    resp = client.post("/api/coupons/claim", content=body, headers=JSON)
    assert resp.status_code == 400
    assert resp.json() == {"error": message}
    assert remaining_of(db, "C") == 2
    assert claims_of(db, "C") == []


def test_claim_unknown_coupon_answers_404(client: httpx.Client, db: PostgresAdmin) -> None:
    resp = client.post("/api/coupons/claim", json={"user_id": "u", "coupon_name": "GHOST"})
    assert resp.status_code == 404
    assert resp.json() == {"error": "coupon not found"}
    assert db.scalar("SELECT count(*) FROM claims") == 0


def test_claim_sold_out_answers_400(client: httpx.Client, db: PostgresAdmin) -> None:
    create(client, "ONE", 1)
    assert (
        client.post("/api/coupons/claim", json={"user_id": "a", "coupon_name": "ONE"}).status_code
        == 200
    )
    resp = client.post("/api/coupons/claim", json={"user_id": "b", "coupon_name": "ONE"})
    assert resp.status_code == 400
    assert resp.json() == {"error": "coupon out of stock"}
    assert remaining_of(db, "ONE") == 0
    assert claims_of(db, "ONE") == ["a"]


def test_claim_twice_answers_409(client: httpx.Client, db: PostgresAdmin) -> None:
    create(client, "TWICE", 5)
    body = {"user_id": "same", "coupon_name": "TWICE"}
    assert client.post("/api/coupons/claim", json=body).status_code == 200
    resp = client.post("/api/coupons/claim", json=body)
    assert resp.status_code == 409
    assert resp.json() == {"error": "coupon already claimed by user"}
    assert remaining_of(db, "TWICE") == 4
    assert claims_of(db, "TWICE") == ["same"]


def test_stock_is_checked_before_duplicate(client: httpx.Client, db: PostgresAdmin) -> None:
    create(client, "LAST", 1)
    body = {"user_id": "holder", "coupon_name": "LAST"}
    assert client.post("/api/coupons/claim", json=body).status_code == 200
    resp = client.post("/api/coupons/claim", json=body)
    assert resp.status_code == 400
    assert resp.json() == {"error": "coupon out of stock"}
    assert claims_of(db, "LAST") == ["holder"]


def test_claim_ignores_unknown_fields(client: httpx.Client, db: PostgresAdmin) -> None:
    create(client, "EXTRA", 1)
    resp = client.post(
        "/api/coupons/claim", json={"user_id": "u", "coupon_name": "EXTRA", "x": [1, {"y": 2}]}
    )
    assert resp.status_code == 200
    assert claims_of(db, "EXTRA") == ["u"]


# --- /health, /metrics, errors ----------------------------------------------------


def test_health_answers_200(client: httpx.Client, db: PostgresAdmin) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "healthy"}


def test_metrics_in_prometheus_format(client: httpx.Client, db: PostgresAdmin) -> None:
    client.get("/api/coupons/ANY")
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert 'http_requests_total{method="GET",route="/api/coupons/{name}",status="404"}' in text
    for name in (
        "db_pool_size",
        "db_pool_available",
        "db_pool_requests_waiting",
        "db_pool_connections_lost_total",
        "db_pool_returns_bad_total",
        "db_pool_requests_errors_total",
        "process_asyncio_tasks",
        "process_threads",
        "process_fds",
    ):
        assert f"\n{name} " in text, name


def test_unknown_route_and_method_answer_json(client: httpx.Client, db: PostgresAdmin) -> None:
    resp = client.get("/nowhere")
    assert resp.status_code == 404
    assert resp.json() == {"error": "not found"}
    resp = client.put("/api/coupons")
    assert resp.status_code == 405
    assert resp.json() == {"error": "method not allowed"}


def test_request_id_is_echoed(client: httpx.Client, db: PostgresAdmin) -> None:
    resp = client.get("/health", headers={"x-request-id": "abc123"})
    assert resp.headers["x-request-id"] == "abc123"
