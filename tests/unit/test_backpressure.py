"""The read gate (app.backpressure): requests in progress and held connections."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.backpressure import ReadGate


class _Conn:
    def __init__(self, gate: ReadGate, log: list[str], name: str) -> None:
        self.gate, self.log, self.name = gate, log, name

    def resume_held(self) -> None:
        self.log.append(self.name)
        self.gate.started()  # its request starts


def test_a_full_gate_holds_and_resumes_first_in_first_out() -> None:
    async def scenario() -> list[str]:
        gate = ReadGate(limit=2)
        log: list[str] = []
        gate.started()
        assert not gate.full()
        gate.started()
        assert gate.full()
        for name in ("a", "b", "c"):
            gate.hold(_Conn(gate, log, name))
        assert gate.held == 3
        gate.finished()
        await asyncio.sleep(0)  # resumed on the loop's next turn, not inside the task
        assert log == ["a"]
        assert gate.full()
        gate.finished()
        gate.finished()
        await asyncio.sleep(0)
        assert log == ["a", "b", "c"]
        assert gate.held == 0
        assert gate.held_total == 3
        return log

    asyncio.run(scenario())


def test_no_limit_never_holds() -> None:
    gate = ReadGate(limit=0)
    for _ in range(10_000):
        gate.started()
    assert not gate.full()


def test_uvicorn_still_has_the_hook_the_server_wraps() -> None:
    # app/server.py counts requests by wrapping this private method; an upgrade of
    # uvicorn that drops it must fail here, not silently turn backpressure off.
    assert callable(getattr(HttpToolsProtocol, "_start_asgi_task", None))
