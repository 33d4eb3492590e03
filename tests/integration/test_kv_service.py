"""The key-value test service (`python -m tests.kv`) on a throwaway PostgreSQL: its HTTP
contract, the invariant version == writes, the coupon service's metric families, the
application_name of its sessions, and a clean exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from psycopg.rows import TupleRow

from app.settings import Settings
from chaos.infra.postgres import PostgresCluster
from chaos.infra.processes import ManagedProcess
from chaos.infra.waiting import free_port, wait_for
from tests.kv.service import APPLICATION_NAME

ROOT = Path(__file__).resolve().parents[2]

#: Seconds: to become healthy, for one /health probe, to exit after SIGTERM.
START_TIMEOUT, PROBE_TIMEOUT, STOP_TIMEOUT = 60.0, 2.0, 15.0

#: application_name of the test's own direct connections (left out of the session check).
ADMIN_NAME = "kv-test-admin"


@contextmanager
def running_kv(
    database_url: str, log_dir: Path, **settings: str
) -> Iterator[tuple[ManagedProcess, str]]:
    """`python -m tests.kv` on a free port, ready (/health 200); stopped in finally.

    `settings` are further environment variables (names in upper case)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    own = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in own}
    env.update(
        DATABASE_URL=database_url,
        SERVER_HOST="127.0.0.1",
        SERVER_PORT=str(port),
        LOG_LEVEL="warning",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.update(settings)
    proc = ManagedProcess(
        [sys.executable, "-m", "tests.kv"],
        name=f"kv service on port {port}",
        log_path=log_dir / f"kv-{port}.log",
        env=env,
    )

    def healthy() -> bool:
        proc.check_alive()
        return httpx.get(f"{url}/health", timeout=PROBE_TIMEOUT).status_code == 200

    try:
        proc.start()
        wait_for(healthy, timeout=START_TIMEOUT, what=f"kv service at {url}")
        yield proc, url
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as pg:
        yield pg


@pytest.fixture(scope="module")
def client(
    cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    with (
        running_kv(cluster.url, tmp_path_factory.mktemp("kv")) as (_, url),
        httpx.Client(base_url=url, timeout=30.0) as http,
    ):
        yield http


def _connect(cluster: PostgresCluster) -> psycopg.Connection[TupleRow]:
    return psycopg.connect(cluster.url, autocommit=True, application_name=ADMIN_NAME)


def _counts(cluster: PostgresCluster) -> dict[str, tuple[int, int]]:
    """Per key: (version, rows in kv_writes), read directly from the database."""
    with _connect(cluster) as conn:
        rows = conn.execute(
            "SELECT name, version, (SELECT count(*) FROM kv_writes WHERE key = name) FROM kv_keys"
        ).fetchall()
    return {name: (version, writes) for name, version, writes in rows}


def test_create_write_read(client: httpx.Client, cluster: PostgresCluster) -> None:
    created = client.post("/kv", json={"key": "k1"})
    assert (created.status_code, created.json()) == (201, {"key": "k1", "version": 0})
    again = client.post("/kv", json={"key": "k1"})
    assert (again.status_code, again.json()) == (409, {"error": "key exists"})

    first = client.put("/kv/k1", json={"writer": "w1", "value": 10})
    assert (first.status_code, first.json()) == (200, {"key": "k1", "version": 1})
    second = client.put("/kv/k1", json={"writer": "w2", "value": 20})
    assert (second.status_code, second.json()) == (200, {"key": "k1", "version": 2})
    duplicate = client.put("/kv/k1", json={"writer": "w1", "value": 30})
    assert (duplicate.status_code, duplicate.json()) == (409, {"error": "writer already wrote"})

    read = client.get("/kv/k1")
    assert (read.status_code, read.json()) == (200, {"key": "k1", "version": 2, "writes": 2})
    assert _counts(cluster)["k1"] == (2, 2)


def test_unknown_key_is_404_and_writes_nothing(
    client: httpx.Client, cluster: PostgresCluster
) -> None:
    write = client.put("/kv/nope", json={"writer": "w1", "value": 1})
    assert (write.status_code, write.json()) == (404, {"error": "key not found"})
    read = client.get("/kv/nope")
    assert (read.status_code, read.json()) == (404, {"error": "key not found"})
    assert "nope" not in _counts(cluster)
    with _connect(cluster) as conn:
        row = conn.execute("SELECT count(*) FROM kv_writes WHERE key = 'nope'").fetchone()
    assert row == (0,)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("POST", "/kv", b'{"kee": "x"}', id="create-no-key"),
        pytest.param("POST", "/kv", b'{"key": 5}', id="create-key-not-text"),
        pytest.param("POST", "/kv", b"not json", id="create-not-json"),
        pytest.param("PUT", "/kv/k2", b'{"value": 1}', id="write-no-writer"),
        pytest.param("PUT", "/kv/k2", b'{"writer": "w", "value": "1"}', id="write-value-text"),
        pytest.param("PUT", "/kv/k2", b'{"writer": "w", "value": true}', id="write-value-bool"),
        pytest.param("PUT", "/kv/k2", b'{"writer": "w", "value": 1e400}', id="write-value-inf"),
        pytest.param("PUT", "/kv/k2", b"[1]", id="write-not-object"),
    ],
)
def test_bad_body_is_400_and_writes_nothing(
    client: httpx.Client, cluster: PostgresCluster, method: str, path: str, body: bytes
) -> None:
    if "k2" not in _counts(cluster):
        assert client.post("/kv", json={"key": "k2"}).status_code == 201
    resp = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert isinstance(resp.json()["error"], str)
    assert _counts(cluster)["k2"] == (0, 0)


