"""Child processes the toolkit starts, always stopped: terminate, bounded wait, kill."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from chaos.errors import ProcessError
from chaos.infra.timing import STOP_TIMEOUT

__all__ = ["ManagedProcess", "as_unprivileged", "process_tree", "run_checked"]

log = logging.getLogger("chaos.infra.processes")


def as_unprivileged(argv: Sequence[str], user: str = "postgres") -> list[str]:
    """`argv` run as `user` when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", user, "--", *argv]
    return list(argv)


def process_tree(pid: int | None) -> list[psutil.Process]:
    """A process and its descendants (empty when it is gone)."""
    if pid is None:
        return []
    try:
        main = psutil.Process(pid)
        return [main, *main.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def run_checked(argv: Sequence[str], *, timeout: float, what: str) -> str:
    """Run a short command; ProcessError with its exit code and output when it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProcessError(f"{what}: still running after {timeout:.1f} s") from exc
    except OSError as exc:
        raise ProcessError(f"{what}: cannot run {argv[0]!r}: {exc}") from exc
    if done.returncode != 0:
        raise ProcessError(
            f"{what}: exit code {done.returncode}: {(done.stderr or done.stdout).strip()[-2000:]}"
        )
    return done.stdout


class ManagedProcess:
    """One long-running child with its output in a log file."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid while it was started."""
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start the child in its own session (a terminal's Ctrl-C reaches us, not it)."""
        with self.log_path.open("ab") as out:
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessError(f"{self.name}: cannot start {self.argv[0]!r}: {exc}") from exc

    def alive(self) -> bool:
        """Whether the child is running."""
        return self._proc is not None and self._proc.poll() is None

    def check_alive(self) -> None:
        """ProcessError with the exit code and log tail when the child has exited."""
        if self._proc is not None and self._proc.poll() is not None:
            code = self._proc.returncode
            raise ProcessError(f"{self.name} exited with code {code}; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the child's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate; kill after `stop_timeout` s. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.1f s; killing", self.name, self.stop_timeout)
            proc.kill()
            proc.wait(timeout=self.stop_timeout)
