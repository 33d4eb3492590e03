"""Validation of request bodies and path parameters (pure logic, no I/O).

Messages are part of the HTTP contract (DESIGN section 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidRequest

__all__ = [
    "INT32_MAX",
    "MAX_NAME_LENGTH",
    "ClaimRequest",
    "CreateCouponRequest",
    "parse_claim",
    "parse_create_coupon",
    "parse_json_object",
    "validate_path_name",
]

MAX_NAME_LENGTH = 255
INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class CreateCouponRequest:
    """A valid `POST /api/coupons` body."""

    name: str
    amount: int


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """A valid `POST /api/coupons/claim` body."""

    user_id: str
    coupon_name: str


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a body that must be a JSON object; anything else is `invalid request body`."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidRequest(detail=f"undecodable body of {len(body)} bytes") from exc
    if not isinstance(value, dict):
        raise InvalidRequest(detail=f"body is a JSON {type(value).__name__}, not an object")
    return value


def _text_field(obj: dict[str, Any], field: str) -> str:
    value = obj.get(field)
    if value is None or value == "":
        raise InvalidRequest(f"invalid request: {field} is required")
    if not isinstance(value, str):
        raise InvalidRequest(f"invalid request: {field} must be a string")
    if not value.strip():
        raise InvalidRequest(f"invalid request: {field} cannot be whitespace only")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            f"invalid request: {field} exceeds maximum length of {MAX_NAME_LENGTH}"
        )
    if "\x00" in value:
        raise InvalidRequest(f"invalid request: {field} contains a NUL character")
    return value


def _amount(obj: dict[str, Any]) -> int:
    value = obj.get("amount")
    if value is None:
        raise InvalidRequest("invalid request: amount is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest("invalid request: amount must be an integer")
    if value < 1:
        raise InvalidRequest("invalid request: amount must be at least 1")
    if value > INT32_MAX:
        raise InvalidRequest(f"invalid request: amount exceeds maximum of {INT32_MAX}")
    return value


def parse_create_coupon(body: bytes) -> CreateCouponRequest:
    """Validate a create-coupon body; unknown fields are ignored."""
    obj = parse_json_object(body)
    return CreateCouponRequest(name=_text_field(obj, "name"), amount=_amount(obj))


def parse_claim(body: bytes) -> ClaimRequest:
    """Validate a claim body; unknown fields are ignored."""
    obj = parse_json_object(body)
    return ClaimRequest(
        user_id=_text_field(obj, "user_id"), coupon_name=_text_field(obj, "coupon_name")
    )


def validate_path_name(name: str) -> str:
    """Check a coupon name taken from the URL path."""
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"invalid request: name exceeds maximum length of {MAX_NAME_LENGTH}")
    return name
