"""How the service on the HA stack finds the primary: its router.

- `libpq`: the service's URL lists every node's client proxy with
  `target_session_attrs=read-write`; libpq tries them in turn and keeps the writable one.
- `haproxy`: Debian's HAProxy, started by the stack on a loopback port, sends every
  connection to the node whose Patroni answers `GET /primary` with 200 (its REST check),
  through that node's client proxy (so Toxiproxy sits between HAProxy and each node).
  A node marked down has its sessions cut (`on-marked-down shutdown-sessions`): nothing
  keeps writing to a demoted primary once the check has seen it. The service's URL is
  HAProxy's one address, without `target_session_attrs`: until the check catches up,
  HAProxy may route to a node that is no longer writable, and writes meet SQLSTATE 25006
  there (the service answers 503 and replaces its sessions).

How soon HAProxy moves (`RouterSettings`): a demoted node is marked down after `fall`
failed checks and the new primary up after `rise` passing ones, checks every
`check_interval` seconds; `route_time`, a bound name of the stack, is
`check_interval * (fall + rise)` (0 for libpq).
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from chaos.errors import ChaosError, ProcessError
from chaos.infra.processes import ManagedProcess
from chaos.infra.waiting import free_port, wait_for

__all__ = ["ROUTERS", "HaProxy", "RouterSettings", "find_haproxy"]

ROUTERS = ("libpq", "haproxy")
"""The routers the HA stack runs (`HaStack(router=...)`, `pgchaos run --router`)."""

#: Seconds HAProxy gets to start listening.
START_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """HAProxy's health check of the nodes (seconds and counts)."""

    check_interval: float = 1.0
    fall: int = 2
    rise: int = 1

    def __post_init__(self) -> None:
        if not self.check_interval > 0:
            raise ChaosError(f"check_interval: expected seconds > 0, got {self.check_interval}")
        for name in ("fall", "rise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ChaosError(f"{name}: expected a whole number >= 1, got {value!r}")

    @property
    def route_time(self) -> float:
        """Seconds for HAProxy to mark the old primary down and the new one up."""
        return self.check_interval * (self.fall + self.rise)


def find_haproxy() -> Path:
    """HAPROXY_BIN, else `haproxy` on PATH or in /usr/sbin (Debian's `haproxy`)."""
    found = os.environ.get("HAPROXY_BIN") or shutil.which("haproxy")
    if not found and Path("/usr/sbin/haproxy").exists():
        found = "/usr/sbin/haproxy"
    if not found or not Path(found).exists():
        raise ProcessError("no HAProxy: apt-get install haproxy (or set HAPROXY_BIN)")
    return Path(found)


@dataclass(frozen=True, slots=True)
class Backend:
    """A node as HAProxy sees it: where its client proxy and its Patroni API listen."""

    name: str
    port: int
    api_port: int


class HaProxy:
    """One HAProxy process routing a loopback port to the primary among `backends`."""

    def __init__(self, backends: list[Backend], workdir: Path) -> None:
        self.backends = backends
        self.workdir = workdir
        self.port = free_port()
        self.settings = RouterSettings()
        self._process: ManagedProcess | None = None

    @property
    def url_host(self) -> str:
        """host:port of the routed address."""
        return f"127.0.0.1:{self.port}"

    def config(self) -> str:
        """haproxy.cfg for the current settings."""
        s = self.settings
        inter = f"{int(s.check_interval * 1000)}ms"
        servers = "\n".join(
            f"  server {b.name} 127.0.0.1:{b.port} check addr 127.0.0.1 port {b.api_port}"
            for b in self.backends
        )
        return f"""global
  maxconn 1024
  stats socket {self.workdir / "haproxy.sock"} mode 600 level admin

defaults
  mode tcp
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 1s

listen primary
  bind 127.0.0.1:{self.port}
  option httpchk GET /primary
  http-check expect status 200
  default-server inter {inter} fall {s.fall} rise {s.rise} on-marked-down shutdown-sessions
{servers}
"""

    def start(self) -> None:
        """Write the configuration, start HAProxy in the foreground, wait for its port."""
        path = self.workdir / "haproxy.cfg"
        path.write_text(self.config())
        self._process = ManagedProcess(
            [str(find_haproxy()), "-db", "-f", str(path)],
            name=f"haproxy on port {self.port}",
            log_path=self.workdir / "haproxy.log",
        )
        self._process.start()

        def listening() -> bool:
            assert self._process is not None
            self._process.check_alive()
            with socket.socket() as sock:
                sock.settimeout(0.5)
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening, timeout=START_TIMEOUT, what=f"haproxy on port {self.port}")

    def server_states(self) -> dict[str, str]:
        """Each server's status as HAProxy sees it (`UP`, `DOWN`...), from its stats socket."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2.0)
            sock.connect(str(self.workdir / "haproxy.sock"))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        name, status = header.index("svname"), header.index("status")
        return {
            row[name]: row[status]
            for row in (line.split(",") for line in lines[1:] if line)
            if row[name] not in ("FRONTEND", "BACKEND")
        }

    def wait_routed(self, primary: str, *, timeout: float) -> None:
        """Wait until HAProxy routes to `primary` only: it UP, every other server DOWN
        (HAProxy starts every server UP until its checks say otherwise)."""

        def routed() -> bool:
            states = self.server_states()
            return states.get(primary) == "UP" and all(
                state.startswith("DOWN") for name, state in states.items() if name != primary
            )

        try:
            wait_for(routed, timeout=timeout, what=f"haproxy routing to {primary} only")
        except ChaosError as exc:
            raise ChaosError(f"{exc}; servers: {self.server_states()}") from exc

    def configure(self, settings: RouterSettings) -> None:
        """New check settings: HAProxy restarted with them on the same port (its routed
        sessions are cut; the service reconnects)."""
        if settings == self.settings:
            return
        self.settings = settings
        self.stop()
        self.start()

    def stop(self) -> None:
        """Stop HAProxy. Idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None
