"""Three service replicas on the local stack; one is SIGKILLed mid-load.

Expected truth: the killed replica's claims in flight end without an answer (info: the
client cannot know whether they committed); the other replicas keep answering 200
throughout; the database drops the killed replica's backends by itself (its sockets
closed with the process); nothing is oversold, conservation holds, every acknowledged
claim is present; each surviving replica comes back to its leak baseline.
"""

from __future__ import annotations

import time

import httpx
import pytest

from chaos.core.bounds import SLACK
from chaos.core.checks import CheckResult
from chaos.core.history import Outcome
from chaos.core.lost_writes import LostWritePolicy, find_lost_writes
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import snapshot, wait_for_baseline
from chaos.infra.replicas import ServiceReplicas, SpreadWorkload, replica_application_name
from chaos.infra.stack import CHAOS_SERVICE_SETTINGS, LocalStack
from chaos.infra.waiting import wait_for
from chaos.targets.coupons import COUPONS, check_history, read_state

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
    replicas: ServiceReplicas | None = None
    spread: SpreadWorkload | None = None
    try:
        stack.start()
        replicas = ServiceReplicas(
            database_url=stack.endpoints.proxied_database_url,
            count=REPLICAS,
            env=CHAOS_SERVICE_SETTINGS,
            application_name=COUPONS.application_name,
            settings_names=COUPONS.settings_names,
        )
        replicas.start()
        coupon = f"REPLICAS-{time.monotonic_ns()}"
        with httpx.Client(base_url=replicas.urls[0], timeout=10.0) as client:
            created = client.post("/api/coupons", json={"name": coupon, "amount": 1_000_000})
            assert created.status_code == 201
        admins = {
            i: PostgresAdmin(
                stack.endpoints.database_url,
                application_name=replica_application_name(i, COUPONS.application_name),
            )
            for i in replicas.indexes
        }
        clients = {i: httpx.Client(base_url=replicas.replica(i).url, timeout=10.0) for i in admins}
        try:
            baselines = {i: snapshot(clients[i], admins[i]) for i in admins if i != VICTIM}
            clock_zero = time.monotonic()
            spread = SpreadWorkload(
                dict(zip(replicas.indexes, replicas.urls, strict=True)),
                [coupon],
                COUPONS.operate,
                concurrency_per_replica=CONCURRENCY,
                client_timeout=30.0,
                clock_zero=clock_zero,
                actor_prefix=f"rk-{time.monotonic_ns()}",
            )
            spread.start()

            def acknowledged(index: int, since: float, count: int) -> bool:
                ops = spread.operations_of(index) if spread else []
                return sum(op.status == 200 and op.start >= since for op in ops) >= count

            for i in replicas.indexes:
                wait_for(
                    lambda i=i: acknowledged(i, 0.0, WARMUP_CLAIMS),
                    timeout=30.0,
                    what=f"replica {i} serving",
                )
            t_kill = replicas.kill(VICTIM) - clock_zero
            spread.stop_replica(VICTIM, timeout=30.0)
            for i in replicas.indexes:
                if i != VICTIM:
                    wait_for(
                        lambda i=i: acknowledged(i, t_kill, WARMUP_CLAIMS),
                        timeout=30.0,
                        what=f"replica {i} serving after the kill",
                    )
            wait_for(
                lambda: not admins[VICTIM].backends(),
                timeout=BACKENDS_GONE_TIMEOUT,
                what=f"replica {VICTIM}'s backends gone",
            )
            spread.stop(timeout=30.0)

            ops = spread.operations()
            victim_late = [op for op in spread.operations_of(VICTIM) if op.end >= t_kill]
            survivors_after = [
                op
                for i in replicas.indexes
                if i != VICTIM
                for op in spread.operations_of(i)
                if op.start >= t_kill
            ]
            with PostgresAdmin(stack.endpoints.database_url) as admin:
                state = read_state(admin, [coupon])
            survivors_ops = [
                op for i in replicas.indexes if i != VICTIM for op in spread.operations_of(i)
            ]
            # no-hang for the survivors only: the victim's claims in flight end unanswered.
            slow = [
                op for op in survivors_ops if op.status is None or op.latency > deadline + SLACK
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
                    f"{len(slow)} of {len(survivors_ops)} survivors' claims over "
                    f"{deadline + SLACK:.2f} s or unanswered",
                ),
            ]
            checks.append(
                CheckResult(
                    "victim-in-flight-claims-are-info",
                    all(op.status in (None, 200) for op in victim_late),
                    f"{len(victim_late)} claims of replica {VICTIM} ended after the kill: "
                    f"{sorted({op.label for op in victim_late})}",
                )
            )
            checks.append(
                CheckResult(
                    "survivors-keep-serving",
                    bool(survivors_after) and all(op.status == 200 for op in survivors_after),
                    f"{len(survivors_after)} claims to the survivors after the kill: "
                    f"{sorted({op.label for op in survivors_after})}",
                )
            )
            for i, baseline in baselines.items():
                _, leaks, _ = wait_for_baseline(
                    clients[i], admins[i], baseline, timeout=SETTLE_TIMEOUT
                )
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
    finally:
        try:
            if spread is not None:
                spread.stop(timeout=30.0)
        finally:
            try:
                if replicas is not None:
                    replicas.stop()
            finally:
                stack.stop()
