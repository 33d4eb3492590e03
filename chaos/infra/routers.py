"""How the service on the HA stack finds the primary: its router.

- `libpq`: the service's URL lists every node's client proxy with
  `target_session_attrs=read-write`; libpq tries them in turn and keeps the writable one.
- `haproxy`: Debian's HAProxy, started by the stack on a loopback port, sends every
  connection to the node whose Patroni answers `GET /primary` with 200 (its REST check),
  through that node's client proxy (so Toxiproxy sits between HAProxy and each node).
  A node marked down has its sessions cut (`on-marked-down shutdown-sessions`): nothing
  keeps writing to a demoted primary once the check has seen it. The service's URL is
  HAProxy's one address, without `target_session_attrs`: until the check catches up,
  HAProxy may route to a node that is no longer writable, and writes meet SQLSTATE 25006
  there (the service answers 503 and replaces its sessions).
- `pgbouncer`: Debian's PgBouncer in transaction pooling, in front of that same HAProxy
  (PgBouncer 1.18 knows one host per database; HAProxy finds the primary). Toxiproxy
  sits between the service and PgBouncer too (proxy `pgbouncer`), so PgBouncer can be
  cut off or blackholed. The service runs with `DB_TRANSACTION_POOLER=true`: no
  prepared statements (psycopg's `prepare_threshold=None`), and its session settings
  (statement_timeout...) set by PgBouncer's `connect_query` on each server session,
  since PgBouncer 1.18 refuses the `options` startup parameter. PgBouncer's admin
  console (`PAUSE`, `RESUME`, `SHOW`) is on the same port, database `pgbouncer`.

How soon HAProxy moves (`RouterSettings`): a demoted node is marked down after `fall`
failed checks and the new primary up after `rise` passing ones, checks every
`check_interval` seconds; `route_time`, a bound name of the stack, is
`check_interval * (fall + rise)` (0 for libpq), plus PgBouncer's `server_login_retry`
with the pgbouncer router (after a failed login to a server, PgBouncer waits that long
before the next).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import ClientCursor

from chaos.errors import ChaosError, ProcessError
from chaos.infra.processes import ManagedProcess
from chaos.infra.waiting import free_port, wait_for

__all__ = [
    "PGBOUNCER_PROXY",
    "ROUTERS",
    "SERVER_LOGIN_RETRY",
    "HaProxy",
    "PgBouncer",
    "RouterSettings",
    "find_haproxy",
    "find_pgbouncer",
    "pooler_query_wait_timeout",
    "pooler_session_settings",
]

ROUTERS = ("libpq", "haproxy", "pgbouncer")
"""The routers the HA stack runs (`HaStack(router=...)`, `pgchaos run --router`)."""

#: Seconds HAProxy or PgBouncer gets to start listening.
START_TIMEOUT = 10.0

PGBOUNCER_PROXY = "pgbouncer"
"""The Toxiproxy proxy between the service and PgBouncer."""

#: Seconds PgBouncer waits after a failed login to a server before the next (its
#: `server_login_retry`, 15 s by default): how soon it reaches a new primary.
SERVER_LOGIN_RETRY = 1

#: Server sessions PgBouncer keeps per database and user (`default_pool_size`): above
#: every service replica's pool together.
PGBOUNCER_POOL_SIZE = 40

#: Seconds PgBouncer gives a server connection and login (`server_connect_timeout`, 15 s
#: by default): as the service's own connect timeout.
SERVER_CONNECT_TIMEOUT = 2


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """HAProxy's health check of the nodes (seconds and counts), and PgBouncer's
    `query_wait_timeout`: seconds a query may wait for a server session before PgBouncer
    refuses it (None: the service's acquire timeout, `pooler_query_wait_timeout`)."""

    check_interval: float = 1.0
    fall: int = 2
    rise: int = 1
    query_wait_timeout: float | None = None

    def __post_init__(self) -> None:
        if not self.check_interval > 0:
            raise ChaosError(f"check_interval: expected seconds > 0, got {self.check_interval}")
        wait = self.query_wait_timeout
        if wait is not None and (isinstance(wait, bool) or not isinstance(wait, int | float)):
            raise ChaosError(f"query_wait_timeout: expected seconds > 0, got {wait!r}")
        if wait is not None and not wait > 0:
            raise ChaosError(f"query_wait_timeout: expected seconds > 0, got {wait!r}")
        for name in ("fall", "rise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ChaosError(f"{name}: expected a whole number >= 1, got {value!r}")

    @property
    def route_time(self) -> float:
        """Seconds for HAProxy to mark the old primary down and the new one up."""
        return self.check_interval * (self.fall + self.rise)


def pooler_query_wait_timeout(service_settings: Mapping[str, str]) -> float:
    """PgBouncer's `query_wait_timeout` for the service: its acquire timeout (1 s by
    default). A query PgBouncer cannot place on a server session (none reachable) is
    refused (the service answers 503) when the service would have refused a request it
    had no connection for, not held until the request deadline (504)."""
    return float(service_settings.get("DB_POOL_ACQUIRE_TIMEOUT", "1.0"))


def pooler_session_settings(service_settings: Mapping[str, str]) -> dict[str, str]:
    """The server settings (milliseconds) the service runs its sessions with, from
    its settings (seconds, service defaults where unset), for PgBouncer's connect_query.
    The service sends them itself at connect time except behind a transaction pooler;
    there it logs each the server does not apply. A unit test keeps this in step with
    `app.settings.Settings.session_settings` (chaos does not import the service)."""
    statement = float(service_settings.get("DB_STATEMENT_TIMEOUT", "2.0"))
    deadline = float(service_settings.get("REQUEST_DEADLINE", "3.0"))
    return {
        "statement_timeout": str(max(1, round(statement * 1000))),
        "idle_in_transaction_session_timeout": str(max(1000, round(deadline * 2000))),
        "client_connection_check_interval": "1000",
    }


def _find(variable: str, name: str, package: str) -> Path:
    found = os.environ.get(variable) or shutil.which(name)
    if not found and Path(f"/usr/sbin/{name}").exists():
        found = f"/usr/sbin/{name}"
    if not found or not Path(found).exists():
        raise ProcessError(f"no {package}: apt-get install {name} (or set {variable})")
    return Path(found)


def find_pgbouncer() -> Path:
    """PGBOUNCER_BIN, else `pgbouncer` on PATH or in /usr/sbin (Debian's `pgbouncer`)."""
    return _find("PGBOUNCER_BIN", "pgbouncer", "PgBouncer")


def find_haproxy() -> Path:
    """HAPROXY_BIN, else `haproxy` on PATH or in /usr/sbin (Debian's `haproxy`)."""
    return _find("HAPROXY_BIN", "haproxy", "HAProxy")


def _listening(process: ManagedProcess, port: int) -> bool:
    process.check_alive()
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True, slots=True)
class Backend:
    """A node as HAProxy sees it: where its client proxy and its Patroni API listen."""

    name: str
    port: int
    api_port: int


class HaProxy:
    """One HAProxy process routing a loopback port to the primary among `backends`."""

    def __init__(self, backends: list[Backend], workdir: Path, *, port: int | None = None) -> None:
        self.backends = backends
        self.workdir = workdir
        self.port = port or free_port()
        self.settings = RouterSettings()
        self._process: ManagedProcess | None = None

    @property
    def url_host(self) -> str:
        """host:port of the routed address."""
        return f"127.0.0.1:{self.port}"

    def config(self) -> str:
        """haproxy.cfg for the current settings."""
        s = self.settings
        inter = f"{int(s.check_interval * 1000)}ms"
        servers = "\n".join(
            f"  server {b.name} 127.0.0.1:{b.port} check addr 127.0.0.1 port {b.api_port}"
            for b in self.backends
        )
        return f"""global
  maxconn 1024
  stats socket {self.workdir / "haproxy.sock"} mode 600 level admin

defaults
  mode tcp
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 1s

listen primary
  bind 127.0.0.1:{self.port}
  option httpchk GET /primary
  http-check expect status 200
  default-server inter {inter} fall {s.fall} rise {s.rise} on-marked-down shutdown-sessions
{servers}
"""

    def start(self) -> None:
        """Write the configuration, start HAProxy in the foreground, wait for its port."""
        path = self.workdir / "haproxy.cfg"
        path.write_text(self.config())
        self._process = ManagedProcess(
            [str(find_haproxy()), "-db", "-f", str(path)],
            name=f"haproxy on port {self.port}",
            log_path=self.workdir / "haproxy.log",
        )
        self._process.start()
        process = self._process
        wait_for(
            lambda: _listening(process, self.port),
            timeout=START_TIMEOUT,
            what=f"haproxy on port {self.port}",
        )

    def server_states(self) -> dict[str, str]:
        """Each server's status as HAProxy sees it (`UP`, `DOWN`...), from its stats socket."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2.0)
            sock.connect(str(self.workdir / "haproxy.sock"))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        name, status = header.index("svname"), header.index("status")
        return {
            row[name]: row[status]
            for row in (line.split(",") for line in lines[1:] if line)
            if row[name] not in ("FRONTEND", "BACKEND")
        }

    def wait_routed(self, primary: str, *, timeout: float) -> None:
        """Wait until HAProxy routes to `primary` only: it UP, every other server DOWN
        (HAProxy starts every server UP until its checks say otherwise)."""

        def routed() -> bool:
            states = self.server_states()
            return states.get(primary) == "UP" and all(
                state.startswith("DOWN") for name, state in states.items() if name != primary
            )

        try:
            wait_for(routed, timeout=timeout, what=f"haproxy routing to {primary} only")
        except ChaosError as exc:
            raise ChaosError(f"{exc}; servers: {self.server_states()}") from exc

    def configure(self, settings: RouterSettings) -> None:
        """New check settings: HAProxy restarted with them on the same port (its routed
        sessions are cut; the service reconnects)."""
        if settings == self.settings:
            return
        self.settings = settings
        self.stop()
        self.start()

    def stop(self) -> None:
        """Stop HAProxy. Idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None


class PgBouncer:
    """One PgBouncer in transaction pooling: database `database` on `port`, its server
    sessions to `upstream` (host:port) as `user`, each starting with `session_settings`
    (the service's, `SET` by `connect_query`). Any client user is let in (`auth_type
    any`, loopback only), and the admin console too."""

    def __init__(
        self,
        *,
        upstream: str,
        database: str,
        user: str,
        session_settings: Mapping[str, str],
        workdir: Path,
        query_wait_timeout: float = 120.0,
    ) -> None:
        self.query_wait_timeout = query_wait_timeout
        self.upstream = upstream
        self.database = database
        self.user = user
        self.session_settings = dict(session_settings)
        self.workdir = workdir
        self.port = free_port()
        self._process: ManagedProcess | None = None

    @property
    def pid(self) -> int | None:
        """PgBouncer's pid while it runs."""
        return self._process.pid if self._process else None

    def config(self) -> str:
        """pgbouncer.ini."""
        host, port = self.upstream.rsplit(":", 1)
        connect_query = "; ".join(f"SET {k} = {v}" for k, v in self.session_settings.items())
        server = f"host={host} port={port} dbname={self.database} user={self.user}"
        if connect_query:
            server += f" connect_query='{connect_query}'"
        return f"""[databases]
{self.database} = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {PGBOUNCER_POOL_SIZE}
max_client_conn = 1000
server_login_retry = {SERVER_LOGIN_RETRY}
query_wait_timeout = {self.query_wait_timeout:g}
server_connect_timeout = {SERVER_CONNECT_TIMEOUT}
; a server session is checked before each reuse: one that died idle fails the check, not
; a client's query
server_check_delay = 0
ignore_startup_parameters = extra_float_digits
admin_users = {self.user}
"""

    def start(self) -> None:
        """Write the configuration, start PgBouncer in the foreground, wait for its port.
        As root it drops to `postgres` (PgBouncer refuses to run as root)."""
        path = self.workdir / "pgbouncer.ini"
        path.write_text(self.config())
        argv = [str(find_pgbouncer())]
        if os.geteuid() == 0:
            argv += ["-u", "postgres"]
        self._process = ManagedProcess(
            [*argv, str(path)],
            name=f"pgbouncer on port {self.port}",
            log_path=self.workdir / "pgbouncer.log",
        )
        self._process.start()
        process = self._process
        wait_for(
            lambda: _listening(process, self.port),
            timeout=START_TIMEOUT,
            what=f"pgbouncer on port {self.port}",
        )

    def configure(self, *, query_wait_timeout: float) -> None:
        """A new `query_wait_timeout`: the configuration rewritten and reloaded (`RELOAD`
        on the admin console; no session is cut)."""
        if query_wait_timeout == self.query_wait_timeout:
            return
        self.query_wait_timeout = query_wait_timeout
        (self.workdir / "pgbouncer.ini").write_text(self.config())
        self.admin("RELOAD")

    def heal(self) -> None:
        """Running and not paused: started again if a fault stopped it, else `RESUME`d
        (an error when it was not paused is expected)."""
        if self._process is None or not self._process.alive():
            self.stop()
            self.start()
            return
        with suppress(ChaosError):
            self.admin(f"RESUME {self.database}")

    def client_sessions(self) -> int:
        """Client sessions of the database, active or waiting (`SHOW POOLS`)."""
        return sum(
            int(row["cl_active"]) + int(row["cl_waiting"])
            for row in self.admin("SHOW POOLS")
            if row["database"] == self.database
        )

    def admin(self, command: str) -> list[dict[str, Any]]:
        """One admin console command (`SHOW POOLS`, `PAUSE <database>`...), its rows as dicts.
        The console speaks the simple query protocol only (psycopg's ClientCursor)."""
        url = f"postgresql://{self.user}@127.0.0.1:{self.port}/pgbouncer?sslmode=disable"
        try:
            with (
                psycopg.connect(
                    url, autocommit=True, connect_timeout=SERVER_CONNECT_TIMEOUT
                ) as conn,
                ClientCursor(conn) as cur,
            ):
                cur.execute(command)
                if cur.description is None:
                    return []
                names = [c.name for c in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except psycopg.Error as exc:
            raise ChaosError(f"pgbouncer on port {self.port}: {command}: {exc}") from exc

    def stop(self) -> None:
        """Stop PgBouncer (SIGTERM: at once, every session closed). Idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None
