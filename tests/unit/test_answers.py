"""The answer checks and `fault-observed` over synthetic runs (every verdict can fail)."""

from __future__ import annotations

import pytest

from chaos.core.history import Operation, percentile
from chaos.core.limits import Limits
from chaos.faults import ProxyDown
from chaos.infra.probes import Snapshot
from chaos.run.result import ScenarioResult
from chaos.run.verdict import answer_checks, evidence, fault_observed, usual_ceiling
from chaos.scenarios.model import ACQUIRE, Expect, Scenario

LIMITS = Limits(
    pool_max_size=4,
    pool_min_size=4,
    pool_max_waiting=64,
    acquire_timeout=0.5,
    statement_timeout=1.5,
    connect_timeout=2.0,
    request_deadline=2.0,
    health_timeout=0.5,
    retry_after=1,
    reconnect_timeout=1.0,
)


def op(
    user: str, status: int | None, start: float, end: float, retry: str | None = "1"
) -> Operation:
    return Operation(
        "claim",
        user,
        "C",
        start,
        end,
        status,
        error=None if status else "timeout",
        retry_after=retry if status == 503 else None,
    )


def snap(**counters: int) -> Snapshot:
    base = dict.fromkeys(Snapshot.__slots__, 0)  # type: ignore[attr-defined]
    base.update(counters)
    return Snapshot(**base)


def result(
    ops: list[Operation], expect: Expect, *, recovered: float | None = 3.12
) -> ScenarioResult:
    scenario = Scenario(name="s", description="d", fault=ProxyDown(), expect=expect)
    r = ScenarioResult(scenario=scenario, run_id="r", started_at="now", limits=LIMITS)
    r.inject_began, r.fault_start, r.fault_end, r.lifted = 1.0, 1.0, 3.0, 3.0
    r.recovery_from = r.lifted
    r.operations = ops
    r.recovered_at = recovered
    r.baseline = r.after = snap()
    return r


def verdicts(r: ScenarioResult) -> dict[str, bool]:
    return {c.name: c.passed for c in answer_checks(r)}


EXPECT_503 = Expect(during={503}, must_see={503}, latency={503: ACQUIRE}, health=503)
GOOD = [
    op("a", 200, 0.5, 0.51),
    op("b", 503, 1.5, 1.6),
    op("c", 503, 2.0, 2.1),
    op("d", 200, 3.1, 3.12),
    op("e", 200, 3.2, 3.22),
]


def good() -> ScenarioResult:
    r = result(list(GOOD), EXPECT_503)
    r.health_during = (503, 0.1)
    return r


def test_a_run_as_expected_passes_every_answer_check() -> None:
    got = verdicts(good())
    assert all(got.values()), got
    assert set(got) == {
        "ok-before-fault",
        "answers-during-fault",
        "latency-503",
        "retry-after-on-503",
        "health-during-fault",
        "recovery",
        "ok-after-recovery",
        "answers-in-transition",
        "no-hang",
        "fault-observed",
    }


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (lambda r: r.operations.__setitem__(0, op("a", 503, 0.5, 0.51)), "ok-before-fault"),
        (lambda r: r.operations.__setitem__(1, op("b", 504, 1.5, 1.6)), "answers-during-fault"),
        (
            lambda r: r.operations.__setitem__(slice(1, 3), [op("b", 200, 1.5, 1.6)]),
            "answers-during-fault",
        ),
        (lambda r: r.operations.__setitem__(1, op("b", 503, 1.5, 2.6)), "latency-503"),
        (
            lambda r: r.operations.__setitem__(1, op("b", 503, 1.5, 1.6, retry=None)),
            "retry-after-on-503",
        ),
        (lambda r: setattr(r, "health_during", (200, 0.1)), "health-during-fault"),
        (lambda r: setattr(r, "health_during", (503, 1.5)), "health-during-fault"),
        (lambda r: setattr(r, "recovered_at", None), "recovery"),
        (lambda r: setattr(r, "recovered_at", 5.5), "recovery"),
        # A failure once the recovery bound (2.0 s after the fault's end at 3.0 s) passed.
        (lambda r: r.operations.append(op("f", 503, 5.1, 5.11)), "ok-after-recovery"),
        # Before it, a failure after the first success must still be an allowed answer.
        (lambda r: r.operations.append(op("f", 500, 3.3, 3.31)), "answers-in-transition"),
        (lambda r: r.operations.append(op("f", 500, 0.9, 1.2)), "answers-in-transition"),
        (lambda r: r.operations.append(op("f", None, 3.3, 3.31)), "no-hang"),
        (lambda r: r.operations.append(op("f", 200, 3.3, 6.0)), "no-hang"),
    ],
)
def test_each_answer_check_fails_when_it_should(change: object, check: str) -> None:
    r = good()
    change(r)  # type: ignore[operator]
    assert verdicts(r)[check] is False


