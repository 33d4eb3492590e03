"""Network faults: any Toxiproxy toxic on the database proxy, and the proxy disabled.

Both act on the stack's proxy between the service and its database (`Stack.proxy_name`),
or on another of the stack's proxies named by `proxy` (the HA stack's `pgbouncer`, in
front of PgBouncer).
"""

from __future__ import annotations

import threading
from contextlib import suppress
from dataclasses import dataclass

from chaos.errors import ChaosError
from chaos.faults.base import Fault, FaultContext
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.toxiproxy import NotFound, ToxicSpec

__all__ = ["NetworkToxic", "ProxyDown"]


@dataclass(frozen=True)
class NetworkToxic(Fault):
    """A Toxiproxy toxic on the database proxy.

    `reconnect_every`: while the toxic is on, terminate the service's idle backends every
    so many seconds, so that its pool keeps opening connections through the toxic. Some
    toxics (reset_peer) act only on connections opened after they were added, and the
    pool's connections are long-lived: without this such a toxic never meets one.
    """

    toxic: ToxicSpec
    reconnect_every: float | None = None
    proxy: str | None = None

    @property
    def kind(self) -> str:
        attrs = ",".join(f"{k}={v}" for k, v in self.toxic.attributes().items())
        tox = f" toxicity={self.toxic.toxicity:g}" if self.toxic.toxicity != 1.0 else ""
        churn = (
            f", idle backends terminated every {self.reconnect_every:g} s"
            if self.reconnect_every
            else ""
        )
        where = f" on proxy {self.proxy}" if self.proxy else ""
        return f"{self.toxic.type}({attrs}) {self.toxic.stream}{tox}{churn}{where}"

    def inject(self, ctx: FaultContext) -> None:
        ctx.toxiproxy.add_toxic(self.proxy or ctx.stack.proxy_name, self.toxic)
        if self.reconnect_every:
            churn = _Churn(ctx, self.reconnect_every)
            ctx.resources.callback(churn.stop)
            churn.start()

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()  # the churn stops before the toxic goes
        with suppress(NotFound):
            ctx.toxiproxy.remove_toxic(self.proxy or ctx.stack.proxy_name, self.toxic.toxic_name)


class _Churn:
    """Terminates the service's idle backends periodically from a thread of its own (with
    its own admin connection: a psycopg connection is not shared between threads)."""

    def __init__(self, ctx: FaultContext, every: float) -> None:
        self._ctx = ctx
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="chaos-churn", daemon=True)
        self._error: BaseException | None = None
        self.terminated = 0

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        try:
            with PostgresAdmin(
                self._ctx.admin.url, application_name=self._ctx.admin.application_name
            ) as admin:
                while not self._stop.is_set():
                    for backend in admin.backends():
                        if backend.state == "idle" and admin.terminate(backend.pid):
                            self.terminated += 1
                    self._stop.wait(self._every)
        except BaseException as exc:  # reported by stop(), in the main thread
            self._error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self._ctx.limits.request_deadline)
        # Not evidence that the toxic acted: only what the toxic causes counts (the
        # scenario names it, e.g. failed connects).
        self._ctx.notes["churn_terminated"] = self.terminated
        if self._thread.is_alive():
            raise ChaosError(
                f"backend churn did not stop within {self._ctx.limits.request_deadline:g} s"
            )
        if self._error is not None:
            raise ChaosError(f"backend churn failed: {self._error}") from self._error


@dataclass(frozen=True)
class ProxyDown(Fault):
    """The proxy disabled: every connection closed, new connects refused."""

    proxy: str | None = None

    @property
    def kind(self) -> str:
        return f"proxy {self.proxy} disabled" if self.proxy else "proxy disabled"

    def inject(self, ctx: FaultContext) -> None:
        ctx.toxiproxy.disable(self.proxy or ctx.stack.proxy_name)

    def remove(self, ctx: FaultContext) -> None:
        ctx.toxiproxy.enable(self.proxy or ctx.stack.proxy_name)
