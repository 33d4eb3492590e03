"""Small helpers shared by the suites: reading the database state and /metrics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx

from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import read_metrics
from chaos.infra.service import ServiceProcess
from chaos.targets.coupons import COUPONS

__all__ = ["claims_of", "metric", "remaining_of", "running_service"]


@contextmanager
def running_service(
    database_url: str, env: Mapping[str, str] | None = None
) -> Iterator[ServiceProcess]:
    """The real service (`python -m app`) with these settings, stopped on exit even when
    its start failed half-way."""
    proc = ServiceProcess(database_url=database_url, env=env, settings_names=COUPONS.settings_names)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


def remaining_of(db: PostgresAdmin, coupon: str) -> int | None:
    """remaining_amount of a coupon, or None when it does not exist."""
    value = db.scalar("SELECT remaining_amount FROM coupons WHERE name = %s", (coupon,))
    return None if value is None else int(str(value))


def claims_of(db: PostgresAdmin, coupon: str) -> list[str]:
    """user_ids holding a claim on the coupon, in claim order."""
    rows = db.query("SELECT user_id FROM claims WHERE coupon_name = %s ORDER BY id", (coupon,))
    return [str(r[0]) for r in rows]


def metric(client: httpx.Client, name: str) -> float:
    """One unlabelled sample of the service's /metrics."""
    return read_metrics(client)[name]
