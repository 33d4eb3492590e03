"""The key-value test service as a toolkit target: proof that the engine, the faults,
the checks and the reports know no coupon.

An operation is a write by a new writer (the workload's actor) to a key; its invariants:
every key's version equals its number of writes (the write row and the version bump are
one transaction), no write exists that nobody sent or that a `fail` answer denied, one
write per writer and key.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chaos.core.checks import CheckResult, sample
from chaos.core.history import Operation, Outcome
from chaos.errors import ScenarioError
from chaos.faults.base import FaultFactory
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.workload import send_recorded
from tests.kv.service import APPLICATION_NAME, KvSettings

__all__ = ["KV", "SCENARIOS", "KvState", "KvTarget"]

SCENARIOS = Path(__file__).with_name("scenarios.yaml")
"""The scenario file this target is run from, on the local and the HA stack."""

_ROOT = Path(__file__).resolve().parents[2]
#: `python -m tests.kv` from whatever directory the stack starts it in.
_COMMAND = (
    sys.executable,
    "-c",
    f"import runpy, sys; sys.path.insert(0, {str(_ROOT)!r}); "
    "runpy.run_module('tests.kv', run_name='__main__', alter_sys=True)",
)


@dataclass(frozen=True, slots=True)
class KvState:
    """What the database holds for the run's keys."""

    versions: dict[str, int]
    writes: list[tuple[str, str]]
    """(key, writer) of every write row."""
    present: frozenset[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "present", frozenset(self.writes))


class KvTarget:
    """Writes to versioned keys (see the module docstring)."""

    name = "kv"
    application_name = APPLICATION_NAME
    service_command: Sequence[str] = _COMMAND
    write_kinds = frozenset({"write"})
    scenario_files: Sequence[Path] = ()

    @property
    def settings_names(self) -> Collection[str]:
        return frozenset(name.upper() for name in KvSettings.model_fields)

    def create_key(self, service: httpx.Client, name: str) -> str:
        resp = service.post("/kv", json={"key": name})
        if resp.status_code != 201:
            raise ScenarioError(f"creating key {name} answered {resp.status_code}: {resp.text}")
        return name

    async def operate(
        self, client: httpx.AsyncClient, actor: str, key: str, *, clock_zero: float
    ) -> Operation:
        body = {"writer": actor, "value": 1}
        return await send_recorded(
            client,
            "PUT",
            f"/kv/{key}",
            json=body,
            kind="write",
            actor=actor,
            key=key,
            clock_zero=clock_zero,
        )

    def read_state(self, admin: PostgresAdmin, keys: Sequence[str]) -> KvState:
        rows = admin.query("SELECT name, version FROM kv_keys WHERE name = ANY(%s)", (list(keys),))
        writes = admin.query("SELECT key, writer FROM kv_writes WHERE key = ANY(%s)", (list(keys),))
        return KvState(
            versions={str(r[0]): int(str(r[1])) for r in rows},
            writes=[(str(w[0]), str(w[1])) for w in writes],
        )

    def present(self, state: object, op: Operation) -> bool:
        assert isinstance(state, KvState)
        return (op.key, op.actor) in state.present

    def check(self, state: object, operations: Sequence[Operation]) -> list[CheckResult]:
        assert isinstance(state, KvState)
        writes = [op for op in operations if op.kind == "write"]
        sent = {(op.key, op.actor) for op in writes}
        denied = {(op.key, op.actor) for op in writes if op.outcome is Outcome.FAIL}
        per_key = Counter(key for key, _ in state.writes)
        skewed = {
            key: (version, per_key.get(key, 0))
            for key, version in state.versions.items()
            if version != per_key.get(key, 0)
        }
        phantom = sorted(state.present - sent)
        behind_fail = sorted(state.present & denied)
        dupes = [w for w, n in Counter(state.writes).items() if n > 1]
        return [
            CheckResult(
                "version-counts-writes",
                not skewed,
                f"{len(state.versions)} keys; (version, writes) where they differ: "
                f"{skewed or 'none'}",
            ),
            CheckResult(
                "no-unsent-writes",
                not phantom,
                f"{len(state.writes)} writes, {len(phantom)} nobody sent: {sample(phantom)}",
            ),
            CheckResult(
                "failed-writes-absent",
                not behind_fail,
                f"{len(behind_fail)} writes exist for fail answers: {sample(behind_fail)}",
            ),
            CheckResult("one-write-per-writer", not dupes, f"duplicates: {sample(dupes)}"),
        ]

    def lock_key(self, admin: PostgresAdmin, key: str) -> AbstractContextManager[None]:
        return admin.hold_row_lock("kv_keys", "name", key)

    def fault_kinds(self) -> Mapping[str, FaultFactory]:
        return {}


KV = KvTarget()
"""The key-value service's target: `--target tests.kv.target:KV`."""
