"""Hostile connections against the real service (`python -m app`) over raw sockets.

Idle, slowloris and slow-body clients must be cut off within their deadline plus SLACK
while ordinary claims keep being served; an oversized head gets 431 without the service
reading it all; beyond the connection cap new connections are refused and the ones
already open keep being served. Bounds come from the HTTP_* settings below.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import psutil
import pytest

from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import read_metrics
from chaos.infra.service import ServiceProcess
from chaos.infra.waiting import wait_for
from chaos.targets.coupons import COUPONS
from tests.conftest import SERVICE_SETTINGS
from tests.helpers import claims_of, metric, remaining_of, running_service

HEAD_TIMEOUT = 2.0
BODY_TIMEOUT = 1.5
IDLE_TIMEOUT = 1.0
MAX_HEADER_BYTES = 8192
HOSTILE_SETTINGS = {
    **SERVICE_SETTINGS,
    "HTTP_HEAD_TIMEOUT": str(HEAD_TIMEOUT),
    "HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "HTTP_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
    "HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
}

#: Scheduling slack on top of a deadline (a loaded 2-core box, the kernel's close).
SLACK = 1.0
#: How often a slow client sends its next byte: well inside every deadline.
DRIP_INTERVAL = 0.2
#: How many clients of each hostile kind run at once.
HOSTILE_CLIENTS = 20
#: The oversized header the service must not read in full (100 MiB).
HUGE_HEADER_BYTES = 100 * 1024 * 1024
#: What the kernel's socket buffers on both ends may absorb before the service's 431
#: and close stop the sender (tcp_wmem + tcp_rmem maxima are a few MiB on loopback).
KERNEL_BUFFERING = 16 * 1024 * 1024
#: Service RSS growth allowed while it refuses the huge header (it grew 118 MB before).
RSS_GROWTH_BOUND = 32 * 1024 * 1024
#: Connection cap of the second service, and the idle timeout that keeps its held
#: connections open for the whole test.
CAP = 12
CAP_IDLE_TIMEOUT = 60.0

STOCK = 100_000


@dataclass
class Cut:
    """How a hostile client's connection ended."""

    kind: str
    started: float
    ended: float | None = None
    answer: bytes = b""
    sent: int = 0
    errors: list[str] = field(default_factory=list)


def cut_off_counts(client: httpx.Client) -> dict[str, float]:
    """http_connections_cut_off_total by reason, from /metrics."""
    found = read_metrics(client)
    prefix = "http_connections_cut_off_total{reason="
    return {k[len(prefix) : -1]: v for k, v in found.items() if k.startswith(prefix)}


def _connect(service: ServiceProcess) -> socket.socket:
    sock = socket.create_connection((service.host, service.port), timeout=10.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket, cut: Cut, deadline: float) -> None:
    """Read what the service answers until it closes, at most until `deadline`."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            cut.ended = time.monotonic()
            return
        cut.answer += chunk


def _drip(sock: socket.socket, payload: bytes, cut: Cut, deadline: float) -> None:
    """Send `payload` one byte per DRIP_INTERVAL until the service closes or `deadline`."""
    sock.settimeout(DRIP_INTERVAL)
    for byte in payload:
        if time.monotonic() >= deadline:
            return
        try:
            sock.sendall(bytes([byte]))
            cut.sent += 1
            chunk = sock.recv(65536)
        except TimeoutError:
            continue  # nothing to read yet: the service still waits for us
        except (BrokenPipeError, ConnectionResetError):
            cut.ended = time.monotonic()
            return
        if not chunk:
            cut.ended = time.monotonic()
            return
        cut.answer += chunk
        _read_until_closed(sock, cut, deadline)
        return
    _read_until_closed(sock, cut, deadline)


def idle_client(service: ServiceProcess) -> Cut:
    """Connects and sends nothing."""
    with _connect(service) as sock:
        cut = Cut("idle", started=time.monotonic())
        _read_until_closed(sock, cut, cut.started + IDLE_TIMEOUT + SLACK)
        return cut


def keepalive_idle_client(service: ServiceProcess) -> Cut:
    """Gets one answer on a keep-alive connection, then sends nothing."""
    with _connect(service) as sock:
        answer = _request(sock, "GET", "/no-such-route")
        cut = Cut("keep-alive-idle", started=time.monotonic())
        if not answer.startswith(b"HTTP/1.1 404 "):
            cut.errors.append(f"first answer: {answer[:60]!r}")
        _read_until_closed(sock, cut, cut.started + IDLE_TIMEOUT + SLACK)
        return cut


def slowloris_client(service: ServiceProcess) -> Cut:
    """Sends a request head one byte at a time, never finishing it."""
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200))
    with _connect(service) as sock:
        cut = Cut("slowloris", started=time.monotonic())
        _drip(sock, head, cut, cut.started + HEAD_TIMEOUT + SLACK)
        return cut


def slow_body_client(service: ServiceProcess) -> Cut:
    """Sends a claim's head at once, then its body one byte at a time, never finishing."""
    body = b'{"user_id": "' + b"u" * 200 + b'", "coupon_name": "hostile"}'
    head = (
        b"POST /api/coupons/claim HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (len(body) + 1)
    )
    with _connect(service) as sock:
        sock.sendall(head)
        cut = Cut("slow-body", started=time.monotonic())
        _drip(sock, body, cut, cut.started + BODY_TIMEOUT + SLACK)
        return cut


