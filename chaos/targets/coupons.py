"""The coupon service as a target: the claim, the coupon data, its invariants, its row lock.

Everything in the toolkit that knows coupons is here: the claim request, the checkers
over the claims table (docs/design.md, "Invariants"), the row-lock SQL, the
mid-transaction fault and the scenario file that uses it (coupons.yaml beside this
module).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import httpx

from chaos.core.checks import CheckResult, sample
from chaos.core.history import Operation, Outcome
from chaos.errors import ScenarioError, WaitTimeout
from chaos.faults.base import Fault, FaultContext, FaultFactory
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import read_metrics
from chaos.infra.waiting import wait_for
from chaos.infra.workload import run_operations, send_recorded

__all__ = [
    "CLIENT_TIMEOUT",
    "COUPONS",
    "ClaimRequest",
    "CouponState",
    "CouponsTarget",
    "TerminateMidTransaction",
    "check_history",
    "claim_once",
    "hold_claim",
    "read_state",
    "run_claims",
]

CLIENT_TIMEOUT = 30.0
"""A client's patience in `run_claims` when the caller names none (stress tests, outside
scenario runs, which derive theirs from the limits): far above any deadline the service
is configured with, so that a hang shows as a client timeout rather than a wait."""

ClaimRequest = tuple[str, str]
"""(user_id, coupon_name)."""

SETTINGS_NAMES = frozenset(
    {
        "DATABASE_URL",
        "DB_APPLICATION_NAME",
        "DB_CONNECT_TIMEOUT",
        "DB_HOST",
        "DB_NAME",
        "DB_PASSWORD",
        "DB_POOL_ACQUIRE_TIMEOUT",
        "DB_POOL_MAX_SIZE",
        "DB_POOL_MAX_WAITING",
        "DB_POOL_MIN_SIZE",
        "DB_PORT",
        "DB_TRANSACTION_POOLER",
        "DB_RECONNECT_TIMEOUT",
        "DB_SSL_MODE",
        "DB_STATEMENT_TIMEOUT",
        "DB_USER",
        "HEALTH_TIMEOUT",
        "HTTP_BODY_TIMEOUT",
        "HTTP_HEAD_TIMEOUT",
        "HTTP_IDLE_TIMEOUT",
        "HTTP_MAX_CONNECTIONS",
        "HTTP_MAX_HEADER_BYTES",
        "HTTP_MAX_IN_PROGRESS",
        "LOG_LEVEL",
        "MAX_BODY_BYTES",
        "REQUEST_DEADLINE",
        "RETRY_AFTER",
        "SERVER_HOST",
        "SERVER_PORT",
        "SOLD_OUT_TRUST",
        "STARTUP_TIMEOUT",
    }
)
"""The environment variables the service reads (app/settings.py; the toolkit does not
import the service, which is not in the wheel: a unit test keeps the two in step)."""

STOCK = 1_000_000
"""The stock of a coupon the workload contends on: no run sells it out."""


async def claim_once(
    client: httpx.AsyncClient, user_id: str, coupon: str, *, clock_zero: float = 0.0
) -> Operation:
    """Send one claim; client-side errors (timeouts, resets) are recorded, not raised."""
    return await send_recorded(
        client,
        "POST",
        "/api/coupons/claim",
        json={"user_id": user_id, "coupon_name": coupon},
        kind="claim",
        actor=user_id,
        key=coupon,
        clock_zero=clock_zero,
    )


async def run_claims(
    base_url: str,
    requests: Sequence[ClaimRequest],
    *,
    concurrency: int | None = None,
    client_timeout: float = CLIENT_TIMEOUT,
    clock_zero: float = 0.0,
) -> list[Operation]:
    """Send every claim, at most `concurrency` at once (all at once by default)."""
    return await run_operations(
        base_url,
        requests,
        COUPONS.operate,
        concurrency=concurrency,
        client_timeout=client_timeout,
        clock_zero=clock_zero,
    )


@dataclass(frozen=True, slots=True)
class CouponState:
    """What the database holds for the run's coupons."""

    amounts: dict[str, int]
    remaining: dict[str, int]
    claims: list[tuple[str, str]]
    """(user_id, coupon_name) of every claim, duplicates included."""

    claimed: frozenset[tuple[str, str]] = field(init=False)
    """The same claims, as a set."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "claimed", frozenset(self.claims))


def read_state(admin: PostgresAdmin, coupons: Sequence[str]) -> CouponState:
    """Read the coupons and their claims."""
    rows = admin.query(
        "SELECT name, amount, remaining_amount FROM coupons WHERE name = ANY(%s)", (list(coupons),)
    )
    claims = admin.query(
        "SELECT user_id, coupon_name FROM claims WHERE coupon_name = ANY(%s)", (list(coupons),)
    )
    return CouponState(
        amounts={str(r[0]): int(str(r[1])) for r in rows},
        remaining={str(r[0]): int(str(r[2])) for r in rows},
        claims=[(str(c[0]), str(c[1])) for c in claims],
    )


def check_history(ops: Sequence[Operation], state: CouponState) -> list[CheckResult]:
    """The coupon invariants of a run (docs/design.md, "Invariants"): no claim exists that
    nobody attempted (nor one a `fail` answer denied); claims never exceed the amount;
    conservation; one claim per user and coupon. Acknowledged claims that are missing
    are the engine's lost-writes check (`CouponsTarget.present`)."""
    claims = [op for op in ops if op.kind == "claim"]
    present = set(state.claims)
    attempted = {(op.actor, op.key) for op in claims}
    phantom = [c for c in present if c not in attempted]
    denied = [
        (op.actor, op.key, op.label)
        for op in claims
        if op.outcome is Outcome.FAIL
        and (op.actor, op.key) in present
        # a user's other attempt may have succeeded (double dip)
        and not any(
            o.outcome is not Outcome.FAIL for o in claims if (o.actor, o.key) == (op.actor, op.key)
        )
    ]
    per_coupon = Counter(c for _, c in state.claims)
    oversold = {
        c: (n, state.amounts.get(c)) for c, n in per_coupon.items() if n > state.amounts.get(c, 0)
    }
    unbalanced = {
        c: (state.remaining[c], per_coupon.get(c, 0), state.amounts[c])
        for c in state.amounts
        if state.remaining[c] + per_coupon.get(c, 0) != state.amounts[c]
    }
    dupes = [c for c, n in Counter(state.claims).items() if n > 1]
    return [
        CheckResult(
            "no-unattempted-claims",
            not phantom,
            f"{len(present)} claims, {len(phantom)} nobody attempted: {sample(phantom)}",
        ),
        CheckResult(
            "failed-claims-absent",
            not denied,
            f"{len(denied)} claims exist for fail answers: {sample(denied)}",
        ),
        CheckResult(
            "claims-within-amount",
            not oversold,
            f"oversold coupons (claims, amount): {oversold or 'none'}",
        ),
        CheckResult(
            "conservation",
            not unbalanced,
            f"remaining + claims != amount for (remaining, claims, amount): {unbalanced or 'none'}",
        ),
        CheckResult("one-claim-per-user", not dupes, f"duplicate claims: {sample(dupes)}"),
    ]


