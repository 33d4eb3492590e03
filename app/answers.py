"""How the service answers and logs its errors, shared by FastAPI's handlers and the lean
claim endpoint, so both give the same bytes and the same log lines.

A 500 is a defect: each one is logged with its request id. A 503 or 504 is the failure
contract at work, and a fault or a burst can answer thousands of them in a second: those
are logged in aggregate, one WARNING line per `REFUSAL_LOG_INTERVAL` seconds with the
count by status and one sample (its request id and internal detail), and the first of
each interval at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter

from app.errors import ServiceError

__all__ = ["REFUSAL_LOG_INTERVAL", "RefusalLog", "error_body", "log_service_error", "loggable"]

log = logging.getLogger("app.api")

#: Seconds between two log lines about 503/504 answers.
REFUSAL_LOG_INTERVAL = 10.0


def loggable(text: str, limit: int = 200) -> str:
    """Client-controlled text made safe for a log line: escaped, and cut at `limit`."""
    cut = text[:limit].encode("unicode_escape").decode("ascii")
    return cut + ("..." if len(text) > limit else "")


def error_body(message: str) -> bytes:
    """The JSON error body of the contract: {"error": message}."""
    return json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":")).encode()


def _line(request_id: str, method: str, path: str, exc: ServiceError) -> str:
    return (
        f"request {request_id} {method} {loggable(path)} answered {exc.status_code}: "
        f"{exc.detail or exc.message}"
    )


class RefusalLog:
    """503/504 answers in aggregate: the first of an interval at once, the rest counted
    and summed up (with a sample) when the interval ends."""

    def __init__(self, interval: float = REFUSAL_LOG_INTERVAL) -> None:
        self.interval = interval
        self._window_start: float | None = None
        self._counts: Counter[int] = Counter()
        self._sample = ""
        self._timer: asyncio.TimerHandle | None = None

    def note(self, request_id: str, method: str, path: str, exc: ServiceError) -> None:
        now = time.monotonic()
        if self._window_start is not None and now - self._window_start < self.interval:
            self._counts[exc.status_code] += 1
            if not self._sample:
                self._sample = _line(request_id, method, path, exc)
            return
        self.flush()
        self._window_start = now
        log.warning("%s", _line(request_id, method, path, exc))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test): the next note flushes
            return
        self._timer = loop.call_later(self.interval, self._interval_over)

    def _interval_over(self) -> None:
        self._timer = None
        self.flush()
        self._window_start = None

    def flush(self) -> None:
        """Log what the current interval counted beyond its first line, if anything."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._counts:
            return
        total = sum(self._counts.values())
        by_status = ", ".join(f"{n} x {status}" for status, n in sorted(self._counts.items()))
        log.warning(
            "%d more answers of 503/504 in the last %.1f s (%s); one of them: %s",
            total,
            self.interval,
            by_status,
            self._sample,
        )
        self._counts.clear()
        self._sample = ""


_REFUSALS = RefusalLog()


def log_service_error(request_id: str, method: str, path: str, exc: ServiceError) -> None:
    """Log a 5xx answer with its request id and internal detail (never sent to clients):
    a 500 at once, 503/504 in aggregate."""
    if exc.status_code in (503, 504):
        _REFUSALS.note(request_id, method, path, exc)
    elif exc.status_code >= 500:
        log.error("%s", _line(request_id, method, path, exc))
