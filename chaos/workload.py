"""Claim traffic against the service over HTTP, recorded into a history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx

from chaos.history import Operation

__all__ = ["ClaimRequest", "claim_once", "run_claims"]

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


async def run_claims(
    base_url: str,
    requests: Sequence[ClaimRequest],
    *,
    concurrency: int | None = None,
    client_timeout: float = 30.0,
    clock_zero: float = 0.0,
) -> list[Operation]:
    """Send every claim, at most `concurrency` at once (all at once by default)."""
    limit = concurrency or len(requests) or 1
    limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
    gate = asyncio.Semaphore(limit)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=client_timeout, limits=limits
    ) as client:

        async def one(user_id: str, coupon: str) -> Operation:
            async with gate:
                return await claim_once(client, user_id, coupon, clock_zero=clock_zero)

        return list(await asyncio.gather(*(one(u, c) for u, c in requests)))
