"""The shipped HA scenarios (chaos/scenarios/ha.yaml) against a real Patroni cluster,
through the one engine: each states its expected truth in its description, and its
result carries the answer checks, the lost-write report judged by its policy, the role
checks (never two primaries, the primary after the run) and its fault's own checks
(promotion and demotion bounds)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chaos.run.result import ScenarioResult
from chaos.scenarios.catalogue import catalogue, for_stack
from chaos.scenarios.model import Scenario
from chaos.targets.coupons import COUPONS

pytestmark = pytest.mark.ha

#: Checks every HA scenario's result must contain (a missing check is a failure too).
REQUIRED_CHECKS = {
    "lost-writes",
    "conservation",
    "claims-within-amount",
    "no-hang",
    "never-two-primaries",
    "settled-primary",
    "no-leaks",
    "recovery",
}


@pytest.mark.parametrize("scenario", for_stack(catalogue(COUPONS), "ha"), ids=lambda s: s.name)
def test_ha_scenario(scenario: Scenario, chaos_run: Callable[[Scenario], ScenarioResult]) -> None:
    result = chaos_run(scenario)
    names = {c.name for c in result.checks}
    assert names >= REQUIRED_CHECKS, f"missing checks {REQUIRED_CHECKS - names}"
    assert result.passed, result.summary()
