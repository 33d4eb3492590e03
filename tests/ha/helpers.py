"""Bounds and helpers shared by the HA scenarios; every bound comes from a named setting."""

from __future__ import annotations

import time
from collections.abc import Iterable

import httpx

from chaos.checkers import CheckResult
from chaos.ha_stack import HaStack
from chaos.history import Operation

__all__ = [
    "COUPON_AMOUNT",
    "PROMOTION_SLACK",
    "SLACK",
    "WARMUP_CLAIMS",
    "create_coupon",
    "max_latency",
    "promotion_bound",
    "recovery_bound",
    "statuses_check",
]

#: Scheduling slack on top of a configured bound (HTTP, event loops, 2 shared cores).
SLACK = 1.0
#: What Patroni needs on top of the leader key's expiry: pg_promote, a checkpoint, and
#: the REST API reporting the new role (seconds, on 2 shared cores).
PROMOTION_SLACK = 5.0
#: Claims acknowledged before a fault (traffic is steady) and after recovery.
WARMUP_CLAIMS = 30
#: Stock large enough that no claim of a run answers "out of stock".
COUPON_AMOUNT = 1_000_000


def _setting(stack: HaStack, name: str) -> float:
    return float(stack.service_settings[name])


def max_latency(stack: HaStack) -> float:
    """No claim may take longer than the request deadline plus slack."""
    return _setting(stack, "REQUEST_DEADLINE") + SLACK


def recovery_bound(stack: HaStack) -> float:
    """From a new primary's promotion to the service's first acknowledged claim on it.

    Patroni's next loop may still hold commits for the lost synchronous standby
    (loop_wait); the pool finds the new primary within its reconnect timeout; a claim
    that started just before then answers within the request deadline.
    """
    return (
        stack.patroni_settings.loop_wait
        + float(stack.service_settings.get("DB_RECONNECT_TIMEOUT", "1.0"))
        + _setting(stack, "REQUEST_DEADLINE")
        + SLACK
    )


def promotion_bound(stack: HaStack) -> float:
    """From a power cut of the primary to the standby's promotion.

    The dead leader's key expires at most ttl after its last renewal; the standby's
    next loop (loop_wait) takes it and promotes.
    """
    patroni = stack.patroni_settings
    return patroni.ttl + 2 * patroni.loop_wait + PROMOTION_SLACK


def create_coupon(stack: HaStack, prefix: str) -> str:
    """A fresh coupon with a large stock, created through the service."""
    name = f"{prefix}-{time.monotonic_ns()}"
    with httpx.Client(base_url=stack.endpoints.service_url, timeout=10.0) as client:
        resp = client.post("/api/coupons", json={"name": name, "amount": COUPON_AMOUNT})
    assert resp.status_code == 201, resp.text
    return name


def statuses_check(
    name: str, ops: Iterable[Operation], allowed: set[str], *, at_least: int = 1
) -> CheckResult:
    """Every operation ended with an allowed status, and there were at least `at_least`."""
    ops = list(ops)
    seen: dict[str, int] = {}
    for op in ops:
        seen[op.label] = seen.get(op.label, 0) + 1
    bad = {k: v for k, v in seen.items() if k not in allowed}
    return CheckResult(
        name,
        not bad and len(ops) >= at_least,
        f"{len(ops)} claims (at least {at_least}), statuses {dict(sorted(seen.items()))}, "
        f"allowed {sorted(allowed)}",
    )
