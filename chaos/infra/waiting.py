"""Waiting for conditions with deadlines, and free loopback ports."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

from chaos.errors import ChaosError, WaitTimeout

__all__ = ["free_port", "wait_for"]

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.02,
) -> T:
    """Poll `condition` until it returns something truthy; WaitTimeout after `timeout` s.

    Exceptions raised by `condition` count as "not yet" (the last one is chained),
    except the toolkit's own errors, which stop the wait at once (a process that died).
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except ChaosError:
            raise
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not reached within {timeout:.2f} s") from last_exc
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
