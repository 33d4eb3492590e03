"""The shipped scenarios: chaos/scenarios/catalogue.yaml (local and compose stacks) and
ha.yaml (the HA stack), loaded like any scenario file (so the file format can do
everything the shipped scenarios do), plus the target's own files."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import as_file, files
from pathlib import Path

from chaos.scenarios.loader import load_scenarios
from chaos.scenarios.model import Scenario
from chaos.targets.base import Target

__all__ = ["SHIPPED_FILES", "by_name", "catalogue", "for_stack", "shipped_files"]

SHIPPED_FILES = ("catalogue.yaml", "ha.yaml")


def shipped_files() -> list[Path]:
    """The paths of the shipped scenario files."""
    paths = []
    for name in SHIPPED_FILES:
        with as_file(files("chaos.scenarios") / name) as path:
            paths.append(Path(path))
    return paths


def catalogue(target: Target) -> list[Scenario]:
    """Every shipped scenario and the target's own, with the target's fault kinds."""
    return load_scenarios([*shipped_files(), *target.scenario_files], kinds=target.fault_kinds())


def for_stack(scenarios: Sequence[Scenario], stack: str, router: str = "libpq") -> list[Scenario]:
    """The scenarios a stack runs: those that need the HA stack on `ha` (and, among
    them, those that need no router or `router`), the others on every other stack."""
    wanted = "ha" if stack == "ha" else "any"
    return [s for s in scenarios if s.stack == wanted and s.router in (None, router)]


def by_name(scenarios: Sequence[Scenario], name: str) -> Scenario:
    """The scenario of that name."""
    for scenario in scenarios:
        if scenario.name == name:
            return scenario
    raise KeyError(f"no scenario {name!r}; known: {', '.join(s.name for s in scenarios)}")
