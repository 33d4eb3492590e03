"""The HA scenarios, each with its expected truth, runnable by pytest and by the CLI.

Every scenario takes a healthy HA stack (one leader, streaming standbys, default
Patroni settings), sets the Patroni settings its truth depends on, runs claims through
a fault, heals, and returns the run and its verdict: the invariant checks, the
lost-write report judged by the scenario's policy, and the scenario's own checks.
Bounds come from named settings (Patroni's ttl and loop_wait, the service's deadline
and reconnect timeout) plus the named slack below; waits are conditions with deadlines.

Catalogue (`HA_CATALOGUE`), in the issue's order of priority:

- `failover-synchronous`: power cut of the primary in synchronous_mode.
- `switchover-under-load`: Patroni's switchover while claims go on.
- `primary-cut-off-etcd`: the primary partitioned from etcd.
- `synchronous-standby-partitioned`: the only synchronous standby partitioned, strict.
- `async-failover-promoted` / `async-failover-refused`: asynchronous replication, the
  standby partitioned, then a power cut of the primary, with a lag limit above or
  below the lag.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from chaos.checks.base import CheckResult
from chaos.checks.lost_writes import LostWritePolicy
from chaos.errors import ChaosError
from chaos.faults.ha import (
    Crash,
    crash_primary,
    heal,
    partition_from_etcd,
    partition_replication,
    restart_node,
    switchover,
)
from chaos.infra.ha_stack import STANDBY_RETRY_INTERVAL, HaStack, PatroniSettings
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.infra.waiting import wait_for
from chaos.run.ha import HaRun, HaVerdict
from chaos.run.ha_monitor import PRIMARY
from chaos.run.history import Operation, Outcome
from chaos.targets.coupons import read_state

__all__ = [
    "CLAIMS_AT_STAKE",
    "COUPON_AMOUNT",
    "HA_CATALOGUE",
    "HEAL_TIMEOUT",
    "LAG_LIMIT_PROMOTE",
    "LAG_LIMIT_REFUSE",
    "PROMOTION_SLACK",
    "SLACK",
    "WARMUP_CLAIMS",
    "HaScenario",
    "heal_cluster",
    "max_latency",
    "promotion_bound",
    "recovery_bound",
]

#: Scheduling slack on top of a configured bound (HTTP, event loops, 2 shared cores).
SLACK = 1.0
#: What Patroni needs on top of the leader key's expiry: pg_promote, a checkpoint (s).
PROMOTION_SLACK = 5.0
#: How long healing may take: a crashed node restarts, rewinds and catches up, and a
#: new election may need a leader key to expire (Patroni's ttl) first.
HEAL_TIMEOUT = 120.0
#: Claims acknowledged before a fault (traffic is steady) and after recovery.
WARMUP_CLAIMS = 30
#: How long steady traffic may take to acknowledge WARMUP_CLAIMS claims.
TRAFFIC_TIMEOUT = 30.0
#: Stock large enough that no claim of a run answers "out of stock".
COUPON_AMOUNT = 1_000_000
#: A planned switchover: the standby is caught up; Patroni shuts the primary down,
#: promotes the standby and restarts the old primary as a standby.
SWITCH_TIMEOUT = 60.0
#: Claims answered 504 during a synchronous standby's partition before it is healed.
TIMED_OUT_CLAIMS = 10
#: How long those claims may take to come (each takes the request deadline).
PARTITION_TIMEOUT = 60.0
#: Claims acknowledged by an asynchronous primary while its standby is cut off.
CLAIMS_AT_STAKE = 20
#: A lag limit far above what the claims at stake write: Patroni promotes.
LAG_LIMIT_PROMOTE = 1024**3
#: A lag limit below what the claims at stake write (a claim writes a few hundred bytes
#: of WAL; the test waits until the lag is over it): Patroni refuses to promote.
LAG_LIMIT_REFUSE = 16 * 1024
#: What Patroni logs on a standby that refuses the leader race for lag.
REFUSAL_MESSAGE = "My wal position exceeds maximum replication lag"


def max_latency(stack: HaStack) -> float:
    """No claim may take longer than the request deadline plus slack."""
    return float(stack.service_settings["REQUEST_DEADLINE"]) + SLACK


def recovery_bound(stack: HaStack) -> float:
    """From a new primary's promotion (or a heal) to the first acknowledged claim.

    Patroni's next loop may still hold commits for a lost synchronous standby
    (loop_wait); the pool finds the writable node within its reconnect timeout; a claim
    that started just before then answers within the request deadline.
    """
    return (
        stack.patroni_settings.loop_wait
        + float(stack.service_settings.get("DB_RECONNECT_TIMEOUT", "1.0"))
        + float(stack.service_settings["REQUEST_DEADLINE"])
        + SLACK
    )


def promotion_bound(stack: HaStack) -> float:
    """From a power cut of the primary to the standby's promotion.

    The dead leader's key expires at most ttl after its last renewal; the standby's
    next loop (loop_wait) takes it and promotes.
    """
    patroni = stack.patroni_settings
    return patroni.ttl + 2 * patroni.loop_wait + PROMOTION_SLACK


def heal_cluster(stack: HaStack, *, timeout: float = HEAL_TIMEOUT) -> str:
    """Every proxy reset, every node running, default Patroni settings, one leader and
    streaming standbys; the leader's name."""
    with stack.toxiproxy() as client:
        client.reset()
    for node in stack.nodes:
        stack.start_node(node.name)
    stack.wait_healthy(timeout=timeout)
    if stack.patroni_settings != PatroniSettings():
        stack.configure(PatroniSettings(), timeout=timeout)
    return stack.wait_healthy(timeout=timeout)