@contextmanager
def hold_claim(admin: PostgresAdmin, user_id: str, coupon_name: str) -> Iterator[int]:
    """Insert a claim in an open transaction and hold it, then roll back.

    A service claim of the same (user, coupon) decrements the stock, then waits on the
    unique index for this transaction: a write already made, then a lock wait.
    Yields the holder's backend pid (for `wait_for_backend(blocked_by=...)`).
    """
    with admin.lock_connection() as conn:
        conn.execute("BEGIN")
        try:
            conn.execute(
                "INSERT INTO claims (user_id, coupon_name) VALUES (%s, %s)",
                (user_id, coupon_name),
            )
            yield conn.info.backend_pid
        finally:
            if not conn.closed:
                conn.execute("ROLLBACK")


@dataclass(frozen=True)
class TerminateMidTransaction(Fault):
    """pg_terminate_backend on a claim that has already written.

    The admin connection holds an uncommitted claim of (victim, coupon); the service's
    claim of the same pair decrements the stock, then waits on the unique index. That
    backend is terminated: the client must get 503, and the decrement must roll back.
    """

    # pgchaos explore draws it too (no parameters); it needs the victim's claim to reach
    # the database, so it is on alone.
    explore: ClassVar[Mapping[str, tuple[float, float, float]] | None] = {}
    explore_exclusive: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return "pg_terminate_backend(mid-transaction)"

    def inject(self, ctx: FaultContext) -> None:
        coupon = ctx.key_name("victim")
        create_coupon(ctx.service, coupon, 10)
        ctx.extra_keys.append(coupon)
        victim = f"victim-{ctx.run_id}"
        before = _pool_losses(ctx)
        with hold_claim(ctx.admin, victim, coupon) as holder:
            pending = ctx.workload.submit(victim, coupon)
            # Only the victim waits for the holder; the workload's claims (same query
            # text) can be waiting on each other's row locks at the same moment.
            (waiting,) = ctx.admin.wait_for_backend(
                timeout=ctx.limits.request_deadline,
                wait_event_type="Lock",
                query_contains="INSERT INTO claims",
                blocked_by=holder,
            )
            remaining_mid = ctx.admin.scalar(
                "SELECT remaining_amount FROM coupons WHERE name = %s", (coupon,)
            )
            if ctx.admin.terminate(waiting.pid):
                ctx.evidence.append(f"backend {waiting.pid} terminated mid-transaction")
            op = pending.result(timeout=ctx.limits.cleanup_bound)
        remaining = ctx.admin.scalar(
            "SELECT remaining_amount FROM coupons WHERE name = %s", (coupon,)
        )
        claims = ctx.admin.scalar("SELECT count(*) FROM claims WHERE coupon_name = %s", (coupon,))
        ctx.notes["victim_status"] = op.status
        ctx.notes["victim_latency"] = round(op.latency, 3)
        ctx.checks += [
            CheckResult(
                "fault:victim-answered-503",
                op.status == 503 and op.retry_after is not None,
                f"victim claim answered {op.label} (Retry-After {op.retry_after}) "
                f"after {op.latency:.3f} s",
            ),
            CheckResult(
                "fault:no-partial-commit",
                remaining == 10 and claims == 0,
                f"victim coupon: remaining {remaining} (10 expected; the uncommitted "
                f"decrement was not visible: {remaining_mid}), claims {claims} (0 expected)",
            ),
        ]
        # The broken connection leaves the pool: its stats show it.
        try:
            wait_for(
                lambda: _pool_losses(ctx) > before,
                timeout=ctx.limits.request_deadline,
                what="pool stats to count the broken connection",
            )
            lost_seen = True
        except WaitTimeout:
            lost_seen = False
        ctx.checks.append(
            CheckResult(
                "fault:broken-connection-left-the-pool",
                lost_seen,
                f"returns_bad + connections_lost + checks_failed: {before} before, "
                f"{_pool_losses(ctx)} after",
            )
        )


