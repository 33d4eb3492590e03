"""Failover of a power-cut primary in synchronous_mode.

Expected truth: the synchronous standby is promoted within the leader key's ttl (plus
Patroni's loops); while no node is writable every claim answers 503; the service finds
the new primary by itself and acknowledges claims again within the recovery bound,
measured from the promotion; no acknowledged claim is lost; the crashed node rejoins
as a standby.
"""

from __future__ import annotations

import pytest

from chaos.checkers import CheckResult
from chaos.ha_faults import crash_primary, restart_node
from chaos.ha_plugin import HEAL_TIMEOUT, SaveReport
from chaos.ha_run import HaRun
from chaos.ha_stack import HaStack
from chaos.lost_writes import LostWritePolicy
from tests.ha.helpers import (
    WARMUP_CLAIMS,
    create_coupon,
    max_latency,
    promotion_bound,
    recovery_bound,
    statuses_check,
)

pytestmark = pytest.mark.ha


def test_failover_in_synchronous_mode_loses_no_acknowledged_claim(
    chaos_ha: HaStack, chaos_ha_report: SaveReport
) -> None:
    stack = chaos_ha
    assert stack.patroni_settings.synchronous_mode
    old = stack.leader()
    survivor = stack.standbys()[0]
    coupon = create_coupon(stack, "HA-FAILOVER")
    run = HaRun(stack, [coupon], user_prefix="failover")
    with run:
        run.wait_acknowledged(WARMUP_CLAIMS, since=0.0, timeout=30.0)
        crash = crash_primary(stack)
        t_crash = run.mark("crash", run.at(crash.at))
        t_promoted = run.mark(
            "promotion",
            run.monitor.wait_primary(survivor, since=t_crash, timeout=promotion_bound(stack)),
        )
        t_recovered = run.mark(
            "recovery",
            run.wait_acknowledged(1, since=t_promoted, timeout=recovery_bound(stack) + 30.0),
        )
        run.wait_acknowledged(WARMUP_CLAIMS, since=t_recovered, timeout=30.0)
    restart_node(stack, crash)
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    run.mark("rejoin")
    assert stack.leader() == survivor

    ops = run.operations()
    unavailable = [op for op in ops if op.start > t_crash and op.end < t_promoted]
    verdict = run.verdict(
        run.settled_state(timeout=HEAL_TIMEOUT),
        policy=LostWritePolicy.forbidden(),
        max_latency=max_latency(stack),
        extra=[
            CheckResult(
                "promotion-within-bound",
                t_promoted - t_crash <= promotion_bound(stack),
                f"{survivor} promoted {t_promoted - t_crash:.2f} s after {old}'s power cut "
                f"(bound {promotion_bound(stack):.2f} s)",
            ),
            CheckResult(
                "recovery-within-bound",
                t_recovered - t_promoted <= recovery_bound(stack),
                f"first acknowledged claim {t_recovered - t_promoted:.2f} s after the "
                f"promotion (bound {recovery_bound(stack):.2f} s)",
            ),
            statuses_check("503-while-no-writable-primary", unavailable, {"503"}),
        ],
    )
    chaos_ha_report("failover-synchronous", run, verdict)
    assert verdict.passed, verdict.summary()
