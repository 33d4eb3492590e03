"""Which node was primary when: each node's PostgreSQL asked directly, in the background.

The monitor asks every node's PostgreSQL `pg_is_in_recovery()` in turn, many times a
second, over direct connections, and keeps the answers on the run's clock. PostgreSQL
itself is the truth about writability: Patroni's REST API reports a role cached for up
to one HA loop, so a node can accept writes a second before its API says `primary`.

Each sample has the time its question was sent and the time its answer came, so a
transition is bracketed: a node became primary after the send time of its last
"not primary" answer and before the arrival of its first "primary" answer. Scenarios
use the early edge for a promotion (a 200 from the new primary cannot precede it) and
the late edge for a demotion (the old primary may have been writable until then).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg

from chaos.errors import ChaosError

__all__ = ["PRIMARY", "REPLICA", "RoleMonitor", "RoleSample"]

PRIMARY = "primary"
REPLICA = "replica"


@dataclass(frozen=True, slots=True)
class RoleSample:
    """One answer of one node: role None when its PostgreSQL did not answer."""

    sent: float
    time: float
    node: str
    role: str | None


class RoleMonitor:
    """Polls every node's PostgreSQL from a thread until stopped."""

    def __init__(
        self,
        database_urls: dict[str, str],
        *,
        clock_zero: float,
        interval: float = 0.1,
    ) -> None:
        self.database_urls = dict(database_urls)
        self.clock_zero = clock_zero
        self.interval = interval
        self._samples: list[RoleSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connections: dict[str, psycopg.Connection[tuple[object, ...]]] = {}

    def now(self) -> float:
        """Seconds on the run's clock."""
        return time.monotonic() - self.clock_zero

    def start(self) -> None:
        """Start polling."""
        self._thread = threading.Thread(target=self._run, name="chaos-ha-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and close the connections (bounded by one round of questions)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15.0)
            if self._thread.is_alive():
                raise ChaosError("role monitor did not stop within 15.0 s")

    def _ask(self, node: str) -> str | None:
        conn = self._connections.get(node)
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(
                    self.database_urls[node],
                    autocommit=True,
                    connect_timeout=2,
                    application_name="chaos-ha-monitor",
                    options="-c statement_timeout=1000",
                )
                self._connections[node] = conn
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            if conn is not None:
                conn.close()
            self._connections.pop(node, None)
            return None
        return REPLICA if row and row[0] else PRIMARY

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for node in self.database_urls:
                    sent = self.now()
                    role = self._ask(node)
                    self.record(RoleSample(sent, self.now(), node, role))
                self._stop.wait(self.interval)
        finally:
            for conn in self._connections.values():
                conn.close()
            self._connections.clear()

    def record(self, sample: RoleSample) -> None:
        """Keep one sample (the polling thread's, or a test's)."""
        with self._lock:
            self._samples.append(sample)

    def samples(self) -> list[RoleSample]:
        """A copy of the samples so far, in order."""
        with self._lock:
            return list(self._samples)

    def primary_at(self, at: float) -> str | None:
        """The node whose latest answer by `at` said primary (None: no one, or several)."""
        latest: dict[str, RoleSample] = {}
        for sample in self.samples():
            if sample.time > at:
                break
            latest[sample.node] = sample
        primaries = [s.node for s in latest.values() if s.role == PRIMARY]
        return primaries[0] if len(primaries) == 1 else None

    def last_primary_by(self, at: float) -> str | None:
        """The node most recently seen primary by `at`: the one that committed what was
        acknowledged then, even if it died before the answer arrived."""
        found: str | None = None
        for sample in self.samples():
            if sample.time > at:
                break
            if sample.role == PRIMARY:
                found = sample.node
        return found

    def became_primary(self, node: str, since: float) -> float | None:
        """Early edge of `node`'s first promotion after `since`: the send time of its last
        answer before the first "primary" one (no write of it can be acknowledged earlier).
        """
        previous: RoleSample | None = None
        for sample in self.samples():
            if sample.node != node:
                continue
            if sample.sent >= since and sample.role == PRIMARY:
                return previous.sent if previous is not None and previous.sent >= since else since
            previous = sample
        return None

    def stopped_being_primary(self, node: str, since: float) -> float | None:
        """Late edge of `node`'s first demotion (or death) after `since`: the arrival of its
        first answer after `since` that is not "primary"."""
        for sample in self.samples():
            if sample.node == node and sample.sent >= since and sample.role != PRIMARY:
                return sample.time
        return None

    def wait_primary(self, node: str, *, since: float, timeout: float) -> float:
        """Wait until `node` answers primary after `since`; the early edge of its promotion."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.became_primary(node, since)
            if seen is not None:
                return seen
            time.sleep(self.interval / 2)
        raise ChaosError(f"{node} not primary within {timeout:.1f} s")

    def double_primaries(self) -> list[tuple[float, list[str]]]:
        """Moments when the latest answers of two or more nodes all said primary."""
        latest: dict[str, str | None] = {}
        found: list[tuple[float, list[str]]] = []
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
