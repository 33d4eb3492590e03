"""A second service through the whole toolkit: the key-value test service (tests/kv/),
its target and its scenario file, run by `chaos run` on the local stack as a user would.
The engine, the faults, the checks and the reports are the ones the coupon service's
scenarios use; only the target differs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.scenarios.catalogue import for_stack
from chaos.scenarios.loader import load_scenarios
from tests.kv.target import KV, SCENARIOS

pytestmark = pytest.mark.chaos

#: Checks the key-value target adds to every run (its own invariants).
KV_CHECKS = {"version-counts-writes", "no-unsent-writes", "failed-writes-absent"}


#: What points `chaos run` at a stack somebody else runs (the compose lane sets them).
EXTERNAL = ("CHAOS_SERVICE_URL", "CHAOS_TOXIPROXY_URL", "CHAOS_DATABASE_URL", "CHAOS_TARGET")


def run_kv(tmp_path: Path, *stack: str) -> list[dict[str, object]]:
    """`chaos run --target tests.kv.target:KV --scenarios tests/kv/scenarios.yaml` on a
    stack the toolkit starts (never an external one: that runs the coupon service); every
    scenario the stack runs must pass; the journal's entries."""
    with pytest.MonkeyPatch.context() as env:
        for name in EXTERNAL:
            env.delenv(name, raising=False)
        return _run_kv(tmp_path, *stack)


def _run_kv(tmp_path: Path, *stack: str) -> list[dict[str, object]]:
    reports = tmp_path / "reports"
    code = main(
        [
            "run",
            "--target",
            "tests.kv.target:KV",
            "--scenarios",
            str(SCENARIOS),
            "--report-dir",
            str(reports),
            *stack,
        ]
    )
    assert {p.name for p in reports.iterdir()} == {"journal.json", "junit.xml", "report.html"}
    journal: list[dict[str, object]] = json.loads((reports / "journal.json").read_text())
    failed = [e["scenario"] for e in journal if not e["passed"]]
    assert code == 0, f"failed: {failed}\n{(reports / 'junit.xml').read_text()[-4000:]}"
    return journal


def test_the_key_value_service_runs_its_scenario_file_on_the_local_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = run_kv(tmp_path)
    local = for_stack(load_scenarios([SCENARIOS], kinds=KV.fault_kinds()), "local")
    assert [e["scenario"] for e in journal] == [s.name for s in local]
    for entry in journal:
        names = {c["name"] for c in entry["checks"]}  # type: ignore[attr-defined]
        assert names >= KV_CHECKS | {"lost-writes", "no-leaks", "recovery", "no-hang"}
        assert {h["kind"] for h in entry["history"]} == {"write"}  # type: ignore[attr-defined]
    timed_out = next(e for e in journal if e["scenario"] == "kv-row-lock")
    assert "timed-out-writes-absent" in {c["name"] for c in timed_out["checks"]}  # type: ignore[attr-defined]
    assert "3 passed, 0 failed" in capsys.readouterr().out
