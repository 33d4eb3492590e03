"""Traffic against the service over HTTP, recorded into a history (the target says what one
operation is)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import httpx

from chaos.core.history import History, Operation
from chaos.errors import ChaosError

__all__ = ["LiveWorkload", "Operate", "run_operations", "send_recorded", "sender_client"]

T = TypeVar("T")

Operate = Callable[..., Awaitable[Operation]]
"""`operate(client, actor, key, *, clock_zero=...)`: one recorded operation (Target.operate)."""


async def send_recorded(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json: object,
    kind: str,
    actor: str,
    key: str,
    clock_zero: float = 0.0,
) -> Operation:
    """Send one request and record it as an operation (the answer's status, Retry-After
    and X-Write-Attempted); client-side errors (timeouts, resets) are recorded, not
    raised. A target's `operate` is usually this call with its route and body."""
    start = time.monotonic() - clock_zero
    status: int | None = None
    error = retry_after = write_attempted = None
    try:
        resp = await client.request(method, url, json=json)
        status = resp.status_code
        retry_after = resp.headers.get("retry-after")
        write_attempted = resp.headers.get("x-write-attempted")
    except httpx.TimeoutException:
        error = "timeout"
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    return Operation(
        kind=kind,
        actor=actor,
        key=key,
        start=start,
        end=time.monotonic() - clock_zero,
        status=status,
        error=error,
        retry_after=retry_after,
        write_attempted=write_attempted,
    )


def sender_client(base_url: str, timeout: float, ssl_context: ssl.SSLContext) -> httpx.AsyncClient:
    """The HTTP client of one concurrent sender."""
    # One client (one connection) per concurrent sender: httpx's pool scans every
    # connection on each request, so one client shared by N senders costs O(N^2) CPU.
    # The SSL context is shared because building one costs ~20 ms of CPU.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits, verify=ssl_context)


async def run_operations(
    base_url: str,
    requests: Sequence[tuple[str, str]],
    operate: Operate,
    *,
    concurrency: int | None = None,
    client_timeout: float,
    clock_zero: float = 0.0,
) -> list[Operation]:
    """Send one operation per (actor, key), at most `concurrency` at once (all by default)."""
    senders = min(concurrency or len(requests), len(requests))
    queue: asyncio.Queue[tuple[int, tuple[str, str]]] = asyncio.Queue()
    for item in enumerate(requests):
        queue.put_nowait(item)
    results: list[Operation | None] = [None] * len(requests)
    ssl_context = httpx.create_ssl_context()

    async def sender() -> None:
        async with sender_client(base_url, client_timeout, ssl_context) as client:
            while not queue.empty():
                index, (actor, key) = queue.get_nowait()
                results[index] = await operate(client, actor, key, clock_zero=clock_zero)

    await asyncio.gather(*(sender() for _ in range(senders)))
    return [op for op in results if op is not None]


class LiveWorkload:
    """Continuous traffic from a background thread, recorded into a history.

    `concurrency` workers each send one operation after another, every one by a new actor,
    round-robin over `keys`. The main thread can pause the traffic (waiting until no
    operation is in flight), resume it, and send operations of its own that are recorded too.
    """

    def __init__(
        self,
        base_url: str,
        keys: Sequence[str],
        operate: Operate,
        *,
        concurrency: int,
        client_timeout: float,
        clock_zero: float,
        actor_prefix: str,
    ) -> None:
        self.base_url = base_url
        self.keys = list(keys)
        self.operate = operate
        self.concurrency = concurrency
        self.client_timeout = client_timeout
        self.clock_zero = clock_zero
        self.actor_prefix = actor_prefix
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
        self._next_actor = 0

    def _record(self, op: Operation) -> None:
        with self._lock:
            self.history.add(op)

    def operations(self) -> list[Operation]:
        """A copy of the history so far."""
        with self._lock:
            return list(self.history.operations)

    def _new_actor(self) -> str:
        with self._lock:
            self._next_actor += 1
            return f"{self.actor_prefix}-{self._next_actor}"

    def start(self, *, timeout: float) -> None:
        """Start the thread and its workers; ChaosError if they are not ready in time."""
        self._thread = threading.Thread(target=self._main, name="chaos-workload", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=timeout):
            raise ChaosError(f"workload thread did not start within {timeout:.1f} s")

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
                    sender_client(self.base_url, self.client_timeout, ssl_context)
                )
                for _ in range(self.concurrency)
            ]
            self._spare = sender_client(self.base_url, self.client_timeout, ssl_context)
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
            key = self.keys[turn % len(self.keys)]
            turn += self.concurrency
            await self._tracked(self._clients[index], self._new_actor(), key)

    async def _tracked(self, client: httpx.AsyncClient, actor: str, key: str) -> Operation:
        assert self._idle is not None
        self._in_flight += 1
        try:
            op = await self.operate(client, actor, key, clock_zero=self.clock_zero)
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
        """Stop starting operations and wait until none is in flight."""

        async def quiesce() -> None:
            assert self._running is not None
            assert self._idle is not None
            self._running.clear()
            async with self._idle:
                await self._idle.wait_for(lambda: self._in_flight == 0)

        self._call(quiesce(), timeout)

    def resume(self) -> None:
        """Start operations again after `pause`."""

        assert self._loop is not None
        assert self._running is not None
        self._loop.call_soon_threadsafe(self._running.set)

    def submit(self, actor: str, key: str) -> concurrent.futures.Future[Operation]:
        """Send one operation of the main thread's, recorded like the others."""
        assert self._loop is not None
        assert self._spare is not None
        coro = self._tracked(self._spare, actor, key)
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop(self, *, timeout: float) -> None:
        """Let the operations in flight finish, then end the thread."""
        self._stopping = True
        if self._loop is not None and self._running is not None:
            self._loop.call_soon_threadsafe(self._running.set)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise ChaosError(f"workload did not stop within {timeout:.1f} s")
