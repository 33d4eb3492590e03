"""The connection cap against the process's file-descriptor limit (each case in a fresh
interpreter: it changes RLIMIT_NOFILE)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.server import FD_RESERVE

_PROBE = """
import resource, sys
from app.server import HttpLimits, fit_connection_cap
soft, hard = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
limits = fit_connection_cap(HttpLimits(1.0, 1.0, 1.0, 16384, int(sys.argv[3]), 256))
print(limits.max_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _fit(soft: int, hard: int, cap: int) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(soft), str(hard), str(cap)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.parametrize(
    ("soft", "hard", "cap", "expected"),
    [
        # The soft limit is raised to hold the cap and the reserve.
        (300, 2000, 1000, (1000, 1000 + FD_RESERVE)),
        # Already enough: nothing changes.
        (2000, 2000, 1000, (1000, 2000)),
        # The hard limit is too low: the cap shrinks to fit under it.
        (300, 400, 1000, (400 - FD_RESERVE, 400)),
    ],
)
def test_the_cap_fits_the_descriptor_limit(
    soft: int, hard: int, cap: int, expected: tuple[int, int]
) -> None:
    assert _fit(soft, hard, cap) == expected
