"""PostgreSQL for the toolkit: a throwaway cluster, and admin helpers on a direct connection.

The cluster is `initdb` + `pg_ctl` in a temporary directory, on a free loopback port,
with trust authentication; started as the `postgres` user when we run as root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from chaos.errors import ChaosError, ProcessError
from chaos.infra.processes import as_unprivileged, process_tree, run_checked
from chaos.infra.timing import (
    ADMIN_CONNECT_TIMEOUT,
    INITDB_TIMEOUT,
    START_TIMEOUT,
    STOP_TIMEOUT,
)
from chaos.infra.waiting import free_port, wait_for

__all__ = [
    "Backend",
    "PostgresAdmin",
    "PostgresCluster",
    "find_pg_bindir",
]

DEFAULT_BINDIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")


def find_pg_bindir() -> Path:
    """PG_BINDIR, else Debian's PostgreSQL 15, else `pg_config --bindir`, else PATH."""
    candidates = [os.environ.get("PG_BINDIR", ""), *DEFAULT_BINDIRS]
    for cand in candidates:
        if cand and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "pg_ctl").exists():
            return Path(out.stdout.strip())
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise ProcessError("PostgreSQL binaries not found: install `postgresql` or set PG_BINDIR")


class PostgresCluster:
    """A throwaway PostgreSQL server; `stop()` removes everything it created."""

    def __init__(
        self,
        *,
        port: int | None = None,
        dbname: str = "service",
        bindir: Path | None = None,
        max_connections: int = 200,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.dbname = dbname
        self.bindir = bindir or find_pg_bindir()
        self.max_connections = max_connections
        self.start_timeout = start_timeout
        self.tmpdir: Path | None = None

    @property
    def url(self) -> str:
        """libpq URL of the cluster's database (as superuser `postgres`)."""
        return f"postgresql://postgres@{self.host}:{self.port}/{self.dbname}?sslmode=disable"

    @property
    def datadir(self) -> Path:
        assert self.tmpdir is not None, "cluster not started"
        return self.tmpdir / "data"

    def _pg_ctl(self, *args: str, timeout: float) -> str:
        argv = as_unprivileged([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args])
        return run_checked(argv, timeout=timeout, what=f"pg_ctl {args[0]}")

    def start(self) -> None:
        """initdb, start, create the database. On failure, everything is removed."""
        self.tmpdir = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
        try:
            if os.geteuid() == 0:
                shutil.chown(self.tmpdir, "postgres", "postgres")
            run_checked(
                as_unprivileged(
                    [
                        str(self.bindir / "initdb"),
                        "-D",
                        str(self.datadir),
                        "-U",
                        "postgres",
                        "-A",
                        "trust",
                        "-E",
                        "UTF8",
                        "--no-sync",
                    ]
                ),
                timeout=INITDB_TIMEOUT,
                what="initdb",
            )
            self._start_server()
            with psycopg.connect(self._url_for("postgres"), autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))
        except BaseException:
            self.stop()
            raise

    def _url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{dbname}?sslmode=disable"

    def _start_server(self) -> None:
        assert self.tmpdir is not None
        options = (
            f"-F -p {self.port} -c listen_addresses={self.host} "
            f"-c unix_socket_directories={self.tmpdir} "
            f"-c max_connections={self.max_connections} "
            # fsync off is safe while the OS stays up; synchronous_commit stays on so an
            # acknowledged commit survives an immediate (crash-like) restart.
            "-c fsync=off -c full_page_writes=off"
        )
        self._pg_ctl(
            "start",
            "-w",
            "-t",
            str(int(self.start_timeout)),
            "-l",
            str(self.tmpdir / "postgres.log"),
            "-o",
            options,
            timeout=self.start_timeout + 10,
        )

    def postmaster_pid(self) -> int | None:
        """The postmaster's pid, from postmaster.pid, while it runs."""
        try:
            first = (self.datadir / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError, AssertionError):
            return None
        pid = int(first)
        return pid if psutil.pid_exists(pid) else None

    def _server_processes(self) -> list[psutil.Process]:
        return process_tree(self.postmaster_pid())

    def stop_server(self, *, mode: str = "fast") -> None:
        """Stop the server process, keeping the data (for a restart)."""
        if self.postmaster_pid() is None:
            return
        self.resume()  # a frozen server cannot shut down
        wait = int(START_TIMEOUT)
        self._pg_ctl("stop", "-w", "-m", mode, "-t", str(wait), timeout=wait + STOP_TIMEOUT)

    def start_server(self) -> None:
        """Start the server again on the same port and data."""
        self._start_server()

    def pause(self) -> None:
        """Freeze the server: SIGSTOP to the postmaster and every backend."""
        for proc in self._server_processes():
            proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a frozen server."""
        for proc in self._server_processes():
            with suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server and remove the temporary directory. Idempotent."""
        try:
            if self.tmpdir is not None and self.postmaster_pid() is not None:
                try:
                    self.stop_server(mode="immediate")
                except ProcessError:
                    for proc in self._server_processes():
                        proc.kill()
        finally:
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = None

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class Backend:
    """One server backend of the service, from pg_stat_activity."""

    pid: int
    state: str | None
    query: str
    wait_event_type: str | None
    xact_start_age: float | None
    blocked_by: tuple[int, ...] = ()
    """pg_blocking_pids: the backends whose locks this one waits for."""


