"""Faults of an HA cluster (chaos.infra.ha_stack), each with its heal, as fault kinds of
the registry: a power cut, Patroni's switchover and failover, partitions of replication
and of etcd.

Each marks what it saw on the run clock (crash, partition, demotion, promotion, heal...)
and, where the clients' outage ends before the heal, `over` (a promotion
ends a failover; restarting the crashed node is housekeeping). Bounds come from the
stack's Patroni settings and named constants (`HaStack.bound_names`); a wait that misses
its bound is a failed check, not an error, unless nothing can go on without it. Waiting
for the crashed or demoted node to rejoin as a standby is the engine's, once every fault
of a chain is removed (`Stack.settle`).

- `power-cut`: SIGKILL of the primary's Patroni and every one of its PostgreSQL
  processes at once (killing only the postmaster makes the local Patroni restart it: no
  failover). `promotion: expected` waits for a standby's promotion; `promotion: refused`
  waits until a standby refuses the leader race for lag, as Patroni logs it. Heal: the
  node powered on again (it rejoins as a standby, through pg_rewind when it diverged).
- `switchover` / `failover`: Patroni's REST API (`POST /switchover`, `POST /failover`).
- `replication-partition`: the primary's replication proxy disabled, so no standby can
  stream from it (open connections closed, new ones refused). `quiesce: true` first
  pauses the traffic until every standby has replayed everything acknowledged;
  `lagging: true` then waits until the standby lags more than Patroni's
  `maximum_lag_on_failover`. Heal: the proxy enabled.
- `etcd-partition`: the primary's Patroni cut off etcd (its etcd proxy disabled): it
  must demote itself before a standby is promoted. Heal: the proxy enabled.

With the pgbouncer router (chaos.infra.routers):

- `paused-switchover`: the operator's switchover: PgBouncer's `PAUSE` (it waits until
  every server session is released), Patroni's switchover, HAProxy routing to the new
  primary, then `RESUME`. Clients wait instead of failing; the pause must stay within
  `pause_bound`, and a scenario gives the service an acquire timeout above it. Heal:
  `RESUME` if still paused.
- `pgbouncer-restart`: PgBouncer stopped (SIGTERM: at once, every session closed) for the
  scenario's duration, then started again on its port.
- A PgBouncer blackhole is a toxic on its proxy: `{kind: toxic, type: timeout,
  attributes: {timeout: 0}, proxy: pgbouncer}`.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Literal

import httpx

from chaos.core.bounds import SLACK
from chaos.core.checks import CheckResult
from chaos.errors import ChaosError, ScenarioError
from chaos.faults.base import Fault, FaultContext
from chaos.infra.ha_stack import HEAL_TIMEOUT, PROMOTION_TIME, REFUSAL_MESSAGE, HaStack
from chaos.infra.roles import PRIMARY, RoleMonitor
from chaos.infra.routers import PgBouncer
from chaos.infra.waiting import wait_for

__all__ = [
    "EtcdPartition",
    "ManualFailover",
    "PausedSwitchover",
    "PgBouncerRestart",
    "PowerCut",
    "ReplicationPartition",
    "Switchover",
    "pause_bound",
]


def _ha(ctx: FaultContext) -> tuple[HaStack, RoleMonitor]:
    if not isinstance(ctx.stack, HaStack) or ctx.roles is None:
        raise ScenarioError(
            f"this fault needs the HA stack (chaos run --stack ha), not {type(ctx.stack).__name__}"
        )
    return ctx.stack, ctx.roles


def _leader(stack: HaStack) -> str:
    leader = stack.leader()
    if leader is None:
        raise ChaosError(f"no leader to act on; members: {stack.members()}")
    return leader


def _switchover_candidate(stack: HaStack, old: str) -> str:
    """The standby a switchover hands over to: in synchronous mode Patroni hands over
    only to a synchronous standby."""
    return (stack.sync_standbys() or stack.standbys_of(old))[0]


def promotion_bound(stack: HaStack) -> float:
    """From a power cut of the primary to a standby's promotion: the dead leader's key
    expires at most ttl after its last renewal; a standby's next loop takes it and
    promotes."""
    patroni = stack.patroni_settings
    return patroni.ttl + 2 * patroni.loop_wait + PROMOTION_TIME


def degrade_bound(stack: HaStack) -> float:
    """Seconds from the partition of every standby to the primary's synchronous
    replication switched off (non-strict synchronous mode): the partition closes the
    standbys' connections, so their walsenders end at once; Patroni's next loop (within
    loop_wait, its work with etcd within retry_timeout) finds no standby streaming and
    empties synchronous_standby_names."""
    s = stack.patroni_settings
    return s.loop_wait + s.retry_timeout + SLACK


def pause_bound(stack: HaStack, statement_timeout: float) -> float:
    """Seconds a paused switchover keeps PgBouncer paused: the pause waits for running
    statements (statement_timeout at most); the leader demotes on its next loop and the
    candidate promotes; HAProxy and PgBouncer reach it within route_time."""
    return (
        statement_timeout
        + stack.patroni_settings.loop_wait
        + PROMOTION_TIME
        + (stack.route_time + SLACK)
    )


def _pgbouncer(ctx: FaultContext) -> tuple[HaStack, PgBouncer]:
    stack, _ = _ha(ctx)
    if stack.pgbouncer is None:
        raise ScenarioError(
            f"this fault needs PgBouncer (chaos run --stack ha --router pgbouncer); this "
            f"stack routes by {stack.router}"
        )
    return stack, stack.pgbouncer


def demotion_bound(stack: HaStack) -> float:
    """From a primary's loss of etcd to its demotion: it retries for retry_timeout, and
    demotes on its next loop."""
    patroni = stack.patroni_settings
    return patroni.loop_wait + patroni.retry_timeout + PROMOTION_TIME


def _await_promotion(ctx: FaultContext, old: str, since: float, bound: float, what: str) -> None:
    """Wait for another node's promotion after `since` (run clock): mark it, end the
    outage there, and check it came within `bound`."""
    stack, roles = _ha(ctx)

    def promoted() -> tuple[str, float] | None:
        for node in stack.standbys_of(old):
            at = roles.became_primary(node, since)
            if at is not None:
                return node, at
        return None

    node, at = wait_for(promoted, timeout=HEAL_TIMEOUT, what=f"a node promoted after {old}")
    ctx.mark("promotion", at + ctx.clock_zero)
    ctx.over(at + ctx.clock_zero)
    ctx.notes.update(old_primary=old, new_primary=node)
    ctx.evidence.append(f"{node} promoted {at - since:.2f} s after {what}")
    ctx.checks.append(
        CheckResult(
            "fault:promotion-within-bound",
            at - since <= bound,
            f"{node} promoted {at - since:.2f} s after {what} on {old} (bound {bound:.2f} s)",
        )
    )


@dataclass(frozen=True)
class PowerCut(Fault):
    """The primary loses power (see the module docstring)."""

    promotion: Literal["expected", "refused"] = "expected"

    def __post_init__(self) -> None:
        if self.promotion not in ("expected", "refused"):
            raise ValueError(f"promotion: expected 'expected' or 'refused', got {self.promotion!r}")

    @property
    def kind(self) -> str:
        return f"power cut of the primary (promotion {self.promotion})"

    def inject(self, ctx: FaultContext) -> None:
        stack, _ = _ha(ctx)
        old = _leader(stack)
        survivors = stack.standbys_of(old)
        offsets = {n: stack.log_offset(n) for n in survivors}
        ctx.notes["old_primary"] = old
        killed_at = stack.kill_node(old)
        ctx.resources.callback(stack.start_node, old)
        crash = ctx.mark("crash", killed_at)
        ctx.in_effect(killed_at)
        ctx.evidence.append(f"{old} powered off (Patroni and PostgreSQL SIGKILLed)")
        if self.promotion == "expected":
            _await_promotion(ctx, old, crash, promotion_bound(stack), "the power cut")
            return

        def refused() -> bool:
            return any(stack.logged_since(n, offsets[n], REFUSAL_MESSAGE) for n in survivors)

        try:
            wait_for(refused, timeout=promotion_bound(stack), what="a standby refusing to lead")
        except ChaosError as exc:
            raise ChaosError(f"{exc}\n{stack.logs_tail(40)}") from exc
        ctx.mark("refusal")
        ctx.evidence.append(f"a lagging standby refused the leader race after {old}'s power cut")

    def remove(self, ctx: FaultContext) -> None:
        _, roles = _ha(ctx)
        ctx.resources.close()  # powers the node on again
        old = str(ctx.notes.get("old_primary", ""))
        crash = ctx.events.get("crash")
        if self.promotion == "refused" and old and crash is not None:
            back = roles.wait_primary(old, since=crash, timeout=HEAL_TIMEOUT)
            ctx.mark("old-primary-back", back + ctx.clock_zero)
            promoted = [
                s.time
                for s in roles.samples()
                if s.node != old and s.role == PRIMARY and s.sent >= crash
            ]
            ctx.checks.append(
                CheckResult(
                    "fault:lagging-standby-not-promoted",
                    not promoted,
                    f"no other node primary between the power cut and {old}'s return "
                    f"({back - crash:.2f} s later); seen primary at {promoted[:3]}",
                )
            )


def _post(stack: HaStack, node: str, path: str, body: dict[str, str]) -> None:
    url = f"{stack.node(node).api_url}{path}"
    try:
        resp = httpx.post(url, json=body, timeout=HEAL_TIMEOUT)
    except httpx.HTTPError as exc:
        raise ChaosError(f"POST {url}: {exc}") from exc
    if resp.status_code != 200:
        raise ChaosError(f"POST {url} {body}: {resp.status_code} {resp.text}")


@dataclass(frozen=True)
class Switchover(Fault):
    """A planned switchover from the primary to a standby (Patroni answers once the
    standby is promoted); the old primary rejoins as a standby."""

    @property
    def kind(self) -> str:
        return "switchover (Patroni)"

    def _request(self, stack: HaStack, old: str, candidate: str) -> None:
        _post(stack, old, "/switchover", {"leader": old, "candidate": candidate})

    def inject(self, ctx: FaultContext) -> None:
        stack, _ = _ha(ctx)
        old = _leader(stack)
        candidate = _switchover_candidate(stack, old)
        what = self.kind.split(" ")[0]
        since = ctx.mark(what)
        ctx.in_effect()
        self._request(stack, old, candidate)
        _await_promotion(ctx, old, since, promotion_bound(stack), f"the {what} request")


@dataclass(frozen=True)
class ManualFailover(Switchover):
    """Patroni's manual failover to a standby, whatever the primary's state."""

    @property
    def kind(self) -> str:
        return "failover (Patroni)"

    def _request(self, stack: HaStack, old: str, candidate: str) -> None:
        _post(stack, candidate, "/failover", {"candidate": candidate})


@dataclass(frozen=True)
class ReplicationPartition(Fault):
    """The standbys cut off the primary (see the module docstring)."""

    quiesce: bool = False
    lagging: bool = False
    degrades: bool = False
    """Synchronous mode without strict: the primary, left with no standby streaming, is
    expected to degrade to asynchronous replication (Patroni empties
    synchronous_standby_names) within Patroni's bound; checked and marked `degraded`."""

    @property
    def kind(self) -> str:
        how = " (after a quiesce)" if self.quiesce else ""
        return (
            f"replication partition{how}"
            + (", standby lagging" if self.lagging else "")
            + (", synchronous replication degrading" if self.degrades else "")
        )

    def inject(self, ctx: FaultContext) -> None:
        stack, _ = _ha(ctx)
        leader = _leader(stack)
        proxy = stack.node(leader).replication_proxy
        if self.quiesce:
            ctx.workload.pause(timeout=ctx.limits.cleanup_bound)
        try:
            if self.quiesce:
                stack.wait_replayed(timeout=HEAL_TIMEOUT)
            ctx.resources.callback(ctx.toxiproxy.enable, proxy)
            ctx.toxiproxy.disable(proxy)
            ctx.mark("partition")
            ctx.in_effect()
        finally:
            if self.quiesce:
                ctx.workload.resume()
        ctx.notes["partitioned_primary"] = leader
        ctx.evidence.append(f"{leader}'s replication proxy disabled")
        if self.lagging:
            limit = stack.patroni_settings.maximum_lag_on_failover
            survivor = stack.standbys_of(leader)[0]

            def lagging() -> bool:
                # The standby receives nothing while cut off: its lag only grows.
                return stack.leader_optime() - stack.received_lsn(survivor) > limit

            wait_for(lagging, timeout=HEAL_TIMEOUT, what=f"{survivor} lagging over {limit} B")
            ctx.mark("lagging")
        if self.degrades:
            since = ctx.events["partition"]
            bound = degrade_bound(stack)

            def degraded() -> float | None:
                names = stack.primary_setting("synchronous_standby_names")
                return None if names else ctx.now()

            at = wait_for(
                degraded,
                timeout=HEAL_TIMEOUT,
                what=f"{leader} degraded to asynchronous replication",
            )
            ctx.mark("degraded", at + ctx.clock_zero)
            ctx.evidence.append(f"{leader} degraded to asynchronous replication")
            ctx.checks.append(
                CheckResult(
                    "fault:degraded-within-bound",
                    at - since <= bound,
                    f"synchronous_standby_names emptied on {leader} {at - since:.2f} s after "
                    f"the partition (bound {bound:.2f} s: loop_wait + retry_timeout + slack)",
                )
            )

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()
        ctx.mark("heal")


