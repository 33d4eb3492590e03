"""The served /openapi.json lists the contract's answers (docs/design.md) per route.

A fast, exact reading of the document; tests/integration/test_openapi_schemathesis.py
checks the service's real answers against it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chaos.infra.postgres import PostgresAdmin
from chaos.infra.service import ServiceProcess

#: Every status each operation can answer, from the contract.
CONTRACT_STATUSES = {
    ("post", "/api/coupons"): {"201", "400", "405", "409", "413", "500", "503", "504"},
    ("post", "/api/coupons/claim"): {"200", "400", "404", "405", "409", "413", "500", "503", "504"},
    ("get", "/api/coupons/{name}"): {"200", "404", "405", "500", "503", "504"},
    ("get", "/health"): {"200", "405", "500", "503"},
    ("get", "/metrics"): {"200", "405", "500"},
}

FIELD_MESSAGES = [
    "{} is required",
    "{} must be a string",
    "{} cannot be whitespace only",
    "{} exceeds maximum length of 255",
]

#: The contract's messages per (operation, status); each must be in the documented enum.
CONTRACT_MESSAGES = {
    ("post", "/api/coupons", "400"): [
        "invalid request body",
        *(f"invalid request: {m.format('name')}" for m in FIELD_MESSAGES),
        "invalid request: amount is required",
        "invalid request: amount must be at least 1",
        "invalid request: amount must be an integer",
        "invalid request: amount exceeds maximum of 2147483647",
    ],
    ("post", "/api/coupons", "409"): ["coupon already exists"],
    ("post", "/api/coupons/claim", "400"): [
        "invalid request body",
        *(f"invalid request: {m.format('user_id')}" for m in FIELD_MESSAGES),
        *(f"invalid request: {m.format('coupon_name')}" for m in FIELD_MESSAGES),
        "coupon out of stock",
    ],
    ("post", "/api/coupons/claim", "404"): ["coupon not found"],
    ("post", "/api/coupons/claim", "409"): ["coupon already claimed by user"],
    ("get", "/api/coupons/{name}", "404"): ["coupon not found"],
}

#: Answers of every operation that goes to the database.
DATABASE_FAILURE_MESSAGES = {
    "405": "method not allowed",
    "500": "internal server error",
    "503": "service unavailable",
    "504": "request timed out",
}


@pytest.fixture(scope="module")
def document(service: ServiceProcess) -> dict[str, Any]:
    """The document the running service serves, read once for the checks below."""
    resp = httpx.get(f"{service.url}/openapi.json", timeout=30.0)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body: dict[str, Any] = resp.json()
    return body


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = document["paths"][path][method]
    return op


def error_messages(response: dict[str, Any]) -> list[str]:
    schema = response["content"]["application/json"]["schema"]
    assert schema["required"] == ["error"]
    messages: list[str] = schema["properties"]["error"]["enum"]
    return messages


def test_lists_exactly_the_contract_operations(document: dict[str, Any]) -> None:
    listed = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert listed == set(CONTRACT_STATUSES)


@pytest.mark.parametrize(("method", "path"), list(CONTRACT_STATUSES), ids=" ".join)
def test_lists_every_status_of_the_contract(
    document: dict[str, Any], method: str, path: str
) -> None:
    assert set(operation(document, method, path)["responses"]) == CONTRACT_STATUSES[method, path]


@pytest.mark.parametrize(("method", "path"), list(CONTRACT_STATUSES), ids=" ".join)
def test_every_answer_carries_a_request_id(
    document: dict[str, Any], method: str, path: str
) -> None:
    for status, response in operation(document, method, path)["responses"].items():
        header = response["headers"]["X-Request-Id"]
        assert header["required"] is True, status


@pytest.mark.parametrize(
    ("method", "path", "status"), list(CONTRACT_MESSAGES), ids=lambda v: str(v)
)
def test_error_bodies_name_the_contract_messages(
    document: dict[str, Any], method: str, path: str, status: str
) -> None:
    response = operation(document, method, path)["responses"][status]
    assert set(CONTRACT_MESSAGES[method, path, status]) <= set(error_messages(response))


@pytest.mark.parametrize(
    ("method", "path"), [k for k in CONTRACT_STATUSES if "coupons" in k[1]], ids=" ".join
)
def test_database_failures_are_documented_with_their_headers(
    document: dict[str, Any], method: str, path: str
) -> None:
    responses = operation(document, method, path)["responses"]
    for status, message in DATABASE_FAILURE_MESSAGES.items():
        assert error_messages(responses[status]) == [message]
    assert responses["503"]["headers"]["Retry-After"]["required"] is True
    assert responses["503"]["headers"]["X-Write-Attempted"]["schema"]["enum"] == ["true", "false"]
    assert responses["405"]["headers"]["Allow"]["required"] is True
    if method == "post":  # only a route that reads its body can find it too large
        assert error_messages(responses["413"]) == ["request body too large"]


def test_request_bodies_are_json_objects_with_their_fields(document: dict[str, Any]) -> None:
    for path, fields in [
        ("/api/coupons", ["name", "amount"]),
        ("/api/coupons/claim", ["user_id", "coupon_name"]),
    ]:
        body = operation(document, "post", path)["requestBody"]
        assert body["required"] is True
        schema = body["content"]["application/json"]["schema"]
        assert schema["type"] == "object"
        assert schema["required"] == fields
        assert set(schema["properties"]) == set(fields)


def test_success_bodies(document: dict[str, Any]) -> None:
    created = operation(document, "post", "/api/coupons")["responses"]["201"]
    claimed = operation(document, "post", "/api/coupons/claim")["responses"]["200"]
    assert "content" not in created
    assert "content" not in claimed
    coupon = operation(document, "get", "/api/coupons/{name}")["responses"]["200"]
    schema = coupon["content"]["application/json"]["schema"]
    assert schema["required"] == ["name", "amount", "remaining_amount", "claimed_by"]
    assert schema["properties"]["claimed_by"] == {
        "type": "array",
        "description": schema["properties"]["claimed_by"]["description"],
        "items": {"type": "string"},
    }
    health = operation(document, "get", "/health")["responses"]
    healthy = health["200"]["content"]["application/json"]["schema"]
    unhealthy = health["503"]["content"]["application/json"]["schema"]
    assert healthy["properties"]["status"]["enum"] == ["healthy"]
    assert unhealthy["required"] == ["status", "error"]
    assert unhealthy["properties"]["status"]["enum"] == ["unhealthy"]
    assert unhealthy["properties"]["error"]["enum"] == ["database connection failed"]
    assert health["503"]["headers"]["Retry-After"]["required"] is True
    metrics = operation(document, "get", "/metrics")["responses"]["200"]
    assert list(metrics["content"]) == ["text/plain"]


def test_no_validation_error_of_fastapi(document: dict[str, Any]) -> None:
    # The service answers 400 with its own messages, never FastAPI's 422.
    for ops in document["paths"].values():
        for op in ops.values():
            assert "422" not in op["responses"]
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})


#: Requests that reach each answer branch of the service (app.validation, the contract's
#: rows and the hostile-input probes), for which schemathesis's generator has no
#: reason to aim: each answer must be one the document lists, with a listed message.
PROBES: list[tuple[str, str, bytes | None, str]] = [
    ("post", "/api/coupons", b"{not json", "application/json"),
    ("post", "/api/coupons", b"", "application/json"),
    ("post", "/api/coupons", b"[1]", "application/json"),
    ("post", "/api/coupons", b'{"name": "A", "amount": 1}', "text/plain"),
    ("post", "/api/coupons", b'{"name": "A", "amount": 1}', ""),
    ("post", "/api/coupons", b'{"amount": 1}', "application/json"),
    ("post", "/api/coupons", b'{"name": 5, "amount": 1}', "application/json"),
    ("post", "/api/coupons", b'{"name": " ", "amount": 1}', "application/json"),
    ("post", "/api/coupons", b'{"name": "' + b"n" * 256 + b'", "amount": 1}', "application/json"),
    ("post", "/api/coupons", b'{"name": "a\\u0000b", "amount": 1}', "application/json"),
    ("post", "/api/coupons", b'{"name": "a\\ud800b", "amount": 1}', "application/json"),
    ("post", "/api/coupons", b'{"name": "a\xed\xa0\x80b", "amount": 1}', "application/json"),
    ("post", "/api/coupons", b'{"name": "A"}', "application/json"),
    ("post", "/api/coupons", b'{"name": "A", "amount": "1"}', "application/json"),
    ("post", "/api/coupons", b'{"name": "A", "amount": 0}', "application/json"),
    ("post", "/api/coupons", b'{"name": "A", "amount": 2147483648}', "application/json"),
    ("post", "/api/coupons", b'{"name": "PROBE", "amount": 1}', "application/json"),
    ("post", "/api/coupons", b'{"name": "PROBE", "amount": 1}', "application/json"),
    (
        "post",
        "/api/coupons/claim",
        b'{"user_id": "u1", "coupon_name": "PROBE"}',
        "application/json",
    ),
    (
        "post",
        "/api/coupons/claim",
        b'{"user_id": "u1", "coupon_name": "PROBE"}',
        "application/json",
    ),
    (
        "post",
        "/api/coupons/claim",
        b'{"user_id": "u2", "coupon_name": "PROBE"}',
        "application/json",
    ),
    ("post", "/api/coupons/claim", b'{"user_id": "u1", "coupon_name": "NONE"}', "application/json"),
    ("post", "/api/coupons/claim", b'{"coupon_name": "PROBE"}', "application/json"),
    ("post", "/api/coupons/claim", b'{"user_id": "u1", "coupon_name": " "}', "application/json"),
    (
        "post",
        "/api/coupons/claim",
        b'{"user_id": "\\ud800", "coupon_name": "P"}',
        "application/json",
    ),
    ("post", "/api/coupons/claim", b"x" * 2_000_000, "application/json"),
    ("get", "/api/coupons/PROBE", None, ""),
    ("get", "/api/coupons/NONE", None, ""),
    ("get", "/api/coupons/" + "n" * 300, None, ""),
    ("get", "/api/coupons/a%00b", None, ""),
    ("get", "/health", None, ""),
    ("get", "/metrics", None, ""),
]


def test_probed_answers_are_documented(
    document: dict[str, Any], client: httpx.Client, db: PostgresAdmin
) -> None:
    """Each probe (in order: create, claim, sell out) gets a documented answer, never a 5xx."""
    for method, target, body, content_type in PROBES:
        headers = {"content-type": content_type} if content_type else {}
        resp = client.request(method.upper(), target, content=body, headers=headers)
        label = f"{method.upper()} {target[:60]} {body[:60] if body else b''!r}"
        path = "/api/coupons/{name}" if method == "get" and target.count("/") == 3 else target
        documented = operation(document, method, path)["responses"]
        assert resp.status_code < 500, (label, resp.status_code, resp.text)
        assert str(resp.status_code) in documented, (label, resp.status_code, resp.text)
        assert "x-request-id" in resp.headers, label
        if resp.status_code >= 400 and path != "/health":
            assert resp.json()["error"] in error_messages(documented[str(resp.status_code)]), (
                label,
                resp.text,
            )
