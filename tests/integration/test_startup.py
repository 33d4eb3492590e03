"""Start-up while PostgreSQL is down: each retry is logged with the time left."""

from __future__ import annotations

import os
import subprocess
import sys

from chaos.infra.waiting import free_port

#: Start-up timeout of the service in this test; the run must end soon after it.
STARTUP_TIMEOUT = 2.0
#: Bound on the whole run: the start-up timeout plus interpreter start and shutdown.
RUN_BOUND = STARTUP_TIMEOUT + 20.0


def test_startup_logs_each_retry_with_the_time_left_then_gives_up() -> None:
    closed_port = free_port()  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_"))}
    env.update(
        {
            "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{closed_port}/none",
            "DB_PASSWORD": "hunter2",
            "STARTUP_TIMEOUT": str(STARTUP_TIMEOUT),
            "SERVER_PORT": str(free_port()),
            "LOG_LEVEL": "info",
        }
    )
    run = subprocess.run(
        [sys.executable, "-m", "app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_BOUND,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    retries = [line for line in output.splitlines() if "database not ready" in line]
    assert len(retries) >= 2, output
    assert all(" s left" in line and "retrying in" in line for line in retries)
    assert "hunter2" not in output
