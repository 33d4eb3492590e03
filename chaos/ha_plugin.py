"""pytest plugin for the HA suite (`pytest11` entry point `chaos_ha`).

- Option `--ha` (its ini twin `ha = true`, and CI=true, turn it on too): tests marked
  `ha` run only then, and are skipped otherwise with a reason that says how to run
  them. Tests that use an HA fixture get the marker automatically.
- Fixtures: `chaos_ha_stack` (session: etcd, Patroni nodes, Toxiproxy, the service;
  always torn down), `chaos_ha` (the stack, healed before and after the test: every
  proxy reset, every node running, one leader and streaming standbys, default Patroni
  settings), `chaos_ha_toxiproxy` (a client for the stack's Toxiproxy), `chaos_ha_report`
  (saves a run's JSON record and timeline picture under `<--chaos-report-dir>/ha` when a
  report directory is given, and prints the verdict).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaos.infra.ha_stack import HaStack
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.pytest_plugin import ChaosConfig
from chaos.run.ha import HaRun, HaVerdict
from chaos.scenarios.ha import heal_cluster

__all__ = ["HA_SKIP_REASON", "SaveReport"]

HA_SKIP_REASON = (
    "HA tests are CI-only: run with CI=true or pass --ha "
    "(they need Debian's etcd-server and build Patroni into .cache/patroni-venv)"
)


_HA_FIXTURES = {"chaos_ha_stack", "chaos_ha", "chaos_ha_toxiproxy", "chaos_ha_report"}

SaveReport = Callable[[str, HaRun, HaVerdict], None]
"""Saves one run's report: (scenario name, run, verdict)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos-ha", "chaos toolkit: HA cluster tests (CI-only)")
    group.addoption(
        "--ha",
        action="store_true",
        default=False,
        help="run tests marked ha (also on when CI=true or ini ha = true)",
    )
    parser.addini("ha", "run tests marked ha", type="bool", default=False)


def _enabled(config: pytest.Config) -> bool:
    return (
        bool(config.getoption("ha"))
        or bool(config.getini("ha"))
        or os.environ.get("CI", "").lower() == "true"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    enabled = _enabled(config)
    skip = pytest.mark.skip(reason=HA_SKIP_REASON)
    for item in items:
        if _HA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ha)
        if item.get_closest_marker("ha") and not enabled:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chaos_ha_stack() -> Iterator[HaStack]:
    """The HA stack, started once per session and always torn down."""
    stack = HaStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def chaos_ha(chaos_ha_stack: HaStack) -> Iterator[HaStack]:
    """The HA stack, healthy with default settings before the test and healed after it."""
    heal_cluster(chaos_ha_stack)
    try:
        yield chaos_ha_stack
    finally:
        heal_cluster(chaos_ha_stack)


@pytest.fixture
def chaos_ha_toxiproxy(chaos_ha_stack: HaStack) -> Iterator[ToxiproxyClient]:
    """A client for the HA stack's Toxiproxy."""
    client = chaos_ha_stack.toxiproxy()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def chaos_ha_report(chaos_config: ChaosConfig) -> SaveReport:
    """Print a run's verdict and, with a report directory, save its JSON and picture."""
    # The chaos plugin resolves --chaos-report-dir (its ini and environment twins too).
    directory = chaos_config.report_dir

    def save(name: str, run: HaRun, verdict: HaVerdict) -> None:
        print(f"{name}:\n{verdict.summary()}")
        if directory:
            from chaos.report.ha import write_ha_report

            write_ha_report(Path(directory) / "ha", name, run, verdict)

    return save
