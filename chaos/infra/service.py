"""The service under test as a child process (by default `python -m app`), for stacks and tests."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import httpx

from chaos.infra.processes import ManagedProcess
from chaos.infra.timing import PROBE_TIMEOUT, START_TIMEOUT
from chaos.infra.waiting import free_port, wait_for

__all__ = ["ServiceProcess"]


class ServiceProcess:
    """Runs the service on a free loopback port; ready when /health answers 200."""

    def __init__(
        self,
        *,
        database_url: str,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        start_timeout: float = START_TIMEOUT,
        log_dir: Path | None = None,
        command: Sequence[str] | None = None,
        settings_names: Collection[str] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.database_url = database_url
        self.extra_env = dict(env or {})
        #: The settings `configure({})` returns to.
        self.base_env = dict(self.extra_env)
        self.start_timeout = start_timeout
        self.command = list(command) if command else [sys.executable, "-m", "app"]
        self.settings_names = {name.upper() for name in settings_names}
        self._own_log_dir = log_dir is None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="chaos-svc-"))
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The uvicorn process's pid while it runs."""
        return self._process.pid if self._process else None

    def environment(self) -> dict[str, str]:
        """The environment the service starts with (settings are environment variables)."""
        # The caller's shell must not change the settings silently: every variable the
        # service reads (`settings_names`) comes from here, or it takes its default.
        env = {k: v for k, v in os.environ.items() if k.upper() not in self.settings_names}
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "SERVER_HOST": self.host,
                "SERVER_PORT": str(self.port),
                "LOG_LEVEL": "warning",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Start and wait until /health answers 200; stops it again on failure."""
        self._process = ManagedProcess(
            self.command,
            name=f"service on port {self.port}",
            log_path=self.log_dir / f"service-{self.port}.log",
            env=self.environment(),
        )
        self._process.start()
        try:
            wait_for(self._healthy, timeout=self.start_timeout, what=f"service at {self.url}")
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        assert self._process is not None
        self._process.check_alive()
        try:
            return httpx.get(f"{self.url}/health", timeout=PROBE_TIMEOUT).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        """The end of the service's log."""
        return self._process.log_tail(lines) if self._process else ""

    def restart(self) -> None:
        """Stop the service and start it again on its port, with its current settings."""
        if self._process is not None:
            self._process.stop()
            self._process = None
        self.start()

    def configure(self, overrides: Mapping[str, str]) -> bool:
        """Run with `overrides` over the settings it was made with (`{}` restores them),
        restarted on its port when they change; whether it restarted."""
        wanted = {**self.base_env, **overrides}
        if wanted == self.extra_env:
            return False
        self.extra_env = wanted
        self.restart()
        return True

    def stop(self) -> None:
        """Stop the service (SIGTERM, bounded, then SIGKILL). Idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._own_log_dir and self.log_dir.exists():
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
