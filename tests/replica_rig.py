"""Service replicas under load, shared by the replica tests of the local and the HA stack:
N replicas of the coupon service on one database URL, an admin connection and an HTTP
client per replica, a workload spread over them, the checks every such test makes, and
a teardown that stops everything even when the test fails."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import httpx

from chaos.core.bounds import SLACK
from chaos.core.checks import CheckResult
from chaos.core.history import Operation, Outcome
from chaos.core.lost_writes import LostWritePolicy, find_lost_writes
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import Snapshot, snapshot, wait_for_baseline
from chaos.infra.replicas import ServiceReplicas, SpreadWorkload, replica_application_name
from chaos.infra.waiting import wait_for
from chaos.targets.coupons import COUPONS, CouponState, check_history, create_coupon, read_state

__all__ = ["ReplicaRig", "assert_checks", "history_checks", "replica_rig"]

#: How long a replica may take to acknowledge the claims a test waits for.
SERVING_TIMEOUT = 30.0


@dataclass
class ReplicaRig:
    """Running replicas, their admin connections and clients, and the workload."""

    replicas: ServiceReplicas
    admin_url: str
    admins: dict[int, PostgresAdmin]
    clients: dict[int, httpx.Client]
    spread: SpreadWorkload | None = None
    clock_zero: float = field(default=0.0)

    def create_coupon(self, prefix: str) -> str:
        """A coupon with a stock no run sells out, created through replica 0."""
        return create_coupon(self.clients[0], f"{prefix}-{time.monotonic_ns()}", 1_000_000)

    def baselines(self, but: int) -> dict[int, Snapshot]:
        """Every replica's leak figures now, but those of replica `but`."""
        return {i: snapshot(self.clients[i], self.admins[i]) for i in self.admins if i != but}

    def start_workload(self, coupon: str, concurrency: int, prefix: str) -> None:
        """Claims on `coupon` sent to every replica, `concurrency` at a time each."""
        self.clock_zero = time.monotonic()
        self.spread = SpreadWorkload(
            dict(zip(self.replicas.indexes, self.replicas.urls, strict=True)),
            [coupon],
            COUPONS.operate,
            concurrency_per_replica=concurrency,
            client_timeout=SERVING_TIMEOUT,
            clock_zero=self.clock_zero,
            actor_prefix=f"{prefix}-{time.monotonic_ns()}",
        )
        self.spread.start()

    def now(self) -> float:
        """Seconds on the workload's clock."""
        return time.monotonic() - self.clock_zero

    def wait_serving(
        self, indexes: Sequence[int], count: int, *, since: float = 0.0, timeout: float = 0.0
    ) -> None:
        """Wait until each replica of `indexes` acknowledged `count` claims sent since
        `since` (run clock)."""
        assert self.spread is not None
        spread = self.spread

        def served(i: int) -> bool:
            ops = spread.operations_of(i)
            return sum(op.status == 200 and op.start >= since for op in ops) >= count

        for i in indexes:
            wait_for(
                functools.partial(served, i),
                timeout=timeout or SERVING_TIMEOUT,
                what=f"replica {i} serving {count} claims since {since:.2f} s",
            )

    def state(self, coupon: str) -> CouponState:
        """What the database holds for `coupon` now."""
        with PostgresAdmin(self.admin_url) as admin:
            return read_state(admin, [coupon])

    def baseline_checks(
        self, baselines: Mapping[int, Snapshot], timeout: float
    ) -> list[CheckResult]:
        """Each replica of `baselines` back at its leak baseline within `timeout`."""
        checks = []
        for i, baseline in baselines.items():
            client, admin = self.clients[i], self.admins[i]
            _, leaks, _ = wait_for_baseline(client, admin, baseline, timeout=timeout)
            checks.append(
                CheckResult(
                    f"replica-{i}-back-at-baseline",
                    not leaks,
                    f"leaks: {[str(leak) for leak in leaks] or 'none'}",
                )
            )
        return checks


def history_checks(
    ops: Sequence[Operation], state: CouponState, survivors: Sequence[Operation], deadline: float
) -> list[CheckResult]:
    """The coupon invariants over every replica's history, no acknowledged claim lost,
    and every survivor's claim answered within the deadline plus slack."""
    slow = [op for op in survivors if op.status is None or op.latency > deadline + SLACK]
    lost = find_lost_writes(
        [op for op in ops if op.outcome is Outcome.OK],
        lambda op: COUPONS.present(state, op),
        policy=LostWritePolicy.forbidden(),
    )
    return [
        *check_history(ops, state),
        lost.check(),
        CheckResult(
            "no-hang",
            not slow,
            f"{len(slow)} of {len(survivors)} survivors' claims over "
            f"{deadline + SLACK:.2f} s or unanswered",
        ),
    ]


def assert_checks(checks: Sequence[CheckResult]) -> None:
    """Print every check and fail on any that failed."""
    summary = "\n".join(f"{'PASS' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in checks)
    print(summary)
    assert all(c.passed for c in checks), summary


@contextmanager
def replica_rig(
    database_url: str, admin_url: str, env: Mapping[str, str], count: int
) -> Iterator[ReplicaRig]:
    """`count` replicas on `database_url`, with admin connections on `admin_url`; the
    workload, clients, admin connections and replicas stopped on exit, whatever happens."""
    with ExitStack() as stack:
        replicas = ServiceReplicas(
            database_url=database_url,
            count=count,
            env=env,
            application_name=COUPONS.application_name,
            settings_names=COUPONS.settings_names,
        )
        stack.callback(replicas.stop)
        replicas.start()
        admins = {
            i: stack.enter_context(
                PostgresAdmin(
                    admin_url,
                    application_name=replica_application_name(i, COUPONS.application_name),
                )
            )
            for i in replicas.indexes
        }
        clients = {
            i: stack.enter_context(httpx.Client(base_url=replicas.replica(i).url, timeout=10.0))
            for i in replicas.indexes
        }
        rig = ReplicaRig(replicas, admin_url, admins, clients)

        def stop_workload() -> None:
            if rig.spread is not None:
                rig.spread.stop(timeout=SERVING_TIMEOUT)

        stack.callback(stop_workload)
        yield rig