def huge_header_client(service: ServiceProcess) -> Cut:
    """Sends one header of HUGE_HEADER_BYTES as fast as the service takes it."""
    chunk = b"a" * 65536
    with _connect(service) as sock:
        cut = Cut("huge-header", started=time.monotonic())
        sock.settimeout(10.0)
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: ")
            while cut.sent < HUGE_HEADER_BYTES:
                sock.sendall(chunk)
                cut.sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except TimeoutError:
            cut.errors.append("the service neither read nor refused the header for 10 s")
        _read_until_closed(sock, cut, time.monotonic() + HEAD_TIMEOUT + SLACK)
        return cut


@dataclass
class Claims:
    """Ordinary claims sent in a loop while hostile clients run."""

    statuses: list[int] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, base_url: str, coupon: str) -> None:
        with httpx.Client(base_url=base_url, timeout=30.0) as client:
            while not self.stop.is_set():
                user = f"user-{uuid.uuid4().hex}"
                resp = client.post(
                    "/api/coupons/claim", json={"user_id": user, "coupon_name": coupon}
                )
                self.statuses.append(resp.status_code)
                self.users.append(user)


@pytest.fixture(scope="module")
def hostile_service(database_url: str) -> Iterator[ServiceProcess]:
    """The service with short HTTP deadlines."""
    with running_service(database_url, HOSTILE_SETTINGS) as proc:
        yield proc


@pytest.fixture
def coupon(admin: PostgresAdmin, hostile_service: ServiceProcess) -> str:
    admin.query("TRUNCATE claims, coupons RESTART IDENTITY CASCADE")
    resp = httpx.post(
        f"{hostile_service.url}/api/coupons", json={"name": "hostile", "amount": STOCK}
    )
    assert resp.status_code == 201
    return "hostile"


def _run_with_claims(
    service: ServiceProcess, coupon: str, clients: list[object]
) -> tuple[list[Cut], Claims]:
    claims = Claims()
    claimer = threading.Thread(target=claims.run, args=(service.url, coupon), daemon=True)
    claimer.start()
    try:
        # Claims are flowing before the hostile clients start, and still after they end.
        wait_for(lambda: claims.statuses, timeout=10.0, what="a first claim answered")
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            cuts = list(pool.map(lambda fn: fn(service), clients))  # type: ignore[operator]
        answered = len(claims.statuses)
        wait_for(
            lambda: len(claims.statuses) > answered,
            timeout=10.0,
            what="a claim answered after the hostile clients",
        )
    finally:
        claims.stop.set()
        claimer.join(timeout=30.0)
    assert not claimer.is_alive(), "the claim loop did not finish"
    return cuts, claims


def _assert_claims_served(admin: PostgresAdmin, coupon: str, claims: Claims) -> None:
    assert claims.statuses, "no claim was sent while the hostile clients ran"
    assert set(claims.statuses) == {200}
    assert sorted(claims_of(admin, coupon)) == sorted(claims.users)
    assert remaining_of(admin, coupon) == STOCK - len(claims.users)


