"""Checks of what clients saw around a fault: allowed answers, latency bounds, Retry-After,
/health, recovery, no hang, the evidence that the fault acted (`fault-observed`), and on
clustered stacks the roles: never two primaries, the primary after the run.

Pure functions of a ScenarioResult (the engine fills it), so every verdict is unit tested.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping

from chaos.core.bounds import DEADLINE, HEALTH
from chaos.core.checks import CheckResult, sample
from chaos.core.history import Operation, percentile
from chaos.infra.roles import PRIMARY
from chaos.run.result import ScenarioResult

__all__ = [
    "answer_checks",
    "evidence",
    "fault_observed",
    "no_hang",
    "primary_after",
    "single_primary",
    "usual_ceiling",
]


def no_hang(r: ScenarioResult) -> CheckResult:
    """No request took longer than the deadline plus slack, and every one was answered."""
    bound = DEADLINE.seconds(r.limits)
    slow = [
        (op.actor, op.label, round(op.latency, 3))
        for op in r.operations
        if op.latency > bound or op.status is None
    ]
    return CheckResult(
        "no-hang",
        not slow,
        f"{len(slow)} of {len(r.operations)} requests over {bound:.2f} s or without an "
        f"answer: {sample(slow)}",
    )


def usual_ceiling(latencies: list[float]) -> tuple[float, str] | None:
    """Where the warm-up's usual latencies end, with how it was found: the lower of the 95th
    percentile and Tukey's upper fence (Q3 + 1.5 IQR). The fence keeps a few slow warm-up
    requests (a loaded machine) from hiding a fault; either lies above the median, so a
    fault that did nothing cannot clear it with its own median."""
    p95 = percentile(latencies, 95)
    if p95 is None:
        return None
    if len(latencies) < 4:
        return p95, f"95th percentile {p95 * 1000:.1f} ms"
    q1, _, q3 = statistics.quantiles(latencies, n=4, method="inclusive")
    fence = q3 + 1.5 * (q3 - q1)
    if fence < p95:
        return fence, (
            f"upper fence {fence * 1000:.1f} ms (Q3 + 1.5 IQR; its 95th percentile, "
            f"{p95 * 1000:.1f} ms, holds outliers)"
        )
    return p95, f"95th percentile {p95 * 1000:.1f} ms"


def _answer_evidence(
    r: ScenarioResult, touched: list[Operation], during: list[Operation]
) -> dict[str, str]:
    """Evidence in the answers: to the requests a fault touched, and the 200s during it."""
    found: dict[str, str] = {}
    failed = Counter(op.label for op in touched if op.status != 200)
    if failed:
        found["answers"] = f"answers other than 200 to requests the fault touched: {dict(failed)}"
    warm = usual_ceiling([op.latency for op in r.before() if op.status == 200])
    hot = [op.latency for op in during if op.status == 200]
    if hot and warm is not None and statistics.median(hot) > warm[0]:
        found["latency"] = (
            f"median latency of {len(hot)} 200s during the fault "
            f"{statistics.median(hot) * 1000:.1f} ms, above the warm-up's {warm[1]}"
        )
    slow = [op.latency for op in touched if op.status is not None and op.status != 200]
    if slow and warm is not None and statistics.median(slow) > 2 * warm[0]:
        found["slow-failures"] = (
            f"the median of {len(slow)} answers other than 200 took "
            f"{statistics.median(slow) * 1000:.1f} ms (fastest {min(slow) * 1000:.1f} ms), "
            f"above twice the warm-up's {warm[1]}"
        )
    return found


_COUNTER_TEXT = {
    "connections-lost": "pool connections broken in use",
    "checks-failed": "pool connections found dead before use",
    "connect-errors": "pool connection attempts failed",
}


def _counter_evidence(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, str]:
    """Evidence in the pool counters (by evidence kind) risen between two readings."""
    return {
        kind: f"{text}: +{after[kind] - before[kind]}"
        for kind, text in _COUNTER_TEXT.items()
        if kind in before and kind in after and after[kind] > before[kind]
    }


def evidence(r: ScenarioResult) -> dict[str, str]:
    """Every kind of evidence the run holds that the fault acted, with what was seen."""
    found = _answer_evidence(r, r.touched(), r.during())
    if r.baseline and r.after:
        found.update(_counter_evidence(r.baseline.counters(), r.after.counters()))
    if r.evidence:
        found["fault"] = "; ".join(r.evidence)
    return found


def step_evidence(r: ScenarioResult) -> list[tuple[str, dict[str, str]]] | None:
    """For a schedule of several steps (chaos.faults.schedule): per step, its name and the
    evidence that it acted, from the requests its window touched, the pool counters from
    its start to the next moment after its end, and what it reported doing; None for a
    fault that is not such a schedule."""
    steps = r.notes.get("steps")
    if not isinstance(steps, list) or len(steps) < 2:
        return None
    out: list[tuple[str, dict[str, str]]] = []
    for n, step in enumerate(steps, 1):
        on, off = step.get("on"), step.get("off")
        name = f"step {n} ({step.get('kind')})"
        if not isinstance(on, int | float) or not isinstance(off, int | float):
            out.append((name, {}))
            continue
        touched = [op for op in r.operations if op.start <= off and op.end >= on]
        during = [op for op in r.operations if on <= op.start and op.end <= off]
        found = _answer_evidence(r, touched, during)
        before = step.get("counters_on")
        after = step.get("counters_after") or (r.after.counters() if r.after else None)
        if isinstance(before, dict) and isinstance(after, dict):
            found.update(_counter_evidence(before, after))
        if step.get("evidence"):
            found["fault"] = "; ".join(map(str, step["evidence"]))
        out.append((name, found))
    return out


def hidden_steps(r: ScenarioResult, recovery_bound: float) -> CheckResult | None:
    """A schedule's steps of a kind the service must hide (Fault.hidden), alone: no other
    step on during it, none ending within `recovery_bound` before it began; every request
    such a step touched, and no other step nor the recovery after one, answered 200.
    None when the run was not such a schedule."""
    steps = r.notes.get("steps")
    if not isinstance(steps, list) or not any(s.get("hidden") for s in steps):
        return None
    windows = [(s.get("on"), s.get("off")) for s in steps]
    judged: list[str] = []
    seen: Counter[str] = Counter()
    for i, step in enumerate(steps):
        on, off = windows[i]
        if not step.get("hidden") or not isinstance(on, float) or not isinstance(off, float):
            continue
        others = [w for j, w in enumerate(windows) if j != i]
        if any(
            isinstance(a, float) and isinstance(b, float) and a <= off and b + recovery_bound >= on
            for a, b in others
        ):
            continue
        judged.append(f"step {i + 1}")
        # Not a request that also met another step (one that began soon after this one
        # ended, say), or the recovery after it.
        spans = [
            (a, b + recovery_bound)
            for a, b in others
            if isinstance(a, float) and isinstance(b, float)
        ]
        seen.update(
            op.label
            for op in r.operations
            if op.start <= off
            and op.end >= on
            and not any(op.start <= b and op.end >= a for a, b in spans)
        )
    bad = {label: n for label, n in seen.items() if label != "200"}
    return CheckResult(
        "hidden-steps",
        not bad,
        f"steps the service must hide, alone: {', '.join(judged) or 'none'}; requests they "
        f"touched: {dict(seen)}; not 200: {bad or 'none'}",
    )


def fault_observed(r: ScenarioResult) -> CheckResult:
    """The run holds evidence, of a kind the scenario accepts, that its fault acted; for
    a schedule of several steps, that each step acted."""
    accepted = r.scenario.expect.observed
    per_step = step_evidence(r)
    if per_step is not None:
        lines = []
        for name, seen in per_step:
            kinds = sorted(kind for kind in seen if kind in accepted)
            lines.append(f"{name}: {', '.join(kinds) if kinds else 'no evidence'}")
        unseen = [name for name, found in per_step if not set(found) & accepted]
        return CheckResult(
            "fault-observed",
            not unseen,
            f"{len(per_step) - len(unseen)} of {len(per_step)} steps acted; " + "; ".join(lines),
        )
    found = evidence(r)
    proof = {kind: text for kind, text in found.items() if kind in accepted}
    others = sorted(set(found) - accepted)
    detail = (
        "; ".join(f"{kind}: {text}" for kind, text in sorted(proof.items()))
        if proof
        else f"no evidence of kind {', '.join(sorted(accepted))}"
    )
    if others:
        detail += f" (not accepted as proof here: {', '.join(others)})"
    return CheckResult("fault-observed", bool(proof), detail)


def answer_checks(r: ScenarioResult) -> list[CheckResult]:
    """What clients saw: before, during and after the fault, against the expectation."""
    exp = r.scenario.expect
    limits = r.limits
    before = r.before()
    during = r.during()
    affected = r.touched()
    # must_see counts every request the fault touched: under a blackhole the ones caught
    # at injection answer 504 while later ones find the pool held by their cleanups (503).
    seen = {op.status for op in affected if op.status is not None}
    unexpected = Counter(op.label for op in during if op.status not in exp.during)
    missing = sorted(exp.must_see - seen)
    checks = [
        CheckResult(
            "ok-before-fault",
            bool(before) and all(op.status == 200 for op in before),
            f"{len(before)} requests before the fault: {dict(Counter(op.label for op in before))}",
        ),
        CheckResult(
            "answers-during-fault",
            (bool(during) or exp.touched is not None) and not unexpected and not missing,
            f"{len(during)} requests during the fault: "
            f"{dict(Counter(op.label for op in during))}, {len(affected)} touched by it: "
            f"{dict(Counter(op.label for op in affected))}; allowed {sorted(exp.during)}, "
            f"must see {sorted(exp.must_see)}; unexpected {dict(unexpected) or 'none'}, "
            f"missing {missing or 'none'}",
        ),
    ]
    if exp.touched is not None:
        outside = Counter(op.label for op in affected if op.status not in exp.touched)
        checks.append(
            CheckResult(
                "answers-touched-by-fault",
                bool(affected) and not outside,
                f"{len(affected)} requests touched by the fault: "
                f"{dict(Counter(op.label for op in affected))}; allowed {sorted(exp.touched)}, "
                f"unexpected {dict(outside) or 'none'}",
            )
        )
    for status, bound in sorted(exp.latency.items()):
        limit = bound.seconds(limits)
        ops = [op for op in affected if op.status == status]
        worst = max((op.latency for op in ops), default=0.0)
        checks.append(
            CheckResult(
                f"latency-{status}",
                worst <= limit,
                f"{len(ops)} answers {status}, slowest {worst:.3f} s, "
                f"bound {limit:.2f} s ({bound})",
            )
        )
    no_retry_after = [op.actor for op in r.operations if op.status == 503 and not op.retry_after]
    checks.append(
        CheckResult(
            "retry-after-on-503",
            not no_retry_after,
            f"{len(no_retry_after)} answers 503 without Retry-After",
        )
    )
    if exp.health is not None:
        health, took = r.health_during or (None, 0.0)
        limit = HEALTH.seconds(limits)
        checks.append(
            CheckResult(
                "health-during-fault",
                health == exp.health and took <= limit,
                f"/health answered {health} in {took:.3f} s; expected {exp.health} within "
                f"{limit:.2f} s",
            )
        )
    ttr = r.time_to_recover
    recovery = r.scenario.recovery_bound.seconds(limits, r.bound_names)
    since = "the fault's end (its over event)" if "over" in r.events else "the fault's removal"
    checks.append(
        CheckResult(
            "recovery",
            ttr is not None and ttr <= recovery,
            f"first success {'never' if ttr is None else f'{ttr:.3f} s'} after {since}; "
            f"bound {recovery:.2f} s ({r.scenario.recovery_bound})",
        )
    )
    # The promise is success again within the recovery bound: until then (and until the
    # first success) answers may still be the fault's; from then on, only 200.
    settled = max(r.recovered_at or float("inf"), r.recovery_from + recovery)
    if r.recovered_at is not None:
        later = [op for op in r.operations if op.start >= settled]
        bad = Counter(op.label for op in later if op.status != 200)
        checks.append(
            CheckResult(
                "ok-after-recovery",
                not bad,
                f"{len(later)} requests sent {settled - r.recovery_from:.2f} s or more after "
                f"the fault (the first success, and the recovery bound, passed), not 200: "
                f"{dict(bad) or 'none'}",
            )
        )
    between = r.transition() + [op for op in r.operations if r.recovery_from <= op.start < settled]
    stray = Counter(op.label for op in between if op.status not in exp.during | {200})
    checks.append(
        CheckResult(
            "answers-in-transition",
            not stray,
            f"{len(between)} requests around injection and removal, and before recovery, "
            f"unexpected: {dict(stray) or 'none'}",
        )
    )
    checks.append(no_hang(r))
    checks.append(fault_observed(r))
    hidden = hidden_steps(r, recovery)
    if hidden is not None:
        checks.append(hidden)
    return checks


def single_primary(r: ScenarioResult) -> CheckResult:
    """Never two nodes answering primary at once (from the role monitor's changes)."""
    latest: dict[str, str | None] = {}
    doubles: list[tuple[float, list[str]]] = []
    for sample_ in r.roles:
        latest[sample_.node] = sample_.role
        primaries = sorted(n for n, role in latest.items() if role == PRIMARY)
        if len(primaries) > 1:
            doubles.append((round(sample_.time, 3), primaries))
    return CheckResult(
        "never-two-primaries",
        bool(r.roles) and not doubles,
        f"{len(r.roles)} role changes watched; moments with two primaries: "
        f"{sample(doubles) or 'none'}",
    )


def primary_after(r: ScenarioResult, before: str | None, after: str | None) -> CheckResult:
    """The primary after the run is another node (`changed`) or the same (`unchanged`)."""
    wanted = r.scenario.expect.primary
    passed = (
        before is not None
        and after is not None
        and ((after != before) if wanted == "changed" else (after == before))
    )
    return CheckResult(
        "settled-primary",
        passed,
        f"primary {before} before the fault, {after} after the run; expected {wanted}",
    )