def test_version_equals_writes_for_every_key(
    client: httpx.Client, cluster: PostgresCluster
) -> None:
    assert client.post("/kv", json={"key": "k3"}).status_code == 201
    for n in range(5):
        assert client.put("/kv/k3", json={"writer": f"w{n}", "value": n}).status_code == 200
    counts = _counts(cluster)
    assert counts["k3"] == (5, 5)
    assert all(version == writes for version, writes in counts.values()), counts


def test_metrics_are_the_coupon_service_families(client: httpx.Client) -> None:
    text = client.get("/metrics").text
    for family in (
        'service_limit{name="request_deadline"}',
        'service_limit{name="db_pool_acquire_timeout"}',
        "db_pool_size",
        "db_pool_available",
        "http_requests_in_flight",
        "db_background_cleanups",
        "process_fds",
    ):
        assert family in text, family


def test_sessions_carry_the_application_name(
    client: httpx.Client, cluster: PostgresCluster
) -> None:
    assert client.get("/health").status_code == 200
    with _connect(cluster) as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type = 'client backend' "
            "AND application_name <> %s",
            (ADMIN_NAME,),
        ).fetchall()
    assert rows
    assert {name for (name,) in rows} == {APPLICATION_NAME} == {"kv-service"}


def _sessions(cluster: PostgresCluster, application_name: str) -> int:
    with _connect(cluster) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_sigterm_exits_cleanly(cluster: PostgresCluster, tmp_path: Path) -> None:
    """uvicorn shuts down (lifespan: pool closed), then re-raises the signal it caught, as
    `python -m app` does: the exit status is SIGTERM's, after a complete shutdown. This
    instance's sessions carry an overridden application_name, to tell them apart."""
    name = "kv-service-sigterm"
    with running_kv(cluster.url, tmp_path, LOG_LEVEL="info", DB_APPLICATION_NAME=name) as (proc, _):
        assert _sessions(cluster, name) > 0
        assert proc.pid is not None
        child = psutil.Process(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        assert child.wait(timeout=STOP_TIMEOUT) in (0, -signal.SIGTERM), proc.log_tail()
        log = proc.log_tail(200)
        assert "Application shutdown complete" in log, log
        assert "Traceback" not in log, log
    wait_for(lambda: _sessions(cluster, name) == 0, timeout=STOP_TIMEOUT, what="sessions closed")