def _create_coupon(stack: HaStack, prefix: str) -> str:
    name = f"{prefix}-{time.monotonic_ns()}"
    with httpx.Client(base_url=stack.endpoints.service_url, timeout=10.0) as client:
        resp = client.post("/api/coupons", json={"name": name, "amount": COUPON_AMOUNT})
    if resp.status_code != 201:
        raise ChaosError(f"creating coupon {name}: {resp.status_code} {resp.text}")
    return name


def _statuses(name: str, ops: Iterable[Operation], allowed: set[str]) -> CheckResult:
    """Every operation ended with an allowed status, and there was at least one."""
    ops = list(ops)
    seen: dict[str, int] = {}
    for op in ops:
        seen[op.label] = seen.get(op.label, 0) + 1
    bad = {k: v for k, v in seen.items() if k not in allowed}
    return CheckResult(
        name,
        not bad and bool(ops),
        f"{len(ops)} claims, statuses {dict(sorted(seen.items()))}, allowed {sorted(allowed)}",
    )


def _recovery(name: str, stack: HaStack, since: float, at: float, what: str) -> CheckResult:
    return CheckResult(
        name,
        at - since <= recovery_bound(stack),
        f"first acknowledged claim {at - since:.2f} s after {what} "
        f"(bound {recovery_bound(stack):.2f} s)",
    )


def _leader_is(stack: HaStack, expected: str | None) -> CheckResult:
    leader = stack.leader()
    return CheckResult(
        "settled-leader", leader == expected, f"leader {leader}, expected {expected}"
    )


def _steady(run: HaRun, since: float = 0.0) -> None:
    run.wait_acknowledged(WARMUP_CLAIMS, since=since, timeout=TRAFFIC_TIMEOUT)


def _first_ack(run: HaRun, stack: HaStack, since: float) -> float:
    return run.wait_acknowledged(1, since=since, timeout=recovery_bound(stack) + TRAFFIC_TIMEOUT)


def _asynchronous(stack: HaStack, *, maximum_lag_on_failover: int) -> None:
    """Reconfigure the cluster for asynchronous replication with this lag limit."""
    stack.configure(
        dataclasses.replace(
            stack.patroni_settings,
            synchronous_mode=False,
            maximum_lag_on_failover=maximum_lag_on_failover,
        ),
        timeout=HEAL_TIMEOUT,
    )


def _recover(run: HaRun, stack: HaStack, since: float) -> float:
    """Mark the service's first acknowledged claim after `since` (its recovery), then
    keep steady traffic; the recovery's time."""
    t_recovered = run.mark("recovery", _first_ack(run, stack, since))
    _steady(run, t_recovered)
    return t_recovered


