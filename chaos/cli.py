"""Command line of the toolkit.

chaos run [--scenarios FILE_OR_DIR ...] [--scenario NAME ...] [--repeat N] [--keep-going]
          [--stack local|compose|ha] [--target MODULE:ATTRIBUTE] [--report-dir DIR]
chaos list [--scenarios FILE_OR_DIR ...] [--stack ...] [--target ...]
chaos explore (--schedules N | --budget 10m | --replay INDEX) [--seed S] [--repeats M]

Every stack runs through the one engine and writes the same reports; `--stack ha` runs
the scenarios that need the HA stack (the shipped ha.yaml, and those of your files).
chaos up [--json]
chaos serve [--port N]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

from chaos.errors import ChaosError
from chaos.infra.ha_stack import NODES, HaStack
from chaos.infra.postgres import PostgresCluster
from chaos.infra.routers import ROUTERS
from chaos.infra.service import ServiceProcess
from chaos.infra.stack import (
    ExternalStack,
    LocalStack,
    Stack,
    StackEndpoints,
    require_docker_sdk,
)
from chaos.report.writers import summary_table, write_reports
from chaos.run.engine import run_selection
from chaos.run.result import ScenarioResult
from chaos.scenarios.catalogue import catalogue, for_stack
from chaos.scenarios.loader import load_scenarios
from chaos.scenarios.model import Scenario
from chaos.targets.base import DEFAULT_TARGET, Target, load_target

__all__ = ["build_parser", "compose_endpoints", "main"]


def compose_endpoints(file: Path) -> tuple[str, StackEndpoints]:
    """The compose project's name and where its parts are published, read from the
    compose file (its `name:` and the postgres service's POSTGRES_* environment); the
    ports are the ones the toolkit's compose lane publishes."""
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        env = doc["services"]["postgres"]["environment"]
        project = str(doc["name"])
        user, password, db = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ChaosError(f"cannot read the compose file {file}: {exc}") from exc
    base = f"postgresql://{user}:{password}@127.0.0.1"
    return project, StackEndpoints(
        service_url="http://127.0.0.1:3000",
        toxiproxy_url="http://127.0.0.1:8474",
        database_url=f"{base}:5432/{db}?sslmode=disable",
        proxied_database_url=f"{base}:5433/{db}?sslmode=disable",
    )


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _serve(args: argparse.Namespace) -> int:
    target = load_target(args.target)
    with (
        PostgresCluster() as pg,
        ServiceProcess(
            database_url=pg.url,
            port=args.port,
            command=target.service_command,
            settings_names=target.settings_names,
        ) as svc,
    ):
        print(f"service on {svc.url} (database {pg.url}); Ctrl-C stops both", flush=True)
        _wait_for_interrupt()
    return 0


def _up(args: argparse.Namespace) -> int:
    target = load_target(args.target)
    stack = LocalStack(
        service_command=target.service_command, service_settings_names=target.settings_names
    )
    try:
        stack.start()
        if args.json:
            print(json.dumps(stack.endpoints.as_dict()), flush=True)
        else:
            for key, value in stack.endpoints.as_dict().items():
                print(f"{key:22} {value}")
            print("stack is up; Ctrl-C stops it", flush=True)
        _wait_for_interrupt()
    finally:
        stack.stop()
    return 0


def _list(args: argparse.Namespace) -> int:
    for s in _selected(args, load_target(args.target)):
        print(f"{s.name} [stack {s.stack}]")
        print(f"    fault: {s.fault.kind}; expected: {s.expected_text()}")
        print(f"    {s.description}")
    return 0


@contextmanager
def _compose(file: Path, project: str) -> Iterator[None]:
    base = ["docker", "compose", "-f", str(file), "-p", project]
    # The service image installs its dependencies offline from wheels built on the host.
    wheels = file.resolve().parent / "scripts" / "wheels.sh"
    try:  # down also after a failed up: it may have left containers behind
        try:
            subprocess.run([wheels], check=True, env={**os.environ, "PYTHON": sys.executable})
            subprocess.run([*base, "up", "-d", "--build", "--wait"], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise ChaosError(f"docker compose up failed: {exc}") from exc
        yield
    finally:
        subprocess.run([*base, "down", "-v", "--remove-orphans"], check=False)


@contextmanager
def _stack_for(args: argparse.Namespace, target: Target) -> Iterator[Stack]:
    if args.service_url:
        if not (args.toxiproxy_url and args.database_url):
            raise ChaosError("--service-url needs --toxiproxy-url and --database-url too")
        ext = ExternalStack(
            StackEndpoints(
                service_url=args.service_url,
                toxiproxy_url=args.toxiproxy_url,
                database_url=args.database_url,
                proxied_database_url=args.proxied_database_url or "",
            ),
            compose_project=args.compose_project,
        )
        ext.start()
        yield ext
    elif args.stack == "compose":
        require_docker_sdk()  # before minutes of image builds, not after
        project, endpoints = compose_endpoints(Path(args.compose_file))
        project = args.compose_project or project
        with _compose(Path(args.compose_file), project):
            ext = ExternalStack(endpoints, compose_project=project)
            ext.start()
            yield ext
    else:
        command, names = target.service_command, target.settings_names
        local: Stack = (
            HaStack(
                nodes=args.nodes,
                router=args.router,
                service_command=command,
                service_settings_names=names,
            )
            if args.stack == "ha"
            else LocalStack(service_command=command, service_settings_names=names)
        )
        try:
            say(f"starting the {args.stack} stack (PostgreSQL, Toxiproxy, the service)")
            local.start()
            yield local
        finally:
            local.stop()


def say(message: str) -> None:
    """One line of live progress."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _selected(args: argparse.Namespace, target: Target) -> list[Scenario]:
    """The scenarios of --scenarios files (all validated first), else the shipped ones and
    the target's; those the chosen stack runs; narrowed to the --scenario names."""
    files = getattr(args, "scenarios", None)
    pool = (
        load_scenarios([Path(p) for p in files], kinds=target.fault_kinds())
        if files
        else catalogue(target)
    )
    stack = "ha" if args.stack == "ha" else "any"
    runnable = for_stack(pool, stack, getattr(args, "router", "libpq"))
    names = getattr(args, "scenario", None)
    if not names:
        if not runnable:
            raise ChaosError(
                f"no scenario for the {args.stack} stack among {len(pool)} "
                f"({', '.join(s.name for s in pool)})"
            )
        return runnable
    known = {s.name: s for s in pool}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ChaosError(f"no scenario {', '.join(unknown)}; known: {', '.join(known)}")
    elsewhere = [n for n in names if known[n].stack != stack]
    if elsewhere:
        raise ChaosError(
            f"{', '.join(elsewhere)} need(s) another stack than {args.stack} "
            f"(stack {known[elsewhere[0]].stack})"
        )
    return [known[n] for n in names]


def _run(args: argparse.Namespace) -> int:
    target = load_target(args.target)
    scenarios = _selected(args, target)
    results: list[ScenarioResult] = []
    errors = 0
    started = time.monotonic()
    report_dir = Path(args.report_dir)
    with _stack_for(args, target) as stack:
        for run in run_selection(
            stack,
            scenarios,
            repeat=args.repeat,
            keep_going=args.keep_going,
            target=target,
            progress=say,
        ):
            if run.error is not None:
                errors += 1
                say(f"{run.label}: ERROR {run.error}")
                continue
            result = run.result
            assert result is not None  # a run has a result or an error
            results.append(result)
            write_reports(results, report_dir)  # a crash keeps what finished
            verdict = "PASS" if result.passed else "FAIL"
            ttr = result.time_to_recover
            say(
                f"{run.label}: {verdict} ({dict(result.statuses_touched())}, recovered in "
                f"{'-' if ttr is None else f'{ttr:.3f} s'})"
            )
            for check in result.failed_checks():
                say(f"{run.label}:   FAIL {check.name}: {check.detail}")
    print()
    print(summary_table(results))
    paths = write_reports(results, report_dir)
    failed = sum(not r.passed for r in results)
    print(
        f"\n{len(results) - failed} passed, {failed} failed, {errors} errors in "
        f"{time.monotonic() - started:.1f} s; reports: " + ", ".join(str(p) for p in paths.values())
    )
    return 1 if failed or errors else 0


def _router_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--router",
        choices=ROUTERS,
        default="libpq",
        help="how the service finds the primary on the HA stack: libpq's multi-host URL, "
        "HAProxy on Patroni's /primary check, or PgBouncer (transaction pooling) in front "
        "of that HAProxy (default libpq)",
    )


def _stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nodes",
        type=int,
        default=NODES,
        metavar="N",
        help=f"PostgreSQL nodes of the HA stack (default {NODES}; at least 2)",
    )
    _router_argument(parser)
    parser.add_argument("--compose-file", default="docker-compose.ci.yml")
    parser.add_argument(
        "--compose-project",
        default=os.environ.get("CHAOS_COMPOSE_PROJECT"),
        help="default: the compose file's `name:`",
    )
    parser.add_argument(
        "--service-url",
        default=os.environ.get("CHAOS_SERVICE_URL"),
        help="target a running stack instead (with the URLs below)",
    )
    parser.add_argument("--toxiproxy-url", default=os.environ.get("CHAOS_TOXIPROXY_URL"))
    parser.add_argument("--database-url", default=os.environ.get("CHAOS_DATABASE_URL"))
    parser.add_argument(
        "--proxied-database-url", default=os.environ.get("CHAOS_PROXIED_DATABASE_URL")
    )
    parser.add_argument("--report-dir", default=os.environ.get("CHAOS_REPORT_DIR", "reports"))


