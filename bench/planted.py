"""Planted resilience bugs: small patches to a copy of the service, for checking that the
toolkit catches what it claims to (`pgchaos explore` and the catalogue).

`planted_copy(name, workdir)` copies app/ into `workdir`, applies the bug's patch, and
`PlantedCoupons(root)` is the coupon target whose service runs from that copy. Each
patch is text that must be found exactly once, so a refactor of the service that moves
the code fails loudly here instead of planting nothing.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chaos.targets.coupons import CouponsTarget

__all__ = ["BUGS", "Bug", "PlantedCoupons", "planted_copy"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bug:
    """One planted bug: what it breaks, and the patch (file, text, replacement)."""

    name: str
    breaks: str
    file: str
    text: str
    replacement: str


BUGS: tuple[Bug, ...] = (
    Bug(
        "lost-retry-after",
        "a 503 without Retry-After",
        "app/errors.py",
        '            "Retry-After": str(retry_after),\n',
        "",
    ),
    Bug(
        "missing-deadline",
        "no request deadline: a request waits as long as its database work does",
        "app/db.py",
        "done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))",
        "done, _ = await asyncio.wait({task}, timeout=None)",
    ),
    Bug(
        "unchecked-connection",
        "a pooled connection handed out without looking whether its server end closed",
        "app/db.py",
        "            if not _has_unread_input(conn):\n",
        "            if True:\n",
    ),
    Bug(
        "leaked-connection",
        "a connection never returned to the pool when the database failed the work",
        "app/db.py",
        "await self.pool.putconn(conn)  # a broken connection is discarded, replaced\n",
        "if answered:\n                    await self.pool.putconn(conn)\n",
    ),
    Bug(
        "ack-before-durable",
        "a commit acknowledged before it is durable (synchronous_commit off)",
        "app/settings.py",
        '            "-c client_connection_check_interval=1000"',
        '            "-c synchronous_commit=off -c client_connection_check_interval=1000"',
    ),
    Bug(
        "retry-after-unknown-outcome",
        "a write retried on a fresh connection after its connection broke, though the "
        "commit may have landed",
        "app/db.py",
        "                async with conn:  # commit on success, roll back on error\n"
        "                    result = await work(conn, state)\n",
        "                try:\n"
        "                    async with conn:  # commit on success, roll back on error\n"
        "                        result = await work(conn, state)\n"
        "                except psycopg.OperationalError:\n"
        "                    await self.pool.putconn(conn)\n"
        "                    conn = await self._checked_connection(deadline)\n"
        "                    async with conn:\n"
        "                        result = await work(conn, state)\n",
    ),
    Bug(
        "write-attempted-lie",
        "a 503 that claims nothing was written when a statement was sent",
        "app/errors.py",
        '"X-Write-Attempted": "true" if self.write_attempted else "false",',
        '"X-Write-Attempted": "false",',
    ),
)


def planted_copy(name: str, workdir: Path) -> Path:
    """A copy of the service with bug `name` planted; the directory to run it from."""
    bug = next(b for b in BUGS if b.name == name)
    root = workdir / f"planted-{name}"
    shutil.copytree(ROOT / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    path = root / bug.file
    source = path.read_text()
    if source.count(bug.text) != 1:
        raise RuntimeError(f"bug {name}: {bug.file} holds its text {source.count(bug.text)} times")
    path.write_text(source.replace(bug.text, bug.replacement))
    return root


class PlantedCoupons(CouponsTarget):
    """The coupon target, its service run from a planted copy."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def service_command(self) -> Sequence[str]:  # type: ignore[override]
        return (
            sys.executable,
            "-c",
            f"import runpy, sys; sys.path.insert(0, {str(self.root)!r}); "
            "runpy.run_module('app', run_name='__main__', alter_sys=True)",
        )
