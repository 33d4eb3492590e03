"""The stack under test: PostgreSQL, Toxiproxy (a proxy named `postgres`) and the service.

`LocalStack` starts the three as local processes, in that order, each waited for, and
tears them down in reverse order, always. `ExternalStack` is the same interface over a
stack somebody else runs (docker-compose.ci.yml, a cluster), given by URLs; its database
process faults go through the Docker SDK to the compose project's postgres container.
The service reaches PostgreSQL only through Toxiproxy; admin connections go direct.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from chaos.errors import ChaosError, ProcessError, ScenarioError
from chaos.infra.postgres import PostgresCluster
from chaos.infra.probes import Sessions
from chaos.infra.processes import ManagedProcess
from chaos.infra.service import ServiceProcess
from chaos.infra.timing import ADMIN_CONNECT_TIMEOUT, EXTERNAL_START_TIMEOUT, START_TIMEOUT
from chaos.infra.toxiproxy import ToxiproxyClient, wait_until_ready
from chaos.infra.waiting import free_port, wait_for

__all__ = [
    "CHAOS_SERVICE_SETTINGS",
    "COMPOSE_EXTRA",
    "PROXY_NAME",
    "ExternalStack",
    "LocalStack",
    "Stack",
    "StackEndpoints",
    "find_toxiproxy_server",
    "require_docker_sdk",
    "start_toxiproxy",
    "stop_each",
    "with_address",
]

log = logging.getLogger("chaos.infra.stack")

PROXY_NAME = "postgres"
"""Name of the Toxiproxy proxy in front of PostgreSQL (docker-compose declares the same)."""

CHAOS_SERVICE_SETTINGS: Mapping[str, str] = {
    "DB_POOL_MIN_SIZE": "4",
    "DB_POOL_MAX_SIZE": "4",
    "DB_POOL_ACQUIRE_TIMEOUT": "0.5",
    "DB_POOL_MAX_WAITING": "64",
    "DB_STATEMENT_TIMEOUT": "1.5",
    "DB_CONNECT_TIMEOUT": "2",
    "REQUEST_DEADLINE": "2.0",
    "HEALTH_TIMEOUT": "0.5",
    "RETRY_AFTER": "1",
}
"""Short limits for fault runs; scenarios read them back from the service's /metrics."""


def find_toxiproxy_server() -> Path:
    """TOXIPROXY_SERVER, else `toxiproxy-server` on PATH, else the one `./dev` builds."""
    explicit = os.environ.get("TOXIPROXY_SERVER")
    if explicit:
        return Path(explicit)
    on_path = shutil.which("toxiproxy-server")
    if on_path:
        return Path(on_path)
    built = Path(__file__).resolve().parents[2] / ".cache" / "bin" / "server"
    if built.exists():
        return built
    raise ProcessError(
        "no Toxiproxy server: in this repository run ./dev setup (it builds one into "
        ".cache/bin); elsewhere `go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0` "
        "and set TOXIPROXY_SERVER to the binary (or put it on PATH as toxiproxy-server)"
    )


@dataclass(frozen=True, slots=True)
class StackEndpoints:
    """Where the parts of a stack answer."""

    service_url: str
    toxiproxy_url: str
    database_url: str
    proxied_database_url: str

    def as_dict(self) -> dict[str, str]:
        """Plain dict (the `chaos up --json` line)."""
        return {
            "service_url": self.service_url,
            "toxiproxy_url": self.toxiproxy_url,
            "database_url": self.database_url,
            "proxied_database_url": self.proxied_database_url,
        }


def stop_each(stops: Sequence[Callable[[], None]]) -> list[Exception]:
    """Call every stop in order, each even when one before it failed; the failures."""
    errors: list[Exception] = []
    for stop in stops:
        try:
            stop()
        except Exception as exc:
            errors.append(exc)
    return errors


