"""The OpenAPI document: every answer each route can give (docs/design.md, "HTTP
contract" and "Failure contract").

The routes read their raw bodies themselves (app.validation gives the contract's
messages), so FastAPI cannot infer request bodies or answers from type hints; the
declarations live here and the route decorators in app.api take them as `responses=`
and `openapi_extra=`. Error bodies name their exact messages (`enum`), so a message
that is not in the contract fails the schemathesis run (tests/integration).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.validation import INT32_MAX, MAX_NAME_LENGTH

__all__ = [
    "CLAIM_EXTRA",
    "CLAIM_RESPONSES",
    "COUPON_SCHEMA",
    "CREATE_EXTRA",
    "CREATE_RESPONSES",
    "GET_COUPON_EXTRA",
    "GET_COUPON_RESPONSES",
    "HEALTH_RESPONSES",
    "METRICS_RESPONSES",
    "REQUEST_ID_PATTERN",
    "install_openapi",
]

Responses = dict[int | str, dict[str, Any]]

#: What the service echoes of a client's X-Request-Id (app.api's `_REQUEST_ID`).
REQUEST_ID_PATTERN = "^[A-Za-z0-9._-]{1,64}$"

_REQUEST_ID_HEADER = {
    "description": "The client's X-Request-Id when it matches the pattern, else a fresh id;"
    " the same id is in the service's log lines for this request.",
    "required": True,
    "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
}
_RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying (setting RETRY_AFTER).",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
_WRITE_ATTEMPTED_HEADER = {
    "description": "`false`: nothing was written. `true`: a statement was sent before the"
    " connection died, so the outcome is unknown (a retried claim answers 409 if it committed).",
    "required": True,
    "schema": {"type": "string", "enum": ["true", "false"]},
}
_ANSWERED_FROM_HEADER = {
    "description": "`memory`: answered `coupon out of stock` from the sold-out memory, without"
    " a query of its own (a statement found the coupon sold out; SOLD_OUT_TRUST bounds how"
    " long that answers arriving claims).",
    "required": False,
    "schema": {"type": "string", "enum": ["memory"]},
}
_ALLOW_HEADER = {
    "description": "The methods the path answers.",
    "required": True,
    "schema": {"type": "string"},
}

#: The body of a successful `GET /api/coupons/{name}`.
COUPON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "amount", "remaining_amount", "claimed_by"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
        "amount": {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
        "remaining_amount": {"type": "integer", "minimum": 0, "maximum": INT32_MAX},
        "claimed_by": {
            "type": "array",
            "description": "user_id of every claim, in claim order; [] when none.",
            "items": {"type": "string"},
        },
    },
}


def _text_field(description: str) -> dict[str, Any]:
    # No whitespace pattern: Python's str.strip() and ECMA-262's \s disagree (U+FEFF,
    # U+001C..U+001F), and a schema stricter than the service would be a false promise.
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NAME_LENGTH,
        "description": f"{description}; not whitespace only, no NUL, valid Unicode.",
    }


def _json_body(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    """An `openapi_extra` declaring a required JSON object body."""
    return {
        "requestBody": {
            "required": True,
            "description": "A JSON object (Content-Type application/json); unknown fields are"
            " ignored.",
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    }


def _field_messages(field: str) -> list[str]:
    """The 400 messages of one text field (app.validation._text_field)."""
    return [
        f"invalid request: {field} is required",
        f"invalid request: {field} must be a string",
        f"invalid request: {field} cannot be whitespace only",
        f"invalid request: {field} exceeds maximum length of {MAX_NAME_LENGTH}",
        f"invalid request: {field} contains a NUL character",
        f"invalid request: {field} is not valid Unicode",
    ]


_AMOUNT_MESSAGES = [
    "invalid request: amount is required",
    "invalid request: amount must be an integer",
    "invalid request: amount must be at least 1",
    f"invalid request: amount exceeds maximum of {INT32_MAX}",
]
_BODY_MESSAGE = "invalid request body"


def _error(description: str, messages: Iterable[str], **headers: dict[str, Any]) -> dict[str, Any]:
    """A response whose body is `{"error": <one of messages>}`."""
    return {
        "description": description,
        "headers": {"X-Request-Id": _REQUEST_ID_HEADER, **headers},
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["error"],
                    "additionalProperties": False,
                    "properties": {"error": {"type": "string", "enum": sorted(set(messages))}},
                }
            }
        },
    }


def _empty(description: str) -> dict[str, Any]:
    # No `content`: the answer has an empty body and no Content-Type.
    return {"description": description, "headers": {"X-Request-Id": _REQUEST_ID_HEADER}}


def _json(description: str, schema: dict[str, Any], **headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-Id": _REQUEST_ID_HEADER, **headers},
        "content": {"application/json": {"schema": schema}},
    }


_METHOD_NOT_ALLOWED = _error(
    "The path exists but not with this method.", ["method not allowed"], Allow=_ALLOW_HEADER
)
_INTERNAL = _error(
    "Anything unforeseen; logged with the request id, never with SQL or a DSN.",
    ["internal server error"],
)
# Only routes that read a body: a GET's body is never read, so it never answers 413.
_TOO_LARGE = _error("The body is over MAX_BODY_BYTES.", ["request body too large"])
_UNAVAILABLE = _error(
    "No pool connection within DB_POOL_ACQUIRE_TIMEOUT (or the queue is over its bound),"
    " or the database connection died.",
    ["service unavailable"],
    **{"Retry-After": _RETRY_AFTER_HEADER, "X-Write-Attempted": _WRITE_ATTEMPTED_HEADER},
)
_TIMED_OUT = _error(
    "REQUEST_DEADLINE passed or DB_STATEMENT_TIMEOUT fired; the statement was cancelled"
    " and rolled back.",
    ["request timed out"],
)

#: Every route that reaches the database can answer these.
_DATABASE_FAILURES: Responses = {
    405: _METHOD_NOT_ALLOWED,
    500: _INTERNAL,
    503: _UNAVAILABLE,
    504: _TIMED_OUT,
}

CREATE_EXTRA = _json_body(
    {
        "type": "object",
        "required": ["name", "amount"],
        "properties": {
            "name": _text_field("The coupon's name"),
            "amount": {
                "type": "integer",
                "minimum": 1,
                "maximum": INT32_MAX,
                "description": "The stock.",
            },
        },
    },
    {"name": "SUMMER", "amount": 10},
)
CREATE_RESPONSES: Responses = {
    201: _empty("Created; empty body."),
    400: _error(
        "The Content-Type is not JSON, the body is not a JSON object, or a field is invalid.",
        [_BODY_MESSAGE, *_field_messages("name"), *_AMOUNT_MESSAGES],
    ),
    409: _error("A coupon of that name exists already.", ["coupon already exists"]),
    413: _TOO_LARGE,
    **_DATABASE_FAILURES,
}

CLAIM_EXTRA = _json_body(
    {
        "type": "object",
        "required": ["user_id", "coupon_name"],
        "properties": {
            "user_id": _text_field("The claiming user"),
            "coupon_name": _text_field("The coupon's name"),
        },
    },
    {"user_id": "alice", "coupon_name": "SUMMER"},
)
GET_COUPON_EXTRA: dict[str, Any] = {
    # Replaces the parameter FastAPI infers from the signature (see _declared_parameters).
    "parameters": [
        {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "The coupon's name; any name that names no coupon answers 404.",
            "schema": {"type": "string", "minLength": 1},
            "example": "SUMMER",
        }
    ]
}
CLAIM_RESPONSES: Responses = {
    200: _empty("Claimed; empty body."),
    400: _error(
        "The Content-Type is not JSON, the body is not a JSON object, a field is invalid, or"
        " the coupon has no stock left"
        " (stock is checked before the duplicate check).",
        [
            _BODY_MESSAGE,
            *_field_messages("user_id"),
            *_field_messages("coupon_name"),
            "coupon out of stock",
        ],
        **{"X-Answered-From": _ANSWERED_FROM_HEADER},
    ),
    404: _error("No coupon of that name.", ["coupon not found"]),
    409: _error(
        "This user holds a claim on this coupon already.", ["coupon already claimed by user"]
    ),
    413: _TOO_LARGE,
    **_DATABASE_FAILURES,
}

GET_COUPON_RESPONSES: Responses = {
    200: _json("The coupon.", COUPON_SCHEMA),
    404: _error("No coupon of that name, whatever its length or characters.", ["coupon not found"]),
    **_DATABASE_FAILURES,
}

_HEALTHY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "additionalProperties": False,
    "properties": {"status": {"type": "string", "enum": ["healthy"]}},
}
_UNHEALTHY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "error"],
    "additionalProperties": False,
    "properties": {
        "status": {"type": "string", "enum": ["unhealthy"]},
        "error": {"type": "string", "enum": ["database connection failed"]},
    },
}
HEALTH_RESPONSES: Responses = {
    200: _json("The database answered a round trip within HEALTH_TIMEOUT.", _HEALTHY_SCHEMA),
    405: _METHOD_NOT_ALLOWED,
    500: _INTERNAL,
    503: _json(
        "No round trip within HEALTH_TIMEOUT.",
        _UNHEALTHY_SCHEMA,
        **{"Retry-After": _RETRY_AFTER_HEADER},
    ),
}

METRICS_RESPONSES: Responses = {
    200: {
        "description": "Prometheus text exposition format.",
        "headers": {"X-Request-Id": _REQUEST_ID_HEADER},
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    405: _METHOD_NOT_ALLOWED,
    500: _INTERNAL,
}

_DESCRIPTION = f"""\
A flash-sale coupon service. Every answer is listed with its body: error bodies are
`{{"error": "<message>"}}` with the exact messages of the contract, and every answer
carries `X-Request-Id`. POST bodies are read only under a JSON Content-Type
(`application/json`, with parameters or not, or `application/*+json`; any other answers
400 `invalid request body`), as JSON objects (unknown fields are ignored), and answer 413
over MAX_BODY_BYTES; GET bodies are never read. A path that is not listed here answers
404 `{{"error": "not found"}}`, with or without a trailing slash (no redirects); a listed
path with another method answers 405. Names are at most {MAX_NAME_LENGTH} characters;
amounts are 1 to {INT32_MAX}."""


def _finish(document: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's 422 answers and let declared parameters replace inferred ones.

    The service answers 400 with its own messages, never 422. `openapi_extra` appends
    parameters to those FastAPI infers, so the last declaration of a (name, in) wins.
    """
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
            if "parameters" in operation:
                declared = {(p["name"], p["in"]): p for p in operation["parameters"]}
                operation["parameters"] = list(declared.values())
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    if "components" in document and not schemas:
        document["components"].pop("schemas", None)
        if not document["components"]:
            del document["components"]
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the document built from the routes' declarations, without FastAPI's 422s."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _finish(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=_DESCRIPTION,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    builder: Callable[[], dict[str, Any]] = openapi
    # FastAPI's documented way to customise the document is to replace this method.
    app.openapi = builder  # type: ignore[method-assign]
