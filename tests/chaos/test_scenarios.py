"""The scenario catalogue against a real stack (PostgreSQL, Toxiproxy, the service).

Each scenario documents its expected behaviour in chaos/scenarios/catalogue.yaml. Every
run asserts the answers clients saw, the evidence that the fault acted, the database
state, the leak baseline and the recovery.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chaos.run.result import ScenarioResult
from chaos.scenarios.catalogue import CATALOGUE
from chaos.scenarios.model import Scenario

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("scenario", CATALOGUE, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, chaos_run: Callable[[Scenario], ScenarioResult]) -> None:
    result = chaos_run(scenario)
    assert result.passed, result.summary()
