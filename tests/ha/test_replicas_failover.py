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

import time

import httpx
import pytest

from chaos.core.bounds import SLACK
from chaos.core.checks import CheckResult
from chaos.core.history import Outcome
from chaos.core.lost_writes import LostWritePolicy, find_lost_writes
from chaos.faults.ha import promotion_bound
from chaos.infra.ha_stack import HA_SERVICE_SETTINGS, HaStack
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import read_limits, snapshot, wait_for_baseline
from chaos.infra.replicas import ServiceReplicas, SpreadWorkload, replica_application_name
from chaos.infra.waiting import wait_for
from chaos.targets.coupons import COUPONS, check_history, read_state

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
    stack = HaStack(
        service_command=COUPONS.service_command, service_settings_names=COUPONS.settings_names
    )
    replicas: ServiceReplicas | None = None
    spread: SpreadWorkload | None = None
    admins: dict[int, PostgresAdmin] = {}
    clients: dict[int, httpx.Client] = {}
    try:
        stack.start()
        replicas = ServiceReplicas(
            database_url=stack.service_database_url,
            count=REPLICAS,
            env=HA_SERVICE_SETTINGS,
            application_name=COUPONS.application_name,
            settings_names=COUPONS.settings_names,
        )
        replicas.start()
        coupon = f"HA-REPLICAS-{time.monotonic_ns()}"
        with httpx.Client(base_url=replicas.urls[0], timeout=10.0) as client:
            limits = read_limits(client)
            created = client.post("/api/coupons", json={"name": coupon, "amount": 1_000_000})
            assert created.status_code == 201
        admins = {
            i: PostgresAdmin(
                stack.admin_database_url,
                application_name=replica_application_name(i, COUPONS.application_name),
            )
            for i in replicas.indexes
        }
        clients = {i: httpx.Client(base_url=replicas.replica(i).url, timeout=10.0) for i in admins}
        baselines = {i: snapshot(clients[i], admins[i]) for i in admins if i != VICTIM}
        clock_zero = time.monotonic()
        spread = SpreadWorkload(
            dict(zip(replicas.indexes, replicas.urls, strict=True)),
            [coupon],
            COUPONS.operate,
            concurrency_per_replica=CONCURRENCY,
            client_timeout=30.0,
            clock_zero=clock_zero,
            actor_prefix=f"hr-{time.monotonic_ns()}",
        )
        spread.start()

        def acknowledged(index: int, since: float) -> bool:
            ops = spread.operations_of(index) if spread else []
            return sum(op.status == 200 and op.start >= since for op in ops) >= CLAIMS

        for i in replicas.indexes:
            wait_for(lambda i=i: acknowledged(i, 0.0), timeout=30.0, what=f"replica {i} serving")
        old = stack.leader()
        assert old is not None
        t_cut = stack.kill_node(old) - clock_zero
        t_kill = replicas.kill(VICTIM) - clock_zero
        spread.stop_replica(VICTIM, timeout=30.0)
        new = stack.wait_for_leader(timeout=promotion_bound(stack), not_in=[old])
        t_promoted = time.monotonic() - clock_zero
        # The promise: success again within the recovery bound of the promotion.
        patroni = stack.patroni_settings
        bound = patroni.loop_wait + limits.reconnect_timeout + limits.request_deadline + SLACK
        settled = t_promoted + bound
        for i in replicas.indexes:
            if i != VICTIM:
                wait_for(
                    lambda i=i: acknowledged(i, settled),
                    timeout=bound + 30.0,
                    what=f"replica {i} serving on {new}",
                )
        spread.stop(timeout=30.0)

        ops = spread.operations()
        victim_late = [op for op in spread.operations_of(VICTIM) if op.end >= t_kill]
        survivors = [op for i in replicas.indexes if i != VICTIM for op in spread.operations_of(i)]
        settled_ops = [op for op in survivors if op.start >= settled]
        outage = [op for op in survivors if t_cut <= op.start < settled]
        with PostgresAdmin(stack.admin_database_url) as admin:
            state = read_state(admin, [coupon])
        slow = [
            op
            for op in survivors
            if op.status is None or op.latency > limits.request_deadline + SLACK
        ]
        lost = find_lost_writes(
            [op for op in ops if op.outcome is Outcome.OK],
            lambda op: COUPONS.present(state, op),
            policy=LostWritePolicy.forbidden(),
        )
        checks = [
            *check_history(ops, state),
            lost.check(),
            CheckResult(
                "no-hang",
                not slow,
                f"{len(slow)} of {len(survivors)} survivors' claims over "
                f"{limits.request_deadline + SLACK:.2f} s or unanswered",
            ),
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
                f"{bound:.2f} s after {new}'s promotion: {sorted({op.label for op in outage})}",
            ),
            CheckResult(
                "survivors-serve-on-the-new-primary",
                bool(settled_ops) and all(op.status == 200 for op in settled_ops),
                f"{len(settled_ops)} survivors' claims after the recovery bound: "
                f"{sorted({op.label for op in settled_ops})}",
            ),
        ]
        for i, baseline in baselines.items():
            _, leaks, _ = wait_for_baseline(clients[i], admins[i], baseline, timeout=SETTLE_TIMEOUT)
            checks.append(
                CheckResult(
                    f"replica-{i}-back-at-baseline",
                    not leaks,
                    f"leaks: {[str(leak) for leak in leaks] or 'none'}",
                )
            )
        summary = "\n".join(
            f"{'PASS' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in checks
        )
        print(summary)
        assert all(c.passed for c in checks), summary
    finally:
        for client in clients.values():
            client.close()
        for admin in admins.values():
            admin.close()
        try:
            if spread is not None:
                spread.stop(timeout=30.0)
        finally:
            try:
                if replicas is not None:
                    replicas.stop()
            finally:
                stack.stop()
