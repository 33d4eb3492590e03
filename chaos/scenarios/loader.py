"""Scenario files: YAML declarations of scenarios, validated in full before anything runs.

A file holds a list under `scenarios:`; every field but `name`, `description`, `fault`
and `expect.during` has a default::

    scenarios:
      - name: latency-above-deadline
        description: Answers delayed past the deadline get 504 at the deadline.
        fault: {kind: toxic, type: latency, attributes: {latency: 2500}}
        workload: {concurrency: 8, keys: 2, stock: 1000000, warmup: 20}
        duration: 2.5                      # seconds the fault is on
        recovery_bound: 2.0                # seconds from removal to the first success
        expect:
          during: [503, 504]               # statuses allowed while the fault is on
          must_see: [504]                  # statuses that must appear
          latency: {503: acquire_timeout + slack, 504: request_deadline + slack}
          health: 503                      # /health during the fault
          timed_out_claims_absent: false
          observed: [answers, latency]     # evidence that the fault acted (any one)

Errors name the file, the scenario, the field and what was expected; `load_scenarios`
reports every error of every file at once, so nothing runs until all are valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from chaos.errors import ScenarioError
from chaos.faults.registry import FaultFactory, build_fault, fault_kinds
from chaos.scenarios.bounds import Bound
from chaos.scenarios.model import EVIDENCE_KINDS, RECOVERY_BOUND, Expect, Scenario, Workload

if TYPE_CHECKING:
    from chaos.targets.base import Target

__all__ = ["ScenarioFileError", "load_file", "load_scenarios", "parse_scenarios", "scenario_files"]

_SCENARIO_KEYS = {
    "name",
    "description",
    "fault",
    "workload",
    "duration",
    "recovery_bound",
    "expect",
}
_EXPECT_KEYS = {"during", "must_see", "latency", "health", "timed_out_claims_absent", "observed"}
_WORKLOAD_KEYS = {"concurrency", "keys", "stock", "warmup"}


@dataclass(frozen=True, slots=True)
class _Problem:
    source: str
    scenario: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: scenario {self.scenario}: {self.field}: {self.message}"


class ScenarioFileError(ScenarioError):
    """One or more scenario declarations are invalid; `problems` lists each one."""

    def __init__(self, problems: Sequence[object]) -> None:
        self.problems = [str(p) for p in problems]
        super().__init__(
            f"{len(self.problems)} problem(s) in scenario files:\n  " + "\n  ".join(self.problems)
        )


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _statuses(value: object, field: str) -> frozenset[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 for v in value
    ):
        raise _Invalid(field, f"expected a list of HTTP statuses, got {value!r}")
    return frozenset(value)


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _Invalid(field, f"expected a number of seconds >= 0, got {value!r}")
    return float(value)


def _mapping(value: object, field: str, allowed: set[str] | None = None) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Invalid(field, f"expected a mapping, got {value!r}")
    if allowed is not None:
        unknown = sorted(set(map(str, value)) - allowed)
        if unknown:
            raise _Invalid(
                f"{field}.{unknown[0]}" if field else unknown[0],
                f"unknown field; expected one of {', '.join(sorted(allowed))}",
            )
    return {str(k): v for k, v in value.items()}


def _expect(raw: object) -> Expect:
    data = _mapping(raw, "expect", _EXPECT_KEYS)
    if "during" not in data:
        raise _Invalid("expect.during", "missing; expected a list of HTTP statuses")
    latency: dict[int, Bound] = {}
    for status, text in _mapping(data.get("latency", {}), "expect.latency").items():
        field = f"expect.latency.{status}"
        if not status.isdigit():
            raise _Invalid(field, "expected an HTTP status as the key")
        if not isinstance(text, str | int | float) or isinstance(text, bool):
            raise _Invalid(field, f"expected an expression over the limits, got {text!r}")
        try:
            latency[int(status)] = Bound(str(text))
        except ScenarioError as exc:
            raise _Invalid(field, str(exc)) from exc
    health = data.get("health")
    if health is not None and (isinstance(health, bool) or not isinstance(health, int)):
        raise _Invalid("expect.health", f"expected an HTTP status, got {health!r}")
    absent = data.get("timed_out_claims_absent", False)
    if not isinstance(absent, bool):
        raise _Invalid("expect.timed_out_claims_absent", f"expected true or false, got {absent!r}")
    observed = data.get("observed", sorted(EVIDENCE_KINDS))
    if not isinstance(observed, list) or not observed or not set(observed) <= EVIDENCE_KINDS:
        raise _Invalid(
            "expect.observed",
            f"expected a non-empty list of {', '.join(sorted(EVIDENCE_KINDS))}; got {observed!r}",
        )
    try:
        return Expect(
            during=_statuses(data["during"], "expect.during"),
            must_see=_statuses(data.get("must_see", []), "expect.must_see"),
            latency=latency,
            health=health,
            timed_out_claims_absent=absent,
            observed=frozenset(map(str, observed)),
        )
    except ScenarioError as exc:
        field, _, message = str(exc).partition(": ")
        raise _Invalid(field, message) from exc


def _workload(raw: object) -> Workload:
    data = _mapping(raw, "workload", _WORKLOAD_KEYS)
    try:
        return Workload(**data)  # type: ignore[arg-type] # checked by Workload itself
    except ScenarioError as exc:
        field, _, message = str(exc).partition(": ")
        raise _Invalid(field, message) from exc


def _scenario(raw: object, kinds: Mapping[str, FaultFactory]) -> Scenario:
    data = _mapping(raw, "", _SCENARIO_KEYS)
    for key in ("name", "description"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise _Invalid(key, f"expected a non-empty string, got {data.get(key)!r}")
    if "fault" not in data:
        raise _Invalid("fault", f"missing; expected a mapping with kind: one of {sorted(kinds)}")
    try:
        fault = build_fault(kinds, _mapping(data["fault"], "fault"))
    except (ValueError, ScenarioError) as exc:
        raise _Invalid("fault", str(exc)) from exc
    if "expect" not in data:
        raise _Invalid("expect", "missing; expected a mapping with at least `during`")
    expect = _expect(data["expect"])
    workload = _workload(data.get("workload", {}))
    duration = _number(data.get("duration", 2.5), "duration")
    recovery = _number(data.get("recovery_bound", RECOVERY_BOUND), "recovery_bound")
    return Scenario(
        name=str(data["name"]),
        description=str(data["description"]),
        fault=fault,
        expect=expect,
        workload=workload,
        duration=duration,
        recovery_bound=recovery,
    )


def parse_scenarios(
    text: str, *, source: str, kinds: Mapping[str, FaultFactory]
) -> tuple[list[Scenario], list[_Problem]]:
    """The scenarios of one file's text, and its problems (the invalid ones are left out)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [], [_Problem(source, "-", "-", f"not valid YAML: {exc}")]
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), list):
        return [], [_Problem(source, "-", "scenarios", "expected a top-level `scenarios:` list")]
    extra = sorted(set(map(str, doc)) - {"scenarios"})
    problems = [_Problem(source, "-", k, "unknown top-level field") for k in extra]
    scenarios: list[Scenario] = []
    for index, raw in enumerate(doc["scenarios"], start=1):
        label = f"#{index}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label = f"{raw['name']!r} (#{index})"
        try:
            scenarios.append(_scenario(raw, kinds))
        except _Invalid as exc:
            problems.append(_Problem(source, label, exc.field or "-", exc.message))
    return scenarios, problems


def load_file(path: Path, *, target: Target | None = None) -> list[Scenario]:
    """The scenarios of one file; ScenarioFileError listing every problem."""
    return load_scenarios([path], target=target)


def scenario_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and every *.yaml / *.yml of a directory (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            files.append(path)
    return files


def load_scenarios(paths: Iterable[Path], *, target: Target | None = None) -> list[Scenario]:
    """Every scenario of every file (directories: their *.yaml and *.yml files).

    Every file is read and checked first; ScenarioFileError lists all problems of all
    files (and duplicate names), so nothing runs until every file is valid.
    """
    if target is None:
        from chaos.targets.coupons import COUPONS

        target = COUPONS
    kinds = fault_kinds(target)
    scenarios: list[Scenario] = []
    problems: list[_Problem] = []
    seen: dict[str, str] = {}
    for path in scenario_files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            problems.append(_Problem(str(path), "-", "-", f"cannot read: {exc.strerror}"))
            continue
        found, wrong = parse_scenarios(text, source=str(path), kinds=kinds)
        problems += wrong
        for s in found:
            if s.name in seen:
                problems.append(
                    _Problem(str(path), repr(s.name), "name", f"already declared in {seen[s.name]}")
                )
            seen[s.name] = str(path)
            scenarios.append(s)
    if problems:
        raise ScenarioFileError(problems)
    return scenarios
