"""`pgchaos explore --workers N`: N worker processes, each with a stack of its own on free
ports, taking the next schedule index as soon as they finish one (a failing schedule is
shrunk by the worker that found it, on its stack).

Processes, not threads: each run drives hundreds of HTTP requests from its event loop,
and N loops in one interpreter would share one core. Workers are spawned (not forked),
so nothing of the parent's state (its threads, its open connections) is copied.

The parent hands out one index per idle worker and stops handing out when the plan says
so (schedules, budget, first failure); the schedules in flight then finish. Every worker
stops its stack on the way out, Ctrl-C and SIGTERM included; the parent waits for them
(STOP_TIMEOUT each) and terminates one that does not exit.
"""

from __future__ import annotations

import functools
import multiprocessing
import queue
import signal
from collections.abc import Callable
from multiprocessing.queues import Queue
from types import FrameType
from typing import Any

from chaos.errors import ChaosError
from chaos.explore.trial import Attempt, Plan, attempt
from chaos.infra.stack import LocalStack, Stack
from chaos.targets.base import Target

__all__ = ["STOP_TIMEOUT", "local_stacks", "run_pool"]

#: Seconds a worker gets to stop its stack and exit after the last schedule.
STOP_TIMEOUT = 60.0
#: Seconds between checks that every worker is still alive while waiting for a result.
_LIVENESS = 1.0


def local_stacks(target: Target) -> Callable[[], LocalStack]:
    """A picklable factory of local stacks running the target's service: what each worker
    starts (`explore(..., new_stack=local_stacks(target))`)."""
    return functools.partial(
        LocalStack,
        service_command=tuple(target.service_command),
        service_settings_names=tuple(target.settings_names),
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _worker(
    number: int,
    new_stack: Callable[[], Stack],
    target: Target,
    plan: Plan,
    tasks: Queue[int | None],
    results: Queue[tuple[str, Any]],
) -> None:
    """Start a stack, run the indices sent until None, stop the stack."""
    signal.signal(signal.SIGTERM, _interrupt)

    def progress(line: str) -> None:
        results.put(("progress", f"worker {number}: {line}"))

    stack = new_stack()
    try:
        stack.start()
        results.put(("ready", number))
        while (index := tasks.get()) is not None:
            try:
                results.put(("done", attempt(stack, target, plan, index, progress)))
            except Exception as exc:
                results.put(("error", f"worker {number}, schedule {index}: {exc}"))
                return
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        results.put(("error", f"worker {number}: {type(exc).__name__}: {exc}"))
    finally:
        stack.stop()


def run_pool(
    workers: int,
    new_stack: Callable[[], Stack],
    target: Target,
    plan: Plan,
    more: Callable[[], int | None],
    record: Callable[[Attempt], None],
    progress: Callable[[str], None],
) -> None:
    """Run schedules on `workers` processes until `more` returns None; `record` each
    attempt as it comes back. A worker that fails or dies is a ChaosError."""
    ctx = multiprocessing.get_context("spawn")
    tasks: Queue[int | None] = ctx.Queue()
    results: Queue[tuple[str, Any]] = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(n, new_stack, target, plan, tasks, results),
            name=f"pgchaos-explore-{n}",
        )
        for n in range(1, workers + 1)
    ]
    for p in procs:
        p.start()
    in_flight = 0
    finished = False
    try:
        while True:
            try:
                kind, body = results.get(timeout=_LIVENESS)
            except queue.Empty:
                kind, body = "", None
            if kind != "error" and (dead := [p.name for p in procs if not p.is_alive()]):
                # A worker that fails says so first; one that died (SIGKILL, OOM) did not.
                raise ChaosError(f"explore workers exited without a word: {dead}")
            if not kind:
                continue
            if kind == "progress":
                progress(str(body))
                continue
            if kind == "error":
                raise ChaosError(str(body))
            if kind == "done":
                in_flight -= 1
                record(body)
            # A worker is idle: after its start ("ready") or a schedule ("done").
            index = more()
            if index is not None:
                tasks.put(index)
                in_flight += 1
            elif in_flight == 0:
                finished = True
                return
    finally:
        for _ in procs:
            tasks.put(None)
        if not finished:  # an error or an interrupt: the schedules in flight stop now
            for p in procs:
                p.terminate()
        for p in procs:
            p.join(STOP_TIMEOUT)
            if p.is_alive():
                p.terminate()
                p.join(STOP_TIMEOUT)
        tasks.close()
        results.close()
