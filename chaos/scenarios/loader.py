"""Scenario files: YAML declarations of scenarios, validated in full before anything runs.

A file holds a list under `scenarios:`; every field but `name`, `description`, `fault`
and `expect.during` has a default::

    scenarios:
      - name: latency-above-deadline
        description: Answers delayed past the deadline get 504 at the deadline.
        fault: {kind: toxic, type: latency, attributes: {latency: 2500}}
        workload: {concurrency: 8, keys: 2, warmup: 20}
        duration: 2.5                      # seconds the fault is on
        until: {504: 10}                   # or on until these answers came (duration: at most)
        recovery_bound: reconnect_timeout + acquire_timeout + slack
        stack: any                         # or ha, or {kind: ha, patroni: {ttl: 20, ...}}
        service: {REQUEST_DEADLINE: 20}    # the service's settings for this scenario only
        expect:
          during: [503, 504]               # statuses allowed while the fault is on (or any)
          must_see: [504]                  # statuses that must appear
          touched: [200]                   # statuses allowed for every request it touched
          latency: {503: acquire_timeout + slack, 504: request_deadline + slack}
          health: 503                      # /health during the fault
          timed_out_absent: false          # writes answered 504 left nothing
          observed: [answers, latency]     # evidence that the fault acted (any one)
          lost_writes: forbidden           # or {at_most: N}, or {between: [a, b], at_least: N}
          single_primary: false            # never two writable primaries (HA)
          primary: changed                 # or unchanged: the primary after the run (HA)
          replicas_agree: false            # every node holds the primary's writes (HA)

`fault` is one fault (a mapping with its `kind`) or a list of them, injected in order and
removed in reverse. Bounds are expressions over the service's limits and `slack`; an HA
scenario may also use the HA stack's names (ttl, loop_wait, retry_timeout,
promotion_time, standby_retry_interval).

Errors name the file, the scenario, the field and what was expected; `load_scenarios`
reports every error of every file at once, so nothing runs until all are valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from chaos.core.bounds import Bound
from chaos.core.lost_writes import LostWritePolicy
from chaos.errors import ChaosError, ScenarioError
from chaos.faults.base import Fault, FaultFactory
from chaos.faults.chain import FaultChain
from chaos.faults.registry import build_fault, fault_kinds
from chaos.infra.ha_stack import HA_BOUND_NAMES, PatroniSettings
from chaos.infra.routers import ROUTERS, RouterSettings
from chaos.scenarios.model import (
    ANY_STATUS,
    EVIDENCE_KINDS,
    RECOVERY,
    STACKS,
    Expect,
    Scenario,
    Workload,
)

__all__ = ["ScenarioFileError", "load_file", "load_scenarios", "parse_scenarios", "scenario_files"]

_SCENARIO_KEYS = {
    "name",
    "description",
    "fault",
    "workload",
    "duration",
    "recovery_bound",
    "expect",
    "stack",
    "until",
    "service",
}
_EXPECT_KEYS = {
    "during",
    "must_see",
    "latency",
    "health",
    "timed_out_absent",
    "observed",
    "lost_writes",
    "single_primary",
    "primary",
    "replicas_agree",
    "touched",
}
_WORKLOAD_KEYS = {"concurrency", "keys", "warmup"}


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
    if value == "any" and field == "expect.during":
        return ANY_STATUS
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


def _bound(text: object, field: str, allowed: frozenset[str]) -> Bound:
    if not isinstance(text, str | int | float) or isinstance(text, bool):
        raise _Invalid(field, f"expected an expression over the limits, got {text!r}")
    try:
        return Bound(str(text), allowed)
    except ScenarioError as exc:
        raise _Invalid(field, str(exc)) from exc


def _flag(data: Mapping[str, object], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise _Invalid(f"expect.{key}", f"expected true or false, got {value!r}")
    return value


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid(field, f"expected a whole number >= 0, got {value!r}")
    return value


def _lost_writes(raw: object) -> LostWritePolicy:
    field = "expect.lost_writes"
    if raw is None or raw == "forbidden":
        return LostWritePolicy.forbidden()
    data = _mapping(raw, field, {"at_most", "between", "at_least"})
    if "between" in data:
        between = data["between"]
        if (
            not isinstance(between, list)
            or len(between) != 2
            or not all(isinstance(e, str) and e for e in between)
        ):
            raise _Invalid(f"{field}.between", f"expected two event names, got {between!r}")
        if "at_most" in data:
            raise _Invalid(f"{field}.at_most", "not with between (between says exactly which)")
        at_least = _count(data.get("at_least", 1), f"{field}.at_least")
        return LostWritePolicy.expected_between(between[0], between[1], at_least=at_least)
    if "at_least" in data:
        raise _Invalid(f"{field}.at_least", "only with between")
    if "at_most" not in data:
        raise _Invalid(field, "expected forbidden, {at_most: N} or {between: [a, b]}")
    return LostWritePolicy.expected_at_most(_count(data["at_most"], f"{field}.at_most"))


def _expect(raw: object, allowed: frozenset[str]) -> Expect:
    data = _mapping(raw, "expect", _EXPECT_KEYS)
    if "during" not in data:
        raise _Invalid("expect.during", "missing; expected a list of HTTP statuses")
    latency: dict[int, Bound] = {}
    for status, text in _mapping(data.get("latency", {}), "expect.latency").items():
        field = f"expect.latency.{status}"
        if not status.isdigit():
            raise _Invalid(field, "expected an HTTP status as the key")
        latency[int(status)] = _bound(text, field, allowed)
    health = data.get("health")
    if health is not None and (isinstance(health, bool) or not isinstance(health, int)):
        raise _Invalid("expect.health", f"expected an HTTP status, got {health!r}")
    primary = data.get("primary")
    if primary not in (None, "changed", "unchanged"):
        raise _Invalid("expect.primary", f"expected changed or unchanged, got {primary!r}")
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
            timed_out_absent=_flag(data, "timed_out_absent"),
            observed=frozenset(map(str, observed)),
            lost_writes=_lost_writes(data.get("lost_writes")),
            single_primary=_flag(data, "single_primary"),
            primary=primary,
            replicas_agree=_flag(data, "replicas_agree"),
            touched=(_statuses(data["touched"], "expect.touched") if "touched" in data else None),
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


def _stack(raw: object) -> tuple[str, dict[str, object], str | None, dict[str, object]]:
    """(kind, Patroni settings, router needed, router settings)."""
    if raw is None:
        return "any", {}, None, {}
    if isinstance(raw, str):
        data: dict[str, object] = {"kind": raw}
    else:
        data = _mapping(raw, "stack", {"kind", "patroni", "router"})
    kind = data.get("kind", "any")
    if kind not in STACKS:
        raise _Invalid("stack.kind", f"expected one of {', '.join(STACKS)}, got {kind!r}")
    patroni = _mapping(data.get("patroni", {}), "stack.patroni")
    if patroni and kind != "ha":
        raise _Invalid("stack.patroni", "only for stack kind ha")
    try:
        PatroniSettings(**patroni)  # type: ignore[arg-type] # checked by PatroniSettings
    except (TypeError, ChaosError) as exc:
        raise _Invalid("stack.patroni", str(exc)) from exc
    router, router_settings = _router(data.get("router"), str(kind))
    return str(kind), patroni, router, router_settings


def _router(raw: object, kind: str) -> tuple[str | None, dict[str, object]]:
    if raw is None:
        return None, {}
    if kind != "ha":
        raise _Invalid("stack.router", "only for stack kind ha")
    if isinstance(raw, str):
        data: dict[str, object] = {"kind": raw}
    else:
        data = dict(_mapping(raw, "stack.router", None))
    router = data.pop("kind", None)
    if router not in ROUTERS:
        raise _Invalid("stack.router.kind", f"expected one of {', '.join(ROUTERS)}, got {router!r}")
    if data and router == "libpq":
        raise _Invalid("stack.router", f"HAProxy's settings, not for libpq: got {sorted(data)}")
    if "query_wait_timeout" in data and router != "pgbouncer":
        raise _Invalid("stack.router.query_wait_timeout", f"PgBouncer's, not for {router}")
    try:
        RouterSettings(**data)  # type: ignore[arg-type] # checked by RouterSettings
    except (TypeError, ChaosError) as exc:
        raise _Invalid("stack.router", str(exc)) from exc
    return str(router), data


def _service(raw: object) -> dict[str, str]:
    data = _mapping(raw, "service", None)
    settings = {}
    for name, value in data.items():
        if not isinstance(name, str) or not name.isupper() or not name.isidentifier():
            raise _Invalid("service", f"expected setting names in capitals, got {name!r}")
        if isinstance(value, bool):
            value = str(value).lower()
        if not isinstance(value, str | int | float):
            raise _Invalid(f"service.{name}", f"expected a number or a string, got {value!r}")
        settings[name] = str(value)
    return settings


def _until(raw: object) -> dict[int, int]:
    out: dict[int, int] = {}
    for status, count in _mapping(raw or {}, "until").items():
        if not status.isdigit():
            raise _Invalid(f"until.{status}", "expected an HTTP status as the key")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise _Invalid(f"until.{status}", f"expected a positive count, got {count!r}")
        out[int(status)] = count
    return out


def _fault(raw: object, kinds: Mapping[str, FaultFactory]) -> Fault:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise _Invalid("fault", "expected a fault, or a non-empty list of faults")
    faults = []
    for index, item in enumerate(items):
        field = "fault" if not isinstance(raw, list) else f"fault[{index}]"
        try:
            faults.append(build_fault(kinds, _mapping(item, field)))
        except (ValueError, ScenarioError) as exc:
            raise _Invalid(field, str(exc)) from exc
    return FaultChain.of(faults)


def _scenario(raw: object, kinds: Mapping[str, FaultFactory]) -> Scenario:
    data = _mapping(raw, "", _SCENARIO_KEYS)
    for key in ("name", "description"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise _Invalid(key, f"expected a non-empty string, got {data.get(key)!r}")
    if "fault" not in data:
        raise _Invalid("fault", f"missing; expected a mapping with kind: one of {sorted(kinds)}")
    fault = _fault(data["fault"], kinds)
    stack, settings, router, router_settings = _stack(data.get("stack"))
    allowed = HA_BOUND_NAMES if stack == "ha" else frozenset()
    if "expect" not in data:
        raise _Invalid("expect", "missing; expected a mapping with at least `during`")
    expect = _expect(data["expect"], allowed)
    workload = _workload(data.get("workload", {}))
    duration = _number(data.get("duration", 2.5), "duration")
    recovery = (
        _bound(data["recovery_bound"], "recovery_bound", allowed)
        if "recovery_bound" in data
        else RECOVERY
    )
    return Scenario(
        name=str(data["name"]),
        description=str(data["description"]),
        fault=fault,
        expect=expect,
        workload=workload,
        duration=duration,
        recovery_bound=recovery,
        stack=stack,
        stack_settings=settings,
        router=router,
        router_settings=router_settings,
        until=_until(data.get("until")),
        service_settings=_service(data.get("service", {})),
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


def load_file(path: Path, *, kinds: Mapping[str, FaultFactory] | None = None) -> list[Scenario]:
    """The scenarios of one file; ScenarioFileError listing every problem."""
    return load_scenarios([path], kinds=kinds)


def scenario_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and every *.yaml / *.yml of a directory (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            files.append(path)
    return files


def load_scenarios(
    paths: Iterable[Path], *, kinds: Mapping[str, FaultFactory] | None = None
) -> list[Scenario]:
    """Every scenario of every file (directories: their *.yaml and *.yml files); `kinds`
    adds fault kinds to the registry's (a target's own: `target.fault_kinds()`).

    Every file is read and checked first; ScenarioFileError lists all problems of all
    files (and duplicate names), so nothing runs until every file is valid.
    """
    kinds = fault_kinds(kinds)
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
