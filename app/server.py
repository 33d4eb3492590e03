"""The HTTP server: uvicorn's httptools protocol with deadlines and limits for hostile clients.

uvicorn with httptools has no deadline for receiving a request and no limit on header
size: a connection that sends nothing, a slowloris (one header byte a second), a body
that never completes, or a 100 MiB header each hold resources for as long as the client
likes. `GuardedHttpToolsProtocol` adds, per connection:

- an idle deadline: a connection must start a request within `HTTP_IDLE_TIMEOUT` of
  being accepted or of its previous answer (uvicorn only had the second);
- a head deadline: the request line and headers must arrive within `HTTP_HEAD_TIMEOUT`
  of the read that began them, else 408 and close;
- a body deadline: the body must arrive within `HTTP_BODY_TIMEOUT` of the read that
  ended the head, else the connection is closed (the application sees a disconnect);
- a head size limit: more than `HTTP_MAX_HEADER_BYTES` before the head ends gets 431
  and close, so the parser never buffers more than the limit plus one read;
- a connection cap: beyond `HTTP_MAX_CONNECTIONS` open connections a new one is closed
  at once, so those already served keep their memory and file descriptors;
- backpressure: at most `HTTP_MAX_IN_PROGRESS` requests in progress across all
  connections; a connection whose next request arrives beyond that is held unparsed, its
  reading paused, until one finishes (app/backpressure.py says why).

Timers are armed only when a head or body spans several reads: a request that arrives
in one read (every honest request of this API) costs no timer at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import resource
import time
import uuid
from typing import Any, ClassVar, cast

import uvicorn
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.api import create_app
from app.backpressure import READS
from app.connstats import cut_off
from app.settings import Settings

__all__ = ["FD_RESERVE", "GuardedHttpToolsProtocol", "HttpLimits", "fit_connection_cap", "serve"]

log = logging.getLogger("app.server")

FD_RESERVE = 256
"""File descriptors kept for everything but client connections (pool, logs, listener)."""

_REFUSAL_LOG_INTERVAL = 10.0
"""At most one warning about refused connections per this many seconds (no log flood)."""

#: Requests that are never held by backpressure: the operators' view of the service
#: (/health answers within HEALTH_TIMEOUT, a scrape shows the burst) must not queue
#: behind the burst it is looking at. Only the start of the read that begins a request
#: is checked.
_NEVER_HELD = (b"GET /health", b"GET /metrics")

# Where a connection is in its current request.
_IDLE, _HEAD, _BODY = 0, 1, 2


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limit."""


@dataclasses.dataclass(frozen=True, slots=True)
class HttpLimits:
    """Deadlines (seconds) and sizes that bound what one client connection can hold."""

    head_timeout: float
    body_timeout: float
    idle_timeout: float
    max_header_bytes: int
    max_connections: int
    max_in_progress: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        """The limits named by the HTTP_* settings."""
        return cls(
            head_timeout=settings.http_head_timeout,
            body_timeout=settings.http_body_timeout,
            idle_timeout=settings.http_idle_timeout,
            max_header_bytes=settings.http_max_header_bytes,
            max_connections=settings.http_max_connections,
            max_in_progress=settings.http_max_in_progress,
        )


