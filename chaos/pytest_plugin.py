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

  --chaos-target             chaos_target                  CHAOS_TARGET
  --ha                       ha = true                     CI=true
  ========================== ============================= ==========================

- Marker `chaos`: CI-only fault tests. They run when CI=true or --chaos is given and are
  skipped otherwise, with a reason that says how to run them (the Python form of the
  story's `//go:build ci`). A test that uses one of this plugin's stack fixtures is
  skipped the same way when they are off; the check is made when the fixture is set up,
  by its definition, so a fixture of the same name that a project defines itself is
  that project's business, and is left alone.
- Marker `ha`: tests of the HA stack (etcd, Patroni nodes), on with --ha, ini `ha` or
  CI=true; the HA fixtures are gated the same way.
- Fixtures, all prefixed `chaos_`: `chaos_config`, `chaos_target` (the --chaos-target
  import path, this repository's service by default; override the fixture to test
  another service), `chaos_stack` (session: a LocalStack, or an ExternalStack when
  --chaos-service-url is given), `chaos_ha_stack` (session: the HA stack),
  `chaos_ha` (the HA stack healed before and after the test), `chaos_toxiproxy` (reset
  after every test), `chaos_pg_admin` (direct admin connection), `chaos_service_client`
  (httpx client for the service), `chaos_service_limits` (the limits the running service
  reports), `chaos_run` (runs a scenario on the stack it needs, heals the stack after it,
  and adds the result to the report), `chaos_explore` (`pgchaos explore` on the session's
  stack), `chaos_report` (results written to --chaos-report-dir as each test finishes).
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

from chaos.core.limits import CANCEL_AND_DRAIN, Limits
from chaos.errors import ChaosError
from chaos.explore.runner import Exploration
from chaos.infra.ha_stack import NODES, HaStack
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import read_limits
from chaos.infra.routers import ROUTERS
from chaos.infra.stack import ExternalStack, LocalStack, Stack, StackEndpoints
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.run.result import ScenarioResult
from chaos.scenarios.loader import ScenarioFileError, load_scenarios, scenario_files
from chaos.scenarios.model import Scenario
from chaos.targets.base import DEFAULT_TARGET, Target, load_target

__all__ = ["HA_SKIP_REASON", "SKIP_REASON", "ChaosConfig"]

SKIP_REASON = (
    "chaos tests are CI-only: run with CI=true or pass --chaos "
    "(add --chaos-service-url etc. to target a running compose stack; see README)"
)
HA_SKIP_REASON = (
    "HA tests are CI-only: run with CI=true or pass --ha "
    "(they need Debian's etcd-server and build Patroni into .cache/patroni-venv)"
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
        "chaos_explore",
    }
)
_HA_FIXTURES = frozenset({"chaos_ha_stack", "chaos_ha", "chaos_ha_toxiproxy"})

