"""pytest plugin of the chaos toolkit, registered through the `pytest11` entry point.

- Options (group "chaos"). Each has an ini twin (same name, underscores) and an
  environment default; the command line wins, then the environment, then the ini file:

  ========================== ============================= ==========================
  option                     ini                           environment
  ========================== ============================= ==========================
  --chaos                    chaos = true                  CI=true
  --chaos-service-url        chaos_service_url             CHAOS_SERVICE_URL
  --chaos-toxiproxy-url      chaos_toxiproxy_url           CHAOS_TOXIPROXY_URL
  --chaos-database-url       chaos_database_url            CHAOS_DATABASE_URL
  --chaos-proxied-database-url chaos_proxied_database_url  CHAOS_PROXIED_DATABASE_URL
  --chaos-compose-project    chaos_compose_project         CHAOS_COMPOSE_PROJECT
  --chaos-report-dir         chaos_report_dir              CHAOS_REPORT_DIR
  --chaos-scenarios (repeat) chaos_scenarios (lines)       CHAOS_SCENARIOS (os.pathsep)
  ========================== ============================= ==========================

- Marker `chaos`: CI-only fault tests. They run when CI=true or --chaos is given and are
  skipped otherwise, with a reason that says how to run them (the Python form of the
  story's `//go:build ci`). A test gets the marker automatically when it uses one of this
  plugin's stack fixtures, resolved by definition: a fixture of the same name that a
  project defines itself is that project's business, and is left alone.
- Fixtures, all prefixed `chaos_`: `chaos_config`, `chaos_target`, `chaos_stack` (session:
  a LocalStack, or an ExternalStack when --chaos-service-url is given),
  `chaos_toxiproxy` (reset after every test), `chaos_pg_admin` (direct admin
  connection), `chaos_service_client` (httpx client for the service),
  `chaos_service_limits` (the limits the running service reports), `chaos_report`
  (results written to --chaos-report-dir as each test finishes).
- Scenario files given with --chaos-scenarios become one test each
  (`chaos-scenarios/<file>::<scenario>`), run by the same engine with the same checks;
  every file is validated before any test runs (a usage error lists the problems).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaos.checks.probes import CANCEL_AND_DRAIN, Limits, read_metrics
from chaos.errors import ChaosError
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.stack import ExternalStack, LocalStack, Stack, StackEndpoints
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.run.result import ScenarioResult
from chaos.scenarios.loader import ScenarioFileError, load_scenarios, scenario_files
from chaos.scenarios.model import Scenario
from chaos.targets.base import Target
from chaos.targets.coupons import COUPONS

__all__ = ["SKIP_REASON", "ChaosConfig"]

SKIP_REASON = (
    "chaos tests are CI-only: run with CI=true or pass --chaos "
    "(add --chaos-service-url etc. to target a running compose stack; see README)"
)

# The plugin's fixtures that need the stack: a test using one of these (as this plugin
# defines it) is a chaos test.
_STACK_FIXTURES = frozenset(
    {
        "chaos_stack",
        "chaos_toxiproxy",
        "chaos_pg_admin",
        "chaos_pg_admin_session",
        "chaos_service_client",
        "chaos_service_limits",
        "chaos_run",
    }
)

_URL_OPTIONS = (
    ("service_url", "CHAOS_SERVICE_URL", "URL of a running service (external stack)"),
    ("toxiproxy_url", "CHAOS_TOXIPROXY_URL", "Toxiproxy API URL of the external stack"),
    ("database_url", "CHAOS_DATABASE_URL", "direct (unproxied) database URL, for admin"),
    ("proxied_database_url", "CHAOS_PROXIED_DATABASE_URL", "database URL via Toxiproxy"),
    ("compose_project", "CHAOS_COMPOSE_PROJECT", "compose project, for database faults"),
    ("report_dir", "CHAOS_REPORT_DIR", "write journal.json, junit.xml, report.html here"),
)


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """The plugin's options, resolved once per session."""

    enabled: bool
    service_url: str | None
    toxiproxy_url: str | None
    database_url: str | None
    proxied_database_url: str | None
    compose_project: str | None
    report_dir: str | None
    scenario_paths: tuple[str, ...] = ()

    @property
    def external(self) -> bool:
        """Whether the tests target a stack somebody else runs."""
        return bool(self.service_url)

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> ChaosConfig:
        """Command line, else environment, else ini."""

        def value(name: str, env: str) -> str | None:
            given = config.getoption(f"chaos_{name}")
            if given is not None:
                return str(given)
            if os.environ.get(env):
                return os.environ[env]
            ini = config.getini(f"chaos_{name}")
            return str(ini) if ini else None

        paths: list[str] = list(config.getoption("chaos_scenarios") or [])
        if not paths and os.environ.get("CHAOS_SCENARIOS"):
            paths = [p for p in os.environ["CHAOS_SCENARIOS"].split(os.pathsep) if p]
        if not paths:
            root = config.inipath.parent if config.inipath else config.rootpath
            paths = [str(root / p) for p in config.getini("chaos_scenarios")]
        enabled = (
            bool(config.getoption("chaos"))
            or os.environ.get("CI", "").lower() == "true"
            or bool(config.getini("chaos"))
        )
        values = {name: value(name, env) for name, env, _ in _URL_OPTIONS}
        return cls(enabled=enabled, scenario_paths=tuple(paths), **values)

    def build_stack(self) -> Stack:
        """An ExternalStack when a service URL is given, else a LocalStack."""
        if not self.external:
            return LocalStack()
        if not (self.toxiproxy_url and self.database_url):
            raise ChaosError(
                "an external stack needs --chaos-toxiproxy-url and --chaos-database-url"
            )
        return ExternalStack(
            StackEndpoints(
                service_url=str(self.service_url),
                toxiproxy_url=self.toxiproxy_url,
                database_url=self.database_url,
                proxied_database_url=self.proxied_database_url or "",
            ),
            compose_project=self.compose_project,
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "chaos toolkit (CI-only fault tests)")
    group.addoption(
        "--chaos",
        action="store_true",
        default=False,
        help="run tests marked chaos (also on when CI=true or ini chaos = true)",
    )
    parser.addini("chaos", "run tests marked chaos", type="bool", default=False)
    for name, env, text in _URL_OPTIONS:
        group.addoption(
            f"--chaos-{name.replace('_', '-')}",
            dest=f"chaos_{name}",
            default=None,
            help=f"{text} [env {env}, ini chaos_{name}]",
        )
        parser.addini(f"chaos_{name}", f"{text} [env {env}]", default=None)
    group.addoption(
        "--chaos-scenarios",
        dest="chaos_scenarios",
        action="append",
        default=None,
        metavar="FILE_OR_DIR",
        help="scenario file or directory to run as tests (repeatable) "
        "[env CHAOS_SCENARIOS, ini chaos_scenarios]",
    )
    parser.addini("chaos_scenarios", "scenario files or directories to run", type="linelist")


