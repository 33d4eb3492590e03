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
    ├── Unavailable           503    + Retry-After, X-Write-Attempted
    │   ├── PoolExhausted            no connection within the acquire timeout, or queue full
    │   ├── ConnectionRefused        the server refused a session (57P03, 53300)
    │   ├── ConnectionLost           the connection died (terminate 57P01, reset, restart)
    │   ├── ReadOnly                 the server refused a write (25006): session discarded
    │   └── TransactionAborted       the server rolled the statement back (40001, 40P01)
    └── TimedOut              504    request deadline passed, or statement_timeout fired

Anything else becomes 500 ``internal server error`` (logged with a request id).
Database exceptions are translated once, in :func:`translate_db_error`; the table of
SQLSTATEs and their answers is in docs/design.md, "Failure contract".
"""

from __future__ import annotations

import psycopg
import psycopg.errors
import psycopg_pool

__all__ = [
    "ANSWERED_FROM_HEADER",
    "CONNECT_REFUSALS",
    "DISCARD_SQLSTATES",
    "AlreadyClaimed",
    "BodyTooLarge",
    "ConnectionLost",
    "ConnectionRefused",
    "CouponExists",
    "CouponNotFound",
    "InvalidRequest",
    "OutOfStock",
    "PoolExhausted",
    "ReadOnly",
    "RememberedOutOfStock",
    "ServiceError",
    "TimedOut",
    "TransactionAborted",
    "Unavailable",
    "discards_connection",
    "sqlstate_of",
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


class ConnectionRefused(Unavailable):
    """503: the server refused a new session (57P03 starting up, shutting down or in
    recovery; 53300 too many connections). Refused at connect time: nothing was sent."""

    def __init__(self, *, detail: str) -> None:
        super().__init__(detail=detail, write_attempted=False)


class ReadOnly(Unavailable):
    """503: the server refused a write as read-only (25006: a demoted primary, a standby,
    or `default_transaction_read_only`). Nothing was written; the session stays
    read-only, so it is discarded and the pool opens new ones."""


class TransactionAborted(Unavailable):
    """503: the server rolled the statement back (40001 serialization failure, 40P01
    deadlock detected). Nothing was written; the session is healthy and kept; a retry
    is safe (docs/design.md, "Failure contract", on why the service does not retry)."""


class TimedOut(ServiceError):
    """504: the request deadline passed, or the server cancelled the statement."""

    status_code = 504
    message = "request timed out"
    write_attempted = True


#: SQLSTATEs after which a session must not serve again: it answers the same way until
#: it is closed (a read-only session stays read-only; new ones may reach a new primary).
DISCARD_SQLSTATES = frozenset({"25006"})

#: libpq reports a refusal at connect time without its SQLSTATE, only the server's
#: message: these are the server's (English) messages for each, by SQLSTATE.
CONNECT_REFUSALS: tuple[tuple[str, str], ...] = (
    ("sorry, too many clients already", "53300"),
    ("too many connections for", "53300"),  # role / database CONNECTION LIMIT
    ("remaining connection slots are reserved", "53300"),
    ("the database system is starting up", "57P03"),
    ("the database system is shutting down", "57P03"),
    ("the database system is in recovery mode", "57P03"),
    ("the database system is not yet accepting connections", "57P03"),
    ("the database system is not accepting connections", "57P03"),
    ("terminating connection due to administrator command", "57P01"),
)

_REFUSED_SQLSTATES = frozenset({"57P03", "53300"})
_ABORTED_SQLSTATES = frozenset({"40001", "40P01"})


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error: the server's, or for a refusal at connect time
    (which libpq reports without one) the one its message stands for."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate
    if isinstance(exc, psycopg.OperationalError):
        text = str(exc)
        for message, code in CONNECT_REFUSALS:
            if message in text:
                return code
    return None


def discards_connection(exc: BaseException) -> bool:
    """Whether the session that raised `exc` must be closed, not returned to the pool."""
    return sqlstate_of(exc) in DISCARD_SQLSTATES


def translate_db_error(
    exc: Exception, *, write_attempted: bool, connect_failure: str | None = None
) -> ServiceError:
    """Map a psycopg or pool exception to the domain error of the failure contract.

    The pool's errors subclass OperationalError, so they are matched first. The detail
    (for the log, never for clients) carries the SQLSTATE; a pool timeout's carries
    `connect_failure`, how the pool's last connection attempt failed, when it did.
    """
    sqlstate = sqlstate_of(exc)
    detail = f"{type(exc).__name__}" + (f" [{sqlstate}]" if sqlstate else "") + f": {exc}"
    if isinstance(exc, psycopg_pool.TooManyRequests | psycopg_pool.PoolTimeout):
        if connect_failure:
            detail += f"; last connection attempt failed: {connect_failure}"
        return PoolExhausted(detail=detail)
    if isinstance(exc, psycopg_pool.PoolClosed):
        return Unavailable(detail=detail, write_attempted=False)
    if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return TimedOut(detail=detail)
    if sqlstate in DISCARD_SQLSTATES:
        return ReadOnly(detail=detail, write_attempted=write_attempted)
    if sqlstate in _ABORTED_SQLSTATES:
        return TransactionAborted(detail=detail, write_attempted=write_attempted)
    if sqlstate in _REFUSED_SQLSTATES:
        return ConnectionRefused(detail=detail)
    # AdminShutdown (57P01) and every dropped socket are OperationalError; InterfaceError
    # is a connection already known to be closed.
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return ConnectionLost(detail=detail, write_attempted=write_attempted)
    return ServiceError(detail=detail)
