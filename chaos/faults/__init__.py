"""Faults: network toxics, database and process faults, each with an undo; fault kinds by
name for scenario files (built-in, the target's, and the `chaos.faults` entry points)."""

from chaos.faults.base import Fault, FaultContext
from chaos.faults.database import (
    DatabaseDown,
    DatabaseFrozen,
    HoldRowLock,
    ReadOnlyDatabase,
    TerminateIdleBackends,
)
from chaos.faults.network import NetworkToxic, ProxyDown
from chaos.faults.registry import ENTRY_POINT_GROUP, build_fault, fault_kinds

__all__ = [
    "ENTRY_POINT_GROUP",
    "DatabaseDown",
    "DatabaseFrozen",
    "Fault",
    "FaultContext",
    "HoldRowLock",
    "NetworkToxic",
    "ProxyDown",
    "ReadOnlyDatabase",
    "TerminateIdleBackends",
    "build_fault",
    "fault_kinds",
]