def _fail_over(run: HaRun, stack: HaStack, survivor: str) -> tuple[Crash, float, float, float]:
    """Crash the primary under load, wait for `survivor`'s promotion and the service's
    recovery: the crash (its node to restart), and the times of the crash, the
    promotion and the recovery."""
    crash = crash_primary(stack)
    t_crash = run.mark("crash", run.at(crash.at))
    t_promoted = run.mark(
        "promotion",
        run.monitor.wait_primary(survivor, since=t_crash, timeout=promotion_bound(stack)),
    )
    return crash, t_crash, t_promoted, _recover(run, stack, t_promoted)


def failover_synchronous(stack: HaStack, toxiproxy: ToxiproxyClient) -> tuple[HaRun, HaVerdict]:
    """Power cut of the primary in synchronous_mode.

    Truth: the synchronous standby is promoted within ttl plus Patroni's loops; while no
    node is writable every claim answers 503; the service finds the new primary by
    itself within the recovery bound, measured from the promotion; no acknowledged
    claim is lost; the crashed node rejoins as a standby.
    """
    old, survivor = stack.leader(), stack.standbys()[0]
    run = HaRun(stack, [_create_coupon(stack, "HA-FAILOVER")], user_prefix="failover")
    with run:
        _steady(run)
        crash, t_crash, t_promoted, t_recovered = _fail_over(run, stack, survivor)
    restart_node(stack, crash)
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    run.mark("rejoin")
    unavailable = [op for op in run.operations() if op.start > t_crash and op.end < t_promoted]
    return run, run.verdict(
        run.settled_state(timeout=HEAL_TIMEOUT),
        policy=LostWritePolicy.forbidden(),
        max_latency=max_latency(stack),
        extra=[
            _leader_is(stack, survivor),
            CheckResult(
                "promotion-within-bound",
                t_promoted - t_crash <= promotion_bound(stack),
                f"{survivor} promoted {t_promoted - t_crash:.2f} s after {old}'s power cut "
                f"(bound {promotion_bound(stack):.2f} s)",
            ),
            _recovery("recovery-within-bound", stack, t_promoted, t_recovered, "the promotion"),
            _statuses("503-while-no-writable-primary", unavailable, {"503"}),
        ],
    )


def switchover_under_load(stack: HaStack, toxiproxy: ToxiproxyClient) -> tuple[HaRun, HaVerdict]:
    """Patroni's switchover (REST API) while claims go on.

    Truth: the standby becomes primary; answers other than 200 come only during the
    switch (from the request to the promotion plus the recovery bound) and are 503;
    no acknowledged claim is lost.
    """
    old = stack.leader()
    run = HaRun(stack, [_create_coupon(stack, "HA-SWITCHOVER")], user_prefix="switchover")
    with run:
        _steady(run)
        t_switch = run.mark("switchover")
        candidate = switchover(stack)
        t_promoted = run.mark(
            "promotion", run.monitor.wait_primary(candidate, since=t_switch, timeout=SWITCH_TIMEOUT)
        )
        t_recovered = _recover(run, stack, t_promoted)
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    run.mark("rejoin")
    window_end = t_promoted + recovery_bound(stack)
    not_ok = [op for op in run.operations() if op.status != 200]
    outside = [op for op in not_ok if op.end < t_switch or op.start > window_end]
    labels = sorted({op.label for op in not_ok})
    return run, run.verdict(
        run.settled_state(timeout=HEAL_TIMEOUT),
        policy=LostWritePolicy.forbidden(),
        max_latency=max_latency(stack),
        extra=[
            CheckResult(
                "settled-leader",
                stack.leader() == candidate != old,
                f"leader {stack.leader()}, switched from {old} to {candidate}",
            ),
            CheckResult(
                "failures-only-during-the-switch",
                not outside,
                f"{len(not_ok)} answers other than 200, {len(outside)} outside the switch "
                f"[{t_switch:.2f}, {window_end:.2f}] s: "
                + ", ".join(f"{op.label}@{op.start:.2f}" for op in outside[:5]),
            ),
            CheckResult(
                "failures-are-503", set(labels) <= {"503"}, f"statuses other than 200: {labels}"
            ),
            _recovery("recovery-within-bound", stack, t_promoted, t_recovered, "the promotion"),
        ],
    )