_URL_OPTIONS = (
    ("service_url", "CHAOS_SERVICE_URL", "URL of a running service (external stack)"),
    ("toxiproxy_url", "CHAOS_TOXIPROXY_URL", "Toxiproxy API URL of the external stack"),
    ("database_url", "CHAOS_DATABASE_URL", "direct (unproxied) database URL, for admin"),
    ("proxied_database_url", "CHAOS_PROXIED_DATABASE_URL", "database URL via Toxiproxy"),
    ("compose_project", "CHAOS_COMPOSE_PROJECT", "compose project, for database faults"),
    ("report_dir", "CHAOS_REPORT_DIR", "write journal.json, junit.xml, report.html here"),
    ("target", "CHAOS_TARGET", f"the service's target, module:attribute ({DEFAULT_TARGET})"),
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
    target: str | None = None
    scenario_paths: tuple[str, ...] = ()
    ha: bool = False

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
        ha = (
            bool(config.getoption("ha"))
            or bool(config.getini("ha"))
            or os.environ.get("CI", "").lower() == "true"
        )
        values = {name: value(name, env) for name, env, _ in _URL_OPTIONS}
        return cls(enabled=enabled, scenario_paths=tuple(paths), ha=ha, **values)

    def load_target(self) -> Target:
        """The configured target (this repository's service by default)."""
        return load_target(self.target or DEFAULT_TARGET)

    def build_stack(self, target: Target | None = None) -> Stack:
        """An ExternalStack when a service URL is given, else a LocalStack running the
        target's service."""
        if not self.external:
            if target is None:
                return LocalStack()
            return LocalStack(
                service_command=target.service_command,
                service_settings_names=target.settings_names,
            )
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
    group.addoption(
        "--ha",
        action="store_true",
        default=False,
        help="run tests marked ha and HA scenarios (also on when CI=true or ini ha = true)",
    )
    parser.addini("ha", "run tests marked ha", type="bool", default=False)
    group.addoption(
        "--ha-nodes",
        type=int,
        default=None,
        metavar="N",
        help=f"PostgreSQL nodes of the HA stack (default {NODES}) [ini ha_nodes]",
    )
    parser.addini("ha_nodes", "PostgreSQL nodes of the HA stack", default=None)
    group.addoption(
        "--ha-router",
        choices=ROUTERS,
        default=None,
        help="how the service finds the primary on the HA stack (default libpq) [ini ha_router]",
    )
    parser.addini("ha_router", "the HA stack's router", default=None)


_CONFIG_KEY = pytest.StashKey[ChaosConfig]()
_SCENARIOS_KEY = pytest.StashKey[list[tuple[Path, Scenario]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: CI-only fault test; runs with CI=true or --chaos, skipped otherwise"
    )
    config.addinivalue_line(
        "markers", "ha: CI-only HA stack test; runs with CI=true or --ha, skipped otherwise"
    )
    cfg = ChaosConfig.from_pytest(config)
    config.stash[_CONFIG_KEY] = cfg
    # Every file is checked before any test runs, and every problem of every file is
    # reported at once (the loader does the same for a list of files).
    paths = [Path(raw).resolve() for raw in cfg.scenario_paths]
    try:
        kinds = cfg.load_target().fault_kinds() if paths else {}
        load_scenarios(paths, kinds=kinds)
    except (ScenarioFileError, ChaosError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[_SCENARIOS_KEY] = [
        (path, s) for path in scenario_files(paths) for s in load_scenarios([path], kinds=kinds)
    ]


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    """Skip a test when it sets up one of this plugin's stack fixtures (by definition, not
    by name) while the chaos tests, or the HA tests, are off."""
    if getattr(fixturedef.func, "__module__", None) != __name__:
        return
    cfg = request.config.stash[_CONFIG_KEY]
    if fixturedef.argname in _STACK_FIXTURES | _HA_FIXTURES and not cfg.enabled:
        pytest.skip(SKIP_REASON)
    if fixturedef.argname in _HA_FIXTURES and not cfg.ha:
        pytest.skip(HA_SKIP_REASON)


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
    cfg = config.stash[_CONFIG_KEY]
    for item in items:
        if item.get_closest_marker("chaos") and not cfg.enabled:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
        elif item.get_closest_marker("ha") and not cfg.ha:
            item.add_marker(pytest.mark.skip(reason=HA_SKIP_REASON))


@pytest.fixture(scope="session")
def chaos_config(pytestconfig: pytest.Config) -> ChaosConfig:
    """The plugin's resolved options."""
    return pytestconfig.stash[_CONFIG_KEY]


@pytest.fixture(scope="session")
def chaos_target(chaos_config: ChaosConfig) -> Target:
    """The service under test's target: --chaos-target, this repository's service by
    default (override the fixture to test another service)."""
    return chaos_config.load_target()


@pytest.fixture(scope="session")
def chaos_stack(chaos_config: ChaosConfig, chaos_target: Target) -> Iterator[Stack]:
    """The stack under test, started once per session and always torn down."""
    stack = chaos_config.build_stack(chaos_target)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def chaos_ha_stack(request: pytest.FixtureRequest, chaos_target: Target) -> Iterator[HaStack]:
    """The HA stack (etcd, Patroni nodes, Toxiproxy, the target's service), started once
    per session and always torn down."""
    nodes = request.config.getoption("ha_nodes") or request.config.getini("ha_nodes") or NODES
    router = request.config.getoption("ha_router") or request.config.getini("ha_router")
    stack = HaStack(
        nodes=int(nodes),
        router=str(router or "libpq"),
        service_command=chaos_target.service_command,
        service_settings_names=chaos_target.settings_names,
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def chaos_ha(chaos_ha_stack: HaStack) -> Iterator[HaStack]:
    """The HA stack, healthy with default settings before the test and healed after it."""
    chaos_ha_stack.heal()
    try:
        yield chaos_ha_stack
    finally:
        chaos_ha_stack.heal()


@pytest.fixture
def chaos_ha_toxiproxy(chaos_ha_stack: HaStack) -> Iterator[ToxiproxyClient]:
    """A client for the HA stack's Toxiproxy."""
    client = chaos_ha_stack.toxiproxy()
    try:
        yield client
    finally:
        client.close()


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
    request: pytest.FixtureRequest,
    chaos_target: Target,
    chaos_report: list[ScenarioResult],
) -> Callable[[Scenario], ScenarioResult]:
    """Runs a scenario on the stack it needs (the session's stack, or the HA stack) with
    the one engine (chaos.run.engine.run_selection), heals the stack after it, and adds
    its result to the report; the test asserts on the result."""
    from chaos.run.engine import run_selection

    def run(scenario: Scenario) -> ScenarioResult:
        name = "chaos_ha_stack" if scenario.stack == "ha" else "chaos_stack"
        stack: Stack = request.getfixturevalue(name)
        (done,) = run_selection(stack, [scenario], target=chaos_target)
        assert done.result is not None  # without keep_going an error raises
        chaos_report.append(done.result)
        return done.result

    return run


@pytest.fixture
def chaos_explore(
    chaos_stack: Stack, chaos_target: Target, tmp_path: Path
) -> Callable[..., Exploration]:
    """Runs `pgchaos explore` on the session's stack: `chaos_explore(seed=S, schedules=N)`
    (or `budget=` seconds; `repeats=`, `out_dir=`); shrunk scenario files go to the
    test's tmp_path unless `out_dir` is given. The test asserts on the Exploration."""
    from chaos.explore.runner import explore

    def run(**options: Any) -> Exploration:
        options.setdefault("out_dir", tmp_path / "explore")
        return explore(chaos_stack, chaos_target, **options)

    return run


@pytest.fixture(scope="session")
def chaos_service_limits(chaos_stack: Stack) -> Limits:
    """The limits the running service reports; bounds are derived from these."""
    # The first request reads the limits; CANCEL_AND_DRAIN bounds it.
    with httpx.Client(
        base_url=chaos_stack.endpoints.service_url, timeout=CANCEL_AND_DRAIN
    ) as client:
        return read_limits(client)
