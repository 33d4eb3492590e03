"""The key-value test service on the HA stack: its own scenario file (outside the
package) holds an HA scenario, and `chaos run --stack ha` picks it, runs it through the
one engine and reports it like every other run."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.infra.ha_stack import NODES
from tests.chaos.test_second_target import KV_CHECKS, run_kv

pytestmark = pytest.mark.ha


def test_the_key_value_service_fails_over_from_its_scenario_file(tmp_path: Path) -> None:
    (entry,) = run_kv(tmp_path, "--stack", "ha")
    assert entry["scenario"] == "kv-failover"
    names = {c["name"] for c in entry["checks"]}  # type: ignore[attr-defined]
    assert names >= KV_CHECKS | {"lost-writes", "never-two-primaries", "settled-primary"}
    assert set(entry["events"]) >= {"crash", "promotion", "over", "settled"}  # type: ignore[arg-type]
    assert entry["nodes"] == [f"node{i}" for i in range(1, NODES + 1)]
