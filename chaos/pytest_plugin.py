"""pytest plugin of the chaos toolkit, registered through the `pytest11` entry point.

- Options (group "chaos"), each with an environment default: `--chaos` (CI=true turns it
  on), and the URLs of an external stack (`--chaos-service-url`, ...).
- Marker `chaos`: CI-only fault tests. They run when CI=true or --chaos is given and are
  skipped otherwise, with a reason that says how to run them (the Python form of the
  story's `//go:build ci`). Tests that use `chaos_stack` get the marker automatically.
- Fixtures: `chaos_config`, `chaos_stack` (session: a LocalStack, or an ExternalStack
  when --chaos-service-url is given), `toxiproxy` (reset after every test), `pg_admin`
  (direct admin connection), `service_client` (httpx client for the service),
  `service_limits` (the limits the running service reports), `chaos_report` (results
  written as reports to --chaos-report-dir).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chaos.checks.probes import Limits, read_metrics
from chaos.errors import ChaosError
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.stack import ExternalStack, LocalStack, Stack, StackEndpoints
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.run.engine import ScenarioResult

__all__ = ["SKIP_REASON", "ChaosConfig"]

SKIP_REASON = (
    "chaos tests are CI-only: run with CI=true or pass --chaos "
    "(add --chaos-service-url etc. to target a running compose stack; see README)"
)

_STACK_FIXTURES = {"chaos_stack", "toxiproxy", "pg_admin", "service_client", "service_limits"}


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

    @property
    def external(self) -> bool:
        """Whether the tests target a stack somebody else runs."""
        return bool(self.service_url)

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> ChaosConfig:
        """Read the options (their defaults come from the environment)."""
        opt = config.getoption
        return cls(
            enabled=bool(opt("chaos")) or os.environ.get("CI", "").lower() == "true",
            service_url=opt("chaos_service_url"),
            toxiproxy_url=opt("chaos_toxiproxy_url"),
            database_url=opt("chaos_database_url"),
            proxied_database_url=opt("chaos_proxied_database_url"),
            compose_project=opt("chaos_compose_project"),
            report_dir=opt("chaos_report_dir"),
        )

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
        help="run tests marked chaos (also on when CI=true)",
    )
    for name, env, text in (
        ("service-url", "CHAOS_SERVICE_URL", "URL of a running service (external stack)"),
        ("toxiproxy-url", "CHAOS_TOXIPROXY_URL", "Toxiproxy API URL of the external stack"),
        ("database-url", "CHAOS_DATABASE_URL", "direct (unproxied) database URL, for admin"),
        ("proxied-database-url", "CHAOS_PROXIED_DATABASE_URL", "database URL via Toxiproxy"),
        ("compose-project", "CHAOS_COMPOSE_PROJECT", "compose project, for database faults"),
        ("report-dir", "CHAOS_REPORT_DIR", "write journal.json, junit.xml, report.html here"),
    ):
        group.addoption(
            f"--chaos-{name}",
            default=os.environ.get(env) or None,
            help=f"{text} [env {env}]",
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: CI-only fault test; runs with CI=true or --chaos, skipped otherwise"
    )
    config.stash[_CONFIG_KEY] = ChaosConfig.from_pytest(config)


_CONFIG_KEY = pytest.StashKey[ChaosConfig]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    enabled = config.stash[_CONFIG_KEY].enabled
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if _STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.chaos)
        if item.get_closest_marker("chaos") and not enabled:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chaos_config(pytestconfig: pytest.Config) -> ChaosConfig:
    """The plugin's resolved options."""
    return pytestconfig.stash[_CONFIG_KEY]


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
def chaos_report(chaos_config: ChaosConfig) -> Iterator[list[ScenarioResult]]:
    """Scenario results of the session; written to --chaos-report-dir at the end."""
    results: list[ScenarioResult] = []
    try:
        yield results
    finally:
        if chaos_config.report_dir and results:
            from chaos.report.writers import write_reports

            write_reports(results, Path(chaos_config.report_dir))


@pytest.fixture
def toxiproxy(chaos_stack: Stack) -> Iterator[ToxiproxyClient]:
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
def _pg_admin_session(chaos_stack: Stack) -> Iterator[PostgresAdmin]:
    admin = PostgresAdmin(chaos_stack.endpoints.database_url)
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def pg_admin(_pg_admin_session: PostgresAdmin) -> PostgresAdmin:
    """Admin helpers on a direct connection to the stack's database."""
    return _pg_admin_session


@pytest.fixture
def service_client(chaos_stack: Stack) -> Iterator[httpx.Client]:
    """HTTP client for the stack's service."""
    with httpx.Client(base_url=chaos_stack.endpoints.service_url, timeout=30.0) as client:
        yield client


@pytest.fixture(scope="session")
def service_limits(chaos_stack: Stack) -> Limits:
    """The limits the running service reports; bounds are derived from these."""
    with httpx.Client(base_url=chaos_stack.endpoints.service_url, timeout=10.0) as client:
        return Limits.from_metrics(read_metrics(client))
