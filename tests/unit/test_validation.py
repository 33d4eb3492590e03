"""Validation of bodies and path names (pure logic)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.errors import InvalidRequest
from app.validation import (
    INT32_MAX,
    MAX_NAME_LENGTH,
    ClaimRequest,
    CreateCouponRequest,
    is_json_content_type,
    parse_claim,
    parse_create_coupon,
    possible_coupon_name,
)


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def message_of(fn: Any, raw: bytes) -> str:
    with pytest.raises(InvalidRequest) as info:
        fn(raw)
    assert info.value.status_code == 400
    return info.value.message


def test_valid_create() -> None:
    assert parse_create_coupon(body({"name": "A", "amount": 3, "x": 1})) == CreateCouponRequest(
        "A", 3
    )


def test_valid_claim() -> None:
    assert parse_claim(body({"user_id": "u", "coupon_name": "c"})) == ClaimRequest("u", "c")


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[]", b"1", b'"s"', b"null", b"\xff", b"[" * 50_000 + b"]" * 50_000]
)
def test_non_object_bodies(raw: bytes) -> None:
    assert message_of(parse_create_coupon, raw) == "invalid request body"
    assert message_of(parse_claim, raw) == "invalid request body"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"amount": 1}, "invalid request: name is required"),
        ({"name": "", "amount": 1}, "invalid request: name is required"),
        ({"name": " \n", "amount": 1}, "invalid request: name cannot be whitespace only"),
        ({"name": "x" * 256, "amount": 1}, "invalid request: name exceeds maximum length of 255"),
        ({"name": 5, "amount": 1}, "invalid request: name must be a string"),
        ({"name": "a"}, "invalid request: amount is required"),
        ({"name": "a", "amount": 0}, "invalid request: amount must be at least 1"),
        ({"name": "a", "amount": "1"}, "invalid request: amount must be an integer"),
        ({"name": "a", "amount": 1.0}, "invalid request: amount must be an integer"),
        ({"name": "a", "amount": True}, "invalid request: amount must be an integer"),
        (
            {"name": "a", "amount": INT32_MAX + 1},
            "invalid request: amount exceeds maximum of 2147483647",
        ),
    ],
)
def test_create_field_errors(obj: dict[str, Any], message: str) -> None:
    assert message_of(parse_create_coupon, body(obj)) == message


def test_name_checks_come_before_amount_checks() -> None:
    assert message_of(parse_create_coupon, body({})) == "invalid request: name is required"


def test_boundaries_accepted() -> None:
    got = parse_create_coupon(body({"name": "x" * MAX_NAME_LENGTH, "amount": INT32_MAX}))
    assert got.amount == INT32_MAX


def test_nul_rejected() -> None:
    assert message_of(parse_claim, body({"user_id": "a\x00", "coupon_name": "c"})).startswith(
        "invalid request: user_id"
    )


@pytest.mark.parametrize("field", ["user_id", "coupon_name"])
def test_claim_field_errors(field: str) -> None:
    base = {"user_id": "u", "coupon_name": "c"}
    assert (
        message_of(parse_claim, body({**base, field: ""}))
        == f"invalid request: {field} is required"
    )
    assert (
        message_of(parse_claim, body({**base, field: "   "}))
        == f"invalid request: {field} cannot be whitespace only"
    )
    assert (
        message_of(parse_claim, body({**base, field: "y" * 256}))
        == f"invalid request: {field} exceeds maximum length of 255"
    )


def test_impossible_path_names_name_no_coupon() -> None:
    assert possible_coupon_name("x" * MAX_NAME_LENGTH)
    assert possible_coupon_name("ünïcode ✓")
    assert not possible_coupon_name("x" * (MAX_NAME_LENGTH + 1))
    assert not possible_coupon_name("a\x00b")
    assert not possible_coupon_name("a\ud800b")
    assert not possible_coupon_name("")


@pytest.mark.parametrize("field", ["user_id", "coupon_name"])
@pytest.mark.parametrize(
    "raw_value",
    [b'"\\ud800"', b'"a\\udfffb"', b'"\xed\xa0\x80"'],
    ids=["escaped-high", "escaped-low", "raw-bytes"],
)
def test_lone_surrogates_are_a_field_error(field: str, raw_value: bytes) -> None:
    other = "coupon_name" if field == "user_id" else "user_id"
    raw = b'{"' + field.encode() + b'": ' + raw_value + b', "' + other.encode() + b'": "ok"}'
    assert message_of(parse_claim, raw) == f"invalid request: {field} is not valid Unicode"


def test_lone_surrogate_in_coupon_name_on_create() -> None:
    raw = b'{"name": "\\ud83d", "amount": 1}'
    assert message_of(parse_create_coupon, raw) == "invalid request: name is not valid Unicode"


@pytest.mark.parametrize(
    "value",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/problem+json",
        "application/vnd.api+json ; x=y",
    ],
)
def test_json_content_types(value: str) -> None:
    assert is_json_content_type(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "text/plain",
        "text/json",
        "application/x-www-form-urlencoded",
        "json",
        "application/jsonx",
        "multipart/form-data; boundary=x",
        "application/",
    ],
)
def test_other_content_types(value: str | None) -> None:
    assert not is_json_content_type(value)