@dataclass(frozen=True)
class EtcdPartition(Fault):
    """The primary's Patroni cut off etcd: it must demote itself before a standby leads."""

    @property
    def kind(self) -> str:
        return "primary partitioned from etcd"

    def inject(self, ctx: FaultContext) -> None:
        stack, roles = _ha(ctx)
        old = _leader(stack)
        proxy = stack.node(old).etcd_proxy
        ctx.resources.callback(ctx.toxiproxy.enable, proxy)
        ctx.toxiproxy.disable(proxy)
        since = ctx.mark("partition")
        ctx.in_effect()
        ctx.evidence.append(f"{old}'s etcd proxy disabled")
        demoted = wait_for(
            lambda: roles.stopped_being_primary(old, since),
            timeout=HEAL_TIMEOUT,
            what=f"{old} demoted",
        )
        ctx.mark("demotion", demoted + ctx.clock_zero)
        bound = demotion_bound(stack)
        ctx.checks.append(
            CheckResult(
                "fault:demoted-within-bound",
                demoted - since <= bound,
                f"{old} not writable {demoted - since:.2f} s after the partition "
                f"(bound {bound:.2f} s)",
            )
        )
        _await_promotion(ctx, old, since, promotion_bound(stack), "the partition")
        promoted = ctx.events["promotion"]
        ctx.checks.append(
            CheckResult(
                "fault:demoted-before-promotion",
                demoted < promoted,
                f"{old} demoted at {demoted:.2f} s, a standby promoted at {promoted:.2f} s",
            )
        )

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()
        ctx.mark("heal")


