"""The HA stack with PgBouncer in front of HAProxy (`--router pgbouncer`): the service in
transaction pooling through it, an operator's switchover under `PAUSE`/`RESUME` with
zero errors, and PgBouncer restarted and blackholed. Each run's checks are the engine's
(answers, latency bounds from the settings, nothing lost, the leak baseline counted as
the service's PgBouncer clients, recovery); these tests add what each scenario states."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaos.core.bounds import SLACK
from chaos.faults.ha import pause_bound
from chaos.infra.ha_stack import HaStack
from chaos.infra.routers import SERVER_LOGIN_RETRY, RouterSettings
from chaos.run.engine import run_selection
from chaos.run.result import ScenarioResult
from chaos.scenarios.catalogue import by_name, catalogue, for_stack
from chaos.targets.coupons import COUPONS
from tests.ha.stacks import coupon_ha_stack

pytestmark = [pytest.mark.ha, pytest.mark.timeout(900)]

SCENARIOS = ("switchover-paused-pgbouncer", "pgbouncer-restart", "pgbouncer-blackhole")


@pytest.fixture(scope="module")
def pgbouncer_stack() -> Iterator[HaStack]:
    with coupon_ha_stack("pgbouncer") as stack:
        yield stack


def run(stack: HaStack, name: str) -> ScenarioResult:
    scenario = by_name(for_stack(catalogue(COUPONS), "ha", "pgbouncer"), name)
    stack.heal()
    (done,) = run_selection(stack, [scenario], target=COUPONS)
    assert done.result is not None, done.error
    assert done.result.passed, done.result.summary()
    return done.result


def test_the_route_time_adds_pgbouncers_login_retry(pgbouncer_stack: HaStack) -> None:
    names = pgbouncer_stack.bound_names()
    assert names["route_time"] == RouterSettings().route_time + SERVER_LOGIN_RETRY
    assert pgbouncer_stack.service_settings["DB_TRANSACTION_POOLER"] == "true"


def test_a_paused_switchover_answers_every_request_200(pgbouncer_stack: HaStack) -> None:
    result = run(pgbouncer_stack, "switchover-paused-pgbouncer")
    # Zero errors: every request of the run, the ones held by the pause among them.
    assert result.operations
    assert {op.status for op in result.operations} == {200}
    held = [op for op in result.operations if op.start < result.events["resume"] < op.end]
    assert held, "no request was held by the pause"
    pause = result.notes["pause_seconds"]
    assert isinstance(pause, float)
    bound = pause_bound(pgbouncer_stack, result.limits.statement_timeout)
    assert pause <= bound < result.limits.acquire_timeout
    assert result.notes["old_primary"] != result.notes["new_primary"]
    # The service ran with the scenario's settings, and runs with the stack's again.
    assert result.limits.acquire_timeout == 20.0
    assert pgbouncer_stack.service is not None
    assert pgbouncer_stack.service.extra_env == pgbouncer_stack.service.base_env


@pytest.mark.parametrize("name", ["pgbouncer-restart", "pgbouncer-blackhole"])
def test_pgbouncer_down_answers_503_or_504_within_bounds(
    pgbouncer_stack: HaStack, name: str
) -> None:
    result = run(pgbouncer_stack, name)
    touched = {op.status for op in result.touched()}
    assert touched - {200} <= {503, 504}, touched
    assert 500 not in {op.status for op in result.operations}
    slowest = max(op.latency for op in result.operations)
    assert slowest <= result.limits.request_deadline + SLACK
    assert result.time_to_recover is not None
