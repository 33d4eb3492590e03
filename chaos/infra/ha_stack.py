"""The high-availability stack: etcd, N PostgreSQL nodes under Patroni, Toxiproxy, the service.

Every node has three Toxiproxy proxies, so a toxic can cut one kind of traffic:

- ``<node>-client``: the node's PostgreSQL port for the service. The service's
  ``DATABASE_URL`` lists every node's client proxy with
  ``target_session_attrs=read-write``, so libpq finds the writable node itself.
- ``<node>-replication``: the node's PostgreSQL port for the other nodes. It is the
  node's Patroni ``connect_address``, so standbys stream from the primary through the
  primary's replication proxy (and pg_rewind and base backups go through it too).
  With two nodes, cutting it partitions the standby from the primary.
- ``<node>-etcd``: the node's Patroni reaches etcd only through it (``use_proxies``:
  no topology discovery, which would hand Patroni etcd's own address).

Patroni's REST APIs and admin connections go direct. Patroni and PostgreSQL run as the
``postgres`` user (PostgreSQL refuses root), from a virtualenv built on Debian's
``/usr/bin/python3`` (an interpreter that user can read). etcd is Debian's
``etcd-server`` binary run on loopback ports of ours (its own service stays stopped).
Everything is torn down in ``stop()``, always: service, Patroni nodes (and any
PostgreSQL they leave), Toxiproxy, etcd, the work directory.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from psycopg import sql

from chaos.errors import ChaosError, ProcessError, ScenarioError
from chaos.infra.postgres import find_pg_bindir
from chaos.infra.probes import Sessions
from chaos.infra.processes import ManagedProcess, as_unprivileged, process_tree
from chaos.infra.routers import (
    PGBOUNCER_PROXY,
    ROUTERS,
    SERVER_LOGIN_RETRY,
    Backend,
    HaProxy,
    PgBouncer,
    RouterSettings,
    pooler_query_wait_timeout,
    pooler_session_settings,
)
from chaos.infra.service import ServiceProcess
from chaos.infra.stack import (
    CHAOS_SERVICE_SETTINGS,
    Stack,
    StackEndpoints,
    start_toxiproxy,
    stop_each,
)
from chaos.infra.waiting import free_port, wait_for

__all__ = [
    "HA_BOUND_NAMES",
    "HA_SERVICE_SETTINGS",
    "HEAL_TIMEOUT",
    "NODES",
    "PATRONI_REQUIREMENT",
    "PROMOTION_TIME",
    "REFUSAL_MESSAGE",
    "STANDBY_RETRY_INTERVAL",
    "ClusterMember",
    "HaNode",
    "HaStack",
    "PatroniSettings",
    "find_etcd",
    "find_patroni",
]

log = logging.getLogger("chaos.infra.ha_stack")

PATRONI_REQUIREMENT = "patroni[etcd3,psycopg3]>=4.0,<5"
"""What the Patroni virtualenv installs from PyPI."""

#: Where the Patroni virtualenv is built when PATRONI_BIN is not given.
PATRONI_VENV = Path(__file__).resolve().parents[2] / ".cache" / "patroni-venv"

#: The interpreter the Patroni virtualenv is built on: the `postgres` user must be able
#: to read it (a Python under /root is not).
SYSTEM_PYTHON = "/usr/bin/python3"

HA_SERVICE_SETTINGS: Mapping[str, str] = {
    **CHAOS_SERVICE_SETTINGS,
    # The start-up retry covers a cluster that is still electing its first leader.
    "STARTUP_TIMEOUT": "60",
}
"""The chaos limits, plus a start-up long enough for a first election."""

#: How often a standby's WAL receiver retries a lost connection to the primary
#: (PostgreSQL's wal_retrieve_retry_interval, 5 s by default): it bounds how soon a
#: healed replication partition ends, and with it commits waiting for a sync standby.
STANDBY_RETRY_INTERVAL = 1.0

#: What Patroni needs on top of the leader key's expiry to promote: pg_promote and a
#: checkpoint (s). Named `promotion_time` in bound expressions.
PROMOTION_TIME = 5.0

#: How long healing may take: a crashed node restarts, rewinds and catches up, and a
#: new election may need a leader key to expire (Patroni's ttl) first.
HEAL_TIMEOUT = 120.0

#: What Patroni logs on a standby that refuses the leader race for lag.
REFUSAL_MESSAGE = "My wal position exceeds maximum replication lag"

NODES = 3
"""PostgreSQL nodes of the HA stack by default (most production clusters run three or
more; two is an option: `pgchaos run --stack ha --nodes 2`)."""

HA_BOUND_NAMES = frozenset(
    {
        "ttl",
        "loop_wait",
        "retry_timeout",
        "promotion_time",
        "standby_retry_interval",
        "route_time",
    }
)
"""The names `HaStack.bound_names` adds to bound expressions."""

DATABASE = "service"
SUPERUSER = "postgres"


@dataclass(frozen=True, slots=True)
class PatroniSettings:
    """Patroni's dynamic configuration for a scenario (seconds and bytes).

    Patroni raises a ttl below 20 s to 20 s and needs loop_wait + 2 * retry_timeout <=
    ttl; a crashed leader's key expires after ttl, so ttl bounds how soon a power cut
    ends in a promotion.
    """

    ttl: int = 20
    loop_wait: int = 1
    retry_timeout: int = 5
    maximum_lag_on_failover: int = 1024 * 1024
    synchronous_mode: bool = True
    synchronous_mode_strict: bool = False

    def __post_init__(self) -> None:
        if self.ttl < 20:
            raise ChaosError(f"Patroni's minimum ttl is 20 s, got {self.ttl}")
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ChaosError(
                f"Patroni needs loop_wait + 2 * retry_timeout <= ttl: "
                f"{self.loop_wait} + 2 * {self.retry_timeout} > {self.ttl}"
            )

    def dynamic(self) -> dict[str, Any]:
        """The part of Patroni's configuration that lives in etcd (PATCH /config)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ClusterMember:
    """One member as Patroni's `GET /cluster` reports it."""

    name: str
    role: str
    state: str
    timeline: int | None
    lag: int | None

    @property
    def is_leader(self) -> bool:
        """Whether the member holds the leader key and runs as primary."""
        return self.role == "leader" and self.state == "running"

    @property
    def is_streaming(self) -> bool:
        """Whether the member is a standby streaming from the leader."""
        return self.role in ("replica", "sync_standby") and self.state == "streaming"


