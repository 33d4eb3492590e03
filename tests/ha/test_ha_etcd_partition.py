"""The primary partitioned from etcd.

Expected truth: the primary cannot renew the leader key, so its Patroni demotes it
(within retry_timeout and a loop) before the key expires (ttl); only then is the standby
promoted, so there is never a moment with two primaries; while no node is writable,
claims fail fast (503, never 504); the service finds the new primary by itself; no
acknowledged claim is lost and conservation holds on the survivor; after healing, the
old primary rejoins as a standby.
"""

from __future__ import annotations

import pytest

from chaos.checkers import CheckResult
from chaos.ha_faults import heal, partition_from_etcd
from chaos.ha_plugin import HEAL_TIMEOUT, SaveReport
from chaos.ha_run import HaRun
from chaos.ha_stack import HaStack
from chaos.lost_writes import LostWritePolicy
from chaos.toxiproxy import ToxiproxyClient
from chaos.waiting import wait_for
from tests.ha.helpers import (
    PROMOTION_SLACK,
    WARMUP_CLAIMS,
    create_coupon,
    max_latency,
    promotion_bound,
    recovery_bound,
    statuses_check,
)

pytestmark = pytest.mark.ha


def test_primary_cut_off_etcd_demotes_itself_without_split_brain(
    chaos_ha: HaStack, chaos_ha_toxiproxy: ToxiproxyClient, chaos_ha_report: SaveReport
) -> None:
    stack = chaos_ha
    settings = stack.patroni_settings
    old = stack.leader()
    assert old is not None
    survivor = stack.standbys()[0]
    demotion_bound = settings.loop_wait + settings.retry_timeout + PROMOTION_SLACK
    coupon = create_coupon(stack, "HA-ETCD")
    run = HaRun(stack, [coupon], user_prefix="etcd")
    with run:
        run.wait_acknowledged(WARMUP_CLAIMS, since=0.0, timeout=30.0)
        partition = partition_from_etcd(stack, chaos_ha_toxiproxy, old)
        t_partition = run.mark("partition", run.at(partition.at))
        t_demoted = run.mark(
            "demotion",
            wait_for(
                lambda: run.monitor.stopped_being_primary(old, t_partition),
                timeout=demotion_bound,
                what=f"{old} demoted",
            ),
        )
        t_promoted = run.mark(
            "promotion",
            run.monitor.wait_primary(survivor, since=t_partition, timeout=promotion_bound(stack)),
        )
        t_recovered = run.mark(
            "recovery",
            run.wait_acknowledged(1, since=t_promoted, timeout=recovery_bound(stack) + 30.0),
        )
        run.wait_acknowledged(WARMUP_CLAIMS, since=t_recovered, timeout=30.0)
        heal(chaos_ha_toxiproxy, partition)
        run.mark("heal")
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    run.mark("rejoin")
    assert stack.leader() == survivor

    unavailable = [op for op in run.operations() if op.start > t_demoted and op.end < t_promoted]
    slow = [
        op for op in unavailable if op.latency >= float(stack.service_settings["REQUEST_DEADLINE"])
    ]
    verdict = run.verdict(
        run.settled_state(timeout=HEAL_TIMEOUT),
        policy=LostWritePolicy.forbidden(),
        max_latency=max_latency(stack),
        extra=[
            CheckResult(
                "demoted-before-promotion",
                t_demoted < t_promoted,
                f"{old} demoted {t_demoted - t_partition:.2f} s after the partition, "
                f"{survivor} promoted {t_promoted - t_partition:.2f} s after it",
            ),
            CheckResult(
                "never-two-primaries",
                not run.monitor.double_primaries(),
                f"moments with two primaries: {run.monitor.double_primaries()[:5]}",
            ),
            statuses_check("writes-fail-with-503", unavailable, {"503"}),
            CheckResult(
                "writes-fail-fast",
                not slow,
                f"{len(slow)} of {len(unavailable)} refused claims took the request deadline",
            ),
            CheckResult(
                "recovery-within-bound",
                t_recovered - t_promoted <= recovery_bound(stack),
                f"first acknowledged claim {t_recovered - t_promoted:.2f} s after the "
                f"promotion (bound {recovery_bound(stack):.2f} s)",
            ),
        ],
    )
    chaos_ha_report("primary-cut-off-etcd", run, verdict)
    assert verdict.passed, verdict.summary()
