"""The built-in scenario catalogue: chaos/scenarios/catalogue.yaml, loaded like any
scenario file (so the file format can do everything the catalogue does)."""

from __future__ import annotations

from importlib.resources import as_file, files

from chaos.scenarios.loader import load_file
from chaos.scenarios.model import Scenario

__all__ = ["CATALOGUE", "CATALOGUE_FILE", "by_name"]

CATALOGUE_FILE = "catalogue.yaml"


def _load() -> tuple[Scenario, ...]:
    with as_file(files("chaos.scenarios") / CATALOGUE_FILE) as path:
        return tuple(load_file(path))


CATALOGUE: tuple[Scenario, ...] = _load()


def by_name(name: str) -> Scenario:
    """The catalogue's scenario of that name."""
    for scenario in CATALOGUE:
        if scenario.name == name:
            return scenario
    raise KeyError(f"no scenario {name!r}; known: {', '.join(s.name for s in CATALOGUE)}")