def find_etcd() -> Path:
    """ETCD_BIN, else `etcd` on PATH (Debian's `etcd-server`)."""
    explicit = os.environ.get("ETCD_BIN")
    found = explicit or shutil.which("etcd")
    if not found or not Path(found).exists():
        raise ProcessError("no etcd: apt-get install etcd-server (or set ETCD_BIN)")
    return Path(found)


def find_patroni(*, install: bool = True) -> Path:
    """PATRONI_BIN, else Patroni in .cache/patroni-venv (built from PyPI when missing)."""
    explicit = os.environ.get("PATRONI_BIN")
    if explicit:
        return Path(explicit)
    patroni = PATRONI_VENV / "bin" / "patroni"
    if patroni.exists() or not install:
        if not patroni.exists():
            raise ProcessError(f"no Patroni at {patroni} (set PATRONI_BIN)")
        return patroni
    if not Path(SYSTEM_PYTHON).exists():
        raise ProcessError(f"{SYSTEM_PYTHON} is missing: Patroni's virtualenv is built on it")
    log.warning("building Patroni's virtualenv in %s", PATRONI_VENV)
    for argv in (
        [SYSTEM_PYTHON, "-m", "venv", str(PATRONI_VENV)],
        [str(PATRONI_VENV / "bin" / "pip"), "install", "-q", PATRONI_REQUIREMENT],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise ProcessError(f"{argv[0]} failed: {done.stderr.strip()[-2000:]}")
    return patroni


def _readable_by_postgres(path: Path) -> None:
    # runuser -u postgres must traverse every parent of the virtualenv and the work dir.
    for parent in [path, *path.parents]:
        with suppress(OSError):
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o005)


