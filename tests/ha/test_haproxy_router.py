"""The HA stack routed by HAProxy on Patroni's `/primary` check (`--router haproxy`):
a failover and a switchover through it, and a switchover while the check lags, so that
writes reach the demoted node: they answer 503 (SQLSTATE 25006, a statement sent),
never 500, and the service reconnects by itself once HAProxy moves. The time to route
is each run's recovery (from the promotion to the first success), within a bound that
adds HAProxy's `route_time` to the libpq one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaos.infra.ha_stack import HaStack
from chaos.infra.routers import RouterSettings
from chaos.run.engine import run_selection
from chaos.scenarios.catalogue import by_name, catalogue, for_stack
from chaos.targets.coupons import COUPONS
from tests.ha.stacks import coupon_ha_stack

pytestmark = [pytest.mark.ha, pytest.mark.timeout(900)]

SCENARIOS = ("failover-synchronous", "switchover-under-load", "switchover-stale-route")


@pytest.fixture(scope="module")
def haproxy_stack() -> Iterator[HaStack]:
    with coupon_ha_stack("haproxy") as stack:
        yield stack


def test_only_the_haproxy_stack_runs_the_stale_route_scenario() -> None:
    scenarios = catalogue(COUPONS)
    assert "switchover-stale-route" not in {s.name for s in for_stack(scenarios, "ha")}
    stale = by_name(for_stack(scenarios, "ha", "haproxy"), "switchover-stale-route")
    assert stale.router == "haproxy"
    lagging = RouterSettings(**stale.router_settings)  # type: ignore[arg-type]
    assert lagging.route_time > RouterSettings().route_time


@pytest.mark.parametrize("name", SCENARIOS)
def test_through_haproxy(haproxy_stack: HaStack, name: str) -> None:
    scenario = by_name(for_stack(catalogue(COUPONS), "ha", "haproxy"), name)
    haproxy_stack.heal()
    (run,) = run_selection(haproxy_stack, [scenario], target=COUPONS)
    result = run.result
    assert result is not None, run.error
    assert result.passed, result.summary()
    assert result.bound_names["route_time"] == (
        RouterSettings(**scenario.router_settings).route_time  # type: ignore[arg-type]
    )
    assert result.time_to_recover is not None
    statuses = {op.status for op in result.operations}
    assert 500 not in statuses
    if name == "switchover-stale-route":
        # Writes reached the demoted node after the promotion: refused with a statement
        # sent (25006), so 503 with X-Write-Attempted: true, never 500.
        promoted = result.events["promotion"]
        refused = [
            op
            for op in result.operations
            if op.status == 503 and op.start >= promoted and op.write_attempted == "true"
        ]
        assert refused, "no write reached the demoted node"
