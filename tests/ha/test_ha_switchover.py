"""Switchover through Patroni's REST API while claims go on.

Expected truth: the standby becomes primary; answers other than 200 happen only during
the switch (from the request to the promotion plus the recovery bound), and those are
503 (the old primary shut down under the claims); no acknowledged claim is lost.
"""

from __future__ import annotations

import pytest

from chaos.checkers import CheckResult
from chaos.ha_faults import switchover
from chaos.ha_plugin import HEAL_TIMEOUT, SaveReport
from chaos.ha_run import HaRun
from chaos.ha_stack import HaStack
from chaos.lost_writes import LostWritePolicy
from tests.ha.helpers import WARMUP_CLAIMS, create_coupon, max_latency, recovery_bound

pytestmark = pytest.mark.ha

#: A planned switchover: the standby is caught up, so Patroni only has to shut the
#: primary down, promote the standby and restart the old primary as a standby.
SWITCH_TIMEOUT = 60.0


def test_switchover_under_load_loses_nothing_and_fails_only_during_the_switch(
    chaos_ha: HaStack, chaos_ha_report: SaveReport
) -> None:
    stack = chaos_ha
    old = stack.leader()
    coupon = create_coupon(stack, "HA-SWITCHOVER")
    run = HaRun(stack, [coupon], user_prefix="switchover")
    with run:
        run.wait_acknowledged(WARMUP_CLAIMS, since=0.0, timeout=30.0)
        t_switch = run.mark("switchover")
        candidate = switchover(stack)
        t_promoted = run.mark(
            "promotion",
            run.monitor.wait_primary(candidate, since=t_switch, timeout=SWITCH_TIMEOUT),
        )
        t_recovered = run.mark(
            "recovery",
            run.wait_acknowledged(1, since=t_promoted, timeout=recovery_bound(stack) + 30.0),
        )
        run.wait_acknowledged(WARMUP_CLAIMS, since=t_recovered, timeout=30.0)
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    run.mark("rejoin")
    assert stack.leader() == candidate != old

    window_end = t_promoted + recovery_bound(stack)
    not_ok = [op for op in run.operations() if op.status != 200]
    outside = [op for op in not_ok if op.end < t_switch or op.start > window_end]
    labels = sorted({op.label for op in not_ok})
    verdict = run.verdict(
        run.settled_state(timeout=HEAL_TIMEOUT),
        policy=LostWritePolicy.forbidden(),
        max_latency=max_latency(stack),
        extra=[
            CheckResult(
                "failures-only-during-the-switch",
                not outside,
                f"{len(not_ok)} answers other than 200, {len(outside)} outside the switch "
                f"[{t_switch:.2f}, {window_end:.2f}] s: "
                + ", ".join(f"{op.label}@{op.start:.2f}" for op in outside[:5]),
            ),
            CheckResult(
                "failures-are-503",
                set(labels) <= {"503"},
                f"statuses other than 200: {labels}",
            ),
            CheckResult(
                "recovery-within-bound",
                t_recovered - t_promoted <= recovery_bound(stack),
                f"first acknowledged claim {t_recovered - t_promoted:.2f} s after the "
                f"promotion (bound {recovery_bound(stack):.2f} s)",
            ),
        ],
    )
    chaos_ha_report("switchover-under-load", run, verdict)
    assert verdict.passed, verdict.summary()
