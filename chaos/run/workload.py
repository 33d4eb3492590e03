"""Claim traffic against the service over HTTP, recorded into a history."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ssl
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import httpx

from chaos.errors import ChaosError
from chaos.run.history import History, Operation

__all__ = ["ClaimRequest", "LiveWorkload", "claim_once", "run_claims"]

T = TypeVar("T")

ClaimRequest = tuple[str, str]
"""(user_id, coupon_name)."""


async def claim_once(
    client: httpx.AsyncClient, user_id: str, coupon: str, *, clock_zero: float = 0.0
) -> Operation:
    """Send one claim; client-side errors (timeouts, resets) are recorded, not raised."""
    start = time.monotonic() - clock_zero
    status: int | None = None
    error: str | None = None
    retry_after = write_attempted = None
    try:
        resp = await client.post(
            "/api/coupons/claim", json={"user_id": user_id, "coupon_name": coupon}
        )
        status = resp.status_code
        retry_after = resp.headers.get("retry-after")
        write_attempted = resp.headers.get("x-write-attempted")
    except httpx.TimeoutException:
        error = "timeout"
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    return Operation(
        kind="claim",
        user_id=user_id,
        coupon=coupon,
        start=start,
        end=time.monotonic() - clock_zero,
        status=status,
        error=error,
        retry_after=retry_after,
        write_attempted=write_attempted,
    )


def _client(base_url: str, timeout: float, ssl_context: ssl.SSLContext) -> httpx.AsyncClient:
    # One client (one connection) per concurrent sender: httpx's pool scans every
    # connection on each request, so one client shared by N senders costs O(N^2) CPU.
    # The SSL context is shared because building one costs ~20 ms of CPU.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits, verify=ssl_context)


async def run_claims(
    base_url: str,
    requests: Sequence[ClaimRequest],
    *,
    concurrency: int | None = None,
    client_timeout: float = 30.0,
    clock_zero: float = 0.0,
) -> list[Operation]:
    """Send every claim, at most `concurrency` at once (all at once by default)."""
    senders = min(concurrency or len(requests), len(requests))
    queue: asyncio.Queue[tuple[int, ClaimRequest]] = asyncio.Queue()
    for item in enumerate(requests):
        queue.put_nowait(item)
    results: list[Operation | None] = [None] * len(requests)
    ssl_context = httpx.create_ssl_context()

    async def sender() -> None:
        async with _client(base_url, client_timeout, ssl_context) as client:
            while not queue.empty():
                index, (user_id, coupon) = queue.get_nowait()
                results[index] = await claim_once(client, user_id, coupon, clock_zero=clock_zero)

    await asyncio.gather(*(sender() for _ in range(senders)))
    return [op for op in results if op is not None]


class LiveWorkload:
    """Continuous claim traffic from a background thread, recorded into a history.

    `concurrency` workers each send one claim after another, every claim by a new user,
    round-robin over `coupons`. The main thread can pause the traffic (waiting until no
    claim is in flight), resume it, and send claims of its own that are recorded too.
    """

    def __init__(
        self,
        base_url: str,
        coupons: Sequence[str],
        *,
        concurrency: int,
        client_timeout: float,
        clock_zero: float,
        user_prefix: str,
    ) -> None:
        self.base_url = base_url
        self.coupons = list(coupons)
        self.concurrency = concurrency
        self.client_timeout = client_timeout
        self.clock_zero = clock_zero
        self.user_prefix = user_prefix
        self.history = History()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping = False
        self._running: asyncio.Event | None = None
        self._idle: asyncio.Condition | None = None
        self._in_flight = 0
        self._clients: list[httpx.AsyncClient] = []
        self._spare: httpx.AsyncClient | None = None
        self._next_user = 0

    def _record(self, op: Operation) -> None:
        with self._lock:
            self.history.add(op)

    def operations(self) -> list[Operation]:
        """A copy of the history so far."""
        with self._lock:
            return list(self.history.operations)

    def _new_user(self) -> str:
        with self._lock:
            self._next_user += 1
            return f"{self.user_prefix}-{self._next_user}"

    def start(self) -> None:
        """Start the thread and its workers."""
        self._thread = threading.Thread(target=self._main, name="chaos-workload", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10.0):
            raise ChaosError("workload thread did not start within 10.0 s")

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = asyncio.Event()
        self._running.set()
        self._idle = asyncio.Condition()
        ssl_context = httpx.create_ssl_context()
        async with contextlib.AsyncExitStack() as clients:
            self._clients = [
                await clients.enter_async_context(
                    _client(self.base_url, self.client_timeout, ssl_context)
                )
                for _ in range(self.concurrency)
            ]
            self._spare = _client(self.base_url, self.client_timeout, ssl_context)
            await clients.enter_async_context(self._spare)
            workers = [asyncio.create_task(self._worker(i)) for i in range(self.concurrency)]
            self._ready.set()
            await asyncio.gather(*workers)

    async def _worker(self, index: int) -> None:
        assert self._running is not None
        turn = index
        while not self._stopping:
            await self._running.wait()
            if self._stopping:
                break
            coupon = self.coupons[turn % len(self.coupons)]
            turn += self.concurrency
            await self._tracked(self._clients[index], self._new_user(), coupon)

    async def _tracked(self, client: httpx.AsyncClient, user: str, coupon: str) -> Operation:
        assert self._idle is not None
        self._in_flight += 1
        try:
            op = await claim_once(client, user, coupon, clock_zero=self.clock_zero)
            self._record(op)
            return op
        finally:
            self._in_flight -= 1
            async with self._idle:
                self._idle.notify_all()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def pause(self, *, timeout: float) -> None:
        """Stop starting claims and wait until none is in flight."""

        async def quiesce() -> None:
            assert self._running is not None
            assert self._idle is not None
            self._running.clear()
            async with self._idle:
                await self._idle.wait_for(lambda: self._in_flight == 0)

        self._call(quiesce(), timeout)

    def resume(self) -> None:
        """Start claims again after `pause`."""

        async def go() -> None:
            assert self._running is not None
            self._running.set()

        self._call(go(), 5.0)

    def submit(self, user: str, coupon: str) -> concurrent.futures.Future[Operation]:
        """Send one claim of the main thread's, recorded like the others."""
        assert self._loop is not None
        assert self._spare is not None
        coro = self._tracked(self._spare, user, coupon)
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop(self, *, timeout: float) -> None:
        """Let the claims in flight finish, then end the thread."""
        self._stopping = True
        if self._loop is not None and self._running is not None:
            self._loop.call_soon_threadsafe(self._running.set)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise ChaosError(f"workload did not stop within {timeout:.1f} s")
