"""Faults of an HA cluster, each with its heal: crashes, Patroni's switchover and failover,
partitions of replication and of etcd.

- `crash_primary`: a power cut of the primary: SIGKILL of its Patroni and of every one
  of its PostgreSQL processes at once (killing only the postmaster makes the local
  Patroni restart it: no failover). Heal: `restart_node` (Patroni starts PostgreSQL,
  which rejoins as a standby of the new primary, through pg_rewind when it diverged).
- `switchover` / `failover`: Patroni's REST API (`POST /switchover`, `POST /failover`).
- `partition_replication`: the primary's replication proxy disabled, so no standby can
  stream from it (open connections closed, new ones refused). Heal: enable it.
- `partition_from_etcd`: a node's etcd proxy disabled, so its Patroni cannot renew the
  leader key. Heal: enable it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from chaos.errors import ChaosError
from chaos.infra.ha_stack import HaStack
from chaos.infra.toxiproxy import ToxiproxyClient

__all__ = [
    "Crash",
    "Partition",
    "crash_primary",
    "failover",
    "heal",
    "partition_from_etcd",
    "partition_replication",
    "restart_node",
    "switchover",
]


@dataclass(frozen=True, slots=True)
class Crash:
    """A node that lost power, and when (monotonic clock)."""

    node: str
    at: float


@dataclass(frozen=True, slots=True)
class Partition:
    """A disabled proxy: which node's traffic it cut, and when (monotonic clock)."""

    node: str
    proxy: str
    at: float


def _require_leader(stack: HaStack) -> str:
    leader = stack.leader()
    if leader is None:
        raise ChaosError(f"no leader to act on; members: {stack.members()}")
    return leader


def crash_primary(stack: HaStack) -> Crash:
    """Power cut of the current primary: its Patroni and PostgreSQL, SIGKILL."""
    leader = _require_leader(stack)
    return Crash(leader, stack.kill_node(leader))


def restart_node(stack: HaStack, crash: Crash) -> None:
    """Power the crashed node on again: Patroni starts and rejoins the cluster."""
    stack.start_node(crash.node)


def _post(stack: HaStack, node: str, path: str, body: dict[str, str]) -> str:
    url = f"{stack.node(node).api_url}{path}"
    try:
        resp = httpx.post(url, json=body, timeout=30.0)
    except httpx.HTTPError as exc:
        raise ChaosError(f"POST {url}: {exc}") from exc
    if resp.status_code != 200:
        raise ChaosError(f"POST {url} {body}: {resp.status_code} {resp.text}")
    return resp.text


def switchover(stack: HaStack, candidate: str | None = None) -> str:
    """A planned switchover from the primary to `candidate` (a standby by default).

    Patroni answers once the candidate has been promoted (or the switch failed).
    Returns the candidate.
    """
    leader = _require_leader(stack)
    target = candidate or next(n for n in stack.standbys() if n != leader)
    _post(stack, leader, "/switchover", {"leader": leader, "candidate": target})
    return target


def failover(stack: HaStack, candidate: str) -> str:
    """A manual failover to `candidate`: Patroni promotes it whatever the primary's state."""
    _post(stack, candidate, "/failover", {"candidate": candidate})
    return candidate


def partition_replication(stack: HaStack, toxiproxy: ToxiproxyClient) -> Partition:
    """Cut the standbys off the primary: the primary's replication proxy disabled.

    Standbys stream from the primary's `connect_address`, which is this proxy, so with
    two nodes this partitions the one standby; etcd and the REST APIs stay reachable,
    so Patroni sees a healthy primary and no failover starts.
    """
    leader = _require_leader(stack)
    proxy = stack.node(leader).replication_proxy
    toxiproxy.disable(proxy)
    return Partition(leader, proxy, time.monotonic())


def partition_from_etcd(stack: HaStack, toxiproxy: ToxiproxyClient, node: str) -> Partition:
    """Cut one node's Patroni off etcd: its etcd proxy disabled."""
    proxy = stack.node(node).etcd_proxy
    toxiproxy.disable(proxy)
    return Partition(node, proxy, time.monotonic())


def heal(toxiproxy: ToxiproxyClient, partition: Partition) -> None:
    """Enable the proxy a partition disabled."""
    toxiproxy.enable(partition.proxy)
