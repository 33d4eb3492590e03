"""Asynchronous replication, the standby partitioned while claims go on, then the
primary loses power. Each test states which truth its settings give.

- `maximum_lag_on_failover` far above the lag: Patroni promotes the standby, and every
  claim acknowledged after the partition is lost, each one reported (user, coupon, time
  of the answer, node); nothing acknowledged before the partition is lost (the standby
  had replayed it before the cut).
- `maximum_lag_on_failover` below the lag: Patroni refuses to promote the lagging
  standby; writes are unavailable (503) until the old primary is powered on again and
  leads again, and nothing is lost.
"""

from __future__ import annotations

import dataclasses

import pytest

from chaos.checkers import CheckResult
from chaos.errors import ChaosError
from chaos.ha_faults import crash_primary, heal, partition_replication, restart_node
from chaos.ha_monitor import PRIMARY
from chaos.ha_plugin import HEAL_TIMEOUT, SaveReport
from chaos.ha_run import HaRun
from chaos.ha_stack import HaStack
from chaos.lost_writes import LostWritePolicy
from chaos.toxiproxy import ToxiproxyClient
from chaos.waiting import wait_for
from tests.ha.helpers import (
    WARMUP_CLAIMS,
    create_coupon,
    max_latency,
    promotion_bound,
    recovery_bound,
    statuses_check,
)

pytestmark = pytest.mark.ha

#: Claims acknowledged by the primary while the standby is cut off (the claims at stake).
CLAIMS_AT_STAKE = 20
#: A lag limit far above what the claims at stake write: Patroni promotes.
LAG_LIMIT_PROMOTE = 1024**3
#: A lag limit below what the claims at stake write (each claim writes a few hundred
#: bytes of WAL): Patroni refuses to promote.
LAG_LIMIT_REFUSE = 16 * 1024
#: What Patroni logs on a standby that refuses the leader race for lag.
REFUSAL_MESSAGE = "My wal position exceeds maximum replication lag"


def test_async_failover_after_partition_reports_every_lost_claim(
    chaos_ha: HaStack, chaos_ha_toxiproxy: ToxiproxyClient, chaos_ha_report: SaveReport
) -> None:
    stack = chaos_ha
    stack.configure(
        dataclasses.replace(
            stack.patroni_settings,
            synchronous_mode=False,
            maximum_lag_on_failover=LAG_LIMIT_PROMOTE,
        ),
        timeout=HEAL_TIMEOUT,
    )
    old = stack.leader()
    survivor = stack.standbys()[0]
    coupon = create_coupon(stack, "HA-ASYNC-LOST")
    run = HaRun(stack, [coupon], user_prefix="asynclost")
    with run:
        run.wait_acknowledged(WARMUP_CLAIMS, since=0.0, timeout=30.0)
        # Quiesce and let the standby replay everything acknowledged so far, so the
        # claims at stake are exactly those acknowledged after the cut.
        run.workload.pause(timeout=30.0)
        stack.wait_replayed(timeout=30.0)
        partition = partition_replication(stack, chaos_ha_toxiproxy)
        t_partition = run.mark("partition", run.at(partition.at))
        run.workload.resume()
        run.wait_acknowledged(CLAIMS_AT_STAKE, since=t_partition, timeout=30.0)
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
    heal(chaos_ha_toxiproxy, partition)
    restart_node(stack, crash)
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    run.mark("rejoin")
    assert stack.leader() == survivor

    ops = run.operations()
    at_stake = {
        (op.user_id, op.coupon)
        for op in ops
        # No node is writable between the crash and the promotion: a 200 answered then
        # was committed by the old primary before it lost power.
        if op.status == 200 and op.start >= t_partition and op.end < t_promoted
    }
    state = run.settled_state(timeout=HEAL_TIMEOUT)
    policy = LostWritePolicy.expected_at_most(len(at_stake))
    verdict = run.verdict(state, policy=policy, max_latency=max_latency(stack))
    lost = {(w.user_id, w.coupon) for w in verdict.lost_writes.lost}
    verdict.checks.append(
        CheckResult(
            "lost-writes-are-the-claims-at-stake",
            lost == at_stake and len(lost) >= CLAIMS_AT_STAKE,
            f"{len(lost)} lost, {len(at_stake)} acknowledged by {old} while its standby "
            f"was cut off; lost but not at stake: {sorted(lost - at_stake)[:5]}; "
            f"at stake but kept: {sorted(at_stake - lost)[:5]}",
        )
    )
    verdict.checks.append(
        CheckResult(
            "lost-writes-name-the-old-primary",
            all(w.node == old for w in verdict.lost_writes.lost),
            f"nodes named: {sorted({str(w.node) for w in verdict.lost_writes.lost})}",
        )
    )
    chaos_ha_report("async-failover-promoted", run, verdict)
    assert verdict.passed, verdict.summary()


