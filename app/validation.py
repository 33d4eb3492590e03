"""Validation of request bodies and path parameters (pure logic, no I/O).

Messages are part of the HTTP contract (docs/design.md, "HTTP contract").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.answers import loggable
from app.errors import InvalidRequest

__all__ = [
    "INT32_MAX",
    "MAX_NAME_LENGTH",
    "ClaimRequest",
    "CreateCouponRequest",
    "is_json_content_type",
    "parse_claim",
    "parse_create_coupon",
    "parse_json_object",
    "possible_coupon_name",
    "require_json_content_type",
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
    if not _encodable(value):
        raise InvalidRequest(f"invalid request: {field} is not valid Unicode")
    return value


def _encodable(value: str) -> bool:
    # A JSON "\ud800" escape (or the raw bytes ED A0 80, which json decodes with
    # surrogatepass) yields a lone surrogate: no UTF-8 form, so the database refuses it.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def is_json_content_type(value: str | None) -> bool:
    """Whether a Content-Type header names JSON: application/json or application/*+json,
    with or without parameters (charset, ...)."""
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def require_json_content_type(value: str | None) -> None:
    """Refuse a body whose Content-Type is not JSON: 400 `invalid request body`."""
    if not is_json_content_type(value):
        raise InvalidRequest(detail=f"Content-Type {loggable(value or '(none)')}")


def possible_coupon_name(name: str) -> bool:
    """Whether a name taken from the URL path could name a coupon at all.

    Names too long for the column, holding NUL or lone surrogates can name none: they are
    answered 404 without a query (the database would refuse them as parameters).
    """
    return 0 < len(name) <= MAX_NAME_LENGTH and "\x00" not in name and _encodable(name)
