"""History classes, checkers, scenario declarations and reports (pure logic)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from chaos.core.history import Operation, Outcome, classify
from chaos.core.limits import Limits
from chaos.core.lost_writes import LostWritePolicy, find_lost_writes
from chaos.errors import ScenarioError
from chaos.faults import ProxyDown
from chaos.infra.roles import RoleSample
from chaos.report.writers import (
    SUMMARY_HEADER,
    primary_spans,
    summary_rows,
    summary_table,
    write_reports,
)
from chaos.run.result import ScenarioResult
from chaos.run.verdict import answer_checks, no_hang
from chaos.scenarios.catalogue import by_name, catalogue, for_stack
from chaos.scenarios.model import ACQUIRE, DEADLINE, SLACK, Expect, Scenario
from chaos.targets.coupons import COUPONS, CouponState, check_history

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
    user: str,
    status: int | None,
    *,
    start: float = 0.0,
    end: float = 0.01,
    coupon: str = "C",
    written: str | None = None,
) -> Operation:
    return Operation(
        "claim",
        user,
        coupon,
        start,
        end,
        status,
        error=None if status else "timeout",
        write_attempted=written,
    )


@pytest.mark.parametrize(
    ("status", "written", "outcome"),
    [
        (200, None, Outcome.OK),
        (400, None, Outcome.FAIL),
        (404, None, Outcome.FAIL),
        (409, None, Outcome.FAIL),
        (503, "false", Outcome.FAIL),
        (503, "true", Outcome.INFO),
        (504, None, Outcome.INFO),
        (500, None, Outcome.INFO),
        (None, None, Outcome.INFO),
    ],
)
def test_outcome_classes(status: int | None, written: str | None, outcome: Outcome) -> None:
    assert classify(status, write_attempted=written) is outcome


def state(
    claims: list[tuple[str, str]], amount: int = 10, remaining: int | None = None
) -> CouponState:
    left = amount - len(claims) if remaining is None else remaining
    return CouponState(amounts={"C": amount}, remaining={"C": left}, claims=claims)


def failed(results: list) -> set[str]:  # type: ignore[type-arg]
    return {r.name for r in results if not r.passed}


def test_a_clean_history_passes() -> None:
    ops = [op("a", 200), op("b", 503, written="true"), op("c", 409)]
    assert failed(check_history(ops, state([("a", "C"), ("b", "C")]))) == set()


def test_presence_is_what_the_lost_writes_and_timed_out_checks_read() -> None:
    claimed = state([("a", "C")])
    assert COUPONS.present(claimed, op("a", 200))
    assert not COUPONS.present(claimed, op("b", 200))
    assert not COUPONS.present(claimed, op("a", 200, coupon="D"))


def test_a_claim_nobody_attempted_is_caught() -> None:
    assert "no-unattempted-claims" in failed(check_history([], state([("ghost", "C")])))


def test_a_claim_behind_a_fail_answer_is_caught() -> None:
    ops = [op("a", 503, written="false")]
    assert "failed-claims-absent" in failed(check_history(ops, state([("a", "C")])))


def test_overselling_and_conservation() -> None:
    ops = [op(u, 200) for u in "abc"]
    got = failed(check_history(ops, state([(u, "C") for u in "abc"], amount=2, remaining=0)))
    assert {"claims-within-amount", "conservation"} <= got


def test_duplicates_are_caught() -> None:
    ops = [op("a", 200), op("a", 409)]
    assert "one-claim-per-user" in failed(check_history(ops, state([("a", "C"), ("a", "C")])))


def test_hangs_and_missing_answers_are_caught() -> None:
    r = synthetic_result()
    assert no_hang(r).passed
    r.operations.append(op("d", 504, start=1.0, end=1.0 + DEADLINE.seconds(LIMITS) + 0.01))
    assert not no_hang(r).passed
    r.operations[-1] = op("d", None)
    assert not no_hang(r).passed


def test_bounds_come_from_limits() -> None:
    assert ACQUIRE.seconds(LIMITS) == pytest.approx(0.5 + SLACK)
    assert DEADLINE.seconds(LIMITS) == pytest.approx(2.0 + SLACK)


def test_must_see_within_allowed() -> None:
    with pytest.raises(ScenarioError):
        Expect(during={503}, must_see={504})


def test_catalogue_names_are_unique_and_findable() -> None:
    scenarios = catalogue(COUPONS)
    names = [s.name for s in scenarios]
    assert len(names) == len(set(names))
    assert by_name(scenarios, "blackhole").name == "blackhole"
    assert by_name(scenarios, "connection-drop-mid-transaction").stack == "any"  # the target's
    with pytest.raises(KeyError):
        by_name(scenarios, "nope")


def test_each_stack_runs_its_own_scenarios() -> None:
    scenarios = catalogue(COUPONS)
    ha = {s.name for s in for_stack(scenarios, "ha")}
    local = {s.name for s in for_stack(scenarios, "local")}
    assert "failover-synchronous" in ha
    assert "blackhole" in local
    routed = {s.name for s in for_stack(scenarios, "ha", "haproxy")}
    pooled = {s.name for s in for_stack(scenarios, "ha", "pgbouncer")}
    assert not ha & local
    assert ha | local | routed | pooled == {s.name for s in scenarios}
    # A scenario that needs a router runs only on a stack routed by it.
    assert routed - ha == {"switchover-stale-route"}
    assert pooled - ha == {
        "switchover-paused-pgbouncer",
        "switchover-pgbouncer",
        "pgbouncer-restart",
        "pgbouncer-blackhole",
    }


def synthetic_result() -> ScenarioResult:
    scenario = Scenario(
        name="synthetic",
        description="a made-up run",
        fault=ProxyDown(),
        expect=Expect(during={503}, must_see={503}, latency={503: ACQUIRE}),
    )
    r = ScenarioResult(scenario=scenario, run_id="r1", started_at="now", limits=LIMITS)
    r.inject_began, r.fault_start, r.fault_end, r.lifted = 1.0, 1.0, 3.0, 3.0
    r.recovery_from = 3.0
    r.operations = [
        op("a", 200, start=0.5, end=0.51),
        op("b", 503, start=1.5, end=2.0),
        op("c", 200, start=3.1, end=3.12),
    ]
    r.recovered_at = 3.12
    r.checks = check_history(r.operations, state([("a", "C"), ("c", "C")]))
    return r


def test_result_figures() -> None:
    r = synthetic_result()
    assert r.statuses_during() == {"503": 1}
    assert r.time_to_recover == pytest.approx(0.12)
    assert r.time_to_fail(99) == pytest.approx(0.5)
    assert r.passed


def test_reports_are_written(tmp_path: Path) -> None:
    r = synthetic_result()
    paths = write_reports([r], tmp_path)
    journal = json.loads(paths["journal"].read_text())
    assert journal[0]["scenario"] == "synthetic"
    assert journal[0]["timings"]["time_to_recover"] == pytest.approx(0.12)
    assert len(journal[0]["history"]) == 3
    suite = ET.parse(paths["junit"]).getroot()  # noqa: S314 - our own file
    assert suite.get("tests") == "1"
    assert suite.get("failures") == "0"
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page
    assert "synthetic" in summary_table([r])


def test_the_summary_shows_the_set_the_checks_judged() -> None:
    # A 504 to a request that overlapped the injection is what must_see counts: the
    # summary's column shows it beside the 503 sent and answered during the fault.
    r = synthetic_result()
    r.operations.append(op("t", 504, start=0.9, end=2.9))
    row = summary_rows([r])[0]
    assert SUMMARY_HEADER[3] == "touched by fault"
    assert row[3] == "503x1 504x1"
    assert r.statuses_during() == {"503": 1}


def test_a_clustered_run_is_reported_like_any_other(tmp_path: Path) -> None:
    r = synthetic_result()
    r.nodes = ["node1", "node2"]
    r.roles = [
        RoleSample(0.0, 0.01, "node1", "primary"),
        RoleSample(0.0, 0.01, "node2", "replica"),
        RoleSample(1.0, 1.01, "node1", None),
        RoleSample(2.4, 2.5, "node2", "primary"),
    ]
    r.events = {"inject": 1.0, "crash": 1.0, "promotion": 2.4, "over": 2.4, "lifted": 3.0}
    r.lost_writes = find_lost_writes(
        [op("a", 200, start=0.5, end=0.51)],
        lambda _: False,
        policy=LostWritePolicy.expected_at_most(1),
        primary_at=lambda _: "node1",
    )
    assert primary_spans(r.roles, 3.5) == {"node1": [(0.01, 1.0)], "node2": [(2.5, 1.0)]}
    paths = write_reports([r], tmp_path)
    entry = json.loads(paths["journal"].read_text())[0]
    assert entry["events"]["promotion"] == 2.4
    assert [x["node"] for x in entry["roles"]] == ["node1", "node2", "node1", "node2"]
    assert entry["lost_writes"]["lost"][0] == {
        "actor": "a",
        "key": "C",
        "answered_at": 0.51,
        "node": "node1",
    }
    assert "promotion 2.40 s" in paths["html"].read_text()


def test_touched_judges_the_requests_a_pause_held_across_its_end() -> None:
    # PgBouncer's PAUSE: no request is sent and answered inside the window, so `during`
    # is empty; `touched` judges every request the fault touched, the held ones too.
    r = synthetic_result()
    r.scenario = replace(r.scenario, expect=Expect(during={200}, touched={200}), fault=ProxyDown())
    r.operations = [
        op("a", 200, start=0.5, end=0.51),
        op("held", 200, start=1.5, end=3.2),
        op("c", 200, start=3.1, end=3.12),
    ]
    assert not r.during()
    by_name = {c.name: c for c in answer_checks(r)}
    assert by_name["answers-during-fault"].passed
    assert by_name["answers-touched-by-fault"].passed, by_name["answers-touched-by-fault"]
    r.operations[1] = op("held", 504, start=1.5, end=3.2)
    by_name = {c.name: c for c in answer_checks(r)}
    assert not by_name["answers-touched-by-fault"].passed
    assert "unexpected {'504': 1}" in by_name["answers-touched-by-fault"].detail
    # Without `touched`, an empty window still fails: nothing was judged.
    r.scenario = replace(r.scenario, expect=Expect(during={200}))
    assert not {c.name: c for c in answer_checks(r)}["answers-during-fault"].passed