def primary_cut_off_etcd(stack: HaStack, toxiproxy: ToxiproxyClient) -> tuple[HaRun, HaVerdict]:
    """The primary partitioned from etcd.

    Truth: unable to renew the leader key, the primary's Patroni demotes it (within
    retry_timeout and a loop) before the key expires (ttl); only then is the standby
    promoted, so two nodes are never writable at once; meanwhile claims fail fast (503
    under the deadline, never 504); no acknowledged claim is lost and conservation holds
    on the survivor; after healing, the old primary rejoins as a standby.
    """
    settings = stack.patroni_settings
    old, survivor = stack.leader(), stack.standbys()[0]
    if old is None:
        raise ChaosError("no leader")
    demotion_bound = settings.loop_wait + settings.retry_timeout + PROMOTION_SLACK
    run = HaRun(stack, [_create_coupon(stack, "HA-ETCD")], user_prefix="etcd")
    with run:
        _steady(run)
        partition = partition_from_etcd(stack, toxiproxy, old)
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
        t_recovered = _recover(run, stack, t_promoted)
        heal(toxiproxy, partition)
        run.mark("heal")
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    run.mark("rejoin")
    deadline = float(stack.service_settings["REQUEST_DEADLINE"])
    refused = [op for op in run.operations() if op.start > t_demoted and op.end < t_promoted]
    slow = [op for op in refused if op.latency >= deadline]
    doubles = run.monitor.double_primaries()
    return run, run.verdict(
        run.settled_state(timeout=HEAL_TIMEOUT),
        policy=LostWritePolicy.forbidden(),
        max_latency=max_latency(stack),
        extra=[
            _leader_is(stack, survivor),
            CheckResult(
                "demoted-before-promotion",
                t_demoted < t_promoted,
                f"{old} not writable {t_demoted - t_partition:.2f} s after the partition, "
                f"{survivor} writable {t_promoted - t_partition:.2f} s after it",
            ),
            CheckResult(
                "never-two-primaries", not doubles, f"moments with two primaries: {doubles[:5]}"
            ),
            _statuses("writes-fail-with-503", refused, {"503"}),
            CheckResult(
                "writes-fail-fast",
                not slow,
                f"{len(slow)} of {len(refused)} refused claims took the request deadline",
            ),
            _recovery("recovery-within-bound", stack, t_promoted, t_recovered, "the promotion"),
        ],
    )


