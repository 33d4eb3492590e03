"""Service replicas: N service processes on one database, and traffic spread across them.

Each replica is its own service process with its own pool, port and `application_name`
(`<base>-r<i>`), so leak probes and pg_stat_activity tell the replicas apart. Nothing
balances between them: `SpreadWorkload` runs one `LiveWorkload` per replica URL on one
clock, with actors that name the replica (`<prefix>-r<i>-<n>`), which is how a
client-side balancer behaves.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from contextlib import suppress
from pathlib import Path

import psutil

from chaos.core.history import Operation
from chaos.errors import ChaosError
from chaos.infra.processes import process_tree
from chaos.infra.service import ServiceProcess
from chaos.infra.timing import START_TIMEOUT
from chaos.infra.workload import LiveWorkload, Operate

__all__ = ["ServiceReplicas", "SpreadWorkload", "replica_application_name"]


def replica_application_name(index: int, base: str) -> str:
    """The `application_name` of replica `index`'s backends."""
    return f"{base}-r{index}"


class ServiceReplicas:
    """`count` service processes on one database URL; `stop()` stops every one."""

    def __init__(
        self,
        *,
        database_url: str,
        count: int,
        env: Mapping[str, str],
        application_name: str,
        first_index: int = 0,
        log_dir: Path | None = None,
        command: Sequence[str] | None = None,
        settings_names: Collection[str] = (),
    ) -> None:
        if count < 1:
            raise ChaosError(f"replicas need a count of at least 1, got {count}")
        self.indexes = list(range(first_index, first_index + count))
        self.replicas = [
            ServiceProcess(
                database_url=database_url,
                env={**env, "DB_APPLICATION_NAME": replica_application_name(i, application_name)},
                log_dir=log_dir,
                command=command,
                settings_names=settings_names,
            )
            for i in self.indexes
        ]

    @property
    def urls(self) -> list[str]:
        """Each replica's base URL, in index order."""
        return [r.url for r in self.replicas]

    def replica(self, index: int) -> ServiceProcess:
        """Replica `index`."""
        return self.replicas[self.indexes.index(index)]

    def start(self) -> None:
        """Start every replica, each waited for; all stopped again on failure."""
        try:
            for replica in self.replicas:
                replica.start()
        except BaseException:
            self.stop()
            raise

    def kill(self, index: int) -> float:
        """SIGKILL replica `index` (and any child); when the kill was sent (monotonic)."""
        victims = process_tree(self.replica(index).pid)
        if not victims:
            raise ChaosError(f"replica {index} is not running")
        for proc in victims:
            with suppress(psutil.NoSuchProcess):
                proc.kill()
        killed_at = time.monotonic()
        psutil.wait_procs(victims, timeout=10.0)
        return killed_at

    def stop(self) -> None:
        """Stop every replica (a killed one is only reaped). Idempotent."""
        errors: list[BaseException] = []
        for replica in self.replicas:
            try:
                replica.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ChaosError(f"{len(errors)} replica(s) failed to stop: {errors}") from errors[0]

    def __enter__(self) -> ServiceReplicas:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SpreadWorkload:
    """One `LiveWorkload` per replica URL, on one clock; operations know their replica."""

    def __init__(
        self,
        urls: Mapping[int, str],
        keys: Sequence[str],
        operate: Operate,
        *,
        concurrency_per_replica: int,
        client_timeout: float,
        clock_zero: float,
        actor_prefix: str,
    ) -> None:
        self.actor_prefix = actor_prefix
        self.workloads = {
            index: LiveWorkload(
                url,
                keys,
                operate,
                concurrency=concurrency_per_replica,
                client_timeout=client_timeout,
                clock_zero=clock_zero,
                actor_prefix=f"{actor_prefix}-r{index}",
            )
            for index, url in urls.items()
        }
        self._stopped: set[int] = set()

    def start(self) -> None:
        """Start the traffic to every replica; stops what started on failure."""
        try:
            for workload in self.workloads.values():
                workload.start(timeout=START_TIMEOUT)
        except BaseException:
            self.stop(timeout=30.0)
            raise

    def stop_replica(self, index: int, *, timeout: float) -> None:
        """Stop the traffic to one replica (operations in flight finish or fail)."""
        if index not in self._stopped:
            self._stopped.add(index)
            self.workloads[index].stop(timeout=timeout)

    def stop(self, *, timeout: float) -> None:
        """Stop the traffic to every replica. Idempotent."""
        errors: list[BaseException] = []
        for index in self.workloads:
            try:
                self.stop_replica(index, timeout=timeout)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ChaosError(f"workloads failed to stop: {errors}") from errors[0]

    def operations(self) -> list[Operation]:
        """Every replica's operations so far."""
        return [op for w in self.workloads.values() for op in w.operations()]

    def operations_of(self, index: int) -> list[Operation]:
        """The operations sent to replica `index`."""
        return self.workloads[index].operations()
