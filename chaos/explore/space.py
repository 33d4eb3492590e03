"""What a schedule is drawn from: the fault kinds with the ranges of their parameters that
matter, step durations and gaps, overlaps, and the workload; and how each part gets
milder when a failing schedule is shrunk.

Everything is drawn from a `random.Random` seeded by the exploration's seed and the
schedule's index: the same seed draws the same schedules.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "DURATION",
    "EXCLUSIVE",
    "FAULT_CHECK_PREFIX",
    "FREE_CHECKS",
    "GAP",
    "HA_KINDS",
    "KINDS",
    "MAX_FAULTS",
    "Attribute",
    "Kind",
    "PlannedStep",
    "Schedule",
    "declared_kinds",
    "draw",
    "judged",
    "kind_of",
    "kinds_for",
    "smaller",
]

#: Faults in one schedule, at most.
MAX_FAULTS = 3
#: Seconds a step is on: (least, most). Shrinking halves toward the least, never below
#: it: a shorter fault meets too few requests to show it acted.
DURATION = (0.5, 4.0)
#: Seconds between one step's start and the next one's when they do not overlap.
GAP = (0.0, 2.0)
#: Share of steps that start while the previous one is still on.
OVERLAP = 0.3
#: Workload: concurrent clients and keys, (least, most).
CONCURRENCY = (2, 16)
KEYS = (1, 3)

#: Checks that judge the answers while a fault is on: free in an exploration (any
#: answer is allowed then). A fault's own checks (named `fault:...`) are free too: they
#: state what the fault meets when it runs alone (every idle backend terminated, say),
#: and in a schedule other faults change that. Every other check judges.
FREE_CHECKS = frozenset({"answers-during-fault", "answers-in-transition"})
FAULT_CHECK_PREFIX = "fault:"


def judged(check: str) -> bool:
    """Whether an exploration judges a schedule by this check."""
    return check not in FREE_CHECKS and not check.startswith(FAULT_CHECK_PREFIX)


@dataclass(frozen=True)
class Attribute:
    """A numeric parameter: its range, and which end is the mildest."""

    low: float
    high: float
    mild: float
    whole: bool = True

    def draw(self, rng: random.Random) -> float:
        value = rng.uniform(self.low, self.high)
        return float(round(value)) if self.whole else round(value, 2)

    def milder(self, value: float) -> float:
        """Half way to the mildest value."""
        step = (value + self.mild) / 2
        return float(round(step)) if self.whole else round(step, 2)


@dataclass(frozen=True)
class Kind:
    """A fault kind as exploration draws it: fixed keys, numeric attributes with ranges."""

    name: str
    fixed: Mapping[str, object] = field(default_factory=dict)
    attributes: Mapping[str, Attribute] = field(default_factory=dict)
    toxic: bool = False
    exclusive: bool = False
    """Never on at the same time as another step (see EXCLUSIVE)."""
    once: bool = False
    """At most one step of such kinds per schedule: a cluster fault (a promotion, a
    partition) leaves the cluster healing after its removal, and a second one would meet
    the heal, not the cluster."""

    def draw(self, rng: random.Random) -> dict[str, object]:
        """One declaration of this kind, as a scenario file writes it."""
        decl: dict[str, object] = {"kind": "toxic" if self.toxic else self.name, **self.fixed}
        values = {k: _number(a.draw(rng)) for k, a in self.attributes.items()}
        if self.toxic:
            decl["attributes"] = values
            decl["stream"] = rng.choice(["downstream", "upstream"])
            # Toxiproxy draws toxicity once per connection; the pool's few long-lived
            # connections may all escape a partial toxic, which would then do nothing.
            # Only toxics whose connections are churned (new ones keep coming) draw it.
            churned = "reconnect_every" in self.fixed
            decl["toxicity"] = rng.choice([1.0, 0.5]) if churned else 1.0
        else:
            decl.update(values)
        return decl

    def milder(self, decl: Mapping[str, Any]) -> Iterator[dict[str, object]]:
        """Each attribute moved half way to its mildest value, one at a time."""
        values = decl.get("attributes", decl) if self.toxic else decl
        for key, attribute in self.attributes.items():
            now = float(values[key])
            mild = attribute.milder(now)
            if mild != now:
                changed = {**values, key: _number(mild)}
                yield {**decl, "attributes": changed} if self.toxic else {**decl, **changed}


def _number(value: float) -> int | float:
    return int(value) if value == int(value) else value


#: Seconds between terminations of the pool's idle backends under a churned toxic.
CHURN_EVERY = 0.5


def _toxic(type_: str, *, churn: bool = False, **attributes: Attribute) -> Kind:
    fixed: dict[str, object] = {"type": type_}
    if churn:
        fixed["reconnect_every"] = CHURN_EVERY
    return Kind(f"toxic:{type_}", fixed=fixed, attributes=attributes, toxic=True)


KINDS: tuple[Kind, ...] = (
    _toxic("latency", latency=Attribute(100, 3000, 100), jitter=Attribute(0, 300, 0)),
    _toxic("bandwidth", rate=Attribute(0, 4, 4)),
    _toxic("timeout", timeout=Attribute(0, 2000, 2000)),
    # Toxics that act on connections opened after them, or on closes: the pool's idle
    # connections are churned so that they meet the toxic (the catalogue does the same).
    _toxic("reset_peer", timeout=Attribute(0, 1000, 1000), churn=True),
    _toxic("slow_close", delay=Attribute(200, 2000, 200), churn=True),
    _toxic(
        "slicer",
        average_size=Attribute(1, 8, 8),
        size_variation=Attribute(0, 4, 0),
        delay=Attribute(15000, 30000, 15000),
    ),
    _toxic("limit_data", bytes=Attribute(256, 8192, 8192)),
    Kind("proxy-down"),
    Kind("row-lock", exclusive=True),
    Kind("terminate-idle-backends"),
    Kind("database-down", exclusive=True),
    Kind("database-frozen", exclusive=True),
    Kind("read-only"),
)
"""The kinds a local or compose stack explores, with the ranges that matter (the mild end
of each still acts: a fault that does nothing fails fault-observed, which is a finding
about the range, not the service): every Toxiproxy toxic type on either stream, the
proxy down, the database faults, and the database turned read-only."""

EXCLUSIVE = frozenset(k.name for k in KINDS if k.exclusive)
"""Kinds that never overlap another step: a stop of a frozen server, or a lock held on a
database that is stopped, is not a fault the service meets, it is a harness that fails."""

HA_KINDS: tuple[Kind, ...] = (
    *(
        k
        for k in KINDS
        if k.toxic or k.name in ("proxy-down", "terminate-idle-backends", "read-only")
    ),
    Kind("power-cut", fixed={"promotion": "expected"}, exclusive=True, once=True),
    Kind("switchover", exclusive=True, once=True),
    Kind("failover", exclusive=True, once=True),
    Kind("replication-partition", exclusive=True, once=True),
    Kind("etcd-partition", exclusive=True, once=True),
)
"""The kinds the HA stack explores: the toxics and the proxy down (on the client proxy
of the node that leads when the step begins), idle terminations, and one cluster fault
at most per schedule (power cut with a promotion, switchover, failover, replication
partition, etcd partition). The database faults of a single server are not among them:
on a cluster, Patroni restarts what they stop."""


def declared_kinds(factories: Mapping[str, object]) -> tuple[Kind, ...]:
    """Kinds from fault factories that declare what exploring them means: a factory (a
    Fault subclass, usually) with an `explore` attribute, a mapping of parameter name to
    `(low, high, mildest)`; `{}` for a kind without parameters. A float in any of the
    three makes the parameter a float, else a whole number. Factories without it are
    not explored (nobody said which values matter)."""
    kinds = []
    for name, factory in factories.items():
        ranges = getattr(factory, "explore", None)
        if ranges is None:
            continue
        if not isinstance(ranges, Mapping):
            raise TypeError(f"fault kind {name!r}: `explore` must be a mapping, got {ranges!r}")
        attributes = {}
        for key, value in ranges.items():
            low, high, mild = value
            whole = all(isinstance(v, int) for v in (low, high, mild))
            if not (min(low, high) <= mild <= max(low, high)):
                raise ValueError(
                    f"fault kind {name!r}: {key}: mildest {mild} not in [{low}, {high}]"
                )
            attributes[str(key)] = Attribute(float(low), float(high), float(mild), whole)
        exclusive = bool(getattr(factory, "explore_exclusive", False))
        kinds.append(Kind(name, attributes=attributes, exclusive=exclusive))
    return tuple(kinds)


def kinds_for(stack: str, extra: Mapping[str, object] | None = None) -> tuple[Kind, ...]:
    """What an exploration on `stack` (`local`, `compose` or `ha`) draws from: the
    built-in kinds of that stack, and the kinds of `extra` (the target's, the entry
    points') that declare their ranges."""
    builtin = HA_KINDS if stack == "ha" else KINDS
    names = {k.name for k in builtin}
    return builtin + tuple(k for k in declared_kinds(extra or {}) if k.name not in names)


@dataclass(frozen=True)
class PlannedStep:
    """One fault of a schedule: its declaration, when it starts and how long it lasts."""

    at: float
    duration: float
    fault: Mapping[str, object]
    kind: str

    def as_dict(self) -> dict[str, object]:
        """The step as a scenario file writes it."""
        return {"at": self.at, "for": self.duration, "fault": dict(self.fault)}


@dataclass(frozen=True)
class Schedule:
    """A drawn schedule: steps on one clock and the workload."""

    steps: tuple[PlannedStep, ...]
    concurrency: int
    keys: int

    @property
    def overlaps(self) -> int:
        """Pairs of steps that are on at the same time."""
        s = self.steps
        return sum(
            1
            for i in range(len(s))
            for j in range(i + 1, len(s))
            if s[i].at < s[j].at + s[j].duration and s[j].at < s[i].at + s[i].duration
        )

    @property
    def size(self) -> tuple[float, ...]:
        """What shrinking makes smaller, in order of importance."""
        return (
            len(self.steps),
            sum(s.duration for s in self.steps),
            max((s.at for s in self.steps), default=0.0),
            self.concurrency,
            self.keys,
        )

    def describe(self) -> str:
        """The schedule in one line."""
        steps = "; ".join(f"{s.kind} at {s.at:g} s for {s.duration:g} s" for s in self.steps)
        return f"{steps}; {self.concurrency} clients on {self.keys} key(s)"

    def scenario(self, name: str, description: str, stack: str = "any") -> dict[str, object]:
        """The schedule as a scenario file's entry: any answer while a fault is on."""
        return {
            "name": name,
            "description": description,
            **({"stack": stack} if stack != "any" else {}),
            "fault": {"kind": "schedule", "steps": [s.as_dict() for s in self.steps]},
            "workload": {"concurrency": self.concurrency, "keys": self.keys},
            "duration": 0,
            "expect": {"during": "any"},
        }


def draw(rng: random.Random, kinds: tuple[Kind, ...] = KINDS) -> Schedule:
    """One schedule: 1 to MAX_FAULTS steps, sequential or overlapping, and a workload."""
    steps: list[PlannedStep] = []
    at = 0.0
    exclusive = {k.name for k in kinds if k.exclusive}
    for _ in range(rng.randint(1, MAX_FAULTS)):
        had_once = any(k.once and k.name in {s.kind for s in steps} for k in kinds)
        kind = rng.choice([k for k in kinds if not (k.once and had_once)])
        duration = round(rng.uniform(*DURATION), 2)
        alone = kind.name in exclusive or (steps and steps[-1].kind in exclusive)
        if steps:
            last = steps[-1]
            if not alone and rng.random() < OVERLAP:
                at = round(last.at + rng.uniform(0.1, 0.9) * last.duration, 2)
            else:
                # After the last step; a step that must be alone, after every step.
                done = max(s.at + s.duration for s in steps) if alone else last.at + last.duration
                at = round(done + rng.uniform(*GAP), 2)
        steps.append(PlannedStep(at, duration, kind.draw(rng), kind.name))
    return Schedule(tuple(steps), rng.randint(*CONCURRENCY), rng.randint(*KEYS))


def kind_of(name: str, kinds: tuple[Kind, ...] = KINDS) -> Kind:
    """The kind of that name."""
    return next(k for k in kinds if k.name == name)


def smaller(schedule: Schedule, kinds: tuple[Kind, ...] = KINDS) -> Iterator[Schedule]:
    """Every one-move smaller schedule, the biggest moves first: a step dropped, a step
    shortened, the gaps before steps halved, an attribute milder, fewer clients, one key."""
    steps = schedule.steps
    if len(steps) > 1:
        for i in range(len(steps)):
            rest = steps[:i] + steps[i + 1 :]
            shift = rest[0].at
            yield replace(
                schedule, steps=tuple(replace(s, at=round(s.at - shift, 2)) for s in rest)
            )
    for i, step in enumerate(steps):
        shorter = max(DURATION[0], round(step.duration / 2, 2))
        if shorter < step.duration:
            yield _with(schedule, i, replace(step, duration=shorter))
    if any(s.at > 0 for s in steps):
        yield replace(schedule, steps=tuple(replace(s, at=round(s.at / 2, 2)) for s in steps))
    for i, step in enumerate(steps):
        for milder in kind_of(step.kind, kinds).milder(step.fault):
            yield _with(schedule, i, replace(step, fault=milder))
    if schedule.concurrency > 1:
        yield replace(schedule, concurrency=max(1, schedule.concurrency // 2))
    if schedule.keys > 1:
        yield replace(schedule, keys=1)


def _with(schedule: Schedule, index: int, step: PlannedStep) -> Schedule:
    steps = list(schedule.steps)
    steps[index] = step
    return replace(schedule, steps=tuple(steps))