@dataclass
class HaNode:
    """One Patroni-managed PostgreSQL node and its proxies."""

    name: str
    pg_port: int
    api_port: int
    client_port: int
    replication_port: int
    etcd_port: int
    home: Path
    process: ManagedProcess | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        """PostgreSQL's data directory."""
        return self.home / "data"

    @property
    def api_url(self) -> str:
        """Base URL of the node's Patroni REST API (direct)."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def client_proxy(self) -> str:
        """Name of the proxy the service reaches this node through."""
        return f"{self.name}-client"

    @property
    def replication_proxy(self) -> str:
        """Name of the proxy the other nodes reach this node through."""
        return f"{self.name}-replication"

    @property
    def etcd_proxy(self) -> str:
        """Name of the proxy this node's Patroni reaches etcd through."""
        return f"{self.name}-etcd"

    @property
    def direct_url(self) -> str:
        """Admin URL of this node's database, direct."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.pg_port}/{DATABASE}?sslmode=disable"

    def postmaster_pid(self) -> int | None:
        """The postmaster's pid from postmaster.pid, while it runs."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def patroni_processes(self) -> list[psutil.Process]:
        """runuser and the Patroni it runs (empty when stopped)."""
        return process_tree(self.process.pid if self.process else None)

    def postgres_processes(self) -> list[psutil.Process]:
        """The postmaster and its children."""
        return process_tree(self.postmaster_pid())


