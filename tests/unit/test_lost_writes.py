"""Pure logic of the HA toolkit: the lost-write report, Patroni settings, the role timeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from chaos.core.history import Operation, Outcome
from chaos.core.lost_writes import LostWritePolicy, LostWriteReport, find_lost_writes
from chaos.errors import ChaosError
from chaos.infra.ha_stack import PatroniSettings
from chaos.infra.roles import RoleMonitor, RoleSample


def write(actor: str, status: int | None, end: float, start: float | None = None) -> Operation:
    begun = end - 0.01 if start is None else start
    return Operation("write", actor, "K", start=begun, end=end, status=status)


def state(*actors: str) -> Callable[[Operation], bool]:
    return lambda op: op.actor in actors


def judge(
    ops: Sequence[Operation],
    present: Callable[[Operation], bool],
    policy: LostWritePolicy,
    **kwargs: object,
) -> LostWriteReport:
    acknowledged = [op for op in ops if op.outcome is Outcome.OK]
    return find_lost_writes(acknowledged, present, policy=policy, **kwargs)  # type: ignore[arg-type]


def test_every_acknowledged_write_missing_is_reported_in_answer_order() -> None:
    ops = [write("a", 200, 1.0), write("b", 200, 3.0), write("c", 200, 2.0), write("d", 504, 2.5)]
    report = judge(
        ops,
        state("a"),
        LostWritePolicy.forbidden(),
        primary_at=lambda t: "node1" if t < 2.5 else "node2",
    )
    assert [(w.actor, w.answered_at, w.node) for w in report.lost] == [
        ("c", 2.0, "node1"),
        ("b", 3.0, "node2"),
    ]
    assert report.acknowledged == 3
    assert not report.passed
    check = report.check()
    assert check.name == "lost-writes"
    assert not check.passed
    assert "2 of 3 acknowledged writes lost (policy: forbidden;" in check.detail
    assert "c/K answered at 2.000 s by node1" in check.detail


def test_info_and_failed_writes_are_never_lost_writes() -> None:
    ops = [write("a", 504, 1.0), write("b", 503, 1.0), write("c", None, 1.0), write("d", 409, 1)]
    report = judge(ops, state(), LostWritePolicy.forbidden())
    assert report.lost == ()
    assert report.passed


@pytest.mark.parametrize(
    ("policy", "lost", "passed"),
    [
        (LostWritePolicy.forbidden(), 0, True),
        (LostWritePolicy.forbidden(), 1, False),
        (LostWritePolicy.expected_at_most(2), 2, True),
        (LostWritePolicy.expected_at_most(2), 3, False),
        (LostWritePolicy.expected_at_most(2), 0, True),
    ],
)
def test_the_policy_judges_the_count(policy: LostWritePolicy, lost: int, passed: bool) -> None:
    ops = [write(str(i), 200, 1.0 + i) for i in range(3)]
    kept = [op.actor for op in ops[lost:]]
    assert judge(ops, state(*kept), policy).passed is passed


def test_the_report_as_a_dict_lists_each_lost_write() -> None:
    report = judge([write("a", 200, 1.23456)], state(), LostWritePolicy.expected_at_most(1))
    assert report.as_dict() == {
        "policy": "expected, at most 1",
        "acknowledged": 1,
        "passed": True,
        "verdict": "1 lost, at most 1 allowed",
        "lost": [{"actor": "a", "key": "K", "answered_at": 1.235, "node": None}],
    }


def test_lost_between_two_events_must_be_exactly_the_writes_at_stake() -> None:
    # Sent after the partition (2.0) and answered before the promotion (5.0): at stake.
    ops = [
        write("before", 200, 1.9, start=1.5),  # sent before the cut: replicated
        write("straddles", 200, 2.5, start=1.99),  # sent before the cut: not at stake
        write("x", 200, 3.0, start=2.5),
        write("y", 200, 4.0, start=3.5),
        write("after", 200, 6.0, start=5.5),  # answered by the new primary
    ]
    events = {"partition": 2.0, "promotion": 5.0}
    policy = LostWritePolicy.expected_between("partition", "promotion", at_least=2)

    def old(t: float) -> str:
        return "node1" if t < 5.0 else "node2"

    kept = state("before", "straddles", "after")
    exact = judge(ops, kept, policy, events=events, primary_at=old)
    assert exact.passed, exact.verdict
    short = judge(ops, state("before", "straddles", "x", "after"), policy, events=events)
    assert not short.passed  # y lost, x kept: not exactly the writes at stake
    extra = judge(ops, state("straddles", "after"), policy, events=events, primary_at=old)
    assert not extra.passed  # a write from before the cut lost too
    fewer = LostWritePolicy.expected_between("partition", "promotion", at_least=3)
    assert not judge(ops, kept, fewer, events=events, primary_at=old).passed
    missing = judge(ops, kept, policy, events={"partition": 2.0})
    assert not missing.passed
    assert "never happened" in missing.verdict


def test_patroni_settings_refuse_what_patroni_would_silently_change() -> None:
    with pytest.raises(ChaosError, match="minimum ttl"):
        PatroniSettings(ttl=10)
    with pytest.raises(ChaosError, match="loop_wait"):
        PatroniSettings(ttl=20, loop_wait=5, retry_timeout=10)
    assert PatroniSettings().dynamic()["synchronous_mode"] is True


def test_the_role_timeline_tells_who_was_primary_when() -> None:
    monitor = RoleMonitor({"n1": "http://x", "n2": "http://y"}, clock_zero=0.0)
    for sent, node, role in [
        (0.0, "n1", "primary"),
        (0.0, "n2", "replica"),
        (1.0, "n1", None),
        (4.0, "n2", "replica"),
        (5.0, "n2", "primary"),
        (6.0, "n1", "primary"),
        (6.5, "n1", "replica"),
    ]:
        monitor.record(RoleSample(sent, sent + 0.05, node, role))
    assert monitor.primary_at(0.5) == "n1"
    assert monitor.primary_at(2.0) is None
    assert monitor.primary_at(5.5) == "n2"
    assert monitor.last_primary_by(2.0) == "n1"
    assert monitor.last_primary_by(5.5) == "n2"
    # a demotion counts from the arrival of the first other answer, a promotion from the
    # sending of the last answer before the first "primary"
    assert monitor.stopped_being_primary("n1", 0.5) == 1.05
    assert monitor.became_primary("n2", 1.0) == 4.0
    assert monitor.became_primary("n2", 4.5) == 4.5
    assert monitor.became_primary("n1", 6.2) is None
    assert monitor.double_primaries() == [(6.05, ["n1", "n2"])]
    assert [(s.sent, s.node) for s in monitor.role_changes()] == [
        (0.0, "n1"),
        (0.0, "n2"),
        (1.0, "n1"),
        (5.0, "n2"),
        (6.0, "n1"),
        (6.5, "n1"),
    ]
