"""How the service answers and logs its errors, shared by FastAPI's handlers and the lean
claim endpoint, so both give the same bytes and the same log lines."""

from __future__ import annotations

import json
import logging

from app.errors import ServiceError

__all__ = ["error_body", "log_service_error", "loggable"]

log = logging.getLogger("app.api")


def loggable(text: str, limit: int = 200) -> str:
    """Client-controlled text made safe for a log line: escaped, and cut at `limit`."""
    cut = text[:limit].encode("unicode_escape").decode("ascii")
    return cut + ("..." if len(text) > limit else "")


def error_body(message: str) -> bytes:
    """The JSON error body of the contract: {"error": message}."""
    return json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":")).encode()


def log_service_error(request_id: str, method: str, path: str, exc: ServiceError) -> None:
    """Log a 5xx answer with its request id and internal detail (never sent to clients)."""
    if exc.status_code >= 500:
        log.warning(
            "request %s %s %s answered %d: %s",
            request_id,
            method,
            loggable(path),
            exc.status_code,
            exc.detail or exc.message,
        )
