"""Input a hostile or careless client sends, through HTTP to the real service: every answer
is the documented 4xx, nothing is written, nothing is logged raw, nothing counts as a 500."""

from __future__ import annotations

import socket

import httpx
import pytest

from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import read_metrics
from chaos.infra.service import ServiceProcess
from chaos.infra.waiting import wait_for
from tests.helpers import claims_of, remaining_of

#: How long the service may take to notice a client that went away.
DISCONNECT_NOTICE_BOUND = 5.0


def create(client: httpx.Client, name: str, amount: int) -> None:
    assert client.post("/api/coupons", json={"name": name, "amount": amount}).status_code == 201


def status_count(client: httpx.Client, status: str) -> float:
    """Requests answered (or counted) with `status`, over every route."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("http_requests_total{") and f'status="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- Content-Type: only JSON bodies are parsed (the original service does the same) ----


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "text/json"]
)
def test_a_json_body_under_another_content_type_is_refused(
    client: httpx.Client, db: PostgresAdmin, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = b'{"name": "TYPED", "amount": 3}'
    req = client.build_request("POST", "/api/coupons", content=body, headers=headers)
    assert req.headers.get("content-type") == content_type  # httpx adds none for bytes
    resp = client.send(req)
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid request body"}
    assert remaining_of(db, "TYPED") is None

    create(client, "TYPED", 3)
    req = client.build_request(
        "POST",
        "/api/coupons/claim",
        content=b'{"user_id": "u", "coupon_name": "TYPED"}',
        headers=headers,
    )
    assert req.headers.get("content-type") == content_type  # httpx adds none for bytes
    resp = client.send(req)
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid request body"}
    assert claims_of(db, "TYPED") == []


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "APPLICATION/JSON", "application/merge-patch+json"],
)
def test_json_content_types_with_parameters_or_suffix_are_parsed(
    client: httpx.Client, db: PostgresAdmin, content_type: str
) -> None:
    resp = client.post(
        "/api/coupons",
        content=b'{"name": "OK", "amount": 2}',
        headers={"content-type": content_type},
    )
    assert resp.status_code == 201
    resp = client.post(
        "/api/coupons/claim",
        content=b'{"user_id": "u", "coupon_name": "OK"}',
        headers={"content-type": content_type},
    )
    assert resp.status_code == 200
    assert claims_of(db, "OK") == ["u"]


# --- strings the database cannot hold ------------------------------------------------


@pytest.mark.parametrize(
    ("raw_user", "label"),
    [(b'"\\ud800"', "escaped lone surrogate"), (b'"\xed\xa0\x80"', "raw surrogate bytes")],
)
def test_a_lone_surrogate_is_a_400_not_a_500(
    client: httpx.Client, db: PostgresAdmin, raw_user: bytes, label: str
) -> None:
    create(client, "SURR", 2)
    body = b'{"user_id": ' + raw_user + b', "coupon_name": "SURR"}'
    resp = client.post(
        "/api/coupons/claim", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400, label
    assert resp.json() == {"error": "invalid request: user_id is not valid Unicode"}
    assert "x-request-id" in resp.headers
    assert remaining_of(db, "SURR") == 2
    assert claims_of(db, "SURR") == []

    body = b'{"name": ' + raw_user + b', "amount": 1}'
    resp = client.post("/api/coupons", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid request: name is not valid Unicode"}
    assert db.scalar("SELECT count(*) FROM coupons") == 1


def test_a_nul_in_the_path_names_no_coupon_and_is_never_logged_raw(
    service: ServiceProcess, client: httpx.Client, db: PostgresAdmin
) -> None:
    before = status_count(client, "500")
    resp = client.get("/api/coupons/a%00b")
    assert resp.status_code == 404
    assert resp.json() == {"error": "coupon not found"}
    resp = client.get("/api/coupons/%ED%A0%80")  # undecodable UTF-8 in the path
    assert resp.status_code == 404
    assert status_count(client, "500") == before
    assert "\x00" not in service.log_tail(10_000)


# --- routes: no redirects built from the client's Host header ------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/health/"), ("GET", "/metrics/"), ("POST", "/api/coupons/"), ("GET", "/api/")],
)
def test_a_trailing_slash_is_a_404_not_a_redirect(
    client: httpx.Client, db: PostgresAdmin, method: str, path: str
) -> None:
    resp = client.request(method, path, headers={"host": "evil.example"})
    assert resp.status_code == 404
    assert "location" not in resp.headers
    assert resp.json() == {"error": "not found"}


# --- a client that goes away mid-body -------------------------------------------------


def test_a_client_gone_mid_body_is_not_a_500_nor_an_error_log(
    service: ServiceProcess, client: httpx.Client, db: PostgresAdmin
) -> None:
    create(client, "GONE", 5)
    errors_before = status_count(client, "500")
    gone_before = status_count(client, "499")
    clients = 20
    for i in range(clients):
        with socket.create_connection((service.host, service.port), timeout=5) as sock:
            sock.sendall(
                b"POST /api/coupons/claim HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                + f'{{"user_id": "u{i}", '.encode()
            )
    wait_for(
        lambda: status_count(client, "499") >= gone_before + clients,
        timeout=DISCONNECT_NOTICE_BOUND,
        what="the service to count the clients that went away",
    )
    assert status_count(client, "500") == errors_before
    log = service.log_tail(10_000)
    assert "Traceback" not in log
    assert " ERROR " not in log
    assert remaining_of(db, "GONE") == 5
    assert claims_of(db, "GONE") == []
    metrics = read_metrics(client)
    assert metrics["http_requests_in_flight"] == 0
