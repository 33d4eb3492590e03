"""`pgchaos run` ended by SIGTERM (a CI job's timeout, `kill`) tears its stack down like
Ctrl-C does: no PostgreSQL, Toxiproxy or service process is left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from chaos.infra.waiting import wait_for

pytestmark = pytest.mark.chaos

ROOT = Path(__file__).resolve().parents[2]
#: How long the stack may take to come up and reach the fault (start-up bounds of the
#: stack's parts, and the warm-up).
UP_TIMEOUT = 120.0
#: How long the teardown may take: the fault removed, the workload stopped (its requests
#: bounded by the cleanup bound), the service, Toxiproxy and PostgreSQL stopped.
TEARDOWN_TIMEOUT = 60.0


def test_sigterm_tears_the_stack_down(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOS_")}
    argv = [sys.executable, "-m", "chaos", "run", "--scenario", "proxy-down-long"]
    began = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*argv, "--report-dir", str(tmp_path / "reports")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    started: list[psutil.Process] = []
    try:
        wait_for(
            lambda: "injecting proxy disabled" in log.read_text(),
            timeout=UP_TIMEOUT,
            what="the run to reach its fault",
        )
        children = psutil.Process(proc.pid).children(recursive=True)  # Toxiproxy, service
        # PostgreSQL daemonizes out of the process tree: found by its data directory.
        postgres = [p for p in _postgres_since(began) if p.pid not in {c.pid for c in children}]
        assert len(children) >= 2, children
        assert postgres, "no PostgreSQL of this run found"
        started = children + postgres
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TEARDOWN_TIMEOUT) == 128 + signal.SIGTERM
        _, alive = psutil.wait_procs(started, timeout=TEARDOWN_TIMEOUT)
        assert not alive, alive
    finally:
        # Whatever failed above, nothing of this run is left: the run asked to stop, then
        # made to; then anything it started that still runs.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=TEARDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for leftover in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()


def _postgres_since(began: float) -> list[psutil.Process]:
    """The postmasters of throwaway clusters started since `began`."""
    found = []
    for p in psutil.process_iter(["name", "cmdline", "create_time"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        ours = p.info["name"] == "postgres" and "chaos-pg-" in cmdline
        if ours and p.info["create_time"] >= began - 1:
            found.append(p)
    return found
