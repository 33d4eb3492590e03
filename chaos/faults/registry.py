"""Fault kinds by name, as scenario files write them.

Built-in kinds are below (the HA stack's among them); a target adds its own
(`Target.fault_kinds`, passed here as `extra`), and any installed package adds more
through the entry point group `chaos.faults`::

    [project.entry-points."chaos.faults"]
    disk-full = "mypackage.faults:DiskFull"

The entry point loads a callable (usually a Fault subclass) that takes the file's keys
(everything but `kind`) as keyword arguments and returns a Fault.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points

from chaos.errors import ScenarioError
from chaos.faults.base import Fault, FaultFactory
from chaos.faults.chain import AwaitSuccesses
from chaos.faults.database import (
    DatabaseDown,
    DatabaseFrozen,
    HoldRowLock,
    ReadOnlyDatabase,
    TerminateIdleBackends,
)
from chaos.faults.ha import (
    EtcdPartition,
    ManualFailover,
    PausedSwitchover,
    PgBouncerRestart,
    PowerCut,
    ReplicationPartition,
    Switchover,
)
from chaos.faults.network import NetworkToxic, ProxyDown
from chaos.faults.schedule import Step, Timeline
from chaos.infra.toxiproxy import AnyToxic, Stream, known_attributes

__all__ = [
    "BUILTIN_FAULTS",
    "ENTRY_POINT_GROUP",
    "FaultFactory",
    "build_fault",
    "fault_kinds",
    "toxic",
]

ENTRY_POINT_GROUP = "chaos.faults"


def toxic(
    *,
    type: str,
    attributes: Mapping[str, object] | None = None,
    stream: Stream = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
    reconnect_every: float | None = None,
    proxy: str | None = None,
) -> NetworkToxic:
    """Any Toxiproxy toxic by its type name, with its attributes as the server names them,
    on the stack's database proxy or on the proxy named `proxy` (`pgbouncer`...).

    For the types Toxiproxy 2.12 knows, attribute names are checked (a typo fails before
    anything runs); a type it adds later is passed through for the server to validate.
    """
    attrs = dict(attributes or {})
    known = known_attributes(type)
    if known is not None and not set(attrs) <= known:
        raise ValueError(
            f"attributes {sorted(set(attrs) - known)} unknown to toxic {type!r}; expected "
            f"some of {sorted(known)}"
        )
    for key, value in attrs.items():
        if not isinstance(value, int | float | str | bool):
            raise ValueError(f"attributes.{key}: expected a number or a string, got {value!r}")
    spec = AnyToxic(toxic_type=type, attrs=attrs, stream=stream, toxicity=toxicity, name=name)
    return NetworkToxic(spec, reconnect_every=reconnect_every, proxy=proxy)


BUILTIN_FAULTS: Mapping[str, FaultFactory] = {
    "toxic": toxic,
    "proxy-down": ProxyDown,
    "row-lock": HoldRowLock,
    "terminate-idle-backends": TerminateIdleBackends,
    "database-down": DatabaseDown,
    "database-frozen": DatabaseFrozen,
    "read-only": ReadOnlyDatabase,
    "await-successes": AwaitSuccesses,
    # Built by build_fault itself: its steps hold faults of any kind (chaos.faults.schedule).
    "schedule": Timeline,
    # The HA stack's (chaos.faults.ha); on another stack they fail with what they need.
    "power-cut": PowerCut,
    "switchover": Switchover,
    "failover": ManualFailover,
    "replication-partition": ReplicationPartition,
    "etcd-partition": EtcdPartition,
    # With the HA stack's pgbouncer router.
    "paused-switchover": PausedSwitchover,
    "pgbouncer-restart": PgBouncerRestart,
}


def fault_kinds(extra: Mapping[str, FaultFactory] | None = None) -> dict[str, FaultFactory]:
    """Every fault kind a scenario file may name: built-in, `extra` (the target's), and
    the entry points'."""
    kinds: dict[str, FaultFactory] = dict(BUILTIN_FAULTS)
    kinds.update(extra or {})
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in kinds:
            raise ScenarioError(
                f"entry point {ep.value!r} in group {ENTRY_POINT_GROUP!r} redefines the fault "
                f"kind {ep.name!r}"
            )
        kinds[ep.name] = _lazy(ep.name, ep.load)
    return kinds


class _Lazy:
    """An entry point's fault kind, loaded when first used: to build a fault, or to read
    the ranges it declares for `pgchaos explore` (its `explore` attribute)."""

    def __init__(self, name: str, load: Callable[[], object]) -> None:
        self.name = name
        self._load = load

    def loaded(self) -> Callable[..., object]:
        try:
            made = self._load()
        except Exception as exc:
            raise ScenarioError(
                f"fault kind {self.name!r}: loading its entry point failed: {exc}"
            ) from exc
        if not callable(made):
            raise ScenarioError(f"fault kind {self.name!r}: entry point is not callable: {made!r}")
        return made

    @property
    def explore(self) -> object:
        return getattr(self.loaded(), "explore", None)

    @property
    def explore_exclusive(self) -> bool:
        return bool(getattr(self.loaded(), "explore_exclusive", False))

    def __call__(self, **params: object) -> Fault:
        made = self.loaded()
        _bind(self.name, made, params)
        fault = made(**params)
        if not isinstance(fault, Fault):
            raise ScenarioError(f"fault kind {self.name!r} made {fault!r}, not a chaos Fault")
        return fault


def _lazy(name: str, load: Callable[[], object]) -> FaultFactory:
    return _Lazy(name, load)


def _bind(kind: str, factory: Callable[..., object], params: Mapping[str, object]) -> None:
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as exc:
        raise ValueError(f"{exc} (fault kind {kind!r})") from exc
    except ValueError:  # no signature to inspect (a builtin): calling it will tell
        pass


def build_fault(kinds: Mapping[str, FaultFactory], params: Mapping[str, object]) -> Fault:
    """The fault a file declares: `kind` plus that kind's keyword arguments.

    ValueError, with what was expected, when the declaration is wrong.
    """
    kind = params.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        raise ValueError(f"kind: expected one of {', '.join(sorted(kinds))}, got {kind!r}")
    rest = {k: v for k, v in params.items() if k != "kind"}
    if kind == "schedule":
        return _schedule(kinds, rest)
    factory = kinds[kind]
    _bind(kind, factory, rest)
    try:
        fault = factory(**rest)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{kind}: {exc}") from exc
    return fault


def _schedule(kinds: Mapping[str, FaultFactory], params: Mapping[str, object]) -> Timeline:
    """A `schedule` fault: its steps, each a fault of any kind with `at` and `for`."""
    if set(params) != {"steps"} or not isinstance(params["steps"], list):
        raise ValueError("schedule: expected `steps:`, a list of {at, for, fault}")
    steps = []
    for n, raw in enumerate(params["steps"], start=1):
        if not isinstance(raw, dict) or set(raw) != {"at", "for", "fault"}:
            raise ValueError(f"schedule: step {n}: expected {{at, for, fault}}, got {raw!r}")
        for key, bound in (("at", ">= 0"), ("for", "> 0")):
            value = raw[key]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or value < 0 or (key == "for" and value == 0):
                raise ValueError(
                    f"schedule: step {n}: {key}: expected seconds {bound}, got {value!r}"
                )
        if not isinstance(raw["fault"], dict):
            raise ValueError(f"schedule: step {n}: fault: expected a mapping with its kind")
        try:
            fault = build_fault(kinds, raw["fault"])
            steps.append(Step(raw["at"], raw["for"], fault))
        except ValueError as exc:
            raise ValueError(f"schedule: step {n}: {exc}") from exc
    return Timeline(tuple(steps))
