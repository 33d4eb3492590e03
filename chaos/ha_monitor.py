"""Which node was primary when: each node's own role, polled in the background.

Each node's Patroni answers `GET /patroni` with the role its PostgreSQL runs in
(`primary`, `replica`, ...). The monitor asks every node in turn, many times a second,
and keeps the samples on the run's clock, so a scenario can tell when the old primary
stopped being one (demotion, crash), when the new one became one (promotion), whether
two nodes were ever primary at once (split brain), and which node answered a claim.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from chaos.errors import ChaosError

__all__ = ["PRIMARY", "RoleMonitor", "RoleSample"]

PRIMARY = "primary"


@dataclass(frozen=True, slots=True)
class RoleSample:
    """One answer of one node (role None: its REST API did not answer)."""

    time: float
    node: str
    role: str | None


class RoleMonitor:
    """Polls `GET /patroni` of every node from a thread until stopped."""

    def __init__(
        self,
        api_urls: dict[str, str],
        *,
        clock_zero: float,
        interval: float = 0.1,
        request_timeout: float = 0.5,
    ) -> None:
        self.api_urls = dict(api_urls)
        self.clock_zero = clock_zero
        self.interval = interval
        self.request_timeout = request_timeout
        self._samples: list[RoleSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> float:
        """Seconds on the run's clock."""
        return time.monotonic() - self.clock_zero

    def start(self) -> None:
        """Start polling."""
        self._thread = threading.Thread(target=self._run, name="chaos-ha-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (bounded by one round of requests)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            if self._thread.is_alive():
                raise ChaosError("role monitor did not stop within 10.0 s")

    def _run(self) -> None:
        with httpx.Client(timeout=self.request_timeout) as client:
            while not self._stop.is_set():
                for node, url in self.api_urls.items():
                    role: str | None
                    try:
                        role = str(client.get(f"{url}/patroni").json().get("role"))
                    except (httpx.HTTPError, ValueError):
                        role = None
                    self.record(RoleSample(self.now(), node, role))
                self._stop.wait(self.interval)

    def record(self, sample: RoleSample) -> None:
        """Keep one sample (the polling thread's, or a test's)."""
        with self._lock:
            self._samples.append(sample)

    def samples(self) -> list[RoleSample]:
        """A copy of the samples so far, in time order."""
        with self._lock:
            return list(self._samples)

    def primary_at(self, at: float) -> str | None:
        """The node whose latest sample at or before `at` says primary (None: no one)."""
        latest: dict[str, RoleSample] = {}
        for sample in self.samples():
            if sample.time > at:
                break
            latest[sample.node] = sample
        primaries = [s.node for s in latest.values() if s.role == PRIMARY]
        return primaries[0] if len(primaries) == 1 else None

    def first_primary_since(self, node: str, since: float) -> float | None:
        """When `node` was first seen primary at or after `since`."""
        for sample in self.samples():
            if sample.time >= since and sample.node == node and sample.role == PRIMARY:
                return sample.time
        return None

    def first_not_primary_since(self, node: str, since: float) -> float | None:
        """When `node` was first seen not primary (or silent) at or after `since`."""
        for sample in self.samples():
            if sample.time >= since and sample.node == node and sample.role != PRIMARY:
                return sample.time
        return None

    def wait_primary(self, node: str, *, since: float, timeout: float) -> float:
        """Wait until `node` is seen primary after `since`; when it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.first_primary_since(node, since)
            if seen is not None:
                return seen
            time.sleep(self.interval / 2)
        raise ChaosError(f"{node} not seen primary within {timeout:.1f} s")

    def double_primaries(self) -> list[tuple[float, Sequence[str]]]:
        """Moments when the latest samples of two or more nodes all said primary."""
        latest: dict[str, str | None] = {}
        found: list[tuple[float, Sequence[str]]] = []
        for sample in self.samples():
            latest[sample.node] = sample.role
            primaries = sorted(n for n, r in latest.items() if r == PRIMARY)
            if len(primaries) > 1:
                found.append((sample.time, primaries))
        return found

    def role_changes(self) -> list[RoleSample]:
        """The samples where a node's role differs from its previous sample."""
        previous: dict[str, str | None] = {}
        changes = []
        for sample in self.samples():
            if sample.node not in previous or previous[sample.node] != sample.role:
                changes.append(sample)
            previous[sample.node] = sample.role
        return changes