def _seconds(text: str) -> float:
    """`90`, `90s`, `10m`, `1h` as seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1.0)
    try:
        value = float(number) * unit
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a time like 90s, 10m or 1h: {text!r}") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive time, got {text!r}")
    return value


def _shard(text: str) -> tuple[int, int]:
    """`i/n` (0 <= i < n)."""
    part, _, parts = text.partition("/")
    try:
        i, n = int(part), int(parts)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4, got {text!r}") from exc
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected 0 <= I < N, got {text!r}")
    return i, n


def _explore(args: argparse.Namespace) -> int:
    from chaos.explore.pool import local_stacks
    from chaos.explore.runner import explore, summary, write_summary

    target = load_target(args.target)
    if args.replay is not None:
        if args.seed is None:
            raise ChaosError("--replay needs the --seed that drew the schedule")
        return _replay(args, target)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    say(f"explore: seed {seed} (replay with --seed {seed})")
    options = dict(
        seed=seed,
        schedules=args.schedules,
        budget=args.budget,
        repeats=args.repeats,
        out_dir=Path(args.out),
        progress=say,
        shard=args.shard,
        stack_kind="ha" if args.stack == "ha" else "any",
    )
    if args.workers > 1:
        if args.stack != "local" or args.service_url:
            raise ChaosError("--workers N needs --stack local (a stack per worker, free ports)")
        new_stack = local_stacks(target)
        say(f"starting {args.workers} workers, each with its own local stack")
        found = explore(None, target, workers=args.workers, new_stack=new_stack, **options)
    else:
        with _stack_for(args, target) as stack:
            found = explore(stack, target, **options)
    write_summary(found, Path(args.report_dir) / "explore.json")
    print("\n".join(summary(found)))
    return 1 if found.found else 0


def _replay(args: argparse.Namespace, target: Target) -> int:
    from chaos.explore.runner import default_kinds, run_once, schedule_for

    stack_kind = "ha" if args.stack == "ha" else "any"
    schedule = schedule_for(args.seed, args.replay, default_kinds(target, stack_kind))
    name = f"explore-{args.seed}-{args.replay}"
    say(f"{name}: {schedule.describe()}")
    failures: list[list[str]] = []
    with _stack_for(args, target) as stack:
        for n in range(1, args.repeats + 1):
            trial = run_once(stack, schedule, name, target, stack_kind)
            verdict = sorted(trial.failed) or ([f"error: {trial.error}"] if trial.error else [])
            say(f"{name}: run {n}: {'FAIL ' + str(verdict) if trial.fails else 'passed'}")
            if trial.fails:
                failures.append(verdict)
    print(f"{name}: failed {len(failures)} of {args.repeats} runs")
    return 1 if failures else 0


def _scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenarios",
        action="append",
        metavar="FILE_OR_DIR",
        help="scenario file, or directory of *.yaml files (repeatable; default: the catalogue)",
    )
    parser.add_argument("--scenario", action="append", help="only this scenario (repeatable)")
    parser.add_argument(
        "--stack",
        choices=("local", "compose", "ha"),
        default="local",
        help="where to run: local processes, docker-compose.ci.yml, or the HA stack "
        "(which runs the scenarios that need it)",
    )
    _target_argument(parser)


def _target_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=os.environ.get("CHAOS_TARGET", DEFAULT_TARGET),
        metavar="MODULE:ATTRIBUTE",
        help=f"the service's target (chaos.targets.base.Target) [env CHAOS_TARGET; "
        f"default {DEFAULT_TARGET}]",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="pgchaos",
        description="Resilience runs of a service against PostgreSQL behind Toxiproxy.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the catalogue (or scenario files) and write reports")
    _scenario_arguments(run)
    run.add_argument(
        "--keep-going",
        action="store_true",
        help="a scenario that errors (not one that fails its checks) does not end the run",
    )
    run.add_argument("--repeat", type=int, default=1, help="run the selection N times")
    _stack_arguments(run)
    run.set_defaults(func=_run)

    explore = sub.add_parser(
        "explore",
        help="run seeded random fault schedules; shrink a failing one to a scenario file",
    )
    explore.add_argument("--seed", type=int, help="the exploration's seed (printed when drawn)")
    how_long = explore.add_mutually_exclusive_group(required=True)
    how_long.add_argument("--schedules", type=int, metavar="N", help="run N schedules")
    how_long.add_argument(
        "--replay",
        type=int,
        metavar="INDEX",
        help="run schedule INDEX of --seed --repeats times and say how often it fails",
    )
    how_long.add_argument(
        "--budget", type=_seconds, metavar="TIME", help="run schedules for TIME (90s, 10m, 1h)"
    )
    explore.add_argument(
        "--repeats",
        type=int,
        default=2,
        metavar="M",
        help="runs of each shrink candidate (timing is real: a flaky failure must not lead)",
    )
    explore.add_argument("--out", default="explore", help="where shrunk scenario files go")
    explore.add_argument(
        "--shard",
        type=_shard,
        default=(0, 1),
        metavar="I/N",
        help="run only the schedules whose index is I modulo N (a CI matrix of N jobs)",
    )
    explore.add_argument(
        "--stack",
        choices=("local", "compose", "ha"),
        default="local",
        help="where to run; the HA stack draws its cluster faults too",
    )
    explore.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N stacks side by side on this machine, one process each (local stack only)",
    )
    _target_argument(explore)
    _stack_arguments(explore)
    explore.set_defaults(func=_explore)

    lst = sub.add_parser("list", help="the scenario catalogue (or the scenarios of files)")
    _scenario_arguments(lst)
    _router_argument(lst)
    lst.set_defaults(func=_list)

    up = sub.add_parser("up", help="PostgreSQL, Toxiproxy and the service, until Ctrl-C")
    up.add_argument("--json", action="store_true", help="print one JSON line once ready")
    _target_argument(up)
    up.set_defaults(func=_up)

    serve = sub.add_parser("serve", help="the service over a throwaway PostgreSQL, until Ctrl-C")
    serve.add_argument("--port", type=int, default=3000)
    _target_argument(serve)
    serve.set_defaults(func=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `pgchaos` (and its alias `chaos`) and `python -m chaos`."""
    args = build_parser().parse_args(argv)
    if getattr(args, "repeat", 1) < 1:
        print("pgchaos: --repeat must be at least 1", file=sys.stderr)
        return 2
    # SIGTERM (a CI job's timeout, `kill`) unwinds like Ctrl-C, so every stack started is
    # torn down in its `finally`; the handler before ours is restored on the way out.
    previous = (
        signal.signal(signal.SIGTERM, _terminated)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except ChaosError as exc:
        print(f"pgchaos: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`chaos list | head`): stop quietly, like other tools.
        # stdout is pointed at /dev/null so that the interpreter's final flush does not
        # raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return code


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM as an exception: the stacks' `finally` blocks run, then the exit code is
    what a shell reports for a process that SIGTERM ended."""
    raise SystemExit(128 + signum)