class Stack(ABC):
    """What scenarios need from a stack, wherever it runs."""

    endpoints: StackEndpoints

    @property
    def proxy_name(self) -> str:
        """The Toxiproxy proxy between the service and its database."""
        return PROXY_NAME

    @property
    def service_sessions(self) -> Sessions | None:
        """Counts the service's database sessions when a pooler stands between them
        (the leak baseline's `backends`); None: its backends in pg_stat_activity."""
        return None

    def role_urls(self) -> dict[str, str]:
        """Each database node's direct URL, when the stack has several (the engine then
        watches which one is primary); empty for a single database."""
        return {}

    def bound_names(self) -> dict[str, float]:
        """Names this stack adds to bound expressions (none by default)."""
        return {}

    def prepare(self, settings: Mapping[str, object]) -> None:
        """Apply a scenario's stack settings before it runs (none are known here)."""
        if settings:
            raise ScenarioError(
                f"{type(self).__name__} takes no stack settings, got {sorted(settings)}"
            )

    def primary(self) -> str | None:
        """The node that is primary now (None on a single-database stack)."""
        return None

    @property
    def router(self) -> str | None:
        """How the service finds the primary on a stack of several nodes (None here)."""
        return None

    def prepare_router(self, settings: Mapping[str, object]) -> None:
        """Apply a scenario's router settings (none are known here)."""
        if settings:
            raise ScenarioError(f"{type(self).__name__} has no router, got {sorted(settings)}")

    def settle(self) -> None:  # noqa: B027 - a single database has nothing to wait for
        """Wait until the stack is whole again after a fault's removal (a cluster's
        nodes rejoined); nothing to wait for on a single database."""

    def wait_replayed(self, *, timeout: float) -> None:  # noqa: B027 - no standby here
        """Wait until every standby replayed the primary's WAL as of now (none here)."""

    def heal(self) -> None:
        """Bring the stack back to its healthy state after a scenario: every proxy reset."""
        with self.toxiproxy() as client:
            client.reset()

    def _service_process(self) -> ServiceProcess:
        service = getattr(self, "service", None)
        if not isinstance(service, ServiceProcess):
            raise ChaosError(
                f"{type(self).__name__} does not run the service itself: it cannot restart "
                "it or change its settings"
            )
        return service

    def restart_service(self) -> None:
        """Restart the service on its port: a run that left it off its baseline (a leak)
        would otherwise fail every run after it (`pgchaos explore` does so)."""
        self._service_process().restart()

    def configure_service(self, overrides: Mapping[str, str]) -> bool:
        """Run the service with a scenario's settings over the stack's (`{}` restores
        them), restarted on its port when they change; whether it restarted."""
        if not overrides and getattr(self, "service", None) is None:
            return False
        return self._service_process().configure(overrides)

    @abstractmethod
    def start(self) -> None:
        """Bring the stack up (or check that it is up)."""

    @abstractmethod
    def stop(self) -> None:
        """Tear down what `start` started. Idempotent."""

    @abstractmethod
    def stop_database(self) -> None:
        """Stop PostgreSQL, keeping its data."""

    @abstractmethod
    def start_database(self) -> None:
        """Start PostgreSQL again after `stop_database`."""

    @abstractmethod
    def pause_database(self) -> None:
        """Freeze PostgreSQL (its processes stop running; sockets stay open)."""

    @abstractmethod
    def resume_database(self) -> None:
        """Thaw a frozen PostgreSQL."""

    def toxiproxy(self) -> ToxiproxyClient:
        """A new client for the stack's Toxiproxy."""
        return ToxiproxyClient(self.endpoints.toxiproxy_url)

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_toxiproxy(
    proxies: Mapping[str, str],
    *,
    log_path: Path,
    api_port: int | None = None,
    timeout: float = START_TIMEOUT,
) -> tuple[ManagedProcess, str, dict[str, int]]:
    """Start toxiproxy-server on a loopback port (free by default), wait until its API
    answers, and create each proxy `name -> upstream ("host:port")` on a free loopback
    port. Returns the process, the API URL and each proxy's port; the process is stopped
    again when the wait or a proxy fails. Every stack, and the benchmarks, start it here."""
    port = api_port or free_port()
    process = ManagedProcess(
        [str(find_toxiproxy_server()), "-host", "127.0.0.1", "-port", str(port)],
        name=f"toxiproxy-server on port {port}",
        log_path=log_path,
    )
    process.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, timeout=timeout)
        ports: dict[str, int] = {}
        with ToxiproxyClient(url) as client:
            for name, upstream in proxies.items():
                ports[name] = free_port()
                client.create_proxy(name, listen=f"127.0.0.1:{ports[name]}", upstream=upstream)
    except BaseException:
        process.stop()
        raise
    return process, url, ports


COMPOSE_EXTRA = "pip install 'pgchaos[compose]'"
"""The one line that installs what the compose stack needs beyond a plain install."""


def require_docker_sdk() -> Any:
    """The Docker SDK (the `compose` extra); ChaosError naming the extra when missing."""
    try:
        import docker
    except ImportError as exc:
        raise ChaosError(
            f"the compose stack's database faults need the Docker SDK: {COMPOSE_EXTRA}"
        ) from exc
    return docker


