"""The chaos toolkit: real faults between a service and PostgreSQL, declared as scenarios,
run by one engine, checked, and reported.

The authoring surface is exported here::

    from chaos import Expect, NetworkToxic, Scenario, Latency, DEADLINE, run_scenario

Everything else lives in the subpackages: `chaos.infra` (Toxiproxy, PostgreSQL,
processes, stacks), `chaos.faults`, `chaos.scenarios` (model, file loader, catalogue),
`chaos.run` (engine, result, verdict), `chaos.targets` (the target interface and this
repository's service), `chaos.report`; `chaos.core` holds the vocabulary they share.
"""

from chaos.core.checks import CheckResult
from chaos.core.history import Operation, Outcome
from chaos.core.limits import Limits
from chaos.core.lost_writes import LostWritePolicy
from chaos.errors import ChaosError, ProcessError, ScenarioError, WaitTimeout
from chaos.faults import (
    DatabaseDown,
    DatabaseFrozen,
    Fault,
    FaultContext,
    HoldRowLock,
    NetworkToxic,
    ProxyDown,
    ReadOnlyDatabase,
    TerminateIdleBackends,
    fault_kinds,
)
from chaos.infra.stack import ExternalStack, LocalStack, Stack, StackEndpoints
from chaos.infra.toxiproxy import (
    AnyToxic,
    Bandwidth,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
    ToxicSpec,
    ToxiproxyClient,
    ToxiproxyError,
)
from chaos.run.engine import ScenarioRun, run_scenario, run_selection
from chaos.run.result import ScenarioResult
from chaos.scenarios.catalogue import catalogue
from chaos.scenarios.loader import ScenarioFileError, load_scenarios
from chaos.scenarios.model import (
    ACQUIRE,
    ANY_STATUS,
    DEADLINE,
    EVIDENCE_KINDS,
    HEALTH,
    RECOVERY,
    SLACK,
    STACKS,
    Bound,
    Expect,
    Scenario,
    Workload,
)
from chaos.targets.base import Target, load_target

__all__ = [
    "ACQUIRE",
    "ANY_STATUS",
    "DEADLINE",
    "EVIDENCE_KINDS",
    "HEALTH",
    "RECOVERY",
    "SLACK",
    "STACKS",
    "AnyToxic",
    "Bandwidth",
    "Bound",
    "ChaosError",
    "CheckResult",
    "DatabaseDown",
    "DatabaseFrozen",
    "Expect",
    "ExternalStack",
    "Fault",
    "FaultContext",
    "HoldRowLock",
    "Latency",
    "LimitData",
    "Limits",
    "LocalStack",
    "LostWritePolicy",
    "NetworkToxic",
    "Operation",
    "Outcome",
    "ProcessError",
    "ProxyDown",
    "ReadOnlyDatabase",
    "ResetPeer",
    "Scenario",
    "ScenarioError",
    "ScenarioFileError",
    "ScenarioResult",
    "ScenarioRun",
    "Slicer",
    "SlowClose",
    "Stack",
    "StackEndpoints",
    "Target",
    "TerminateIdleBackends",
    "Timeout",
    "ToxicSpec",
    "ToxiproxyClient",
    "ToxiproxyError",
    "WaitTimeout",
    "Workload",
    "catalogue",
    "fault_kinds",
    "load_scenarios",
    "load_target",
    "run_scenario",
    "run_selection",
]