def _pool_losses(ctx: FaultContext) -> int:
    m = read_metrics(ctx.service)
    return int(
        m.get("db_pool_returns_bad_total", 0)
        + m.get("db_pool_connections_lost_total", 0)
        + m.get("db_pool_checks_failed_total", 0)
    )


def create_coupon(service: httpx.Client, name: str, amount: int) -> str:
    """Create a coupon through the API; ScenarioError unless 201."""
    resp = service.post("/api/coupons", json={"name": name, "amount": amount})
    if resp.status_code != 201:
        raise ScenarioError(f"creating coupon {name} answered {resp.status_code}: {resp.text}")
    return name


class CouponsTarget:
    """The coupon service: claims of coupons by users (see the module docstring)."""

    name = "coupons"
    application_name = "coupon-service"
    service_command: Sequence[str] = (sys.executable, "-m", "app")
    write_kinds = frozenset({"claim"})
    scenario_files: Sequence[Path] = (Path(__file__).with_name("coupons.yaml"),)

    settings_names: Collection[str] = SETTINGS_NAMES

    def create_key(self, service: httpx.Client, name: str) -> str:
        return create_coupon(service, name, STOCK)

    async def operate(
        self, client: httpx.AsyncClient, actor: str, key: str, *, clock_zero: float
    ) -> Operation:
        return await claim_once(client, actor, key, clock_zero=clock_zero)

    def read_state(self, admin: PostgresAdmin, keys: Sequence[str]) -> CouponState:
        return read_state(admin, keys)

    def present(self, state: object, op: Operation) -> bool:
        assert isinstance(state, CouponState)
        return (op.actor, op.key) in state.claimed

    def check(self, state: object, operations: Sequence[Operation]) -> list[CheckResult]:
        assert isinstance(state, CouponState)
        return check_history(operations, state)

    def lock_key(self, admin: PostgresAdmin, key: str) -> AbstractContextManager[None]:
        return admin.hold_row_lock("coupons", "name", key)

    def fault_kinds(self) -> Mapping[str, FaultFactory]:
        return {"terminate-mid-transaction": TerminateMidTransaction}


COUPONS = CouponsTarget()
"""The coupon service's target (what the CLI and the plugin configure by default)."""
