"""Exceptions of the chaos toolkit.

Exception tree::

    ChaosError                      every error the toolkit raises on purpose
    ├── ToxiproxyError              (chaos.infra.toxiproxy) the Toxiproxy API or its transport
    ├── ProcessError                a process we start failed to start, or died
    ├── WaitTimeout                 a condition was not met before its deadline
    └── ScenarioError               a scenario was declared wrong, or could not run

Lower-level errors (subprocess, psycopg, httpx) are translated where they are caught,
with ``raise ... from exc``; messages carry the numbers (ports, seconds, exit codes).
"""

from __future__ import annotations

__all__ = ["ChaosError", "ProcessError", "ScenarioError", "WaitTimeout"]


class ChaosError(Exception):
    """Base of every error the toolkit raises on purpose."""


class ProcessError(ChaosError):
    """A process the toolkit starts failed to start, or exited early."""


class WaitTimeout(ChaosError):
    """A condition was not met before its deadline."""


class ScenarioError(ChaosError):
    """A scenario is declared wrong, or its set-up could not run."""
