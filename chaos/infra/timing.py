"""Bounds of bringing the stack up and down: they apply before any service runs, so they
cannot come from the service's limits (chaos.infra.probes.Limits, from which every
bound of a scenario run is derived). Generous on purpose: a shared 2-core machine."""

from __future__ import annotations

__all__ = [
    "ADMIN_CONNECT_TIMEOUT",
    "EXTERNAL_START_TIMEOUT",
    "INITDB_TIMEOUT",
    "PROBE_TIMEOUT",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
]

START_TIMEOUT = 30.0
"""Seconds a process we start (PostgreSQL, Toxiproxy, the service) has to become ready."""

INITDB_TIMEOUT = 120.0
"""Seconds initdb has to create a cluster."""

STOP_TIMEOUT = 10.0
"""Seconds a process has to exit after SIGTERM before it is killed."""

ADMIN_CONNECT_TIMEOUT = 5
"""Seconds (an integer: libpq's unit) an admin connection has to connect."""

PROBE_TIMEOUT = 1.0
"""Seconds one readiness probe may take (it is repeated until START_TIMEOUT)."""

EXTERNAL_START_TIMEOUT = 60.0
"""Seconds a stack somebody else runs has to answer (compose may still be starting)."""