def synchronous_standby_partitioned(
    stack: HaStack, toxiproxy: ToxiproxyClient
) -> tuple[HaRun, HaVerdict]:
    """The only synchronous standby partitioned from the primary (synchronous_mode_strict).

    Truth: a commit waits for the standby, so no claim answers 200 while it is cut off:
    those holding a connection answer 504 at the request deadline (info: PostgreSQL keeps
    a commit whose wait for the standby was cancelled), the others 503 at the pool's
    acquire timeout; after healing, claims succeed within the recovery bound, every info
    claim is resolved (primary and caught-up standby agree on it), nothing is lost.
    """
    stack.configure(
        dataclasses.replace(stack.patroni_settings, synchronous_mode_strict=True),
        timeout=HEAL_TIMEOUT,
    )
    coupon = _create_coupon(stack, "HA-SYNC-PARTITION")
    run = HaRun(stack, [coupon], user_prefix="syncpart")
    with run:
        _steady(run)
        partition = partition_replication(stack, toxiproxy)
        t_partition = run.mark("partition", run.at(partition.at))

        def timed_out() -> bool:
            late = [op for op in run.operations() if op.start >= t_partition]
            return sum(op.status == 504 for op in late) >= TIMED_OUT_CLAIMS

        wait_for(timed_out, timeout=PARTITION_TIMEOUT, what=f"{TIMED_OUT_CLAIMS} claims 504")
        heal(toxiproxy, partition)
        t_healed = run.mark("heal")
        t_recovered = _recover(run, stack, t_healed)
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    stack.wait_replayed(timeout=HEAL_TIMEOUT)
    ops = run.operations()
    blocked = [op for op in ops if op.start >= t_partition and op.end < t_healed]
    state = run.settled_state(timeout=HEAL_TIMEOUT)
    with PostgresAdmin(stack.node(stack.standbys()[0]).direct_url) as admin:
        on_standby = set(read_state(admin, [coupon]).claims)
    on_primary = set(state.claims)
    info = [(op.user_id, op.coupon) for op in ops if op.outcome is Outcome.INFO]
    disagree = [c for c in info if (c in on_primary) != (c in on_standby)]
    committed = sum(c in on_primary for c in info)
    return run, run.verdict(
        state,
        policy=LostWritePolicy.forbidden(),
        max_latency=max_latency(stack),
        extra=[
            _statuses("no-200-while-partitioned", blocked, {"503", "504"}),
            CheckResult(
                "info-claims-resolved",
                not disagree and on_primary == on_standby,
                f"{len(info)} info claims: {committed} committed, {len(info) - committed} "
                f"absent; primary and standby disagree on {len(disagree)}; "
                f"{len(on_primary)} claims on the primary, {len(on_standby)} on the standby",
            ),
            CheckResult(
                "recovery-within-bound",
                t_recovered - t_healed <= recovery_bound(stack) + STANDBY_RETRY_INTERVAL,
                f"first acknowledged claim {t_recovered - t_healed:.2f} s after healing "
                f"(bound {recovery_bound(stack) + STANDBY_RETRY_INTERVAL:.2f} s: the "
                "standby reconnects first)",
            ),
        ],
    )


def async_failover_promoted(stack: HaStack, toxiproxy: ToxiproxyClient) -> tuple[HaRun, HaVerdict]:
    """Asynchronous replication, the standby cut off, then the primary loses power;
    `maximum_lag_on_failover` far above the lag.

    Truth: Patroni promotes the standby, and exactly the claims the old primary
    acknowledged after the cut are lost, each reported (user, coupon, time of the
    answer, node); nothing acknowledged before the cut is lost.
    """
    _asynchronous(stack, maximum_lag_on_failover=LAG_LIMIT_PROMOTE)
    old, survivor = stack.leader(), stack.standbys()[0]
    run = HaRun(stack, [_create_coupon(stack, "HA-ASYNC-LOST")], user_prefix="asynclost")
    with run:
        _steady(run)
        # Quiesce and let the standby replay everything acknowledged so far, so the
        # claims at stake are exactly those acknowledged after the cut.
        run.workload.pause(timeout=TRAFFIC_TIMEOUT)
        stack.wait_replayed(timeout=TRAFFIC_TIMEOUT)
        partition = partition_replication(stack, toxiproxy)
        t_partition = run.mark("partition", run.at(partition.at))
        run.workload.resume()
        run.wait_acknowledged(CLAIMS_AT_STAKE, since=t_partition, timeout=TRAFFIC_TIMEOUT)
        crash, _, t_promoted, _ = _fail_over(run, stack, survivor)
    heal(toxiproxy, partition)
    restart_node(stack, crash)
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    run.mark("rejoin")
    at_stake = {
        (op.user_id, op.coupon)
        for op in run.operations()
        # No node is writable between the crash and the promotion: a 200 answered then
        # was committed by the old primary before it lost power.
        if op.status == 200 and op.start >= t_partition and op.end < t_promoted
    }
    verdict = run.verdict(
        run.settled_state(timeout=HEAL_TIMEOUT),
        policy=LostWritePolicy.expected_at_most(len(at_stake)),
        max_latency=max_latency(stack),
        extra=[_leader_is(stack, survivor)],
    )
    lost = {(w.user_id, w.coupon) for w in verdict.lost_writes.lost}
    verdict.checks += [
        CheckResult(
            "lost-writes-are-the-claims-at-stake",
            lost == at_stake and len(lost) >= CLAIMS_AT_STAKE,
            f"{len(lost)} lost, {len(at_stake)} acknowledged by {old} while its standby "
            f"was cut off; lost but not at stake: {sorted(lost - at_stake)[:5]}; "
            f"at stake but kept: {sorted(at_stake - lost)[:5]}",
        ),
        CheckResult(
            "lost-writes-name-the-old-primary",
            all(w.node == old for w in verdict.lost_writes.lost),
            f"nodes named: {sorted({str(w.node) for w in verdict.lost_writes.lost})}",
        ),
    ]
    return run, verdict


