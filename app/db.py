"""The connection pool and the one place that runs database work under a deadline.

Each unit of work runs as its own task. The caller answers when the work finishes or
when the request deadline passes, whichever comes first; a timed-out task is
cancelled and its cleanup (psycopg's server-side cancel, the pool's discard of the
connection) finishes in the background, tracked so leak probes can wait for it.
Without this, a blackholed connection holds a request for about 11 s after its
deadline (docs/design.md, "Timing model").
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, ClassVar, Self, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from app import repository
from app.admission import Admission
from app.errors import (
    PoolExhausted,
    ServiceError,
    TimedOut,
    discards_connection,
    sqlstate_of,
    translate_db_error,
)
from app.gate import SlotGate
from app.settings import Settings

__all__ = ["ADMISSION_WINDOW", "LOOP_BOUND_SHARE", "Database", "WorkState"]

log = logging.getLogger("app.db")

T = TypeVar("T")

#: A unit that kept the process on the CPU for this share of its time or more was bound
#: by the event loop, not the database: admission does not learn from it.
LOOP_BOUND_SHARE = 0.5

#: Seconds of finished units the admission estimate learns from (at least the acquire
#: timeout): recent enough to follow a fault, long enough to outlast a burst's first wave.
ADMISSION_WINDOW = 2.0
Conn = AsyncConnection[TupleRow]


class _Connection(AsyncConnection[TupleRow]):
    """psycopg's connection, minus a socket leak on failed connects, remembering how the
    last connection attempt failed (each Database uses a subclass of its own)."""

    #: The last attempt's failure as one line with its SQLSTATE; None after a success.
    last_failure: ClassVar[str | None] = None

    @classmethod
    async def connect(cls, *args: Any, **kwargs: Any) -> Self:
        # A failed connect (e.g. connect_timeout through a blackhole) raises an exception
        # whose traceback keeps the half-open PGconn alive in a reference cycle: its
        # socket stays open until the garbage collector runs. Dropping the traceback
        # frees it at once.
        try:
            conn = await super().connect(*args, **kwargs)
        except psycopg.OperationalError as exc:
            cls.last_failure = f"[{sqlstate_of(exc) or '-'}] {_one_line(exc)}"
            raise exc.with_traceback(None) from None
        cls.last_failure = None
        return conn


def _has_unread_input(conn: Conn) -> bool:
    """Whether an idle connection's socket has data or EOF waiting (or is unusable).

    poll(), not select(): select() refuses descriptors >= 1024, which a process serving
    many clients soon has, and every check would then cost a round trip.
    """
    try:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except (psycopg.Error, OSError, ValueError):
        return True


def _one_line(exc: BaseException | None) -> str:
    """An exception as one short log-safe line (libpq messages span several lines)."""
    if exc is None:
        return "-"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


class WorkState:
    """What a unit of work has done so far; decides whether a 503 may have written."""

    __slots__ = ("write_attempted",)

    def __init__(self) -> None:
        self.write_attempted = False


class Database:
    """The service's pool plus deadline-bounded execution of work on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: This pool's connection class: it remembers this pool's last connect failure.
        self._connection_class: type[_Connection] = type("_PoolConnection", (_Connection,), {})
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            settings.conninfo,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            # Admission is ours (by time, see app/admission.py); the pool queues everyone.
            max_waiting=0,
            timeout=settings.db_pool_acquire_timeout,
            kwargs=self._connect_kwargs(),
            connection_class=self._connection_class,
            # No check= here: _checked_connection() checks a connection before use.
            name="coupon-pool",
            open=False,
            reconnect_timeout=settings.db_reconnect_timeout,
            reconnect_failed=self._reconnect_again,
        )
        self._cleanups: set[asyncio.Task[Any]] = set()
        #: One slot per pool connection; units of work queue here (see _take_slot).
        self.slots = SlotGate(settings.db_pool_max_size)
        #: Connections found dead before use (and replaced).
        self.checks_failed = 0
        #: Sessions closed after an answer that they would repeat (SQLSTATE 25006).
        self.sessions_discarded = 0
        self.admission = Admission(
            pool_size=settings.db_pool_max_size,
            acquire_timeout=settings.db_pool_acquire_timeout,
            max_waiting=settings.db_pool_max_waiting,
            max_unit_seconds=settings.request_deadline,
            window=max(ADMISSION_WINDOW, settings.db_pool_acquire_timeout),
        )

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "application_name": self.settings.db_application_name,
            "connect_timeout": self.settings.db_connect_timeout,
        }
        if self.settings.db_transaction_pooler:
            # No prepared statement may outlive its transaction's server session, and
            # the pooler, not the startup packet, carries the session settings.
            kwargs["prepare_threshold"] = None
        else:
            kwargs["options"] = self.settings.session_options
        return kwargs

    async def _check_session_settings(self, conn: Conn) -> None:
        """Behind a transaction pooler, warn about each session setting the server does
        not apply as this service would (its statement timeout answers 504)."""
        wanted = self.settings.session_settings
        cur = await conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(wanted)]
        )
        found = {str(name): str(setting) for name, setting in await cur.fetchall()}
        for name, value in wanted.items():
            if found.get(name) != value:
                log.warning(
                    "DB_TRANSACTION_POOLER: the server's %s is %s, this service's is %s "
                    "(set it in the pooler's connect_query or with ALTER ROLE ... SET)",
                    name,
                    found.get(name, "unknown"),
                    value,
                )

    async def _reconnect_again(self, pool: AsyncConnectionPool[Conn]) -> None:
        """Start a fresh reconnection at once when one has failed for `reconnect_timeout`.

        psycopg_pool retries a lost connection with exponential backoff (1, 2, 4, 8 s...),
        so after a long outage the first retry may come seconds after the database is
        back. Bounding each chain by `reconnect_timeout` and restarting it here (check()
        lets the pool grow again, first attempt immediate) keeps recovery within about
        `reconnect_timeout` of the database's return, however long the outage was.
        """
        if not pool.closed:
            log.warning("reconnection failed for %.1f s; trying again", pool.reconnect_timeout)
            await pool.check()

    async def open(self) -> None:
        """Apply the schema (retrying until the start-up timeout) and fill the pool."""
        deadline = self.settings.startup_timeout
        started = time.monotonic()

        def log_retry(state: RetryCallState) -> None:
            left = deadline - (time.monotonic() - started)
            wait = state.next_action.sleep if state.next_action else 0.0
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "database not ready (attempt %d: %s); retrying in %.1f s, %.1f s of %.1f s left",
                state.attempt_number,
                _one_line(exc),
                wait,
                max(0.0, left),
                deadline,
            )

        async for attempt in AsyncRetrying(
            stop=stop_after_delay(deadline),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            retry=retry_if_exception_type(psycopg.OperationalError),
            before_sleep=log_retry,
            reraise=True,
        ):
            with attempt:
                conn = await AsyncConnection.connect(
                    self.settings.conninfo, **self._connect_kwargs()
                )
                async with conn:
                    await repository.apply_schema(conn)
                    if self.settings.db_transaction_pooler:
                        await self._check_session_settings(conn)
        await self.pool.open(wait=True, timeout=deadline)

    async def close(self) -> None:
        """Wait (bounded) for background cleanups, then close the pool."""
        await self.drain_cleanups(timeout=self.settings.request_deadline + 11.0)
        await self.pool.close(timeout=5.0)

    @property
    def pending_cleanups(self) -> int:
        """Timed-out work still cleaning up in the background."""
        return len(self._cleanups)

    async def drain_cleanups(self, *, timeout: float) -> None:
        """Wait until background cleanups are done, at most `timeout` seconds."""
        if self._cleanups:
            await asyncio.wait(set(self._cleanups), timeout=timeout)

    async def run(
        self,
        work: Callable[[Conn, WorkState], Awaitable[T]],
        *,
        deadline: float | None = None,
        tag: Hashable | None = None,
        stamp: float = 0.0,
    ) -> T:
        """Run `work` on a pooled connection, answering by `deadline` (monotonic seconds).

        While it queues for a connection the work carries `tag` and `stamp`, so that
        `slots.dismiss` can answer a group of waiters at once. Raises the domain error of
        the failure contract: PoolExhausted, ConnectionLost, TimedOut, or the domain
        errors `work` (or a dismissal) raises.
        """
        if deadline is None:
            deadline = time.monotonic() + self.settings.request_deadline
        refusal = self.admission.refuse(time.monotonic())
        if refusal is not None:
            raise PoolExhausted(
                detail="refused at once: "
                + refusal.describe(
                    self.settings.db_pool_acquire_timeout, self.settings.db_pool_max_waiting
                )
            )
        state = WorkState()
        task = asyncio.create_task(self._on_connection(work, state, deadline, tag, stamp))
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if task in done:
            return task.result()
        self._abandon(task)
        raise TimedOut(
            detail=f"deadline of {self.settings.request_deadline:.2f} s passed "
            f"(write attempted: {state.write_attempted})"
        )

    async def _on_connection(
        self,
        work: Callable[[Conn, WorkState], Awaitable[T]],
        state: WorkState,
        deadline: float,
        tag: Hashable | None,
        stamp: float,
    ) -> T:
        acquire_by = min(time.monotonic() + self.settings.db_pool_acquire_timeout, deadline)
        await self._take_slot(acquire_by, tag, stamp)
        try:
            conn = await self._checked_connection(acquire_by)
            acquired, acquired_cpu = time.monotonic(), time.process_time()
            answered = False  # the database answered (a domain error is an answer too)
            try:
                async with conn:  # commit on success, roll back on error
                    result = await work(conn, state)
                answered = True
                return result
            except ServiceError:
                answered = True
                raise
            except psycopg.Error as exc:
                if discards_connection(exc):
                    await self._discard(conn, exc)
                raise
            finally:
                await self.pool.putconn(conn)  # a broken connection is discarded, replaced
                now = time.monotonic()
                held, busy = now - acquired, time.process_time() - acquired_cpu
                # Learn only from units the database answered: one that failed or was
                # abandoned at the deadline says how long a fault lasted, not how fast the
                # pool drains, and would refuse claims once the fault is gone. And not from
                # a unit during which this process was mostly on the CPU: the event loop
                # (a burst still being parsed) stretched it, not the database.
                if answered and busy < LOOP_BOUND_SHARE * held:
                    self.admission.record_unit(held, now)
        except ServiceError:
            raise
        except psycopg.Error as exc:
            raise translate_db_error(
                exc,
                write_attempted=state.write_attempted,
                connect_failure=self._connection_class.last_failure,
            ) from exc
        finally:
            self.slots.release()

    async def _discard(self, conn: Conn, exc: psycopg.Error) -> None:
        """Close a session that would answer every write the same way (read-only), so
        that putconn() replaces it, and drain the pool: its other sessions were opened
        to the same server and are read-only too, while new ones may reach a new
        primary (a multi-host URL, a proxy that follows the failover). Sessions in use
        now are replaced when they come back (psycopg_pool's drain)."""
        self.sessions_discarded += 1
        log.info(
            "closing the pool's sessions after SQLSTATE %s: %s", sqlstate_of(exc), _one_line(exc)
        )
        await conn.close()
        await self.pool.drain()

    async def _take_slot(self, acquire_by: float, tag: Hashable | None, stamp: float) -> None:
        """Wait, first in first out, until one of the pool's connections is ours to take.

        The queue is the gate's, not the pool's: a waiter here costs a future and a timer,
        where psycopg_pool's costs a condition, a lock and a task, and a burst puts
        thousands of them in line; and the gate can dismiss a group of them at once.
        """
        self.admission.join(tag)
        try:
            await self.slots.acquire(max(0.0, acquire_by - time.monotonic()), tag=tag, stamp=stamp)
        except TimeoutError as exc:
            raise PoolExhausted(
                detail=f"no connection within {self.settings.db_pool_acquire_timeout:.2f} s "
                f"({self.admission.waiting} waiting)"
            ) from exc
        finally:
            self.admission.leave(tag)

    async def _checked_connection(self, acquire_by: float) -> Conn:
        """A pooled connection that is not known to be dead.

        An idle connection whose server end was closed (pg_terminate_backend, a restart,
        a proxy that dropped it) has the server's FATAL message or its FIN waiting in the
        socket: a zero-timeout poll sees that without a round trip. Only such a
        connection gets the full check (one round trip); if that fails it goes back to
        the pool, which discards and replaces it, and the next one is tried at once.
        psycopg_pool's own `check=` would spend a round trip on every request and, after
        a second dead connection in a row, back off for about a second: longer than the
        acquire timeout, so terminating the idle backends became 503s. A connection
        killed between the poll and the statement fails the request, as it would after
        a round-trip check.
        """
        while True:
            timeout = max(0.0, acquire_by - time.monotonic())
            conn = await self.pool.getconn(timeout=timeout)
            if not _has_unread_input(conn):
                return conn
            try:
                await conn.execute("")
            except psycopg.Error:
                self.checks_failed += 1
                await self.pool.putconn(conn)
                continue
            except BaseException:
                await self.pool.putconn(conn)
                raise
            return conn

    def learn_stock(self, tag: Hashable, stock: int) -> None:
        """A unit of work of `tag` reported `stock` left: its waiters beyond that are
        answered without a connection once it runs out (admission counts them so)."""
        self.admission.learn_stock(tag, stock, time.monotonic())

    def dismiss(
        self, tag: Hashable, *, stamped_at_most: float, error: Callable[[], ServiceError]
    ) -> int:
        """Answer every unit of work of `tag` still queued and stamped at or before
        `stamped_at_most` with `error()`, without a connection; return how many.

        Each counts for admission as a unit that held no connection: the queue drained
        by that much in no time.
        """
        dismissed = self.slots.dismiss(tag, stamped_at_most=stamped_at_most, error=error)
        self.admission.record_units(0.0, time.monotonic(), count=dismissed)
        return dismissed

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        self._cleanups.add(task)
        task.add_done_callback(self._cleanup_done)

    def _cleanup_done(self, task: asyncio.Task[Any]) -> None:
        self._cleanups.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("abandoned work ended with %r", task.exception())