class _RefusalLog:
    """Counts connections refused by the cap; warns at most once per interval."""

    def __init__(self) -> None:
        self.pending = 0
        self.last = float("-inf")

    def note(self, cap: int) -> None:
        self.pending += 1
        now = time.monotonic()
        if now - self.last >= _REFUSAL_LOG_INTERVAL:
            log.warning("refused %d connection(s) over HTTP_MAX_CONNECTIONS=%d", self.pending, cap)
            self.pending = 0
            self.last = now


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with idle, head and body deadlines, a head size
    limit and a connection cap. Bind the limits with `bind()`."""

    limits: ClassVar[HttpLimits]
    _refusals: ClassVar[_RefusalLog]

    @classmethod
    def bind(cls, limits: HttpLimits) -> type[GuardedHttpToolsProtocol]:
        """A subclass carrying `limits` (uvicorn builds protocols from a class)."""
        bound = type(cls.__name__, (cls,), {"limits": limits, "_refusals": _RefusalLog()})
        return cast("type[GuardedHttpToolsProtocol]", bound)

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # uvicorn arms its keep-alive timer with this after each answer; it is annotated
        # int but only handed to call_later, and our times are float seconds.
        self.timeout_keep_alive = self.limits.idle_timeout  # type: ignore[assignment]
        self._phase = _IDLE
        self._head_bytes = 0
        self._read_bytes = 0
        self._head_too_large = False
        self._deadline: asyncio.TimerHandle | None = None
        #: Bytes of the next request, kept unparsed while the server is full (or None).
        self._held: list[bytes] | None = None

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # Not registered: connection_lost finds nothing to undo but the transport.
            self.transport = transport
            self._refusals.note(self.limits.max_connections)
            cut_off("connection_cap")
            transport.close()
            return
        super().connection_made(transport)
        # uvicorn arms the idle timer only after an answer; a fresh connection gets it too.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            cut_off("idle_timeout")
        super().timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._held = None  # if held, the gate's resume finds nothing to do
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._held is not None:
            self._held.append(data)
            return
        if READS.full() and self._between_requests() and not data.startswith(_NEVER_HELD):
            self._hold(data)
            return
        self._read_bytes = len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._phase == _HEAD:
            # Whole reads are counted: the read that began the head may also hold the
            # end of a pipelined request before it, so the count errs on the high side.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                cut_off("header_too_large")
                self._answer_and_close(431, "request header fields too large")
            elif self._deadline is None:
                # Counted from the end of the read that began the head: later by the
                # microseconds that read took to parse, and no clock read per request.
                self._deadline = self.loop.call_later(
                    self.limits.head_timeout, self._head_timed_out
                )
        elif self._phase == _BODY and self._deadline is None:
            self._deadline = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)

    # Backpressure (app/backpressure.py)

    def _between_requests(self) -> bool:
        """No request of this connection is being read, handled or queued."""
        return (
            self._phase == _IDLE
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
        )

    def _hold(self, data: bytes) -> None:
        self._held = [data]
        self.transport.pause_reading()
        # The wait is the server's doing, not the client's: no idle deadline meanwhile.
        self._unset_keepalive_if_required()
        READS.hold(self)

    def resume_held(self) -> None:
        """Parse the held bytes and read on (the gate has room for a request)."""
        held, self._held = self._held, None
        if held is None or self.transport.is_closing():
            return
        if not self.flow.read_paused:  # uvicorn's own pause (pipelining) stays
            self.transport.resume_reading()
        self.data_received(b"".join(held))

    def _start_asgi_task(self, cycle: Any, app: ASGI3Application) -> None:
        # Counted from here, not from the task's first step: a burst's reads create
        # hundreds of tasks in one turn of the loop before any of them runs.
        READS.started()
        super()._start_asgi_task(cycle, _counted(app))

    # Parser callbacks (called from within data_received)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is not None:
            self._cancel_deadline()
        self._phase = _HEAD
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        if self._deadline is not None:
            self._cancel_deadline()
        # A head that ends in this read may have come whole in one large read, where
        # data_received never saw it unfinished. The parsed size is only worked out
        # when the reads were large enough to hold a head over the limit.
        limit = self.limits.max_header_bytes
        if self._head_bytes + self._read_bytes > limit and self._parsed_head_size() > limit:
            self._head_too_large = True
            raise _HeadTooLarge  # stops the parser; uvicorn answers via send_400_response
        self._phase = _BODY
        super().on_headers_complete()

    def _parsed_head_size(self) -> int:
        """The head's size from its parsed parts (request line and header lines)."""
        # "METHOD " + url + " HTTP/1.1\r\n" is at most 20 bytes besides the url; each
        # header line adds ": " and "\r\n" to its name and value.
        return 20 + len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)

    def on_message_complete(self) -> None:
        if self._deadline is not None:
            self._cancel_deadline()
        self._phase = _IDLE
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own answer to unparsable HTTP is text/plain without a request id.
        if self._head_too_large:
            cut_off("header_too_large")
            self._answer_and_close(431, "request header fields too large")
        else:
            self._answer_and_close(400, "invalid request")

    # Deadlines

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        cut_off("head_timeout")
        self._answer_and_close(408, "request timeout")

    def _body_timed_out(self) -> None:
        # The application is already reading the body: closing makes its receive()
        # answer http.disconnect, as for a client that went away.
        self._deadline = None
        if not self.transport.is_closing():
            cut_off("body_timeout")
            self.transport.close()

    def _answer_and_close(self, status: int, message: str) -> None:
        """Write a JSON error answer with a request id, then close the connection."""
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request is still being answered: no room for a second answer.
            self.transport.close()
            return
        body = json.dumps({"error": message}).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
            b"x-request-id: " + uuid.uuid4().hex.encode() + b"\r\n",
            b"\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()


def _counted(app: ASGI3Application) -> ASGI3Application:
    """`app`, telling the read gate when the request's handling ends."""

    async def counted(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        try:
            await app(scope, receive, send)
        finally:
            READS.finished()

    return counted


def fit_connection_cap(limits: HttpLimits) -> HttpLimits:
    """Raise the soft file-descriptor limit to hold the cap, or lower the cap to fit.

    Beyond the limit accept() fails with EMFILE and asyncio spins on the listener, which
    is worse than refusing cleanly.
    """
    need = limits.max_connections + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft == resource.RLIM_INFINITY or soft >= need:
        return limits
    cap = max(1, soft - FD_RESERVE)
    log.warning(
        "HTTP_MAX_CONNECTIONS=%d needs %d file descriptors but the limit is %d: capping "
        "connections at %d",
        limits.max_connections,
        need,
        soft,
        cap,
    )
    return dataclasses.replace(limits, max_connections=cap)


def serve(settings: Settings) -> bool:
    """Serve until SIGINT/SIGTERM; False when start-up failed."""
    limits = fit_connection_cap(HttpLimits.from_settings(settings))
    READS.limit = limits.max_in_progress
    config = uvicorn.Config(
        create_app(settings),
        host=settings.server_host,
        port=settings.server_port,
        http=GuardedHttpToolsProtocol.bind(limits),
        ws="none",  # no WebSocket routes: an Upgrade is an ordinary request
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.request_deadline) + 1,
    )
    server = uvicorn.Server(config)
    server.run()
    return server.started
