"""`python -m tests.kv`: serve the key-value test service on SERVER_HOST:SERVER_PORT with
uvicorn and the coupon service's guarded HTTP protocol; SIGTERM stops it cleanly."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn
from pydantic import ValidationError

from app.__main__ import EXIT_INVALID_SETTINGS, EXIT_STARTUP_FAILED, describe_invalid_settings
from app.backpressure import READS
from app.server import GuardedHttpToolsProtocol, HttpLimits, fit_connection_cap
from tests.kv.service import KvSettings, create_app


def main() -> int:
    """Read the settings from the environment and serve until SIGINT/SIGTERM."""
    try:
        settings = KvSettings()
    except ValidationError as exc:
        text = describe_invalid_settings(exc, dict(os.environ))
        print("kv service: " + text.removeprefix("coupon service: "), file=sys.stderr)
        return EXIT_INVALID_SETTINGS
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    limits = fit_connection_cap(HttpLimits.from_settings(settings))
    READS.limit = limits.max_in_progress
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.server_host,
            port=settings.server_port,
            http=GuardedHttpToolsProtocol.bind(limits),
            ws="none",
            lifespan="on",
            log_level=settings.log_level,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=int(settings.request_deadline) + 1,
        )
    )
    server.run()
    return 0 if server.started else EXIT_STARTUP_FAILED


if __name__ == "__main__":
    sys.exit(main())