def test_fault_observed_needs_evidence_of_an_accepted_kind() -> None:
    quiet = result(
        [op("a", 200, 0.5, 0.51), op("b", 200, 1.5, 1.51), op("c", 200, 3.1, 3.11)],
        Expect(during={200}),
    )
    assert evidence(quiet) == {}
    assert not fault_observed(quiet).passed

    quiet.after = snap(connection_errors=2)
    assert set(evidence(quiet)) == {"connect-errors"}
    assert fault_observed(quiet).passed

    picky = result(quiet.operations, Expect(during={200}, observed={"latency"}))
    picky.after = snap(connections_lost=1, connection_errors=2)
    check = fault_observed(picky)
    assert not check.passed
    assert "not accepted as proof here: connect-errors, connections-lost" in check.detail


def test_latency_evidence_compares_with_the_warm_up() -> None:
    warm = [op(f"w{i}", 200, 0.1 + i * 0.01, 0.11 + i * 0.01) for i in range(20)]
    slow = [op(f"s{i}", 200, 1.1 + i * 0.05, 1.3 + i * 0.05) for i in range(10)]
    r = result(warm + slow, Expect(during={200}, observed={"latency"}))
    assert fault_observed(r).passed
    assert "above the warm-up's 95th percentile" in fault_observed(r).detail
    same = [op(f"s{i}", 200, 1.1 + i * 0.05, 1.11 + i * 0.05) for i in range(10)]
    assert not fault_observed(result(warm + same, Expect(during={200}))).passed


def test_the_fault_reports_its_own_evidence() -> None:
    r = result([op("a", 200, 0.5, 0.51)], Expect(during={200}, observed={"fault"}))
    assert not fault_observed(r).passed
    r.evidence = ["4 idle backends terminated"]
    assert "4 idle backends terminated" in fault_observed(r).detail


def test_slow_failures_need_most_failures_to_be_slow() -> None:
    warm = [op(f"w{i}", 200, 0.1 + i * 0.01, 0.11 + i * 0.01) for i in range(20)]
    late = [op("x", 503, 1.2, 1.75), op("y", 503, 1.5, 2.05), op("v", 503, 1.3, 1.8)]
    r = result(warm + late, Expect(during={200, 503}, observed={"slow-failures"}))
    assert fault_observed(r).passed
    # Churn beside the fault fails a request fast now and then: most failures still wait.
    fast = op("z", 503, 1.6, 1.62)
    assert fault_observed(result([*warm, *late, fast], r.scenario.expect)).passed
    # Failures as fast as successes, most of them: not the toxic's doing.
    quick = [op(f"q{i}", 503, 1.6, 1.615) for i in range(4)]
    assert not fault_observed(result([*warm, *late, *quick], r.scenario.expect)).passed


def test_a_few_slow_warm_up_requests_do_not_hide_the_fault() -> None:
    # The compose lane's bandwidth-throttle on a loaded box: warm-up answers of 10-20 ms
    # with three of 150 ms (p95 above the fault's 104 ms), then 104 ms claims throughout.
    warm = [op(f"w{i}", 200, 0.01 * i, 0.01 * i + 0.010 + 0.0005 * i) for i in range(29)]
    warm += [op(f"o{i}", 200, 0.3 + 0.05 * i, 0.45 + 0.05 * i) for i in range(3)]
    hot = [op(f"h{i}", 200, 1.1 + 0.01 * i, 1.204 + 0.01 * i) for i in range(40)]
    assert percentile([o.latency for o in warm], 95) > 0.104  # type: ignore[operator]
    check = fault_observed(result(warm + hot, Expect(during={200}, observed={"latency"})))
    assert check.passed, check.detail
    assert "upper fence" in check.detail
    # A fault that did nothing stays below the ceiling, outliers or not.
    same = [op(f"s{i}", 200, 1.1 + 0.01 * i, 1.115 + 0.01 * i) for i in range(40)]
    assert not fault_observed(result(warm + same, Expect(during={200}))).passed


