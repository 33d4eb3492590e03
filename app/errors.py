"""Domain errors of the service and their HTTP answers: the failure contract in one place.

Exception tree::

    ServiceError                     every error the service answers on purpose
    ├── InvalidRequest        400    a client's mistake in the body, path or fields
    ├── BodyTooLarge          413    body over MAX_BODY_BYTES
    ├── CouponNotFound        404
    ├── CouponExists          409
    ├── OutOfStock            400
    │   └── RememberedOutOfStock     answered from the sold-out memory (app/soldout.py)
    ├── AlreadyClaimed        409
    ├── Unavailable           503    + Retry-After
    │   ├── PoolExhausted            no connection within the acquire timeout, or queue full
    │   └── ConnectionLost           the connection died (terminate, reset, restart)
    └── TimedOut              504    request deadline passed, or statement_timeout fired

Anything else becomes 500 ``internal server error`` (logged with a request id).
Database exceptions are translated once, in :func:`translate_db_error`.
"""

from __future__ import annotations

import psycopg
import psycopg.errors
import psycopg_pool

__all__ = [
    "ANSWERED_FROM_HEADER",
    "AlreadyClaimed",
    "BodyTooLarge",
    "ConnectionLost",
    "CouponExists",
    "CouponNotFound",
    "InvalidRequest",
    "OutOfStock",
    "PoolExhausted",
    "RememberedOutOfStock",
    "ServiceError",
    "TimedOut",
    "Unavailable",
    "translate_db_error",
]

#: Header on a claim answered from the sold-out memory (value `memory`).
ANSWERED_FROM_HEADER = "X-Answered-From"


class ServiceError(Exception):
    """An error with a documented HTTP answer."""

    status_code: int = 500
    message: str = "internal server error"
    #: Whether a statement may have reached the database before the error
    #: (docs/design.md, "Failure contract").
    write_attempted: bool = False

    def __init__(self, message: str | None = None, *, detail: str | None = None) -> None:
        if message is not None:
            self.message = message
        #: Internal detail for the log only; never sent to clients.
        self.detail = detail
        super().__init__(detail or self.message)

    def headers(self, retry_after: int) -> dict[str, str]:
        """Extra response headers for this error."""
        return {}


class InvalidRequest(ServiceError):
    """400: the request body, a field or a path parameter is invalid."""

    status_code = 400
    message = "invalid request body"


class BodyTooLarge(ServiceError):
    """413: the body exceeds the configured maximum."""

    status_code = 413
    message = "request body too large"


class CouponNotFound(ServiceError):
    """404: no coupon of that name."""

    status_code = 404
    message = "coupon not found"


class CouponExists(ServiceError):
    """409: a coupon of that name exists already."""

    status_code = 409
    message = "coupon already exists"


class OutOfStock(ServiceError):
    """400: the coupon has no stock left."""

    status_code = 400
    message = "coupon out of stock"


class RememberedOutOfStock(OutOfStock):
    """400 `coupon out of stock`, answered from the sold-out memory without a query of
    its own; the header says so (clients may ignore it)."""

    def headers(self, retry_after: int) -> dict[str, str]:
        return {ANSWERED_FROM_HEADER: "memory"}


class AlreadyClaimed(ServiceError):
    """409: this user holds a claim on this coupon already."""

    status_code = 409
    message = "coupon already claimed by user"


class Unavailable(ServiceError):
    """503: the database cannot serve now; retry later."""

    status_code = 503
    message = "service unavailable"

    def __init__(
        self, message: str | None = None, *, detail: str | None = None, write_attempted: bool
    ) -> None:
        super().__init__(message, detail=detail)
        self.write_attempted = write_attempted

    def headers(self, retry_after: int) -> dict[str, str]:
        return {
            "Retry-After": str(retry_after),
            "X-Write-Attempted": "true" if self.write_attempted else "false",
        }


class PoolExhausted(Unavailable):
    """503: no pool connection within the acquire timeout, or the wait queue is full."""

    def __init__(self, *, detail: str) -> None:
        super().__init__(detail=detail, write_attempted=False)


class ConnectionLost(Unavailable):
    """503: the connection died; the outcome of a write in flight is unknown."""


class TimedOut(ServiceError):
    """504: the request deadline passed, or the server cancelled the statement."""

    status_code = 504
    message = "request timed out"
    write_attempted = True


def translate_db_error(exc: Exception, *, write_attempted: bool) -> ServiceError:
    """Map a psycopg or pool exception to the domain error of the failure contract.

    The pool's errors subclass OperationalError, so they are matched first.
    """
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, psycopg_pool.TooManyRequests | psycopg_pool.PoolTimeout):
        return PoolExhausted(detail=detail)
    if isinstance(exc, psycopg_pool.PoolClosed):
        return Unavailable(detail=detail, write_attempted=False)
    if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return TimedOut(detail=detail)
    # AdminShutdown (57P01), CannotConnectNow and every dropped socket are OperationalError;
    # InterfaceError is a connection already known to be closed.
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return ConnectionLost(detail=detail, write_attempted=write_attempted)
    return ServiceError(detail=detail)
