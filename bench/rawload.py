"""A raw-socket HTTP/1.1 load generator for bursts and open-loop arrivals.

wrk keeps a fixed number of connections busy (closed loop); a flash sale is something
else: thousands of users whose requests arrive together, or arrivals that do not wait for
answers. This generator opens its connections first (non-blocking connects in batches,
so the server's accept queue never overflows into SYN retries), then writes requests
exactly when told: all at once for a burst (one tight loop of prebuilt bytes, a few
microseconds apart), or on a fixed schedule for open-loop arrivals. It runs on one thread
with epoll: no event-loop or HTTP-client machinery between the socket and the clock, so
it costs a few tens of microseconds of CPU per request and the service, not the
generator, sets the pace (its own CPU is reported next to the figures).

Answers are parsed just enough to time them: status line, Content-Length, body. Sockets
close with SO_LINGER 0 (a reset), so thousands of connections leave no TIME_WAIT behind.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Answer", "ConnectError", "HttpConnections", "claim_request"]

_READ = select.EPOLLIN | select.EPOLLRDHUP
_LINGER_RESET = struct.pack("ii", 1, 0)


class ConnectError(RuntimeError):
    """The connections could not all be opened in time."""


def claim_request(host: str, port: int, user_id: str, coupon: str) -> bytes:
    """A complete keep-alive POST /api/coupons/claim with a JSON body."""
    body = f'{{"user_id":"{user_id}","coupon_name":"{coupon}"}}'.encode()
    head = (
        f"POST /api/coupons/claim HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass(frozen=True, slots=True)
class Answer:
    """One request: when it was due, sent and answered (perf_counter seconds), and how.

    `status` is the HTTP status, or `closed` / `reset` / `no answer` / `bad response`
    when none came that could be read.
    `body` and `headers` (lower-case names) are kept for statuses other than 200 (to
    tell the 400s apart, and read a 503's Retry-After); `label` is the caller's name for
    the request (`send_all`'s labels), empty when none was given.
    """

    due: float
    sent: float
    done: float
    status: int | str
    body: bytes = b""
    label: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def latency(self) -> float:
        """From the request's write to its answer."""
        return self.done - self.sent


@dataclass(slots=True)
class _Conn:
    sock: socket.socket
    fd: int
    connected: bool = False
    buf: bytes = b""
    out: bytes = b""
    due: float = 0.0
    sent: float = 0.0
    busy: bool = False
    dead: bool = False
    attempts: int = 0
    label: str = ""


@dataclass
class HttpConnections:
    """Keep-alive connections to one HTTP server, driven from one thread with epoll."""

    host: str
    port: int
    clock: Callable[[], float] = time.perf_counter
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._epoll = select.epoll()
        self._conns: dict[int, _Conn] = {}
        self._idle: deque[_Conn] = deque()

    # -- connections ---------------------------------------------------------------------

    def _start_connect(self, conn: _Conn | None = None) -> _Conn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        code = sock.connect_ex((self.host, self.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise ConnectError(f"connect to {self.host}:{self.port}: {errno.errorcode[code]}")
        new = _Conn(sock=sock, fd=sock.fileno(), attempts=(conn.attempts + 1) if conn else 1)
        self._conns[new.fd] = new
        self._epoll.register(new.fd, select.EPOLLOUT)
        return new

    def open(self, count: int, *, batch: int = 500, timeout: float = 60.0) -> None:
        """Open `count` more connections, `batch` in flight at a time; ConnectError when
        they are not all connected within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        left = count
        while left > 0:
            pending: dict[int, _Conn] = {}
            for _ in range(min(batch, left)):
                conn = self._start_connect()
                pending[conn.fd] = conn
            left -= len(pending)
            while pending:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    raise ConnectError(
                        f"{len(pending) + left} of {count} connections to "
                        f"{self.host}:{self.port} not open within {timeout:.0f} s"
                    )
                for fd, _events in self._epoll.poll(min(wait, 0.5)):
                    ready = pending.pop(fd, None)
                    if ready is None:
                        continue
                    err = ready.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        # Refused or reset while the server was busy accepting: try again.
                        self._forget(ready)
                        if ready.attempts >= 5:
                            raise ConnectError(f"connect: {errno.errorcode.get(err, err)}")
                        retry = self._start_connect(ready)
                        pending[retry.fd] = retry
                        continue
                    ready.connected = True
                    self._epoll.modify(fd, _READ)
                    self._idle.append(ready)

    @property
    def in_flight(self) -> int:
        """Requests written and not answered yet."""
        return sum(1 for c in self._conns.values() if c.busy)

    def _forget(self, conn: _Conn) -> None:
        conn.dead = True
        self._conns.pop(conn.fd, None)
        with contextlib.suppress(OSError, ValueError):  # already gone
            self._epoll.unregister(conn.fd)
        conn.sock.close()

    def close(self) -> None:
        """Reset every connection and release epoll."""
        for conn in list(self._conns.values()):
            self._forget(conn)
        self._idle.clear()
        self._epoll.close()

    # -- requests ------------------------------------------------------------------------

    def send_all(self, requests: Sequence[bytes], labels: Sequence[str] = ()) -> int:
        """Write one request on each of the first len(requests) idle connections, in one
        tight loop (the burst's release); how many were written. Each answer carries the
        label of its request, when `labels` names them."""
        written = 0
        for k, data in enumerate(requests):
            if not self._idle:
                break
            self._write(self._idle.popleft(), data, self.clock(), labels[k] if labels else "")
            written += 1
        return written

    def send(self, data: bytes, due: float) -> bool:
        """Write a request due at `due` on an idle connection; False when none is idle."""
        if not self._idle:
            return False
        self._write(self._idle.popleft(), data, due)
        return True

    def _write(self, conn: _Conn, data: bytes, due: float, label: str = "") -> None:
        now = self.clock()
        conn.busy, conn.due, conn.sent, conn.label = True, min(due, now), now, label
        try:
            n = conn.sock.send(data)
        except OSError as exc:
            self._finish(conn, _os_status(exc))
            return
        if n < len(data):  # the socket buffer is full: the rest when writable
            conn.out = data[n:]
            self._epoll.modify(conn.fd, _READ | select.EPOLLOUT)

    def _finish(
        self,
        conn: _Conn,
        status: int | str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.answers.append(
            Answer(conn.due, conn.sent, self.clock(), status, body, conn.label, headers or {})
        )
        conn.busy = False
        if isinstance(status, str):
            self._forget(conn)
        else:
            self._idle.append(conn)

    def poll(self, timeout: float) -> int:
        """Handle what the sockets have for us, waiting up to `timeout` seconds for the
        first event; how many answers were completed."""
        before = len(self.answers)
        for fd, events in self._epoll.poll(max(timeout, 0.0)):
            conn = self._conns.get(fd)
            if conn is None:
                continue
            if events & select.EPOLLOUT and conn.out:
                try:
                    n = conn.sock.send(conn.out)
                except OSError as exc:
                    self._finish(conn, _os_status(exc))
                    continue
                conn.out = conn.out[n:]
                if not conn.out:
                    self._epoll.modify(fd, _READ)
            if events & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                self._read(conn)
        return len(self.answers) - before

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if conn.busy:
                self._finish(conn, _os_status(exc))
            else:
                self._forget(conn)
            return
        if not data:
            if conn.busy:
                self._finish(conn, "closed")
            else:
                self._forget(conn)
            return
        conn.buf += data
        while conn.busy:
            parsed = _parse_response(conn.buf)
            if parsed is None:
                return
            status, body, used, headers = parsed
            conn.buf = conn.buf[used:]
            if status < 0:  # not HTTP we understand: count it, drop the connection
                self._finish(conn, "bad response")
                return
            if status == 200:
                self._finish(conn, status)
            else:
                self._finish(conn, status, body, headers)

    def wait_answers(self, timeout: float) -> int:
        """Poll until nothing is in flight or `timeout` seconds passed; requests still
        unanswered then are recorded as `no answer` (their connections reset)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            self.poll(min(0.1, max(0.0, deadline - time.monotonic())))
        stuck = [c for c in self._conns.values() if c.busy]
        for conn in stuck:
            self._finish(conn, "no answer")
        return len(stuck)


def _parse_response(buf: bytes) -> tuple[int, bytes, int, dict[str, str]] | None:
    """(status, body, bytes used, headers) of the first complete response in `buf`, None
    while it is incomplete; status -1 for something that is not a response we can read.
    Header names are lower-case."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = buf[:head_end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return (-1, b"", len(buf), {})
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length_text = headers.get("content-length", "0")
    length = int(length_text) if length_text.isdigit() else 0
    start = head_end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        # Small bodies only: wait for the last chunk, keep the raw chunks.
        end = buf.find(b"0\r\n\r\n", start)
        return None if end < 0 else (int(parts[1]), buf[start:end], end + 5, headers)
    if len(buf) < start + length:
        return None
    return (int(parts[1]), buf[start : start + length], start + length, headers)


def _os_status(exc: OSError) -> str:
    return "reset" if exc.errno in (errno.ECONNRESET, errno.EPIPE) else type(exc).__name__
