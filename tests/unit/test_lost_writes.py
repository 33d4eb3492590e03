"""Pure logic of the HA toolkit: the lost-write report, Patroni settings, the role timeline."""

from __future__ import annotations

import pytest

from chaos.checks.lost_writes import LostWritePolicy, find_lost_writes
from chaos.errors import ChaosError
from chaos.infra.ha_stack import PatroniSettings
from chaos.run.ha_monitor import RoleMonitor, RoleSample
from chaos.run.history import Operation
from chaos.targets.coupons import CouponState


def claim(user: str, status: int | None, end: float) -> Operation:
    return Operation("claim", user, "C", start=end - 0.01, end=end, status=status)


def state(*users: str) -> CouponState:
    return CouponState(
        amounts={"C": 10}, remaining={"C": 10 - len(users)}, claims=[(u, "C") for u in users]
    )


def test_every_acknowledged_claim_missing_is_reported_in_answer_order() -> None:
    ops = [claim("a", 200, 1.0), claim("b", 200, 3.0), claim("c", 200, 2.0), claim("d", 504, 2.5)]
    report = find_lost_writes(
        ops,
        state("a"),
        policy=LostWritePolicy.forbidden(),
        primary_at=lambda t: "node1" if t < 2.5 else "node2",
    )
    assert [(w.user_id, w.answered_at, w.node) for w in report.lost] == [
        ("c", 2.0, "node1"),
        ("b", 3.0, "node2"),
    ]
    assert report.acknowledged == 3
    assert not report.passed
    check = report.check()
    assert check.name == "lost-writes"
    assert not check.passed
    assert "2 of 3 acknowledged claims lost (policy: forbidden)" in check.detail
    assert "c/C answered at 2.000 s by node1" in check.detail


def test_info_and_failed_claims_are_never_lost_writes() -> None:
    ops = [claim("a", 504, 1.0), claim("b", 503, 1.0), claim("c", None, 1.0), claim("d", 409, 1)]
    report = find_lost_writes(ops, state(), policy=LostWritePolicy.forbidden())
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
    assert policy.allows(lost) is passed


def test_the_report_as_a_dict_lists_each_lost_claim() -> None:
    report = find_lost_writes(
        [claim("a", 200, 1.23456)], state(), policy=LostWritePolicy.expected_at_most(1)
    )
    assert report.as_dict() == {
        "policy": "expected, at most 1",
        "acknowledged": 1,
        "passed": True,
        "lost": [{"user_id": "a", "coupon": "C", "answered_at": 1.235, "node": None}],
    }


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