def with_address(url: str, host: str, port: int) -> str:
    """`url` with its host and port replaced (user and password kept)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


class LocalStack(Stack):
    """PostgreSQL, Toxiproxy and the service as local processes on free loopback ports."""

    def __init__(
        self,
        *,
        service_settings: Mapping[str, str] = CHAOS_SERVICE_SETTINGS,
        service_command: Sequence[str] | None = None,
        service_settings_names: Collection[str] = (),
        service_port: int | None = None,
        toxiproxy_port: int | None = None,
    ) -> None:
        self.service_settings = dict(service_settings)
        self.service_command = list(service_command) if service_command else None
        self.service_settings_names = service_settings_names
        self._service_port = service_port
        self._toxiproxy_port = toxiproxy_port
        self.workdir: Path | None = None
        self.cluster: PostgresCluster | None = None
        self.toxiproxy_process: ManagedProcess | None = None
        self.service: ServiceProcess | None = None

    def start(self) -> None:
        """PostgreSQL, then Toxiproxy and its proxy, then the service; undone on failure."""
        self.workdir = Path(tempfile.mkdtemp(prefix="chaos-stack-"))
        try:
            self.cluster = PostgresCluster()
            self.cluster.start()
            self.toxiproxy_process, toxiproxy_url, ports = start_toxiproxy(
                {PROXY_NAME: f"{self.cluster.host}:{self.cluster.port}"},
                log_path=self.workdir / "toxiproxy.log",
                api_port=self._toxiproxy_port,
            )
            proxied = with_address(self.cluster.url, "127.0.0.1", ports[PROXY_NAME])
            self.service = ServiceProcess(
                database_url=proxied,
                env=self.service_settings,
                port=self._service_port,
                log_dir=self.workdir,
                command=self.service_command,
                settings_names=self.service_settings_names,
            )
            self.service.start()
            self.endpoints = StackEndpoints(
                service_url=self.service.url,
                toxiproxy_url=toxiproxy_url,
                database_url=self.cluster.url,
                proxied_database_url=proxied,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Service, Toxiproxy, PostgreSQL, temp dir: each attempted even if one fails."""
        parts = (self.service, self.toxiproxy_process, self.cluster)
        errors = stop_each([part.stop for part in parts if part is not None])
        self.service = self.toxiproxy_process = None
        self.cluster = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if errors:
            raise ChaosError(f"{len(errors)} part(s) failed to stop: {errors}") from errors[0]

    def _cluster(self) -> PostgresCluster:
        if self.cluster is None:
            raise ChaosError("stack not started")
        return self.cluster

    def stop_database(self) -> None:
        self._cluster().stop_server(mode="immediate")

    def start_database(self) -> None:
        self._cluster().start_server()

    def pause_database(self) -> None:
        self._cluster().pause()

    def resume_database(self) -> None:
        self._cluster().resume()


class ExternalStack(Stack):
    """A stack run by somebody else, given by URLs.

    Database process faults use the Docker SDK on the compose project's `postgres`
    service container; without a compose project they raise ChaosError.
    """

    def __init__(
        self,
        endpoints: StackEndpoints,
        *,
        compose_project: str | None = None,
        compose_service: str = "postgres",
    ) -> None:
        self.endpoints = endpoints
        self.compose_project = compose_project
        self.compose_service = compose_service

    def start(self) -> None:
        wait_until_ready(self.endpoints.toxiproxy_url, timeout=EXTERNAL_START_TIMEOUT)
        with self.toxiproxy() as client:
            client.get_proxy(PROXY_NAME)

    def stop(self) -> None:
        """Nothing to tear down: the stack's owner stops it."""

    def _container(self) -> Any:
        if not self.compose_project:
            raise ChaosError(
                "database process faults need a compose project (--chaos-compose-project)"
            )
        docker = require_docker_sdk()

        client = docker.from_env()
        found = client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.compose_project}",
                    f"com.docker.compose.service={self.compose_service}",
                ]
            },
        )
        if len(found) != 1:
            raise ChaosError(
                f"expected 1 container of service {self.compose_service!r} in compose project "
                f"{self.compose_project!r}, found {len(found)}"
            )
        return found[0]

    def _wait_for_database(self) -> None:
        def accepts() -> bool:
            with psycopg.connect(
                self.endpoints.database_url, connect_timeout=ADMIN_CONNECT_TIMEOUT
            ):
                return True

        wait_for(
            accepts, timeout=EXTERNAL_START_TIMEOUT, what="compose postgres accepting connections"
        )

    def stop_database(self) -> None:
        self._container().kill()

    def start_database(self) -> None:
        self._container().start()
        self._wait_for_database()

    def pause_database(self) -> None:
        self._container().pause()

    def resume_database(self) -> None:
        self._container().unpause()
