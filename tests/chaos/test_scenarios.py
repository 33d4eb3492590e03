"""The scenario catalogue against a real stack (PostgreSQL, Toxiproxy, the service).

Each scenario documents its expected behaviour in chaos/scenarios/catalogue.yaml (and the
coupon target's own chaos/targets/coupons.yaml). Every
run asserts the answers clients saw, the evidence that the fault acted, the database
state, the leak baseline and the recovery.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chaos.run.result import ScenarioResult
from chaos.scenarios.catalogue import catalogue, for_stack
from chaos.scenarios.model import Scenario
from chaos.targets.coupons import COUPONS

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("scenario", for_stack(catalogue(COUPONS), "local"), ids=lambda s: s.name)
def test_scenario(scenario: Scenario, chaos_run: Callable[[Scenario], ScenarioResult]) -> None:
    result = chaos_run(scenario)
    assert result.passed, result.summary()