def test_idle_slowloris_and_slow_body_are_cut_while_claims_are_served(
    hostile_service: ServiceProcess, admin: PostgresAdmin, coupon: str
) -> None:
    with httpx.Client(base_url=hostile_service.url, timeout=10.0) as probe:
        fds_before = metric(probe, "process_fds")
        cut_before = cut_off_counts(probe)
        clients = [
            idle_client,
            keepalive_idle_client,
            slowloris_client,
            slow_body_client,
        ] * HOSTILE_CLIENTS
        cuts, claims = _run_with_claims(hostile_service, coupon, clients)  # type: ignore[arg-type]

        bounds = {
            "idle": IDLE_TIMEOUT + SLACK,
            "keep-alive-idle": IDLE_TIMEOUT + SLACK,
            "slowloris": HEAD_TIMEOUT + SLACK,
            "slow-body": BODY_TIMEOUT + SLACK,
        }
        for cut in cuts:
            assert not cut.errors, cut
            assert cut.ended is not None, f"{cut.kind} client still connected after its bound"
            assert cut.ended - cut.started <= bounds[cut.kind], cut
        # The slowloris gets a 408 (the head deadline cut it, not the idle one); an idle
        # client is closed silently; a slow body's request was already being served.
        for cut in cuts:
            if cut.kind == "slowloris":
                assert cut.answer.startswith(b"HTTP/1.1 408 "), cut
                assert b"x-request-id: " in cut.answer.lower()
            else:
                assert cut.answer == b"", cut
        _assert_claims_served(admin, coupon, claims)
        # /metrics says why each was cut off (the keep-alive one idled after its answer).
        cut_after = cut_off_counts(probe)
        assert cut_after["head_timeout"] - cut_before["head_timeout"] == HOSTILE_CLIENTS
        assert cut_after["body_timeout"] - cut_before["body_timeout"] == HOSTILE_CLIENTS
        assert cut_after["idle_timeout"] - cut_before["idle_timeout"] >= 2 * HOSTILE_CLIENTS

        # Nothing the hostile clients held outlives them (descriptors back to baseline).
        wait_for(
            lambda: metric(probe, "process_fds") <= fds_before,
            timeout=SLACK * 5,
            what="the service's file descriptors back to their baseline",
        )


def test_oversized_header_gets_431_without_reading_it(
    hostile_service: ServiceProcess, admin: PostgresAdmin, coupon: str
) -> None:
    with httpx.Client(base_url=hostile_service.url, timeout=10.0) as probe:
        too_large_before = cut_off_counts(probe)["header_too_large"]
    assert hostile_service.pid is not None
    service_proc = psutil.Process(hostile_service.pid)
    rss_before = service_proc.memory_info().rss

    cuts, claims = _run_with_claims(hostile_service, coupon, [huge_header_client] * 4)

    for cut in cuts:
        assert not cut.errors, cut.errors
        assert cut.sent < KERNEL_BUFFERING, f"the service read {cut.sent} bytes of one header"
        assert cut.ended is not None, "the connection stayed open after the oversized head"
        # The 431 is written before the close; a client still sending may see a reset
        # instead of reading it, so only an answer that arrived is checked.
        if cut.answer:
            assert cut.answer.startswith(b"HTTP/1.1 431 "), cut.answer[:100]
    assert service_proc.memory_info().rss - rss_before < RSS_GROWTH_BOUND
    _assert_claims_served(admin, coupon, claims)
    with httpx.Client(base_url=hostile_service.url, timeout=10.0) as probe:
        assert cut_off_counts(probe)["header_too_large"] - too_large_before == len(cuts)


@pytest.mark.parametrize("complete", [False, True], ids=["unfinished", "complete"])
def test_an_oversized_header_in_one_write_is_answered_431(
    hostile_service: ServiceProcess, complete: bool
) -> None:
    """A head over the limit that arrives in one read, finished or not, gets 431."""
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES * 2) + b"\r\n"
    if complete:
        head += b"\r\n"
    with _connect(hostile_service) as sock:
        sock.sendall(head)  # fits in the socket buffers: the service reads all of it
        cut = Cut("big-header", started=time.monotonic())
        # Within the head deadline: the answer tells a 431 from the deadline's 408.
        _read_until_closed(sock, cut, cut.started + HEAD_TIMEOUT + SLACK)
    assert cut.ended is not None
    assert cut.answer.startswith(b"HTTP/1.1 431 "), cut.answer[:100]
    assert cut.answer.endswith(b'{"error": "request header fields too large"}')


def test_a_head_just_under_the_limit_is_served(hostile_service: ServiceProcess) -> None:
    """The limit counts the head, not the body that follows it in the same read."""
    filler = b"a" * (MAX_HEADER_BYTES - 200)
    body = b"x" * (MAX_HEADER_BYTES * 4)
    with _connect(hostile_service) as sock:
        sock.sendall(b"GET /no-such-route HTTP/1.1\r\nHost: x\r\nX-Fill: " + filler + b"\r\n\r\n")
        assert _read_answer(sock).startswith(b"HTTP/1.1 404 ")
        answer = _request(sock, "POST", "/no-such-route", body)
        assert answer.startswith(b"HTTP/1.1 404 "), answer[:100]


@pytest.fixture
def capped_service(database_url: str, admin: PostgresAdmin) -> Iterator[ServiceProcess]:
    """The service with a connection cap of CAP."""
    env = {
        **SERVICE_SETTINGS,
        "HTTP_MAX_CONNECTIONS": str(CAP),
        "HTTP_IDLE_TIMEOUT": str(CAP_IDLE_TIMEOUT),
    }
    proc = ServiceProcess(database_url=database_url, env=env, settings_names=COUPONS.settings_names)
    try:
        proc.start()
        admin.query("TRUNCATE claims, coupons RESTART IDENTITY CASCADE")
        resp = httpx.post(f"{proc.url}/api/coupons", json={"name": "capped", "amount": STOCK})
        assert resp.status_code == 201
        yield proc
    finally:
        proc.stop()