@dataclass(frozen=True)
class PausedSwitchover(Fault):
    """Patroni's switchover while PgBouncer holds every client (see the module
    docstring)."""

    @property
    def kind(self) -> str:
        return "switchover under PgBouncer's PAUSE"

    def inject(self, ctx: FaultContext) -> None:
        stack, bouncer = _pgbouncer(ctx)
        assert stack.haproxy is not None  # PgBouncer routes through HAProxy
        old = _leader(stack)
        candidate = _switchover_candidate(stack, old)
        paused = ctx.mark("pause")
        ctx.in_effect()
        ctx.resources.callback(_resume, bouncer)
        bouncer.admin(f"PAUSE {bouncer.database}")  # answers once no server session is in use
        since = ctx.mark("switchover")
        ctx.evidence.append(f"PgBouncer paused; its server sessions free {since - paused:.2f} s on")
        _post(stack, old, "/switchover", {"leader": old, "candidate": candidate})
        _await_promotion(ctx, old, since, promotion_bound(stack), "the switchover request")
        stack.haproxy.wait_routed(candidate, timeout=HEAL_TIMEOUT)
        ctx.mark("routed")
        bouncer.admin(f"RESUME {bouncer.database}")
        resumed = ctx.mark("resume")
        ctx.over()
        pause = resumed - paused
        bound = pause_bound(stack, ctx.limits.statement_timeout)
        wait = min(ctx.limits.acquire_timeout, bouncer.query_wait_timeout)
        ctx.evidence.append(f"PgBouncer paused for {pause:.2f} s")
        ctx.notes["pause_seconds"] = round(pause, 3)
        ctx.checks.append(
            CheckResult(
                "fault:pause-within-bound",
                pause <= bound < wait,
                f"paused {pause:.2f} s (bound {bound:.2f} s); the service waits "
                f"{ctx.limits.acquire_timeout:g} s for a connection (acquire timeout) and "
                f"PgBouncer {bouncer.query_wait_timeout:g} s for a server (query_wait_timeout), "
                "so clients wait, not fail, only while the bound is below both",
            )
        )

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()  # RESUME, if the switchover failed while paused


def _resume(bouncer: PgBouncer) -> None:
    with suppress(ChaosError):  # not paused any more
        bouncer.admin(f"RESUME {bouncer.database}")


@dataclass(frozen=True)
class PgBouncerRestart(Fault):
    """PgBouncer stopped for the scenario's duration, then started on its port."""

    @property
    def kind(self) -> str:
        return "PgBouncer restart"

    def inject(self, ctx: FaultContext) -> None:
        _, bouncer = _pgbouncer(ctx)
        ctx.resources.callback(bouncer.start)
        bouncer.stop()
        ctx.in_effect()
        ctx.evidence.append(f"PgBouncer on port {bouncer.port} stopped, every session closed")

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()  # starts PgBouncer again
        ctx.mark("pgbouncer-up")
