"""Checkers over a history and the database state (DESIGN section 4).

Every acknowledged claim is present; no claim exists that nobody attempted (nor one a
`fail` answer denied); claims never exceed amount; conservation; one claim per user and
coupon; no request longer than the deadline plus slack.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chaos.infra.postgres import PostgresAdmin
from chaos.run.history import Operation, Outcome

__all__ = [
    "CheckResult",
    "CouponState",
    "check_history",
    "check_timed_out_absent",
    "read_state",
]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, whether it passed, and what it saw (with numbers)."""

    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        """Plain dict, for reports."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class CouponState:
    """What the database holds for the run's coupons."""

    amounts: dict[str, int]
    remaining: dict[str, int]
    claims: list[tuple[str, str]]
    """(user_id, coupon_name) of every claim, duplicates included."""


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


def _sample(items: Iterable[object], n: int = 5) -> str:
    items = list(items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more


def check_history(
    ops: Sequence[Operation], state: CouponState, *, max_latency: float
) -> list[CheckResult]:
    """The invariant checks of a run."""
    claims = [op for op in ops if op.kind == "claim"]
    present = set(state.claims)
    attempted = {(op.user_id, op.coupon) for op in claims}
    ok = [op for op in claims if op.outcome is Outcome.OK]
    missing = [(op.user_id, op.coupon) for op in ok if (op.user_id, op.coupon) not in present]
    phantom = [c for c in present if c not in attempted]
    denied = [
        (op.user_id, op.coupon, op.label)
        for op in claims
        if op.outcome is Outcome.FAIL
        and (op.user_id, op.coupon) in present
        # a user's other attempt may have succeeded (double dip)
        and not any(
            o.outcome is not Outcome.FAIL
            for o in claims
            if (o.user_id, o.coupon) == (op.user_id, op.coupon)
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
    slow = [
        (op.user_id, op.label, round(op.latency, 3))
        for op in claims
        if op.latency > max_latency or op.status is None
    ]
    return [
        CheckResult(
            "acknowledged-claims-present",
            not missing,
            f"{len(ok)} ok claims, {len(missing)} missing: {_sample(missing)}",
        ),
        CheckResult(
            "no-unattempted-claims",
            not phantom,
            f"{len(present)} claims, {len(phantom)} nobody attempted: {_sample(phantom)}",
        ),
        CheckResult(
            "failed-claims-absent",
            not denied,
            f"{len(denied)} claims exist for fail answers: {_sample(denied)}",
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
        CheckResult("one-claim-per-user", not dupes, f"duplicate claims: {_sample(dupes)}"),
        CheckResult(
            "no-hang",
            not slow,
            f"{len(slow)} of {len(claims)} claims over {max_latency:.2f} s or without "
            f"an answer: {_sample(slow)}",
        ),
    ]


def check_timed_out_absent(ops: Sequence[Operation], state: CouponState) -> CheckResult:
    """504 claims left nothing: the server cancelled the statement and rolled it back."""
    present = set(state.claims)
    timed_out = [op for op in ops if op.kind == "claim" and op.status == 504]
    left = [op.user_id for op in timed_out if (op.user_id, op.coupon) in present]
    return CheckResult(
        "timed-out-claims-absent",
        not left,
        f"{len(timed_out)} claims answered 504, {len(left)} of them committed: {_sample(left)}",
    )