def _request(sock: socket.socket, method: str, path: str, body: bytes = b"") -> bytes:
    """Send one keep-alive request and read its whole answer (small, Content-Length)."""
    sock.sendall(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return _read_answer(sock)


def _read_answer(sock: socket.socket) -> bytes:
    """Read one whole answer (small, with Content-Length) from a keep-alive connection."""
    sock.settimeout(10.0)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            return answer
        answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def _held_connection(service: ServiceProcess) -> socket.socket | None:
    """A connection the service serves (answered a request), or None when refused."""
    sock = _connect(service)
    try:
        if _request(sock, "GET", "/no-such-route").startswith(b"HTTP/1.1 404 "):
            return sock
    except (ConnectionResetError, BrokenPipeError):
        pass
    sock.close()
    return None


def test_connection_cap_refuses_extra_connections_and_serves_held_ones(
    capped_service: ServiceProcess, admin: PostgresAdmin
) -> None:
    held: list[socket.socket] = []
    try:
        # Connections of the start-up health checks may linger a moment: retry until CAP
        # connections are served at once.
        def hold_one_more() -> bool:
            sock = _held_connection(capped_service)
            if sock is not None:
                held.append(sock)
            return len(held) == CAP

        wait_for(hold_one_more, timeout=10.0, what=f"{CAP} connections served")

        for _ in range(3):
            with _connect(capped_service) as extra:
                cut = Cut("over-cap", started=time.monotonic())
                # Well under the idle timeout: a close within this is the cap's.
                _read_until_closed(extra, cut, cut.started + CAP_IDLE_TIMEOUT / 4)
                assert cut.ended is not None, "a connection over the cap was not refused"
                assert cut.answer == b""
        body = b'{"user_id": "counter", "coupon_name": "capped"}'
        # /metrics counts them (and any start-up health check the cap turned away).
        metrics_text = _request(held[0], "GET", "/metrics").decode()
        capped = next(
            float(line.rsplit(" ", 1)[1])
            for line in metrics_text.splitlines()
            if line.startswith('http_connections_cut_off_total{reason="connection_cap"}')
        )
        assert capped >= 3
        assert _request(held[0], "POST", "/api/coupons/claim", body).startswith(b"HTTP/1.1 200 ")
        held_users = ["counter"]

        # Every held connection still serves claims.
        users = [f"user-{i}" for i in range(CAP)]
        for sock, user in zip(held, users, strict=True):
            body = f'{{"user_id": "{user}", "coupon_name": "capped"}}'.encode()
            assert _request(sock, "POST", "/api/coupons/claim", body).startswith(b"HTTP/1.1 200 ")
        assert sorted(claims_of(admin, "capped")) == sorted(users + held_users)

        # A freed place is taken by the next connection.
        held.pop().close()
        wait_for(
            lambda: hold_one_more(),
            timeout=SLACK * 5,
            what="a new connection served once one closed",
        )
    finally:
        for sock in held:
            sock.close()


def test_pipelined_and_split_requests_are_still_served(
    hostile_service: ServiceProcess, admin: PostgresAdmin, coupon: str
) -> None:
    """The deadlines and the head count do not disturb honest clients: two pipelined
    claims in one write, and a claim whose head and body arrive in separate writes."""
    bodies = [
        f'{{"user_id": "{user}", "coupon_name": "{coupon}"}}'.encode()
        for user in ("piped-1", "piped-2", "split")
    ]

    def claim_bytes(body: bytes) -> bytes:
        return (
            b"POST /api/coupons/claim HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    with _connect(hostile_service) as sock:
        sock.sendall(claim_bytes(bodies[0]) + claim_bytes(bodies[1]))
        cut = Cut("pipelined", started=time.monotonic())
        sock.settimeout(10.0)
        while cut.answer.count(b"HTTP/1.1 ") < 2:
            chunk = sock.recv(65536)
            assert chunk, cut.answer
            cut.answer += chunk
        assert cut.answer.count(b"HTTP/1.1 200 OK") == 2, cut.answer

        head, _, body = claim_bytes(bodies[2]).partition(b"\r\n\r\n")
        sock.sendall(head[:10])
        sock.sendall(head[10:] + b"\r\n\r\n")
        sock.sendall(body[:5])
        sock.sendall(body[5:])
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    assert sorted(claims_of(admin, coupon)) == ["piped-1", "piped-2", "split"]
