"""Command line of the toolkit: `serve`, `up`, `list`, `run`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence

from chaos.postgres import PostgresCluster
from chaos.service import ServiceProcess
from chaos.stack import LocalStack

__all__ = ["main"]


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _serve(args: argparse.Namespace) -> int:
    with PostgresCluster() as pg, ServiceProcess(database_url=pg.url, port=args.port) as svc:
        print(f"service on {svc.url} (database {pg.url}); Ctrl-C stops both", flush=True)
        _wait_for_interrupt()
    return 0


def _up(args: argparse.Namespace) -> int:
    stack = LocalStack()
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="the service over a throwaway PostgreSQL, until Ctrl-C")
    serve.add_argument("--port", type=int, default=3000)
    serve.set_defaults(func=_serve)
    up = sub.add_parser("up", help="PostgreSQL, Toxiproxy and the service, until Ctrl-C")
    up.add_argument("--json", action="store_true", help="print one JSON line once ready")
    up.set_defaults(func=_up)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `chaos` and `python -m chaos`."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    sys.stdout.flush()
    return code
