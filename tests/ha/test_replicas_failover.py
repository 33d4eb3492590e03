"""Three service replicas on the HA stack; the primary loses power and, at the same
moment, one replica is SIGKILLed.

Expected truth: the killed replica's claims in flight end without an answer or with a
503 (info or fail, never a 500); the survivors answer 503 while no node is writable and
find the promoted standby by themselves: every claim they are sent once the recovery
bound has passed since the promotion answers 200; across all three replicas' histories,
against the new primary, nothing is oversold, conservation holds, no claim exists that
nobody attempted or a fail answer denied, and no acknowledged claim is lost
(synchronous mode); each survivor is back at its leak baseline on the new primary.
"""

from __future__ import annotations

import pytest

from chaos.core.bounds import SLACK
from chaos.core.checks import CheckResult
from chaos.faults.ha import promotion_bound
from chaos.infra.ha_stack import HA_SERVICE_SETTINGS
from chaos.infra.probes import read_limits
from tests.ha.stacks import coupon_ha_stack
from tests.replica_rig import assert_checks, history_checks, replica_rig

pytestmark = [pytest.mark.ha, pytest.mark.timeout(600)]

#: Replicas in the scenario, and the one killed.
REPLICAS = 3
VICTIM = 2
#: Concurrent senders per replica.
CONCURRENCY = 3
#: Claims each replica acknowledges before the faults, and each survivor after them.
CLAIMS = 20
#: How long the survivors may take to settle back at their baselines.
SETTLE_TIMEOUT = 30.0


def test_replicas_keep_serving_through_a_failover_while_one_is_killed() -> None:
    with (
        coupon_ha_stack() as stack,
        replica_rig(
            stack.service_database_url, stack.admin_database_url, HA_SERVICE_SETTINGS, REPLICAS
        ) as rig,
    ):
        limits = read_limits(rig.clients[0])
        coupon = rig.create_coupon("HA-REPLICAS")
        baselines = rig.baselines(but=VICTIM)
        rig.start_workload(coupon, CONCURRENCY, "hr")
        assert rig.spread is not None
        survivors_ix = [i for i in rig.replicas.indexes if i != VICTIM]
        rig.wait_serving(rig.replicas.indexes, CLAIMS)
        old = stack.leader()
        assert old is not None
        t_cut = stack.kill_node(old) - rig.clock_zero
        t_kill = rig.replicas.kill(VICTIM) - rig.clock_zero
        rig.spread.stop_replica(VICTIM, timeout=30.0)
        new = stack.wait_for_leader(timeout=promotion_bound(stack), not_in=[old])
        t_promoted = rig.now()
        # The promise: success again within the recovery bound of the promotion.
        patroni = stack.patroni_settings
        bound = patroni.loop_wait + limits.reconnect_timeout + limits.request_deadline + SLACK
        settled = t_promoted + bound
        rig.wait_serving(survivors_ix, CLAIMS, since=settled, timeout=bound + 30.0)
        rig.spread.stop(timeout=30.0)

        ops = rig.spread.operations()
        victim_late = [op for op in rig.spread.operations_of(VICTIM) if op.end >= t_kill]
        survivors = [op for i in survivors_ix for op in rig.spread.operations_of(i)]
        settled_ops = [op for op in survivors if op.start >= settled]
        outage = [op for op in survivors if t_cut <= op.start < settled]
        checks = [
            *history_checks(ops, rig.state(coupon), survivors, limits.request_deadline),
            CheckResult(
                "victim-in-flight-claims",
                all(op.status in (None, 200, 503) for op in victim_late),
                f"{len(victim_late)} claims of replica {VICTIM} ended after its kill: "
                f"{sorted({op.label for op in victim_late})}",
            ),
            CheckResult(
                "survivors-during-the-outage",
                all(op.status in (200, 503) for op in outage),
                f"{len(outage)} survivors' claims from the power cut of {old} to "
                f"{bound:.2f} s after {new}'s promotion: "
                f"{sorted({op.label for op in outage})}",
            ),
            CheckResult(
                "survivors-serve-on-the-new-primary",
                bool(settled_ops) and all(op.status == 200 for op in settled_ops),
                f"{len(settled_ops)} survivors' claims after the recovery bound: "
                f"{sorted({op.label for op in settled_ops})}",
            ),
            *rig.baseline_checks(baselines, SETTLE_TIMEOUT),
        ]
        assert_checks(checks)
