"""Fixtures for the integration and stress suites: a real PostgreSQL and the real service.

PostgreSQL is a throwaway cluster started here (initdb + pg_ctl in a temp dir, free
port), unless COUPON_TEST_DATABASE_URL names an existing database. The service is
`python -m app` over HTTP, configured only through its environment settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from chaos.infra.postgres import PostgresAdmin, PostgresCluster
from chaos.infra.service import ServiceProcess
from chaos.targets.coupons import COUPONS
from tests.helpers import running_service

#: Settings the test service runs with; tests derive their bounds from these.
SERVICE_SETTINGS = {
    "DB_POOL_MIN_SIZE": "4",
    "DB_POOL_MAX_SIZE": "4",
    "DB_POOL_ACQUIRE_TIMEOUT": "2.0",
    "DB_POOL_MAX_WAITING": "1000",
    "DB_STATEMENT_TIMEOUT": "3.0",
    "REQUEST_DEADLINE": "5.0",
    "HEALTH_TIMEOUT": "1.0",
    "SOLD_OUT_TRUST": "1.0",
}


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database URL: COUPON_TEST_DATABASE_URL, or a throwaway cluster's."""
    existing = os.environ.get("COUPON_TEST_DATABASE_URL")
    if existing:
        yield existing
        return
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def service(database_url: str) -> Iterator[ServiceProcess]:
    """The real service, started once per session."""
    with running_service(database_url, SERVICE_SETTINGS) as proc:
        yield proc


@pytest.fixture(scope="session")
def admin(database_url: str) -> Iterator[PostgresAdmin]:
    """Direct admin connection to the database."""
    with PostgresAdmin(database_url, application_name=COUPONS.application_name) as adm:
        yield adm


@pytest.fixture
def db(admin: PostgresAdmin, service: ServiceProcess) -> PostgresAdmin:
    """The admin helper, on emptied tables."""
    admin.query("TRUNCATE claims, coupons RESTART IDENTITY CASCADE")
    return admin


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    """An HTTP client for the service."""
    with httpx.Client(base_url=service.url, timeout=30.0) as c:
        yield c