class PostgresAdmin:
    """Admin helpers on a direct (never proxied) autocommit connection."""

    def __init__(self, url: str, *, application_name: str | None = None) -> None:
        self.url = url
        self.application_name = application_name
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(
                    self.url,
                    autocommit=True,
                    application_name="chaos-admin",
                    connect_timeout=ADMIN_CONNECT_TIMEOUT,
                )
            except psycopg.OperationalError as exc:
                raise ChaosError(f"admin connection to the database failed: {exc}") from exc
        return self._conn

    def close(self) -> None:
        """Close the admin connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> PostgresAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run one statement and return its rows (empty when it returns none).

        A connection found broken (its server restarted, or a failover moved the primary
        a multi-host URL points at) is opened again once; any other database error, or a
        second break, is a ChaosError.
        """
        for attempt in (1, 2):
            conn = self._connection()
            try:
                cur = conn.execute(statement.encode(), params)
                return cur.fetchall() if cur.description else []
            except psycopg.OperationalError as exc:
                if attempt == 2 or not (conn.broken or conn.closed):
                    raise ChaosError(f"admin query failed: {exc}") from exc
        raise AssertionError("unreachable")

    def scalar(self, statement: str, params: tuple[object, ...] = ()) -> object:
        """The first column of the first row."""
        rows = self.query(statement, params)
        return rows[0][0] if rows else None

    def backends(self) -> list[Backend]:
        """The service's backends (by application_name) with their state."""
        if self.application_name is None:
            raise ChaosError("PostgresAdmin needs the service's application_name for backends")
        rows = self.query(
            "SELECT pid, state, query, wait_event_type,"
            " EXTRACT(EPOCH FROM now() - xact_start)::float8, pg_blocking_pids(pid)"
            " FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()"
            " ORDER BY pid",
            (self.application_name,),
        )
        return [
            Backend(
                int(str(r[0])),
                None if r[1] is None else str(r[1]),
                str(r[2] or ""),
                None if r[3] is None else str(r[3]),
                None if r[4] is None else float(str(r[4])),
                tuple(int(str(p)) for p in r[5] or ()) if isinstance(r[5], list) else (),
            )
            for r in rows
        ]

    def terminate(self, pid: int) -> bool:
        """pg_terminate_backend on one backend."""
        return bool(self.scalar("SELECT pg_terminate_backend(%s)", (pid,)))

    def wait_for_backend(
        self,
        *,
        timeout: float,
        state: str | None = None,
        wait_event_type: str | None = None,
        query_contains: str | None = None,
        blocked_by: int | None = None,
        count: int = 1,
    ) -> list[Backend]:
        """Wait until at least `count` service backends match; WaitTimeout otherwise.

        `blocked_by` (a backend pid) picks the backends waiting for that backend's locks:
        under a workload, other writes wait on row locks with the same query text.
        """

        def matching() -> list[Backend] | None:
            found = [
                b
                for b in self.backends()
                if (state is None or b.state == state)
                and (wait_event_type is None or b.wait_event_type == wait_event_type)
                and (query_contains is None or query_contains in b.query)
                and (blocked_by is None or blocked_by in b.blocked_by)
            ]
            return found if len(found) >= count else None

        return wait_for(
            matching,
            timeout=timeout,
            what=f"{count} backend(s) state={state} wait={wait_event_type} query~{query_contains}",
        )

    @contextmanager
    def hold_row_lock(self, table: str, key_column: str, key: object) -> Iterator[None]:
        """Hold `SELECT ... FOR UPDATE` on one row in an open transaction until exit."""
        with self.lock_connection() as conn, conn.transaction():
            conn.execute(
                sql.SQL("SELECT 1 FROM {} WHERE {} = %s FOR UPDATE").format(
                    sql.Identifier(table), sql.Identifier(key_column)
                ),
                (key,),
            )
            yield

    @contextmanager
    def lock_connection(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """A connection of its own (autocommit), for holding locks; closed on exit."""
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            application_name="chaos-lock-holder",
            connect_timeout=ADMIN_CONNECT_TIMEOUT,
        )
        try:
            yield conn
        finally:
            conn.close()

    def wait_until_no_backend(self, *, timeout: float, state: str) -> None:
        """Wait until no service backend is in `state` (e.g. 'idle in transaction')."""
        wait_for(
            lambda: not [b for b in self.backends() if b.state == state],
            timeout=timeout,
            what=f"no service backend {state!r}",
        )