def async_failover_refused(stack: HaStack, toxiproxy: ToxiproxyClient) -> tuple[HaRun, HaVerdict]:
    """Asynchronous replication, the standby cut off until it lags more than
    `maximum_lag_on_failover`, then the primary loses power.

    Truth: Patroni refuses to promote the lagging standby (it logs so); writes are
    unavailable (503) until the old primary is powered on and leads again; the report
    gives the unavailability window; nothing is lost.
    """
    _asynchronous(stack, maximum_lag_on_failover=LAG_LIMIT_REFUSE)
    old, survivor = stack.leader(), stack.standbys()[0]
    if old is None:
        raise ChaosError("no leader")
    run = HaRun(stack, [_create_coupon(stack, "HA-ASYNC-REFUSED")], user_prefix="asyncrefused")
    with run:
        _steady(run)
        partition = partition_replication(stack, toxiproxy)
        t_partition = run.mark("partition", run.at(partition.at))

        def lagging() -> bool:
            # The standby receives nothing while cut off, so the lag Patroni will judge
            # it by only grows from here: the published leader position minus its own.
            return stack.leader_optime() - stack.received_lsn(survivor) > LAG_LIMIT_REFUSE

        wait_for(lagging, timeout=TRAFFIC_TIMEOUT, what=f"{survivor} lagging")
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
            raise ChaosError(f"{exc}\n{stack.logs_tail(40)}") from exc
        t_refused = run.mark("refusal")
        heal(toxiproxy, partition)
        restart_node(stack, crash)
        t_back = run.mark(
            "old-primary-back", run.monitor.wait_primary(old, since=t_crash, timeout=HEAL_TIMEOUT)
        )
        _recover(run, stack, t_back)
    stack.wait_healthy(timeout=HEAL_TIMEOUT)
    unavailable = [op for op in run.operations() if op.start > t_crash and op.end < t_back]
    promoted = [
        s.time
        for s in run.monitor.samples()
        if s.node == survivor and s.role == PRIMARY and s.sent >= t_partition
    ]
    return run, run.verdict(
        run.settled_state(timeout=HEAL_TIMEOUT),
        policy=LostWritePolicy.forbidden(),
        max_latency=max_latency(stack),
        extra=[
            _leader_is(stack, old),
            CheckResult(
                "lagging-standby-not-promoted",
                not promoted,
                f"{survivor} refused {t_refused - t_crash:.2f} s after the crash; "
                f"seen primary at {promoted[:3]}",
            ),
            _statuses("unavailable-until-the-old-primary-returns", unavailable, {"503"}),
            CheckResult(
                "unavailability-window",
                True,
                f"no writable primary for {t_back - t_crash:.2f} s "
                f"({t_crash:.2f} s to {t_back:.2f} s)",
            ),
        ],
    )


@dataclass(frozen=True, slots=True)
class HaScenario:
    """One HA scenario: its name and the function that runs it to a verdict."""

    name: str
    run: Callable[[HaStack, ToxiproxyClient], tuple[HaRun, HaVerdict]]

    @property
    def truth(self) -> str:
        """The expected truth, from the function's docstring."""
        return " ".join((self.run.__doc__ or "").split())


HA_CATALOGUE: tuple[HaScenario, ...] = (
    HaScenario("failover-synchronous", failover_synchronous),
    HaScenario("switchover-under-load", switchover_under_load),
    HaScenario("primary-cut-off-etcd", primary_cut_off_etcd),
    HaScenario("synchronous-standby-partitioned", synchronous_standby_partitioned),
    HaScenario("async-failover-promoted", async_failover_promoted),
    HaScenario("async-failover-refused", async_failover_refused),
)
"""Every HA scenario, in the issue's order of priority."""
