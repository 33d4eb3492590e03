"""The synchronous standby partitioned from the primary (synchronous_mode_strict).

Expected truth: with the only synchronous standby unreachable, a commit waits for it,
so claims never answer 200: those that get a connection answer 504 at the request
deadline (info: the commit may stand locally, as PostgreSQL keeps a commit whose wait
for the standby was cancelled), the others 503 at the pool's acquire timeout; after
healing, claims succeed again within the recovery bound, every info claim is resolved
(the primary and the caught-up standby agree on it) and no acknowledged claim is lost.
This is what synchronous_mode costs: availability during a standby partition.
"""

from __future__ import annotations

import dataclasses

import pytest

from chaos.checkers import CheckResult, read_state
from chaos.ha_faults import heal, partition_replication
from chaos.ha_plugin import HEAL_TIMEOUT, SaveReport
from chaos.ha_run import HaRun
from chaos.ha_stack import HaStack
from chaos.history import Outcome
from chaos.lost_writes import LostWritePolicy
from chaos.postgres import PostgresAdmin
from chaos.toxiproxy import ToxiproxyClient
from chaos.waiting import wait_for
from tests.ha.helpers import (
    WARMUP_CLAIMS,
    create_coupon,
    max_latency,
    recovery_bound,
    statuses_check,
)

pytestmark = pytest.mark.ha

#: Claims answered 504 during the partition before it is healed (a condition, not a time).
TIMED_OUT_CLAIMS = 10
#: How long those claims may take to come (each takes the request deadline).
PARTITION_TIMEOUT = 60.0


def test_synchronous_standby_partition_blocks_commits_and_loses_nothing(
    chaos_ha: HaStack, chaos_ha_toxiproxy: ToxiproxyClient, chaos_ha_report: SaveReport
) -> None:
    stack = chaos_ha
    stack.configure(
        dataclasses.replace(stack.patroni_settings, synchronous_mode_strict=True),
        timeout=HEAL_TIMEOUT,
    )
    coupon = create_coupon(stack, "HA-SYNC-PARTITION")
    run = HaRun(stack, [coupon], user_prefix="syncpart")
    with run:
        run.wait_acknowledged(WARMUP_CLAIMS, since=0.0, timeout=30.0)
        partition = partition_replication(stack, chaos_ha_toxiproxy)
        t_partition = run.mark("partition", run.at(partition.at))

        def timed_out() -> bool:
            ops = run.operations()
            return sum(op.status == 504 and op.start >= t_partition for op in ops) >= (
                TIMED_OUT_CLAIMS
            )

        wait_for(timed_out, timeout=PARTITION_TIMEOUT, what=f"{TIMED_OUT_CLAIMS} claims 504")
        heal(chaos_ha_toxiproxy, partition)
        t_healed = run.mark("heal")
        t_recovered = run.mark(
            "recovery",
            run.wait_acknowledged(1, since=t_healed, timeout=recovery_bound(stack) + 30.0),
        )
        run.wait_acknowledged(WARMUP_CLAIMS, since=t_recovered, timeout=30.0)
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    stack.wait_replayed(timeout=HEAL_TIMEOUT)

    ops = run.operations()
    blocked = [op for op in ops if op.start >= t_partition and op.end < t_healed]
    state = run.settled_state(timeout=HEAL_TIMEOUT)
    with PostgresAdmin(stack.node(stack.standbys()[0]).direct_url) as admin:
        standby_state = read_state(admin, [coupon])
    info = [op for op in ops if op.outcome is Outcome.INFO]
    on_primary = set(state.claims)
    on_standby = set(standby_state.claims)
    disagree = [
        op.user_id
        for op in info
        if ((op.user_id, op.coupon) in on_primary) != ((op.user_id, op.coupon) in on_standby)
    ]
    committed = sum((op.user_id, op.coupon) in on_primary for op in info)
    verdict = run.verdict(
        state,
        policy=LostWritePolicy.forbidden(),
        max_latency=max_latency(stack),
        extra=[
            statuses_check("no-200-while-partitioned", blocked, {"503", "504"}),
            CheckResult(
                "info-claims-resolved",
                not disagree and on_primary == on_standby,
                f"{len(info)} info claims: {committed} committed, {len(info) - committed} "
                f"absent; primary and standby disagree on {len(disagree)}; "
                f"{len(on_primary)} claims on the primary, {len(on_standby)} on the standby",
            ),
            CheckResult(
                "recovery-within-bound",
                t_recovered - t_healed <= recovery_bound(stack),
                f"first acknowledged claim {t_recovered - t_healed:.2f} s after healing "
                f"(bound {recovery_bound(stack):.2f} s)",
            ),
        ],
    )
    chaos_ha_report("synchronous-standby-partitioned", run, verdict)
    assert verdict.passed, verdict.summary()
