"""The HA scenario catalogue against a real Patroni cluster (chaos/ha_scenarios.py).

Each scenario states its expected truth in its docstring and returns its verdict: the
invariant checks, the lost-write report judged by its policy, and its own checks
(promotion and recovery bounds, statuses while no node is writable, split brain, ...).
"""

from __future__ import annotations

import pytest

from chaos.ha_plugin import SaveReport
from chaos.infra.ha_stack import HaStack
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.scenarios.ha import HA_CATALOGUE, HaScenario

pytestmark = pytest.mark.ha

#: Checks every scenario's verdict must contain (a missing check is a failure too).
REQUIRED_CHECKS = {"lost-writes", "conservation", "claims-within-amount", "no-hang"}


@pytest.mark.parametrize("scenario", HA_CATALOGUE, ids=lambda s: s.name)
def test_ha_scenario(
    scenario: HaScenario,
    chaos_ha: HaStack,
    chaos_ha_toxiproxy: ToxiproxyClient,
    chaos_ha_report: SaveReport,
) -> None:
    run, verdict = scenario.run(chaos_ha, chaos_ha_toxiproxy)
    chaos_ha_report(scenario.name, run, verdict)
    names = {c.name for c in verdict.checks}
    assert names >= REQUIRED_CHECKS, f"missing checks {REQUIRED_CHECKS - names}"
    assert verdict.passed, verdict.summary()
