"""Three service replicas on the local stack; one is SIGKILLed mid-load.

Expected truth: the killed replica's claims in flight end without an answer (info: the
client cannot know whether they committed); the other replicas keep answering 200
throughout; the database drops the killed replica's backends by itself (its sockets
closed with the process); nothing is oversold, conservation holds, every acknowledged
claim is present; each surviving replica comes back to its leak baseline.
"""

from __future__ import annotations

import pytest

from chaos.core.checks import CheckResult
from chaos.infra.stack import CHAOS_SERVICE_SETTINGS, LocalStack
from chaos.infra.waiting import wait_for
from chaos.targets.coupons import COUPONS
from tests.replica_rig import assert_checks, history_checks, replica_rig

pytestmark = pytest.mark.chaos

#: Replicas in the scenario, and the one killed.
REPLICAS = 3
VICTIM = 2
#: Concurrent senders per replica.
CONCURRENCY = 4
#: Claims acknowledged before the kill, and by each survivor after it.
WARMUP_CLAIMS = 30
#: How soon PostgreSQL must drop a dead client's backends: the kernel closes the
#: sockets at once, and an idle backend reads EOF at once.
BACKENDS_GONE_TIMEOUT = 5.0
#: How long the survivors may take to settle back at their baselines.
SETTLE_TIMEOUT = 15.0


def test_killing_one_replica_mid_load_leaves_the_others_serving() -> None:
    deadline = float(CHAOS_SERVICE_SETTINGS["REQUEST_DEADLINE"])
    stack = LocalStack(service_settings_names=COUPONS.settings_names)
    try:
        stack.start()
        with replica_rig(
            stack.endpoints.proxied_database_url,
            stack.endpoints.database_url,
            CHAOS_SERVICE_SETTINGS,
            REPLICAS,
        ) as rig:
            coupon = rig.create_coupon("REPLICAS")
            baselines = rig.baselines(but=VICTIM)
            rig.start_workload(coupon, CONCURRENCY, "rk")
            assert rig.spread is not None
            survivors_ix = [i for i in rig.replicas.indexes if i != VICTIM]
            rig.wait_serving(rig.replicas.indexes, WARMUP_CLAIMS)
            t_kill = rig.replicas.kill(VICTIM) - rig.clock_zero
            rig.spread.stop_replica(VICTIM, timeout=30.0)
            rig.wait_serving(survivors_ix, WARMUP_CLAIMS, since=t_kill)
            wait_for(
                lambda: not rig.admins[VICTIM].backends(),
                timeout=BACKENDS_GONE_TIMEOUT,
                what=f"replica {VICTIM}'s backends gone",
            )
            rig.spread.stop(timeout=30.0)

            ops = rig.spread.operations()
            victim_late = [op for op in rig.spread.operations_of(VICTIM) if op.end >= t_kill]
            survivors = [op for i in survivors_ix for op in rig.spread.operations_of(i)]
            survivors_after = [op for op in survivors if op.start >= t_kill]
            # no-hang for the survivors only: the victim's claims in flight end unanswered.
            checks = [
                *history_checks(ops, rig.state(coupon), survivors, deadline),
                CheckResult(
                    "victim-in-flight-claims-are-info",
                    all(op.status in (None, 200) for op in victim_late),
                    f"{len(victim_late)} claims of replica {VICTIM} ended after the kill: "
                    f"{sorted({op.label for op in victim_late})}",
                ),
                CheckResult(
                    "survivors-keep-serving",
                    bool(survivors_after) and all(op.status == 200 for op in survivors_after),
                    f"{len(survivors_after)} claims to the survivors after the kill: "
                    f"{sorted({op.label for op in survivors_after})}",
                ),
                *rig.baseline_checks(baselines, SETTLE_TIMEOUT),
            ]
            assert_checks(checks)
    finally:
        stack.stop()
