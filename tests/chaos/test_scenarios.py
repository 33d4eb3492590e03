"""The scenario catalogue against a real stack (PostgreSQL, Toxiproxy, the service).

Each scenario documents its expected behaviour in chaos/scenarios/catalogue.yaml. Every
run asserts the answers clients saw, the evidence that the fault acted, the database
state, the leak baseline and the recovery.
"""

from __future__ import annotations

import httpx
import pytest

from chaos.checks.probes import Limits
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.stack import Stack
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.run.engine import run_scenario
from chaos.run.result import ScenarioResult
from chaos.scenarios.catalogue import CATALOGUE
from chaos.scenarios.model import Scenario
from chaos.targets.base import Target

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("scenario", CATALOGUE, ids=lambda s: s.name)
def test_scenario(
    scenario: Scenario,
    chaos_stack: Stack,
    chaos_toxiproxy: ToxiproxyClient,
    chaos_pg_admin: PostgresAdmin,
    chaos_service_client: httpx.Client,
    chaos_service_limits: Limits,
    chaos_target: Target,
    chaos_report: list[ScenarioResult],
) -> None:
    result = run_scenario(
        chaos_stack,
        scenario,
        toxiproxy=chaos_toxiproxy,
        admin=chaos_pg_admin,
        service=chaos_service_client,
        limits=chaos_service_limits,
        target=chaos_target,
    )
    chaos_report.append(result)
    assert result.passed, result.summary()
