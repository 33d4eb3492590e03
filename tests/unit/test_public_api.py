"""The public authoring API: `chaos.__all__` is sorted, resolvable and complete."""

from __future__ import annotations

import inspect
from importlib.resources import files

import chaos
import chaos.errors
import chaos.faults
import chaos.infra.toxiproxy
import chaos.scenarios.model


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert chaos.__all__ == sorted(chaos.__all__, key=_isort_key)
    assert len(set(chaos.__all__)) == len(chaos.__all__)
    missing = [name for name in chaos.__all__ if not hasattr(chaos, name)]
    assert not missing


def test_all_holds_the_whole_authoring_surface() -> None:
    required = set(chaos.errors.__all__) | set(chaos.scenarios.model.__all__)
    required |= {
        name
        for name in chaos.faults.__all__
        if inspect.isclass(getattr(chaos.faults, name))
        and issubclass(getattr(chaos.faults, name), chaos.faults.Fault)
    }
    required |= {
        name
        for name in chaos.infra.toxiproxy.__all__
        if inspect.isclass(getattr(chaos.infra.toxiproxy, name))
        and issubclass(getattr(chaos.infra.toxiproxy, name), chaos.infra.toxiproxy.ToxicSpec)
    }
    required |= {"run_scenario", "run_selection", "load_scenarios", "LocalStack", "ExternalStack"}
    assert sorted(required - set(chaos.__all__)) == []


def test_the_package_ships_its_data() -> None:
    assert files("chaos").joinpath("py.typed").is_file()
    assert files("chaos.scenarios").joinpath("catalogue.yaml").is_file()
    assert files("chaos").joinpath("compose", "toxiproxy.json").is_file()
