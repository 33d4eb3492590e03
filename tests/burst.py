"""Load for the stress suite: a flash-sale burst, and closed-loop clients.

The burst is bench.rawload's (the benchmark's own generator): every connection opened
first, then every request released together in one tight loop, as thousands of users
pressing the button in the same second. httpx cannot do this (it connects lazily, per
request).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field

from bench.rawload import HttpConnections, claim_request
from bench.stack import raise_nofile_limit

__all__ = [
    "BurstAnswer",
    "LoopAnswer",
    "run_burst",
    "run_closed_loop",
]


@dataclass(frozen=True, slots=True)
class BurstAnswer:
    """What one user of a burst saw: status (None when none could be read: `error` says
    why) and, for statuses other than 200, the body and headers (lower-case names)."""

    user_id: str
    status: int | None
    body: bytes
    sent_at: float
    answered_at: float
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

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


def run_burst(
    host: str, port: int, users: list[tuple[str, str]], *, answer_timeout: float
) -> list[BurstAnswer]:
    """Open one connection per (user_id, coupon), then send every claim at once.

    `answer_timeout` bounds the wait for the answers (a hang shows as an error, not a
    hang); a burst of N is exactly N answers or N errors.
    """
    raise_nofile_limit(len(users) + 256)
    conns = HttpConnections(host, port)
    try:
        conns.open(len(users))
        conns.send_all(
            [claim_request(host, port, user, coupon) for user, coupon in users],
            labels=[user for user, _ in users],
        )
        conns.wait_answers(answer_timeout)
    finally:
        conns.close()
    return [
        BurstAnswer(a.label, a.status, a.body, a.sent, a.done, headers=a.headers)
        if isinstance(a.status, int)
        else BurstAnswer(a.label, None, b"", a.sent, a.done, a.status)
        for a in conns.answers
    ]


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