_CONFIG_KEY = pytest.StashKey[ChaosConfig]()
_SCENARIOS_KEY = pytest.StashKey[list[tuple[Path, Scenario]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: CI-only fault test; runs with CI=true or --chaos, skipped otherwise"
    )
    cfg = ChaosConfig.from_pytest(config)
    config.stash[_CONFIG_KEY] = cfg
    # Every file is checked before any test runs, and every problem of every file is
    # reported at once (the loader does the same for a list of files).
    paths = [Path(raw).resolve() for raw in cfg.scenario_paths]
    try:
        load_scenarios(paths)
    except ScenarioFileError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[_SCENARIOS_KEY] = [
        (path, s) for path in scenario_files(paths) for s in load_scenarios([path])
    ]


def _uses_plugin_stack(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for name, defs in info.name2fixturedefs.items():
        # defs[-1] is the definition this test gets (the closest override).
        if name in _STACK_FIXTURES and defs and _defined_here(defs[-1]):
            return True
    return False


def _defined_here(fixturedef: Any) -> bool:
    func = getattr(fixturedef, "func", None)
    return getattr(func, "__module__", None) == __name__


class _ScenarioFile(pytest.File):
    """The scenarios of one file, as collected tests."""

    def collect(self) -> Iterator[pytest.Item]:
        for path, scenario in self.config.stash[_SCENARIOS_KEY]:
            if path == self.path:
                yield _scenario_test(self, scenario)


def _scenario_test(parent: pytest.File, scenario: Scenario) -> pytest.Function:
    def test(chaos_run: Callable[[Scenario], ScenarioResult]) -> None:
        result = chaos_run(scenario)
        if not result.passed:
            failed = ", ".join(c.name for c in result.failed_checks())
            pytest.fail(f"failed checks: {failed}\n{result.summary()}", pytrace=False)

    test.__doc__ = scenario.description
    return pytest.Function.from_parent(parent, name=scenario.name, callobj=test)


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect, so they apply to scenario tests
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    seen: set[Path] = set()
    for path, _ in config.stash[_SCENARIOS_KEY]:
        if path not in seen:
            seen.add(path)
            items.extend(_ScenarioFile.from_parent(session, path=path).collect())
    enabled = config.stash[_CONFIG_KEY].enabled
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if _uses_plugin_stack(item):
            item.add_marker(pytest.mark.chaos)
        if item.get_closest_marker("chaos") and not enabled:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chaos_config(pytestconfig: pytest.Config) -> ChaosConfig:
    """The plugin's resolved options."""
    return pytestconfig.stash[_CONFIG_KEY]


@pytest.fixture(scope="session")
def chaos_target() -> Target:
    """The service under test's target (override it to test another service)."""
    return COUPONS


@pytest.fixture(scope="session")
def chaos_stack(chaos_config: ChaosConfig) -> Iterator[Stack]:
    """The stack under test, started once per session and always torn down."""
    stack = chaos_config.build_stack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def chaos_report(chaos_config: ChaosConfig) -> list[ScenarioResult]:
    """Scenario results of the session, written to --chaos-report-dir as they are added."""
    return _ReportingList(Path(chaos_config.report_dir) if chaos_config.report_dir else None)


class _ReportingList(list[ScenarioResult]):
    """A list that rewrites the reports each time a result is added: a crash keeps what
    finished."""

    def __init__(self, directory: Path | None) -> None:
        super().__init__()
        self._directory = directory

    def append(self, result: ScenarioResult) -> None:
        super().append(result)
        if self._directory is not None:
            from chaos.report.writers import write_reports

            write_reports(self, self._directory)


@pytest.fixture
def chaos_toxiproxy(chaos_stack: Stack) -> Iterator[ToxiproxyClient]:
    """Toxiproxy client; every proxy is reset (toxics removed, enabled) after the test."""
    client = chaos_stack.toxiproxy()
    try:
        yield client
    finally:
        try:
            client.reset()
        finally:
            client.close()


@pytest.fixture(scope="session")
def chaos_pg_admin_session(chaos_stack: Stack, chaos_target: Target) -> Iterator[PostgresAdmin]:
    """The session's admin connection (use `chaos_pg_admin`)."""
    admin = PostgresAdmin(
        chaos_stack.endpoints.database_url, application_name=chaos_target.application_name
    )
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def chaos_pg_admin(chaos_pg_admin_session: PostgresAdmin) -> PostgresAdmin:
    """Admin helpers on a direct connection to the stack's database."""
    return chaos_pg_admin_session


@pytest.fixture
def chaos_service_client(
    chaos_stack: Stack, chaos_service_limits: Limits
) -> Iterator[httpx.Client]:
    """HTTP client for the stack's service."""
    with httpx.Client(
        base_url=chaos_stack.endpoints.service_url, timeout=chaos_service_limits.cleanup_bound
    ) as client:
        yield client


@pytest.fixture
def chaos_run(
    chaos_stack: Stack,
    chaos_toxiproxy: ToxiproxyClient,
    chaos_pg_admin: PostgresAdmin,
    chaos_service_client: httpx.Client,
    chaos_service_limits: Limits,
    chaos_target: Target,
    chaos_report: list[ScenarioResult],
) -> Callable[[Scenario], ScenarioResult]:
    """Runs a scenario against the stack (chaos.run.engine.run_scenario) and adds its
    result to the report; the test asserts on the result."""
    from chaos.run.engine import run_scenario

    def run(scenario: Scenario) -> ScenarioResult:
        result = run_scenario(
            chaos_stack,
            scenario,
            toxiproxy=chaos_toxiproxy,
            admin=chaos_pg_admin,
            service=chaos_service_client,
            limits=chaos_service_limits,
            target=chaos_target,
        )
        chaos_report.append(result)
        return result

    return run


@pytest.fixture(scope="session")
def chaos_service_limits(chaos_stack: Stack) -> Limits:
    """The limits the running service reports; bounds are derived from these."""
    # The first request reads the limits; CANCEL_AND_DRAIN bounds it.
    with httpx.Client(
        base_url=chaos_stack.endpoints.service_url, timeout=CANCEL_AND_DRAIN
    ) as client:
        return Limits.from_metrics(read_metrics(client))