class HaStack(Stack):
    """etcd, Patroni nodes, Toxiproxy and the service; `stop()` leaves nothing behind."""

    scope = "chaos-ha"

    def __init__(
        self,
        *,
        nodes: int = NODES,
        patroni: PatroniSettings | None = None,
        service_settings: Mapping[str, str] = HA_SERVICE_SETTINGS,
        service_command: Sequence[str] | None = None,
        service_settings_names: Collection[str] = (),
        start_timeout: float = 120.0,
        router: str = "libpq",
    ) -> None:
        if nodes < 2:
            raise ChaosError(f"an HA stack needs at least 2 nodes, got {nodes}")
        if router not in ROUTERS:
            raise ChaosError(f"router: expected one of {', '.join(ROUTERS)}, got {router!r}")
        self.node_count = nodes
        self._router = router
        self.haproxy: HaProxy | None = None
        self.pgbouncer: PgBouncer | None = None
        self._pgbouncer_port = 0
        self.patroni_settings = patroni or PatroniSettings()
        self.service_settings = dict(service_settings)
        if router == "pgbouncer":
            self.service_settings["DB_TRANSACTION_POOLER"] = "true"
        self.service_command = list(service_command) if service_command else None
        self.service_settings_names = service_settings_names
        self.start_timeout = start_timeout
        self.workdir: Path | None = None
        self.nodes: list[HaNode] = []
        self.etcd_process: ManagedProcess | None = None
        self.etcd_url = ""
        self.toxiproxy_process: ManagedProcess | None = None
        self.service: ServiceProcess | None = None
        self._http = httpx.Client(timeout=2.0)

    # -- start and stop -------------------------------------------------------------

    def start(self) -> None:
        """etcd, Toxiproxy and proxies, the first node, the others, the service."""
        patroni = find_patroni()
        _readable_by_postgres(patroni.parent)
        self.workdir = Path(tempfile.mkdtemp(prefix="chaos-ha-"))
        try:
            _readable_by_postgres(self.workdir)
            self._start_etcd()
            self.nodes = [self._plan_node(i + 1) for i in range(self.node_count)]
            etcd = self.etcd_url.rsplit("//", 1)[1]
            proxies = {}
            for node in self.nodes:
                proxies[node.client_proxy] = f"127.0.0.1:{node.pg_port}"
                proxies[node.replication_proxy] = f"127.0.0.1:{node.pg_port}"
                proxies[node.etcd_proxy] = etcd
            # PgBouncer's upstream is HAProxy, whose backends are the proxies made below.
            haproxy_port = free_port() if self._router != "libpq" else 0
            if self._router == "pgbouncer":
                self.pgbouncer = PgBouncer(
                    upstream=f"127.0.0.1:{haproxy_port}",
                    database=DATABASE,
                    user=SUPERUSER,
                    session_settings=pooler_session_settings(self.service_settings),
                    workdir=self.workdir,
                    query_wait_timeout=self._query_wait_timeout(RouterSettings()),
                )
                proxies[PGBOUNCER_PROXY] = f"127.0.0.1:{self.pgbouncer.port}"
            self.toxiproxy_process, toxiproxy_url, ports = start_toxiproxy(
                proxies, log_path=self.workdir / "toxiproxy.log"
            )
            for node in self.nodes:
                node.client_port = ports[node.client_proxy]
                node.replication_port = ports[node.replication_proxy]
                node.etcd_port = ports[node.etcd_proxy]
            self._pgbouncer_port = ports.get(PGBOUNCER_PROXY, 0)
            if haproxy_port:
                backends = [Backend(n.name, n.client_port, n.api_port) for n in self.nodes]
                self.haproxy = HaProxy(backends, self.workdir, port=haproxy_port)
            for node in self.nodes:
                self._write_config(node, patroni)
            # The first node bootstraps the cluster; the others clone it once it leads.
            self.start_node(self.nodes[0].name)
            first = self.wait_for_leader(timeout=self.start_timeout)
            for node in self.nodes[1:]:
                self.start_node(node.name)
            log.info("%s leads; creating the database", first)
            self._create_database(self.node(first))
            log.info("database created")
            self.wait_healthy(timeout=self.start_timeout)
            log.info("cluster healthy: %s", self.members())
            if self.haproxy is not None:
                self.haproxy.start()
                leader = self._leader_node().name
                self.haproxy.wait_routed(leader, timeout=HEAL_TIMEOUT)
                log.info("haproxy routes to %s", leader)
            if self.pgbouncer is not None:
                self.pgbouncer.start()
                log.info("pgbouncer on port %d in front of haproxy", self.pgbouncer.port)
            self.service = ServiceProcess(
                database_url=self.service_database_url,
                env=self.service_settings,
                log_dir=self.workdir,
                start_timeout=self.start_timeout,
                command=self.service_command,
                settings_names=self.service_settings_names,
            )
            self.service.start()
            self.endpoints = StackEndpoints(
                service_url=self.service.url,
                toxiproxy_url=toxiproxy_url,
                database_url=self.admin_database_url,
                proxied_database_url=self.service_database_url,
            )
        except BaseException:
            self.stop()
            raise

    def _start_etcd(self) -> None:
        assert self.workdir is not None
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        self.etcd_process = ManagedProcess(
            [
                str(find_etcd()),
                "--name=ha-etcd",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=ha-etcd={peer}",
                "--initial-cluster-state=new",
                "--logger=zap",
                "--log-level=warn",
            ],
            name=f"etcd on port {client_port}",
            log_path=self.workdir / "etcd.log",
        )
        self.etcd_process.start()

        def healthy() -> bool:
            assert self.etcd_process is not None
            self.etcd_process.check_alive()
            return bool(self._http.get(f"{self.etcd_url}/health").json().get("health") == "true")

        wait_for(healthy, timeout=30.0, what=f"etcd at {self.etcd_url}", interval=0.1)

    def _plan_node(self, index: int) -> HaNode:
        assert self.workdir is not None
        home = self.workdir / f"node{index}"
        home.mkdir()
        if os.geteuid() == 0:
            shutil.chown(home, "postgres", "postgres")
        return HaNode(
            name=f"node{index}",
            pg_port=free_port(),
            api_port=free_port(),
            # The proxies' ports, known once Toxiproxy has made them (start_toxiproxy).
            client_port=0,
            replication_port=0,
            etcd_port=0,
            home=home,
        )

    def _write_config(self, node: HaNode, patroni: Path) -> None:
        settings = self.patroni_settings
        parameters = {
            "wal_level": "replica",
            "hot_standby": "on",
            "max_connections": 100,
            "max_wal_senders": 10,
            "max_replication_slots": 10,
            "wal_keep_size": "256MB",
            # pg_rewind lets a crashed primary rejoin as a standby of the new one.
            "wal_log_hints": "on",
            "wal_retrieve_retry_interval": f"{int(STANDBY_RETRY_INTERVAL * 1000)}ms",
            # Safe while the OS stays up: a power cut here is SIGKILL, not a lost page cache.
            "fsync": "off",
            "unix_socket_directories": str(node.home),
        }
        superuser = {"username": SUPERUSER}
        config = {
            "scope": self.scope,
            "name": node.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{node.api_port}",
                "connect_address": f"127.0.0.1:{node.api_port}",
            },
            "etcd3": {
                "hosts": [f"127.0.0.1:{node.etcd_port}"],
                "protocol": "http",
                "use_proxies": True,
            },
            "bootstrap": {
                "dcs": {
                    **settings.dynamic(),
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": parameters,
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.replication_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": str(find_pg_bindir()),
                "pgpass": str(node.home / "pgpass"),
                "authentication": {
                    "superuser": superuser,
                    "replication": superuser,
                    "rewind": superuser,
                },
                "parameters": {"unix_socket_directories": str(node.home)},
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
                # A spread checkpoint makes a base backup wait for minutes.
                "basebackup": [{"checkpoint": "fast"}],
                "remove_data_directory_on_rewind_failure": True,
                "remove_data_directory_on_diverged_timelines": True,
            },
        }
        path = node.home / "patroni.yml"
        # JSON is YAML: no YAML writer needed.
        path.write_text(json.dumps(config, indent=2))
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")
        node.process = ManagedProcess(
            as_unprivileged([str(patroni), str(path)]),
            name=f"patroni {node.name}",
            log_path=node.home / "patroni.log",
            stop_timeout=30.0,
        )

    def _create_database(self, node: HaNode) -> None:
        url = node.direct_url.replace(f"/{DATABASE}?", "/postgres?")

        def create() -> bool:
            with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                ).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
            return True

        wait_for(create, timeout=30.0, what=f"database {DATABASE} on {node.name}", interval=0.2)

    def stop(self) -> None:
        """Service, nodes, Toxiproxy, etcd, work dir: each attempted even if one fails."""
        first = [p.stop for p in (self.service, self.pgbouncer, self.haproxy) if p is not None]
        nodes = [partial(self.stop_node, node.name) for node in self.nodes]
        last = [p.stop for p in (self.toxiproxy_process, self.etcd_process) if p is not None]
        errors = stop_each([*first, *nodes, *last])
        self.service = self.pgbouncer = self.haproxy = None
        self.toxiproxy_process = self.etcd_process = None
        self._http.close()
        self._http = httpx.Client(timeout=2.0)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if errors:
            raise ChaosError(f"{len(errors)} part(s) failed to stop: {errors}") from errors[0]

    # -- nodes ------------------------------------------------------------------------

    def node(self, name: str) -> HaNode:
        """The node called `name`."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise ChaosError(f"no node {name!r} (nodes: {[n.name for n in self.nodes]})")

    def start_node(self, name: str) -> None:
        """Start a node's Patroni (it starts PostgreSQL, and rejoins as a standby if needed)."""
        node = self.node(name)
        if node.process is None:
            raise ChaosError(f"{name}: not configured")
        if node.process.alive():
            return
        node.process.start()

    def stop_node(self, name: str) -> None:
        """Stop a node's Patroni (which stops PostgreSQL); kill whatever is left."""
        node = self.node(name)
        if node.process is not None:
            # runuser passes SIGTERM on to Patroni, which shuts PostgreSQL down first.
            node.process.stop()
        for proc in [*node.patroni_processes(), *node.postgres_processes()]:
            with suppress(psutil.NoSuchProcess):
                proc.kill()
        with suppress(ChaosError):
            wait_for(
                lambda: node.postmaster_pid() is None,
                timeout=10.0,
                what=f"{name}'s postmaster gone",
            )

    def kill_node(self, name: str) -> float:
        """A power cut: SIGKILL to the node's Patroni and every PostgreSQL process at once.

        Returns when the kills were sent (monotonic clock).
        """
        node = self.node(name)
        victims = [*node.patroni_processes(), *node.postgres_processes()]
        if not victims:
            raise ChaosError(f"{name}: nothing runs, nothing to kill")
        # Freeze first, so Patroni cannot restart the postmaster between the two kills.
        for proc in victims:
            with suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGSTOP)
        for proc in victims:
            with suppress(psutil.NoSuchProcess):
                proc.kill()
        killed_at = time.monotonic()
        psutil.wait_procs(victims, timeout=10.0)
        if node.process is not None:
            node.process.stop()  # reaps runuser; already dead
        return killed_at

    # -- Patroni's view -----------------------------------------------------------------

    def members(self) -> list[ClusterMember]:
        """`GET /cluster` from the first node that answers; empty when none does."""
        for node in self.nodes:
            try:
                resp = self._http.get(f"{node.api_url}/cluster", timeout=1.0)
                resp.raise_for_status()
                data = resp.json()
            except (httpx.HTTPError, ValueError):
                continue
            return [
                ClusterMember(
                    name=str(m["name"]),
                    role=str(m.get("role", "")),
                    state=str(m.get("state", "")),
                    timeline=m.get("timeline"),
                    lag=m.get("lag") if isinstance(m.get("lag"), int) else None,
                )
                for m in data.get("members", [])
            ]
        return []

    def leader(self) -> str | None:
        """The running leader's name, if there is one."""
        leaders = [m.name for m in self.members() if m.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    def standbys(self) -> list[str]:
        """The nodes that are not the leader."""
        return self.standbys_of(self.leader())

    def standbys_of(self, leader: str | None) -> list[str]:
        """The nodes other than `leader`."""
        return [n.name for n in self.nodes if n.name != leader]

    def sync_standbys(self) -> list[str]:
        """The nodes Patroni lists as synchronous standbys now."""
        return [m.name for m in self.members() if m.role == "sync_standby"]

    def wait_for_leader(self, *, timeout: float, not_in: Sequence[str] = ()) -> str:
        """Wait until a running leader outside `not_in` exists; its name."""

        def found() -> str | None:
            leader = self.leader()
            return leader if leader is not None and leader not in not_in else None

        return wait_for(
            found, timeout=timeout, what=f"a leader outside {list(not_in)}", interval=0.1
        )

    def wait_healthy(self, *, timeout: float) -> str:
        """Wait until one leader runs and every other node streams from it; the leader.

        In synchronous mode, one of them must also be the synchronous standby.
        """

        def healthy() -> str | None:
            members = self.members()
            leaders = [m for m in members if m.is_leader]
            streaming = [m for m in members if m.is_streaming]
            if len(members) != len(self.nodes) or len(leaders) != 1:
                return None
            if len(streaming) != len(self.nodes) - 1:
                return None
            if self.patroni_settings.synchronous_mode and not any(
                m.role == "sync_standby" for m in streaming
            ):
                return None
            return leaders[0].name

        try:
            return wait_for(healthy, timeout=timeout, what="a healthy cluster", interval=0.2)
        except ChaosError as exc:
            raise ChaosError(f"{exc}; members: {self.members()}\n{self.logs_tail()}") from exc

    def configure(self, settings: PatroniSettings, *, timeout: float) -> None:
        """Apply dynamic settings through `PATCH /config` and wait until they hold."""
        self.patroni_settings = settings
        leader = self.leader() or self.wait_for_leader(timeout=timeout)
        resp = self._http.patch(
            f"{self.node(leader).api_url}/config", json=settings.dynamic(), timeout=5.0
        )
        if resp.status_code != 200:
            raise ChaosError(f"PATCH /config answered {resp.status_code}: {resp.text}")

        def applied() -> bool:
            config = self._http.get(f"{self.node(leader).api_url}/config", timeout=1.0).json()
            if any(config.get(k) != v for k, v in settings.dynamic().items()):
                return False
            names = self.primary_setting("synchronous_standby_names")
            return bool(names) == settings.synchronous_mode

        wait_for(applied, timeout=timeout, what="Patroni settings applied", interval=0.2)
        self.wait_healthy(timeout=timeout)

    def leader_optime(self) -> int:
        """The leader's WAL position as last published in etcd (Patroni's `/status` key).

        A standby judges its lag for `maximum_lag_on_failover` against this value.
        """
        key = base64.b64encode(f"/service/{self.scope}/status".encode()).decode()
        resp = self._http.post(f"{self.etcd_url}/v3/kv/range", json={"key": key})
        resp.raise_for_status()
        kvs = resp.json().get("kvs") or []
        if not kvs:
            return 0
        status = json.loads(base64.b64decode(kvs[0]["value"]))
        return int(status.get("optime", 0))

    def received_lsn(self, name: str) -> int:
        """How much WAL a standby has received (bytes from 0/0), direct."""
        with psycopg.connect(
            self.node(name).direct_url, autocommit=True, connect_timeout=2
        ) as conn:
            row = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::bigint"
            ).fetchone()
        return int(str(row[0])) if row and row[0] is not None else 0

    def wait_replayed(self, *, timeout: float) -> None:
        """Wait until every standby has replayed the primary's WAL as of now."""
        leader = self.leader() or self.wait_for_leader(timeout=timeout)
        with psycopg.connect(self.node(leader).direct_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        target = str(row[0]) if row else "0/0"
        for name in self.standbys():

            def replayed(url: str = self.node(name).direct_url) -> bool:
                with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
                    done = conn.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                    ).fetchone()
                return bool(done and done[0])

            wait_for(replayed, timeout=timeout, what=f"{name} replayed {target}", interval=0.1)

    def primary_setting(self, name: str) -> str:
        """A setting's value on the current primary."""
        with psycopg.connect(self.admin_database_url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
        return str(row[0]) if row else ""

    def log_offset(self, name: str) -> int:
        """How much of a node's Patroni log exists now (for `logged_since`)."""
        node = self.node(name)
        if node.process is None:
            return 0
        with suppress(OSError):
            return node.process.log_path.stat().st_size
        return 0

    def logged_since(self, name: str, offset: int, text: str) -> bool:
        """Whether a node's Patroni logged `text` after `offset`."""
        node = self.node(name)
        if node.process is None:
            return False
        try:
            with node.process.log_path.open("rb") as log_file:
                log_file.seek(offset)
                return text.encode() in log_file.read()
        except OSError:
            return False

    def logs_tail(self, lines: int = 15) -> str:
        """The end of every node's Patroni log (for error messages)."""
        parts = []
        for node in self.nodes:
            if node.process is not None:
                parts.append(f"--- {node.name} ---\n{node.process.log_tail(lines)}")
        return "\n".join(parts)

    # -- addresses ----------------------------------------------------------------------

    @property
    def service_database_url(self) -> str:
        """Every node's client proxy, libpq picking the writable one; or, with the
        haproxy router, HAProxy's one address; with the pgbouncer router, PgBouncer's
        through its proxy (chaos.infra.routers)."""
        if self.pgbouncer is not None:
            return (
                f"postgresql://{SUPERUSER}@127.0.0.1:{self._pgbouncer_port}/{DATABASE}"
                "?sslmode=disable"
            )
        if self.haproxy is not None:
            return f"postgresql://{SUPERUSER}@{self.haproxy.url_host}/{DATABASE}?sslmode=disable"
        hosts = ",".join(f"127.0.0.1:{n.client_port}" for n in self.nodes)
        return (
            f"postgresql://{SUPERUSER}@{hosts}/{DATABASE}"
            "?sslmode=disable&target_session_attrs=read-write"
        )

    @property
    def admin_database_url(self) -> str:
        """Every node direct, writable one first: the current primary, for admin work."""
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return (
            f"postgresql://{SUPERUSER}@{hosts}/{DATABASE}"
            "?sslmode=disable&target_session_attrs=read-write"
        )

    # -- what the engine asks of a stack -------------------------------------------------

    @property
    def proxy_name(self) -> str:
        """The proxy between the service and the current primary (network faults)."""
        return self._leader_node().client_proxy

    @property
    def service_sessions(self) -> Sessions | None:
        """With PgBouncer, the service's sessions are its clients there (PgBouncer's
        server sessions are PgBouncer's own)."""
        return self.pgbouncer.client_sessions if self.pgbouncer is not None else None

    def role_urls(self) -> dict[str, str]:
        """Every node's database, direct: the role monitor asks each who is primary."""
        return {n.name: n.direct_url for n in self.nodes}

    def bound_names(self) -> dict[str, float]:
        """Patroni's timings and the stack's named constants, for bound expressions."""
        patroni = self.patroni_settings
        return {
            "ttl": float(patroni.ttl),
            "loop_wait": float(patroni.loop_wait),
            "retry_timeout": float(patroni.retry_timeout),
            "promotion_time": PROMOTION_TIME,
            "standby_retry_interval": STANDBY_RETRY_INTERVAL,
            "route_time": self.route_time,
        }

    @property
    def route_time(self) -> float:
        """Seconds for the router to reach a new primary (chaos.infra.routers)."""
        if self.haproxy is None:
            return 0.0
        login_retry = SERVER_LOGIN_RETRY if self.pgbouncer is not None else 0
        return self.haproxy.settings.route_time + login_retry

    @property
    def router(self) -> str:
        """How the service finds the primary (chaos.infra.routers)."""
        return self._router

    def prepare_router(self, settings: Mapping[str, object]) -> None:
        """Apply a scenario's router settings (`stack: {router: {kind: haproxy, ...}}`)."""
        if not settings:
            return
        if self.haproxy is None:
            raise ScenarioError(
                f"stack.router: HAProxy's settings; this stack routes by {self._router}"
            )
        try:
            wanted = RouterSettings(**settings)  # type: ignore[arg-type]
        except (TypeError, ChaosError) as exc:
            raise ScenarioError(f"stack.router: {exc}") from exc
        if wanted.query_wait_timeout is not None and self.pgbouncer is None:
            raise ScenarioError(
                f"stack.router.query_wait_timeout: PgBouncer's; this stack routes by {self._router}"
            )
        self._configure_router(wanted)
        self.haproxy.wait_routed(self._leader_node().name, timeout=HEAL_TIMEOUT)

    def _query_wait_timeout(self, settings: RouterSettings) -> float:
        if settings.query_wait_timeout is not None:
            return settings.query_wait_timeout
        return pooler_query_wait_timeout(self.service_settings)

    def _configure_router(self, settings: RouterSettings) -> None:
        assert self.haproxy is not None
        self.haproxy.configure(replace(settings, query_wait_timeout=None))
        if self.pgbouncer is not None:
            self.pgbouncer.configure(query_wait_timeout=self._query_wait_timeout(settings))

    def prepare(self, settings: Mapping[str, object]) -> None:
        """Apply a scenario's Patroni settings (`stack: {patroni: {...}}`) over the
        defaults; ScenarioError naming what is wrong."""
        try:
            wanted = PatroniSettings(**settings)  # type: ignore[arg-type]
        except (TypeError, ChaosError) as exc:
            raise ScenarioError(f"stack.patroni: {exc}") from exc
        if wanted != self.patroni_settings:
            self.configure(wanted, timeout=HEAL_TIMEOUT)

    def heal(self) -> None:
        """Every proxy reset, every node running, default Patroni settings, one leader and
        streaming standbys; with HAProxy, its default checks, routing to the leader only;
        PgBouncer running and not paused."""
        with self.toxiproxy() as client:
            client.reset()
        for node in self.nodes:
            self.start_node(node.name)
        self.wait_healthy(timeout=HEAL_TIMEOUT)
        if self.patroni_settings != PatroniSettings():
            self.configure(PatroniSettings(), timeout=HEAL_TIMEOUT)
        leader = self.wait_healthy(timeout=HEAL_TIMEOUT)
        if self.haproxy is not None:
            self._configure_router(RouterSettings())
            self.haproxy.wait_routed(leader, timeout=HEAL_TIMEOUT)
        if self.pgbouncer is not None:
            self.pgbouncer.heal()

    # -- Stack's database faults, on the current primary ---------------------------------

    def _leader_node(self) -> HaNode:
        leader = self.leader()
        if leader is None:
            raise ChaosError("no leader")
        return self.node(leader)

    def stop_database(self) -> None:
        """A power cut of the primary (Patroni and PostgreSQL)."""
        self.kill_node(self._leader_node().name)

    def start_database(self) -> None:
        """Restart every stopped node."""
        for node in self.nodes:
            self.start_node(node.name)

    def primary(self) -> str | None:
        return self.leader()

    def settle(self) -> None:
        """Wait until one leader runs and every other node streams from it."""
        self.wait_healthy(timeout=HEAL_TIMEOUT)

    def pause_database(self) -> None:
        """Freeze the primary's PostgreSQL processes."""
        for proc in self._leader_node().postgres_processes():
            proc.send_signal(signal.SIGSTOP)

    def resume_database(self) -> None:
        """Thaw every node's PostgreSQL processes."""
        for node in self.nodes:
            for proc in node.postgres_processes():
                with suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGCONT)
