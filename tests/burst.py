"""A flash-sale burst over raw sockets: every connection opened first, then every request
released together, as thousands of users pressing the button in the same second.

httpx cannot do this (it connects lazily, per request); asyncio streams can. Each answer
is read to EOF (`Connection: close`), so a burst of N is exactly N answers or N errors.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass

from bench.stack import raise_nofile_limit

__all__ = [
    "BurstAnswer",
    "LoopAnswer",
    "claim_request",
    "run_burst",
    "run_closed_loop",
]

#: Connections opened at once while setting a burst up (stays under the listen backlog).
CONNECT_BATCH = 500


@dataclass(frozen=True, slots=True)
class BurstAnswer:
    """What one user of a burst saw: status (None on a client-side error) and body."""

    user_id: str
    status: int | None
    body: bytes
    headers: dict[str, str]
    sent_at: float
    answered_at: float
    error: str | None = None

    @property
    def latency(self) -> float:
        """Seconds from sending the request to the end of its answer."""
        return self.answered_at - self.sent_at

    @property
    def message(self) -> str | None:
        """The `error` field of a JSON error body, if any."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value.get("error") if isinstance(value, dict) else None


def claim_request(host: str, port: int, user_id: str, coupon: str) -> bytes:
    """The raw bytes of one claim."""
    body = json.dumps({"user_id": user_id, "coupon_name": coupon}).encode()
    head = (
        f"POST /api/coupons/claim HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head + body


def _parse(raw: bytes) -> tuple[int | None, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None, {}, raw
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, body


async def run_burst(
    host: str, port: int, users: list[tuple[str, str]], *, answer_timeout: float
) -> list[BurstAnswer]:
    """Open one connection per (user_id, coupon), then send every claim at once.

    `answer_timeout` bounds the wait for each answer (a hang shows as an error, not a hang).
    """
    raise_nofile_limit(len(users) + 256)
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for start in range(0, len(users), CONNECT_BATCH):
            batch = users[start : start + CONNECT_BATCH]
            streams += await asyncio.gather(*(asyncio.open_connection(host, port) for _ in batch))

        async def one(
            user: tuple[str, str], reader: asyncio.StreamReader, sent_at: float
        ) -> BurstAnswer:
            try:
                raw = await asyncio.wait_for(reader.read(), timeout=answer_timeout)
            except (OSError, TimeoutError) as exc:
                return BurstAnswer(user[0], None, b"", {}, sent_at, time.monotonic(), repr(exc))
            status, headers, body = _parse(raw)
            return BurstAnswer(user[0], status, body, headers, sent_at, time.monotonic())

        payloads = [claim_request(host, port, u, c) for u, c in users]
        sent_at = time.monotonic()
        for (_, writer), payload in zip(streams, payloads, strict=True):
            writer.write(payload)
        return await asyncio.gather(
            *(one(user, reader, sent_at) for user, (reader, _) in zip(users, streams, strict=True))
        )
    finally:
        for _, writer in streams:
            writer.close()


@dataclass(frozen=True, slots=True)
class LoopAnswer:
    """One claim of a closed-loop client: status (None on a client error) and timings."""

    user_id: str
    status: int | None
    headers: dict[str, str]
    latency: float


async def run_closed_loop(
    base_url: str, coupon: str, *, clients: int, seconds: float, answer_timeout: float
) -> list[LoopAnswer]:
    """`clients` users that each claim again as soon as answered, for `seconds`.

    A sustained load: as many claims in flight as there are clients, all the time.
    """
    import httpx  # the stress suite's only HTTP client library

    answers: list[LoopAnswer] = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    # One SSL context for all (plain HTTP never uses it): building one per client costs
    # tens of milliseconds, which would make the load generator the bottleneck.
    tls = ssl.create_default_context()
    clients_ = [
        httpx.AsyncClient(
            base_url=base_url, timeout=answer_timeout, limits=limits, verify=tls, trust_env=False
        )
        for _ in range(clients)
    ]
    stop_at = time.monotonic() + seconds

    async def client(k: int) -> None:
        async with clients_[k] as http:
            n = 0
            while time.monotonic() < stop_at:
                user = f"loop-{k}-{n}"
                n += 1
                started = time.monotonic()
                try:
                    resp = await http.post(
                        "/api/coupons/claim", json={"user_id": user, "coupon_name": coupon}
                    )
                except httpx.HTTPError:
                    answers.append(LoopAnswer(user, None, {}, time.monotonic() - started))
                    continue
                answers.append(
                    LoopAnswer(
                        user, resp.status_code, dict(resp.headers), time.monotonic() - started
                    )
                )

    await asyncio.gather(*(client(k) for k in range(clients)))
    return answers