def test_usual_ceiling_is_the_lower_of_p95_and_the_fence() -> None:
    assert usual_ceiling([]) is None
    tight = [0.010 + 0.0001 * i for i in range(30)]
    ceiling = usual_ceiling(tight)
    assert ceiling is not None
    assert ceiling[0] == percentile(tight, 95)
    spiky = [*tight, 0.5, 0.6]
    ceiling = usual_ceiling(spiky)
    assert ceiling is not None
    assert ceiling[0] < 0.02
    assert "upper fence" in ceiling[1]


def test_every_step_of_a_schedule_must_show_it_acted() -> None:
    warm = [op(f"w{i}", 200, 0.1 + i * 0.01, 0.11 + i * 0.01) for i in range(20)]
    hit = [op("x", 503, 1.2, 1.25), op("y", 503, 1.3, 1.35)]  # inside step 1 only
    quiet = [op(f"q{i}", 200, 2.3 + i * 0.01, 2.305 + i * 0.01) for i in range(10)]
    r = result(warm + hit + quiet, Expect(during={200, 503}))
    zero = {"connections-lost": 0, "checks-failed": 0, "connect-errors": 0}
    r.notes["steps"] = [
        {
            "kind": "proxy down",
            "on": 1.0,
            "off": 1.9,
            "evidence": [],
            "counters_on": zero,
            "counters_after": zero,
        },
        {
            "kind": "latency",
            "on": 2.2,
            "off": 3.0,
            "evidence": [],
            "counters_on": zero,
            "counters_after": None,
        },
    ]
    check = fault_observed(r)
    assert not check.passed, check.detail
    assert "1 of 2 steps acted" in check.detail
    assert "step 2 (latency): no evidence" in check.detail
    # The step's own report, or its pool counters risen (read after the run for the
    # last step), prove it acted.
    r.notes["steps"][1]["evidence"] = ["2 idle backends terminated"]  # type: ignore[index]
    assert fault_observed(r).passed
    r.notes["steps"][1]["evidence"] = []  # type: ignore[index]
    r.after = snap(checks_failed=2)
    assert fault_observed(r).passed, fault_observed(r).detail


def test_a_hidden_step_alone_must_cost_clients_nothing() -> None:
    from chaos.run.verdict import hidden_steps

    warm = [op(f"w{i}", 200, 0.1 + i * 0.01, 0.11 + i * 0.01) for i in range(20)]
    r = result([*warm, op("a", 200, 1.1, 1.2), op("b", 503, 1.3, 1.35)], Expect(during={200}))
    r.notes["steps"] = [{"kind": "idle terminated", "hidden": True, "on": 1.0, "off": 1.5}]
    check = hidden_steps(r, 2.0)
    assert check is not None
    assert not check.passed, check.detail
    assert "step 1" in check.detail
    # A 503 that also met a later step (the proxy down from 1.55 s) is that step's.
    r.operations = [*warm, op("a", 200, 1.1, 1.2), op("b", 503, 1.45, 1.6)]
    r.notes["steps"].append({"kind": "proxy down", "hidden": False, "on": 1.55, "off": 2.0})  # type: ignore[attr-defined]
    check = hidden_steps(r, 2.0)
    assert check is not None
    assert check.passed, check.detail
    # A hidden step with another on during it, or just before it, is not judged alone.
    r.operations = [*warm, op("b", 503, 1.3, 1.35)]
    r.notes["steps"] = [
        {"kind": "proxy down", "hidden": False, "on": 0.5, "off": 0.9},
        {"kind": "idle terminated", "hidden": True, "on": 1.0, "off": 1.5},
    ]
    check = hidden_steps(r, 2.0)
    assert check is not None
    assert check.passed
    assert "alone: none" in check.detail
    # No hidden kind in the run: no check.
    r.notes["steps"] = [{"kind": "proxy down", "hidden": False, "on": 1.0, "off": 1.5}]
    assert hidden_steps(r, 2.0) is None
