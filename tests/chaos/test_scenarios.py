"""The scenario catalogue against a real stack (PostgreSQL, Toxiproxy, the service).

Each scenario documents its expected behaviour in its declaration (chaos/catalogue.py).
Every run asserts the answers clients saw, the database state, the leak baseline and the
recovery; a missing check is a failure too.
"""

from __future__ import annotations

import httpx
import pytest

from chaos.checks.probes import Limits
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.stack import Stack
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.run.engine import REQUIRED_CHECKS, ScenarioResult, run_scenario
from chaos.scenarios.catalogue import CATALOGUE
from chaos.scenarios.model import Scenario

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("scenario", CATALOGUE, ids=lambda s: s.name)
def test_scenario(
    scenario: Scenario,
    chaos_stack: Stack,
    toxiproxy: ToxiproxyClient,
    pg_admin: PostgresAdmin,
    service_client: httpx.Client,
    service_limits: Limits,
    chaos_report: list[ScenarioResult],
) -> None:
    result = run_scenario(
        chaos_stack,
        scenario,
        toxiproxy=toxiproxy,
        admin=pg_admin,
        service=service_client,
        limits=service_limits,
    )
    chaos_report.append(result)
    names = {c.name for c in result.checks}
    assert set(REQUIRED_CHECKS) <= names, f"missing checks {set(REQUIRED_CHECKS) - names}"
    assert result.passed, result.summary()