def test_async_failover_refused_for_lag_loses_nothing(
    chaos_ha: HaStack, chaos_ha_toxiproxy: ToxiproxyClient, chaos_ha_report: SaveReport
) -> None:
    stack = chaos_ha
    stack.configure(
        dataclasses.replace(
            stack.patroni_settings,
            synchronous_mode=False,
            maximum_lag_on_failover=LAG_LIMIT_REFUSE,
        ),
        timeout=HEAL_TIMEOUT,
    )
    old = stack.leader()
    assert old is not None
    survivor = stack.standbys()[0]
    coupon = create_coupon(stack, "HA-ASYNC-REFUSED")
    run = HaRun(stack, [coupon], user_prefix="asyncrefused")
    with run:
        run.wait_acknowledged(WARMUP_CLAIMS, since=0.0, timeout=30.0)
        partition = partition_replication(stack, chaos_ha_toxiproxy)
        t_partition = run.mark("partition", run.at(partition.at))

        def lagging() -> bool:
            # The standby receives nothing while cut off, so the lag Patroni will judge
            # it by only grows from here: the published leader position minus its own.
            return stack.leader_optime() - stack.received_lsn(survivor) > LAG_LIMIT_REFUSE

        wait_for(lagging, timeout=60.0, what=f"{survivor} lagging over {LAG_LIMIT_REFUSE} B")
        run.mark("lagging")
        offset = stack.log_offset(survivor)
        crash = crash_primary(stack)
        t_crash = run.mark("crash", run.at(crash.at))
        try:
            wait_for(
                lambda: stack.logged_since(survivor, offset, REFUSAL_MESSAGE),
                timeout=promotion_bound(stack),
                what=f"{survivor} refusing the leader race",
            )
        except ChaosError as exc:
            raise AssertionError(f"{exc}\n{stack.logs_tail(40)}") from exc
        t_refused = run.mark("refusal")
        heal(chaos_ha_toxiproxy, partition)
        restart_node(stack, crash)
        t_back = run.mark(
            "old-primary-back",
            run.monitor.wait_primary(old, since=t_crash, timeout=HEAL_TIMEOUT),
        )
        t_recovered = run.mark(
            "recovery",
            run.wait_acknowledged(1, since=t_back, timeout=recovery_bound(stack) + 30.0),
        )
        run.wait_acknowledged(WARMUP_CLAIMS, since=t_recovered, timeout=30.0)
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    assert stack.leader() == old

    ops = run.operations()
    unavailable = [op for op in ops if op.start > t_crash and op.end < t_back]
    promoted = [
        s.time
        for s in run.monitor.samples()
        if s.node == survivor and s.role == PRIMARY and s.time >= t_partition
    ]
    verdict = run.verdict(
        run.settled_state(timeout=HEAL_TIMEOUT),
        policy=LostWritePolicy.forbidden(),
        max_latency=max_latency(stack),
        extra=[
            CheckResult(
                "lagging-standby-not-promoted",
                not promoted,
                f"{survivor} refused at {t_refused:.2f} s, {t_refused - t_crash:.2f} s after "
                f"the crash; seen primary at {promoted[:3]}",
            ),
            statuses_check("unavailable-until-the-old-primary-returns", unavailable, {"503"}),
            CheckResult(
                "unavailability-window",
                True,
                f"no writable primary for {t_back - t_crash:.2f} s "
                f"({t_crash:.2f} s to {t_back:.2f} s)",
            ),
        ],
    )
    chaos_ha_report("async-failover-refused", run, verdict)
    assert verdict.passed, verdict.summary()
